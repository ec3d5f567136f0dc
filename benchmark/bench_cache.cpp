// What the cache front costs on top of its backend, and what its stampede protection saves.
//
// BM_CacheGetOrComputeHit: cache.get_or_compute<std::string> over compose(MemoryBackend, RedisBackend,
// OffloadManager) for keys held in L1 (the loader never runs). Same fixture as BM_ComposeL1Hit in
// bench_compose.cpp (100 000 keys, 100-byte std::string values expiring in 24 h, no stale time, keys built
// before timing, uniformly random access, 1 thread); its baselines: BM_ComposeL1Hit, and BM_CacheByHandHit
// here, the get-or-load a user would otherwise write on the same composition. Target: <= 1.2x.
// BM_CacheGetOrComputeHitCounting: the same with CountingMetrics (two clock reads and two atomic additions).
//
// BM_CacheStampede/N: N threads call get_or_compute on the same cold key at once, a new key per iteration;
// the loader takes ~1 ms. Counter loader_calls_per_miss must be 1 with the default concurrency limit. Its
// baseline, BM_StampedeByHand/N: the same threads doing get, load, set by hand (every thread loads).
//
// BM_CacheStampedeInstances/8: 8 Cache instances (each its own L1 and Redis connection, one shared
// redis-server: 8 processes of a service), one thread each, on the same cold key per iteration, with the
// stampede lock across instances (CachePolicy::lock_ttl); the loader takes ~5 ms. Counter
// loader_calls_per_miss must be 1. Its baseline, BM_CacheStampedeInstancesNoLock/8: the same without the
// lock (each instance coalesces only its own callers, so up to 8 loads per key).
//
// The Redis tier of the hit fixture is never reached (every key is in L1): it points at
// HITBOX_REDIS_URL when set, otherwise at a closed port.
#include <benchmark/benchmark.h>

#include "bench_support.hpp"

#include <algorithm>
#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <hitbox/backend/memory/memory_backend.hpp>
#include <hitbox/backend/redis.hpp>
#include <hitbox/cache.hpp>
#include <hitbox/compose/compose.hpp>
#include <hitbox/offload/inline_offload.hpp>
#include <hitbox/offload/offload_manager.hpp>

#include "bench_redis_env.hpp"

