#pragma once
// What the in-process benchmarks share, so BM_MemoryGetHit, BM_ComposeL1Hit, BM_CacheGetOrComputeHit and
// BM_AnyBackend* measure the same fixture: 100 000 keys ("bench", version 1, one part id=<i>) built before
// timing, 100-byte std::string values that start with their index, and a uniformly random key sequence.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include <hitbox/core/clock.hpp>
#include <hitbox/core/key.hpp>
#include <hitbox/core/value.hpp>

namespace hitbox_bench {

inline constexpr std::size_t key_count = 100'000;
inline constexpr std::size_t value_size = 100;

/// value_size bytes that start with the decimal index (so a wrong value is visible).
inline std::string value_for(std::size_t i) {
    std::string v(value_size, 'v');
    const auto id = std::to_string(i);
    v.replace(0, id.size(), id);
    return v;
}

/// xorshift64, then a multiply-shift into [0, n): cheap enough not to dominate a hit.
struct RandomIndex {
    std::uint64_t x;
    std::size_t next(std::size_t n) noexcept {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        return static_cast<std::size_t>(((x >> 32) * n) >> 32);
    }
};

/// The benchmark keys 0..n-1.
inline std::vector<hitbox::CacheKey> bench_keys(std::size_t n = key_count) {
    std::vector<hitbox::CacheKey> keys;
    keys.reserve(n);
    for (std::size_t i = 0; i < n; ++i)
        keys.emplace_back("bench", 1, std::vector<hitbox::KeyPart>{{"id", std::to_string(i)}});
    return keys;
}

/// Stores value_for(i) under keys[i] in `backend`, expiring in 24 h (never during a run).
template <class Backend>
void fill_values(Backend& backend, const std::vector<hitbox::CacheKey>& keys) {
    const auto expire = hitbox::Clock::now() + std::chrono::hours(24);
    for (std::size_t i = 0; i < keys.size(); ++i)
        (void)backend.set(keys[i], hitbox::CacheValue<std::string>{value_for(i), expire});
}

/// The L1-hit loop of BM_ComposeL1Hit and its same-fixture twin: get<std::string> of random keys held in
/// `tiers`, the value left inside the result.
template <class State, class Tiers>
void tier_hits(State& state, Tiers& tiers, const std::vector<hitbox::CacheKey>& keys) {
    RandomIndex rnd{0x9e3779b97f4a7c15ull * static_cast<std::uint64_t>(state.thread_index() + 1)};
    std::size_t misses = 0;
    for (auto _ : state) {
        auto hit = tiers.template get<std::string>(keys[rnd.next(keys.size())]);
        misses += (hit && hit->has_value()) ? 0 : 1;
        benchmark::DoNotOptimize(hit);
    }
    if (misses != 0) state.SkipWithError("a key held in L1 missed");
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

}  // namespace hitbox_bench
