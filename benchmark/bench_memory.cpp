// MemoryBackend hits against the cache a user writes by hand: std::mutex + std::unordered_map + std::list
// LRU (a get moves the entry to the front). 100 000 keys, 100-byte std::string values, keys built before
// timing, uniformly random access, 1 and 2 threads sharing one cache. Compare items_per_second.
// BM_MemoryGetHitTimed: the same hits with the tier's duration histograms on.
#include <benchmark/benchmark.h>

#include "bench_support.hpp"

#include <cstdint>
#include <list>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <hitbox/backend/memory/memory_backend.hpp>

namespace {

using namespace hitbox_bench;

/// The baseline: what a C++ service hand-writes today.
class MutexLru {
public:
    explicit MutexLru(std::size_t capacity) : capacity_(capacity) { index_.reserve(capacity); }

    std::optional<std::string> get(const std::string& key) {
        std::lock_guard lock(mutex_);
        auto it = index_.find(key);
        if (it == index_.end()) return std::nullopt;
        order_.splice(order_.begin(), order_, it->second);
        return it->second->second;
    }

    void put(const std::string& key, std::string value) {
        std::lock_guard lock(mutex_);
        auto it = index_.find(key);
        if (it != index_.end()) {
            it->second->second = std::move(value);
            order_.splice(order_.begin(), order_, it->second);
            return;
        }
        order_.emplace_front(key, std::move(value));
        index_.emplace(key, order_.begin());
        if (order_.size() > capacity_) {
            index_.erase(order_.back().first);
            order_.pop_back();
        }
    }

private:
    std::mutex mutex_;
    std::size_t capacity_;
    std::list<std::pair<std::string, std::string>> order_;
    std::unordered_map<std::string, std::list<std::pair<std::string, std::string>>::iterator> index_;
};

struct MemoryFixture {
    std::vector<hitbox::CacheKey> keys;
    hitbox::MemoryBackend cache;
};

MemoryFixture make_memory_fixture(bool duration_histograms) {
    auto cache =
        hitbox::MemoryBackend::builder().max_entries(key_count).duration_histograms(duration_histograms).build();
    std::vector<hitbox::CacheKey> keys = bench_keys();
    fill_values(*cache, keys);
    return MemoryFixture{std::move(keys), std::move(*cache)};
}

MemoryFixture& memory_fixture() {
    static MemoryFixture fixture = make_memory_fixture(false);
    return fixture;
}

/// The same cache with its duration histograms on (what timing each hit costs).
MemoryFixture& timed_memory_fixture() {
    static MemoryFixture fixture = make_memory_fixture(true);
    return fixture;
}

struct LruFixture {
    std::vector<std::string> keys;
    MutexLru cache{key_count};
};

LruFixture& lru_fixture() {
    static LruFixture fixture;
    static std::once_flag filled;
    std::call_once(filled, [] {
        for (std::size_t i = 0; i < key_count; ++i) {
            fixture.keys.push_back("bench:v1:id=" + std::to_string(i));
            fixture.cache.put(fixture.keys.back(), value_for(i));
        }
    });
    return fixture;
}

void memory_hits(benchmark::State& state, MemoryFixture& f) {
    RandomIndex rnd{0x9e3779b97f4a7c15ull * static_cast<std::uint64_t>(state.thread_index() + 1)};
    std::size_t misses = 0;
    for (auto _ : state) {
        auto hit = f.cache.get<std::string>(f.keys[rnd.next(key_count)]);
        misses += (hit && hit->has_value()) ? 0 : 1;
        benchmark::DoNotOptimize(hit);
    }
    if (misses != 0) state.SkipWithError("MemoryBackend missed a key that must be present");
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

void BM_MemoryGetHit(benchmark::State& state) { memory_hits(state, memory_fixture()); }
BENCHMARK(BM_MemoryGetHit)->Threads(1)->Threads(2)->UseRealTime();

// The same hits with .duration_histograms() on: two clock reads and a histogram record per hit.
void BM_MemoryGetHitTimed(benchmark::State& state) { memory_hits(state, timed_memory_fixture()); }
BENCHMARK(BM_MemoryGetHitTimed)->Threads(1)->Threads(2)->UseRealTime();

void BM_MutexLruGetHit(benchmark::State& state) {
    auto& f = lru_fixture();
    RandomIndex rnd{0x9e3779b97f4a7c15ull * static_cast<std::uint64_t>(state.thread_index() + 1)};
    std::size_t misses = 0;
    for (auto _ : state) {
        auto hit = f.cache.get(f.keys[rnd.next(key_count)]);
        misses += hit ? 0 : 1;
        benchmark::DoNotOptimize(hit);
    }
    if (misses != 0) state.SkipWithError("MutexLru missed a key that must be present");
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_MutexLruGetHit)->Threads(1)->Threads(2)->UseRealTime();

/// Writes of new keys into a full cache (each one evicts), one thread: the cost of the policy.
void BM_MemorySetEvict(benchmark::State& state) {
    auto cache = *hitbox::MemoryBackend::builder().max_entries(key_count / 10).build();
    const std::vector<hitbox::CacheKey> keys = bench_keys();
    const std::string value = value_for(7);
    std::size_t i = 0;
    for (auto _ : state) {
        auto r = cache.set(keys[i], hitbox::CacheValue<std::string>{value});
        benchmark::DoNotOptimize(r);
        i = i + 1 == key_count ? 0 : i + 1;
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_MemorySetEvict);

void BM_MutexLruSetEvict(benchmark::State& state) {
    MutexLru cache(key_count / 10);
    std::vector<std::string> keys;
    for (std::size_t i = 0; i < key_count; ++i) keys.push_back("bench:v1:id=" + std::to_string(i));
    const std::string value = value_for(7);
    std::size_t i = 0;
    for (auto _ : state) {
        cache.put(keys[i], value);
        i = i + 1 == key_count ? 0 : i + 1;
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_MutexLruSetEvict);

}  // namespace
