// What a composition costs on top of its tiers.
//
// BM_ComposeL1Hit: get<std::string> on compose(MemoryBackend, RedisBackend, OffloadManager) for keys held in
// L1. Its baselines: BM_ComposeL1HitBareMemory (the same MemoryBackend get, same fixture, same key
// sequence) and BM_MemoryGetHit (bench_memory.cpp, identical fixture: 100 000 keys, 100-byte std::string
// values, keys built before timing, uniformly random access, 1 thread). Target: <= 1.15x the bare hit.
//
// BM_ComposeL2HitRefill: L1 miss, Redis hit, refill of L1 (then the entry is removed from L1 again so the
// next iteration misses too). Its baselines: BM_TwoTierByHand (the same steps written by hand: memory get,
// Redis get, memory set, memory remove) and BM_RedisGet (bench_redis.cpp). Redis address from
// HITBOX_REDIS_URL; otherwise a redis-server is started on a free loopback port.
#include <benchmark/benchmark.h>

#include "bench_support.hpp"

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <hitbox/backend/memory/memory_backend.hpp>
#include <hitbox/backend/redis.hpp>
#include <hitbox/compose/compose.hpp>
#include <hitbox/offload/offload_manager.hpp>

#include "support/redis_server.hpp"

namespace {

using namespace hitbox_bench;

constexpr std::size_t redis_key_count = 1000;

using Tiers = hitbox::Compose<hitbox::MemoryBackend, hitbox::RedisBackend<>, hitbox::OffloadManager>;

struct ComposeEnv {
    std::unique_ptr<hitbox_test::RedisServer> server;  // when HITBOX_REDIS_URL is not set
    std::string url;
    std::string redis_error;  // why the Redis benchmarks cannot run
    std::vector<hitbox::CacheKey> keys;
    std::unique_ptr<hitbox::OffloadManager> offload;
    std::optional<hitbox::MemoryBackend> l1_hits;   // full of keys: the L1-hit fixture
    std::optional<Tiers> hit_tiers;                 // compose(l1_hits, redis)
    std::optional<hitbox::MemoryBackend> l1_empty;  // the L2-hit fixture's L1
    std::optional<hitbox::RedisBackend<>> redis;    // holds redis_key_count keys
    std::optional<Tiers> refill_tiers;              // compose(l1_empty, redis)
};

hitbox::RedisBackend<> redis_backend(const std::string& url) {
    return *hitbox::RedisBackend<>::builder()
                .connection(hitbox::ConnectionMode::single(url))
                .key_prefix("bench-compose:")
                .build();
}

ComposeEnv& env() {
    static ComposeEnv e = [] {
        ComposeEnv e;
        e.offload = std::make_unique<hitbox::OffloadManager>();
        try {
            if (const char* url = std::getenv("HITBOX_REDIS_URL"); url && *url) {
                e.url = url;
            } else if (hitbox_test::find_executable("redis-server")) {
                e.server = std::make_unique<hitbox_test::RedisServer>();
                e.url = e.server->url();
            } else {
                e.redis_error = "redis-server not found";
            }
        } catch (const std::exception& ex) {
            e.redis_error = ex.what();
        }
        // The L1-hit fixture never reaches L2: without a server its Redis tier points at a closed port.
        const std::string l2_url = e.url.empty() ? "redis://127.0.0.1:1/" : e.url;

        e.l1_hits.emplace(*hitbox::MemoryBackend::builder().max_entries(key_count).build());
        e.keys = bench_keys();
        fill_values(*e.l1_hits, e.keys);
        e.hit_tiers.emplace(*e.l1_hits, redis_backend(l2_url), *e.offload);

        if (e.redis_error.empty()) {
            e.redis.emplace(redis_backend(e.url));
            e.l1_empty.emplace(*hitbox::MemoryBackend::builder().max_entries(key_count).build());
            const auto expire = hitbox::Clock::now() + std::chrono::hours(24);
            for (std::size_t i = 0; i < redis_key_count; ++i) {
                if (auto r = e.redis->set(e.keys[i], hitbox::CacheValue<std::string>{value_for(i), expire}); !r) {
                    e.redis_error = r.error().what();
                    e.redis.reset();
                    break;
                }
            }
            if (e.redis) e.refill_tiers.emplace(*e.l1_empty, *e.redis, *e.offload);
        }
        return e;
    }();
    return e;
}

void BM_ComposeL1Hit(benchmark::State& state) { tier_hits(state, *env().hit_tiers, env().keys); }
BENCHMARK(BM_ComposeL1Hit)->Threads(1)->UseRealTime();

void BM_ComposeL1HitBareMemory(benchmark::State& state) {
    auto& e = env();
    auto& memory = *e.l1_hits;
    RandomIndex rnd{0x9e3779b97f4a7c15ull * static_cast<std::uint64_t>(state.thread_index() + 1)};
    std::size_t misses = 0;
    for (auto _ : state) {
        auto hit = memory.get<std::string>(e.keys[rnd.next(key_count)]);
        misses += (hit && hit->has_value()) ? 0 : 1;
        benchmark::DoNotOptimize(hit);
    }
    if (misses != 0) state.SkipWithError("MemoryBackend missed a key that must be present");
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_ComposeL1HitBareMemory)->Threads(1)->UseRealTime();

bool redis_ready(benchmark::State& state) {
    if (env().refill_tiers) return true;
    state.SkipWithError(("no Redis: " + env().redis_error).c_str());
    return false;
}

void BM_ComposeL2HitRefill(benchmark::State& state) {
    if (!redis_ready(state)) return;
    auto& e = env();
    auto& tiers = *e.refill_tiers;
    auto& l1 = *e.l1_empty;
    std::size_t i = 0, bad = 0;
    for (auto _ : state) {
        const auto& key = e.keys[i];
        auto hit = tiers.get<std::string>(key);
        bad += (hit && hit->has_value()) ? 0 : 1;
        (void)l1.remove(key);  // the next round of keys misses L1 again (a memory remove: ~0.1 us)
        i = i + 1 == redis_key_count ? 0 : i + 1;
    }
    if (bad != 0) state.SkipWithError("the composition did not find a key held in Redis");
    if (tiers.stats().refills < static_cast<std::uint64_t>(state.iterations()))
        state.SkipWithError("an L2 hit did not refill L1");
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_ComposeL2HitRefill)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_TwoTierByHand(benchmark::State& state) {
    if (!redis_ready(state)) return;
    auto& e = env();
    auto& l1 = *e.l1_empty;
    auto& redis = *e.redis;
    std::size_t i = 0, bad = 0;
    for (auto _ : state) {
        const auto& key = e.keys[i];
        auto local = l1.get<std::string>(key);
        if (!local || !*local) {
            auto remote = redis.get<std::string>(key);
            if (remote && *remote)
                (void)l1.set(key, **remote);
            else
                ++bad;
        }
        (void)l1.remove(key);
        i = i + 1 == redis_key_count ? 0 : i + 1;
    }
    if (bad != 0) state.SkipWithError("Redis did not return a key it holds");
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_TwoTierByHand)->Unit(benchmark::kMicrosecond)->UseRealTime();

}  // namespace
