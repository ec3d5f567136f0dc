#pragma once
/// \file
/// hitbox::ComposeStats: the counters of one composition level, as a plain struct (a CounterStruct), and
/// its Prometheus export (the `hitbox_write_stats` customization point, see hitbox::ExportableStats).

#include <cstdint>
#include <string_view>

#include <hitbox/core/linkage.hpp>
#include <hitbox/core/prometheus.hpp>
#include <hitbox/core/stats.hpp>

namespace hitbox {

/// A snapshot of one composition's counters (its own level; a nested composition has its own). Hits and
/// misses per tier are not counted here, to keep the hit path free of shared writes: `lookup()` names the
/// tier that answered, and the cache front counts them.
struct ComposeStats {
    std::uint64_t l1_read_errors = 0;         ///< L1 reads that failed (each treated as a miss)
    std::uint64_t l2_read_errors = 0;         ///< L2 reads that failed
    std::uint64_t l1_write_errors = 0;        ///< L1 writes that failed (refills not included)
    std::uint64_t l2_write_errors = 0;        ///< L2 writes that failed
    std::uint64_t remove_errors = 0;          ///< tier removes that failed
    std::uint64_t refills = 0;                ///< L2 hits written to L1 (or accepted by the offload)
    std::uint64_t refill_errors = 0;          ///< refills L1 refused
    std::uint64_t refills_dropped = 0;        ///< offloaded refills the Offload refused (duplicate, full, disabled)
    std::uint64_t race_losers_offloaded = 0;  ///< Race losers left to finish in the background
    std::uint64_t race_losers_dropped = 0;    ///< Race losers cancelled or abandoned
    std::uint64_t unavailable = 0;            ///< calls that failed in every tier
    std::uint64_t superseded = 0;             ///< refills and Race losers not written or taken back (a write came)

    friend bool operator==(const ComposeStats&, const ComposeStats&) = default;
};

/// `hitbox_compose_{refills,refills_dropped,unavailable,superseded}_total`, labelled `backend` (the composition's
/// label path). Levels sharing a path (the unlabelled inner levels of a fold) are summed by the caller.
HITBOX_LIB_INLINE void hitbox_write_stats(PrometheusWriter& out, std::string_view backend, const ComposeStats& s);

}  // namespace hitbox

HITBOX_ADAPT_COUNTERS(hitbox::ComposeStats, l1_read_errors, l2_read_errors, l1_write_errors, l2_write_errors,
                      remove_errors, refills, refill_errors, refills_dropped, race_losers_offloaded,
                      race_losers_dropped, unavailable, superseded);

#if HITBOX_COMPILED_LIB
namespace hitbox {
// The compiled library (src/core.cpp) holds the snapshot and restore of a composition's counters, so programs do
// not build the member table of ComposeStats.
extern template class AtomicStats<ComposeStats>;
}  // namespace hitbox
#endif

// The definitions: included here in a header-only build, compiled once into the hitbox library otherwise.
#if !HITBOX_COMPILED_LIB
#include <hitbox/compose/detail/stats_impl.hpp>
#endif
