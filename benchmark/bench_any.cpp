// The cost of type erasure: AnyBackend over a MemoryBackend against the static MemoryBackend hit
// (BM_MemoryGetHit in bench_memory.cpp has the same keys, values and access pattern; the static twin is
// also here as BM_AnyBaselineMemoryGetHit so one filter shows both), and an erased two-tier composition
// (what hitbox::make_backend builds for `tiers = memory, memory`) against the same composition assembled
// statically. 100 000 keys, 100-byte std::string values, uniformly random hits over all of them (/100000:
// mostly cache misses, where the erased payload costs one more dependent load) or over the first 1 000
// (/1000: cache-resident, where the virtual call and the reference count show), 1 and 2 threads.
#include <benchmark/benchmark.h>

#include "bench_support.hpp"

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include <hitbox/any_backend.hpp>
#include <hitbox/backend/memory/memory_backend.hpp>
#include <hitbox/compose/compose.hpp>
#include <hitbox/offload/inline_offload.hpp>

namespace {

using namespace hitbox_bench;

hitbox::MemoryBackend filled_memory(const std::vector<hitbox::CacheKey>& keys, std::string label, bool erased) {
    auto memory = *hitbox::MemoryBackend::builder().max_entries(key_count).label(std::move(label)).build();
    hitbox::AnyBackend any(memory);  // shares the store: writes through it store the erased form
    if (erased)
        fill_values(any, keys);
    else
        fill_values(memory, keys);
    return memory;
}

struct Fixture {
    std::vector<hitbox::CacheKey> keys = bench_keys();
    hitbox::MemoryBackend typed = filled_memory(keys, "memory", false);
    hitbox::AnyBackend any{filled_memory(keys, "memory", true)};
    hitbox::InlineOffload offload;
    hitbox::Compose<hitbox::MemoryBackend, hitbox::MemoryBackend, hitbox::InlineOffload> static_tiers{
        filled_memory(keys, "l1", false), filled_memory(keys, "l2", false), offload};
    hitbox::AnyBackend erased_tiers{hitbox::compose(hitbox::AnyBackend(filled_memory(keys, "l1", true)),
                                                    hitbox::AnyBackend(filled_memory(keys, "l2", true)), offload)};
};

Fixture& fixture() {
    static Fixture f;
    return f;
}

template <class Get>
void run_hits(benchmark::State& state, Get&& get, const char* what) {
    auto& f = fixture();
    const auto range = static_cast<std::size_t>(state.range(0));
    RandomIndex rnd{0x9e3779b97f4a7c15ull * static_cast<std::uint64_t>(state.thread_index() + 1)};
    std::size_t misses = 0;
    for (auto _ : state) {
        auto hit = get(f, f.keys[rnd.next(range)]);
        misses += (hit && hit->has_value()) ? 0 : 1;
        benchmark::DoNotOptimize(hit);
    }
    if (misses != 0) state.SkipWithError(what);
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

void BM_AnyBaselineMemoryGetHit(benchmark::State& state) {
    run_hits(
        state, [](Fixture& f, const hitbox::CacheKey& k) { return f.typed.get<std::string>(k); },
        "MemoryBackend missed a key that must be present");
}
BENCHMARK(BM_AnyBaselineMemoryGetHit)->Arg(key_count)->Arg(1000)->Threads(1)->Threads(2)->UseRealTime();

void BM_AnyBackendGetHit(benchmark::State& state) {
    run_hits(
        state, [](Fixture& f, const hitbox::CacheKey& k) { return f.any.get<std::string>(k); },
        "AnyBackend missed a key that must be present");
}
BENCHMARK(BM_AnyBackendGetHit)->Arg(key_count)->Arg(1000)->Threads(1)->Threads(2)->UseRealTime();

void BM_AnyStaticComposeL1Hit(benchmark::State& state) {
    run_hits(
        state, [](Fixture& f, const hitbox::CacheKey& k) { return f.static_tiers.get<std::string>(k); },
        "static composition missed a key that must be present");
}
BENCHMARK(BM_AnyStaticComposeL1Hit)->Arg(key_count)->Arg(1000)->Threads(1)->Threads(2)->UseRealTime();

void BM_AnyComposeL1Hit(benchmark::State& state) {
    run_hits(
        state, [](Fixture& f, const hitbox::CacheKey& k) { return f.erased_tiers.get<std::string>(k); },
        "erased composition missed a key that must be present");
}
BENCHMARK(BM_AnyComposeL1Hit)->Arg(key_count)->Arg(1000)->Threads(1)->Threads(2)->UseRealTime();

}  // namespace
