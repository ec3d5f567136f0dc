#pragma once
/// \file
/// The cache front's own counters: hitbox::CacheStats (`cache.stats()`), counted whatever the metrics
/// policy, and hitbox::TierErrors (read / write errors per tier label path).
#include <cstdint>
#include <string>
#include <vector>

#include <hitbox/core/linkage.hpp>
#include <hitbox/core/stats.hpp>

namespace hitbox {

/// Errors of one tier, as the cache front saw them.
struct TierErrors {
    std::string backend;  ///< label path
    std::uint64_t read_errors = 0;
    std::uint64_t write_errors = 0;

    friend bool operator==(const TierErrors&, const TierErrors&) = default;
};

/// The counters of a cache front (a CounterStruct: declared once, walked for the snapshot): rare events,
/// counted whatever the metrics policy.
struct CacheCounts {
    std::uint64_t loads = 0;                  ///< loader calls, foreground and background
    std::uint64_t load_errors = 0;            ///< loader calls that returned an error or threw
    std::uint64_t coalesced = 0;              ///< callers that took the outcome of another caller's load
    std::uint64_t waiter_timeouts = 0;        ///< waiters that stopped waiting and loaded themselves
    std::uint64_t retries = 0;                ///< failed loads handed to one waiter to retry
    std::uint64_t read_errors = 0;            ///< backend read errors survived (each a miss)
    std::uint64_t write_errors = 0;           ///< backend write errors (each reported to the error handler)
    std::uint64_t negative_hits = 0;          ///< calls answered by a cached "not found"
    std::uint64_t stale_if_error = 0;         ///< stale values served because their reload failed
    std::uint64_t revalidations = 0;          ///< background refreshes the offload accepted
    std::uint64_t revalidations_dropped = 0;  ///< background refreshes the offload refused (duplicate, full, off)
    std::uint64_t revalidations_skipped = 0;  ///< accepted refreshes that found the entry fresh or a load running
    std::uint64_t revalidations_done = 0;     ///< accepted refreshes whose load finished (ok or not)
    std::uint64_t waiting = 0;                ///< gauge: callers waiting for another caller's load now
    std::uint64_t fail_safe = 0;              ///< expired values served because their load failed (fail-safe)
    std::uint64_t soft_timeouts = 0;          ///< calls answered with a stale or fail-safe value at soft_timeout
    std::uint64_t hard_timeouts = 0;          ///< calls that stopped waiting for the loader at hard_timeout
    std::uint64_t late_loads = 0;             ///< loads that finished after their caller had returned
    std::uint64_t locks_taken = 0;            ///< stampede locks this cache took before loading
    std::uint64_t lock_waits = 0;             ///< calls answered by another instance's load after finding its lock
    std::uint64_t lock_timeouts = 0;          ///< calls that stopped waiting for another instance's lock
    std::uint64_t loads_shed = 0;             ///< calls that did not call the loader: max_timed_loads were running
};

/// A snapshot of a cache front's own counters (`cache.stats()`), with the read / write errors per tier.
struct CacheStats : CacheCounts {
    std::vector<TierErrors> tiers;  ///< read / write errors per tier label path
};

}  // namespace hitbox

HITBOX_ADAPT_COUNTERS(hitbox::CacheCounts, loads, load_errors, coalesced, waiter_timeouts, retries, read_errors,
                      write_errors, negative_hits, stale_if_error, revalidations, revalidations_dropped,
                      revalidations_skipped, revalidations_done, waiting, fail_safe, soft_timeouts, hard_timeouts,
                      late_loads, locks_taken, lock_waits, lock_timeouts, loads_shed);

#if HITBOX_COMPILED_LIB
namespace hitbox {
// The compiled library (src/core.cpp) holds the snapshot and restore of a cache front's counters, so programs do
// not build the member table of CacheCounts.
extern template class AtomicStats<CacheCounts>;
}  // namespace hitbox
#endif

namespace hitbox::detail {

/// The live counters behind CacheStats.
using CacheCounters = AtomicStats<CacheCounts>;

}  // namespace hitbox::detail