namespace {

using namespace hitbox_bench;

using namespace std::chrono_literals;

using Tiers = hitbox::Compose<hitbox::MemoryBackend, hitbox::RedisBackend<>, hitbox::OffloadManager>;

struct CacheEnv {
    std::vector<hitbox::CacheKey> keys;
    std::unique_ptr<hitbox::OffloadManager> offload;
    std::optional<Tiers> tiers;  // L1 full of keys (no stale time), built exactly as bench_compose.cpp does
    std::optional<hitbox::Cache<Tiers&, hitbox::OffloadManager>> cache;
    std::optional<hitbox::Cache<Tiers&, hitbox::OffloadManager, hitbox::CountingMetrics>> counting;
};

hitbox::RedisBackend<> redis_backend() {
    const char* url = std::getenv("HITBOX_REDIS_URL");
    return *hitbox::RedisBackend<>::builder()
                .connection(hitbox::ConnectionMode::single(url && *url ? url : "redis://127.0.0.1:1/"))
                .key_prefix("bench-cache:")
                .build();
}

void fill(CacheEnv& e) {
    e.offload = std::make_unique<hitbox::OffloadManager>();
    auto memory = *hitbox::MemoryBackend::builder().max_entries(key_count).build();
    e.keys = bench_keys();
    fill_values(memory, e.keys);
    e.tiers.emplace(std::move(memory), redis_backend(), *e.offload);
    e.cache.emplace(*e.tiers, *e.offload);
    e.counting.emplace(*e.tiers, *e.offload, hitbox::CountingMetrics{});
}

CacheEnv& env() {
    static CacheEnv e;  // caches are not movable: filled in place, once
    static const bool ready = (fill(e), true);
    (void)ready;
    return e;
}

const hitbox::CachePolicy hit_policy{.ttl = std::chrono::hours(24)};

template <class C>
void cache_hits(benchmark::State& state, C& cache) {
    auto& e = env();
    RandomIndex rnd{0x9e3779b97f4a7c15ull * static_cast<std::uint64_t>(state.thread_index() + 1)};
    std::size_t loads = 0, misses = 0;
    auto loader = [&loads] {
        ++loads;
        return std::string("never");
    };
    for (auto _ : state) {
        auto r = cache.template get_or_compute<std::string>(e.keys[rnd.next(key_count)], loader, hit_policy);
        misses += r.status == hitbox::CacheStatus::Hit ? 0 : 1;
        benchmark::DoNotOptimize(r);
    }
    if (misses != 0 || loads != 0) state.SkipWithError("the cache missed a key held in L1");
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

void BM_CacheGetOrComputeHit(benchmark::State& state) { cache_hits(state, *env().cache); }
BENCHMARK(BM_CacheGetOrComputeHit)->Threads(1)->UseRealTime();

void BM_CacheGetOrComputeHitCounting(benchmark::State& state) { cache_hits(state, *env().counting); }
BENCHMARK(BM_CacheGetOrComputeHitCounting)->Threads(1)->UseRealTime();

/// BM_ComposeL1Hit's loop on this file's own composition (the one the caches above wrap): the same-fixture
/// baseline, so the ratio shows the front's cost and not a difference between two fixtures' layouts.
void BM_CacheFixtureComposeHit(benchmark::State& state) { tier_hits(state, *env().tiers, env().keys); }
BENCHMARK(BM_CacheFixtureComposeHit)->Threads(1)->UseRealTime();

/// What a user writes without the cache front: get; on a miss, load and set.
void BM_CacheByHandHit(benchmark::State& state) {
    auto& e = env();
    auto& tiers = *e.tiers;
    RandomIndex rnd{0x9e3779b97f4a7c15ull * static_cast<std::uint64_t>(state.thread_index() + 1)};
    std::size_t loads = 0;
    for (auto _ : state) {
        const auto& key = e.keys[rnd.next(key_count)];
        std::optional<std::string> value;
        if (auto hit = tiers.get<std::string>(key); hit && *hit) {
            value = std::move((*hit)->data);
        } else {
            ++loads;
            value = "never";
            (void)tiers.set(key,
                            hitbox::CacheValue<std::string>{*value, hitbox::Clock::now() + std::chrono::hours(24)});
        }
        benchmark::DoNotOptimize(value);
    }
    if (loads != 0) state.SkipWithError("the composition missed a key held in L1");
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_CacheByHandHit)->Threads(1)->UseRealTime();

// ---- stampede ----------------------------------------------------------------------------------------

/// Runs `callers` threads that, once per iteration, all ask for the same new key; `call(key, loader)`
/// is what each thread does. Reports loader calls per missed key.
template <class Call>
void stampede(benchmark::State& state, Call call, std::chrono::milliseconds upstream = 1ms) {
    const auto callers = static_cast<std::ptrdiff_t>(state.range(0));
    std::atomic<std::uint64_t> loads{0};
    std::atomic<std::uint64_t> round{0};
    std::atomic<bool> stop{false};
    std::barrier sync(callers + 1);
    auto loader = [&loads, upstream] {
        loads.fetch_add(1, std::memory_order_relaxed);
        std::this_thread::sleep_for(upstream);
        return std::string(value_size, 'x');
    };
    std::vector<std::thread> workers;
    const std::string run = std::to_string(std::chrono::steady_clock::now().time_since_epoch().count());
    for (std::ptrdiff_t i = 0; i < callers; ++i)
        workers.emplace_back([&, i] {
            for (;;) {
                sync.arrive_and_wait();
                if (stop.load()) return;
                const hitbox::CacheKey key("stampede", 1, {{"run", run}, {"round", std::to_string(round.load())}});
                call(key, loader, static_cast<std::size_t>(i));
                sync.arrive_and_wait();
            }
        });
    for (auto _ : state) {
        round.fetch_add(1);
        sync.arrive_and_wait();  // go
        sync.arrive_and_wait();  // every caller has its value
    }
    stop.store(true);
    sync.arrive_and_wait();
    for (auto& w : workers) w.join();
    const auto iterations = static_cast<double>(state.iterations());
    state.counters["callers"] = static_cast<double>(callers);
    state.counters["loader_calls_per_miss"] = iterations > 0 ? static_cast<double>(loads.load()) / iterations : 0;
}

void BM_CacheStampede(benchmark::State& state) {
    auto memory = *hitbox::MemoryBackend::builder().max_entries(1'000'000).build();
    hitbox::OffloadManager offload{{.workers = 1}};
    hitbox::Cache cache{memory, offload};
    std::atomic<std::uint64_t> failures{0};
    stampede(state, [&](const hitbox::CacheKey& key, auto& loader, std::size_t) {
        auto r = cache.get_or_compute<std::string>(key, loader, {.ttl = 60s});
        if (!r) failures.fetch_add(1);
    });
    if (failures.load() != 0) state.SkipWithError("a caller got no value");
    state.counters["coalesced_per_miss"] = static_cast<double>(cache.stats().coalesced) /
                                           static_cast<double>(std::max<std::int64_t>(1, state.iterations()));
}
BENCHMARK(BM_CacheStampede)->Arg(8)->Arg(64)->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_StampedeByHand(benchmark::State& state) {
    auto memory = *hitbox::MemoryBackend::builder().max_entries(1'000'000).build();
    stampede(state, [&](const hitbox::CacheKey& key, auto& loader, std::size_t) {
        auto hit = memory.get<std::string>(key);
        if (hit && *hit) return;
        (void)memory.set(key, hitbox::CacheValue<std::string>{loader(), hitbox::Clock::now() + 60s});
    });
}
BENCHMARK(BM_StampedeByHand)->Arg(8)->Arg(64)->UseRealTime()->Unit(benchmark::kMillisecond);

/// One service process of BM_CacheStampedeInstances: its own L1, Redis connection and Cache.
struct ServiceInstance {
    using Tiers = hitbox::Compose<hitbox::MemoryBackend, hitbox::RedisBackend<>, hitbox::InlineOffload>;
    hitbox::InlineOffload offload;
    Tiers tiers;
    hitbox::Cache<Tiers&, hitbox::InlineOffload> cache{tiers, offload};
    ServiceInstance(hitbox::MemoryBackend memory, hitbox::RedisBackend<> redis)
        : tiers(std::move(memory), std::move(redis), offload) {}
};

void instances_stampede(benchmark::State& state, const hitbox::CachePolicy& policy) {
    auto& e = bench_redis::env();
    if (!e.error.empty()) {
        state.SkipWithError(e.error.c_str());
        return;
    }
    std::vector<std::unique_ptr<ServiceInstance>> instances;
    for (std::int64_t i = 0; i < state.range(0); ++i) {
        auto redis = hitbox::RedisBackend<>::builder()
                         .connection(hitbox::ConnectionMode::single(e.url))
                         .key_prefix("bench-stampede:")
                         .build();
        if (!redis) {
            state.SkipWithError(redis.error().what().c_str());
            return;
        }
        instances.push_back(std::make_unique<ServiceInstance>(
            *hitbox::MemoryBackend::builder().max_entries(1'000'000).build(), std::move(*redis)));
    }
    std::atomic<std::uint64_t> failures{0};
    stampede(
        state,
        [&](const hitbox::CacheKey& key, auto& loader, std::size_t i) {
            auto r = instances[i]->cache.get_or_compute<std::string>(key, loader, policy);
            if (!r) failures.fetch_add(1);
        },
        5ms);
    if (failures.load() != 0) state.SkipWithError("a caller got no value");
}

void BM_CacheStampedeInstances(benchmark::State& state) {
    instances_stampede(state, {.ttl = 60s, .lock_ttl = 10s, .lock_poll = 2ms});
}
BENCHMARK(BM_CacheStampedeInstances)
    ->Arg(8)
    ->Setup(bench_redis::setup_env)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

void BM_CacheStampedeInstancesNoLock(benchmark::State& state) { instances_stampede(state, {.ttl = 60s}); }
BENCHMARK(BM_CacheStampedeInstancesNoLock)
    ->Arg(8)
    ->Setup(bench_redis::setup_env)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
