#pragma once
/// \file
/// hitbox::MemoryStats: the counters of the in-process tier, as a plain struct, and its Prometheus export
/// (the `hitbox_write_stats` customization point, see hitbox::ExportableStats).

#include <cstdint>
#include <string_view>

#include <hitbox/core/linkage.hpp>
#include <hitbox/core/prometheus.hpp>
#include <hitbox/core/stats.hpp>

namespace hitbox {

/// A snapshot of a MemoryBackend's counters (summed over its shards; each field is read on its own, so a
/// snapshot taken under load is consistent per field, not across fields).
struct MemoryStats {
    std::uint64_t entries = 0;  ///< stored entries, including expired ones not yet reclaimed
    /// Sum of the weigher's figure over stored entries, as the bound counts it: under max_bytes an entry
    /// weighed 0 counts 1 (so max_bytes also bounds the number of entries); under max_entries the plain sum.
    std::uint64_t weighted_bytes = 0;
    std::uint64_t hits = 0;  ///< get() that returned a value
    /// get() that returned no value: absent, expired, a type mismatch, or a copy out that threw.
    std::uint64_t misses = 0;
    std::uint64_t evictions = 0;            ///< entries dropped to honour the bound, rejected candidates included
    std::uint64_t expirations = 0;          ///< expired entries reclaimed (by writes, cleanup() or the reaper)
    std::uint64_t rejected_admissions = 0;  ///< new entries TinyLFU dropped in favour of a more popular one

    friend bool operator==(const MemoryStats&, const MemoryStats&) = default;
};

/// `hitbox_backend_{read,hits,misses,evictions,expirations}_total` and the gauge `hitbox_backend_entries`,
/// labelled `backend`.
HITBOX_LIB_INLINE void hitbox_write_stats(PrometheusWriter& out, std::string_view backend, const MemoryStats& s);

}  // namespace hitbox

HITBOX_ADAPT_COUNTERS(hitbox::MemoryStats, entries, weighted_bytes, hits, misses, evictions, expirations,
                      rejected_admissions);

// The definitions: included here in a header-only build, compiled once into the hitbox library otherwise.
#if !HITBOX_COMPILED_LIB
#include <hitbox/backend/memory/detail/stats_impl.hpp>
#endif
