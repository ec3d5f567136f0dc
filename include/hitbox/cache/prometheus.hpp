#pragma once
/// \file
/// The Prometheus rendering of a cache with everything it knows: its metrics policy's series, its own
/// counters, each tier's stats() (through the tier's hitbox_write_stats hook; also the tiers behind an
/// AnyBackend), composition levels summed by label path, and the offload's counters.
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

#include <hitbox/cache/front.hpp>
#include <hitbox/cache/stats.hpp>
#include <hitbox/cache/tiers.hpp>
#include <hitbox/compose/tier_metrics.hpp>
#include <hitbox/core/concepts.hpp>
#include <hitbox/core/metrics.hpp>
#include <hitbox/core/stats.hpp>

namespace hitbox {

/// Adds everything a cache knows to `out`: its metrics policy's series (CountingMetrics), its own counters
/// (`hitbox_cache_*`, `hitbox_upstream_*`, `hitbox_backend_{read,write}_errors_total` per tier path,
/// `hitbox_offload_revalidation_*`), each tier's `stats()` (`hitbox_backend_*` per label path) and, when
/// it has them, its duration histograms (`durations()`: `hitbox_backend_*_duration_seconds`), each
/// composition level's counters (`hitbox_compose_*`) and the offload's counters (`hitbox_offload_tasks_*`,
/// labelled with the backend's label) and task durations (`hitbox_offload_task_duration_seconds`).
template <class B, class O, class M, class C>
void write_metrics(PrometheusWriter& out, const Cache<B, O, M, C>& cache) {
    if constexpr (requires { cache.metrics().snapshot(); }) write_metrics(out, cache.metrics().snapshot());
    const CacheStats s = cache.stats();
    const std::string label(cache.backend().label());
    const PrometheusWriter::Labels labels = {{"backend", label}};
    out.counter("hitbox_upstream_requests_total", "Loader calls.", labels, s.loads);
    out.counter("hitbox_upstream_errors_total", "Loader calls that returned an error or threw.", labels, s.load_errors);
    out.counter("hitbox_cache_coalesced_total", "Callers that took the outcome of another caller's load.", labels,
                s.coalesced);
    out.counter("hitbox_cache_waiter_timeouts_total", "Waiters that stopped waiting and loaded themselves.", labels,
                s.waiter_timeouts);
    out.counter("hitbox_cache_load_retries_total", "Failed loads handed to one waiter to retry.", labels, s.retries);
    out.counter("hitbox_cache_negative_hits_total", "Calls answered by a cached \"not found\".", labels,
                s.negative_hits);
    out.counter("hitbox_cache_stale_if_error_total", "Stale values served because their reload failed.", labels,
                s.stale_if_error);
    out.counter("hitbox_cache_fail_safe_total", "Expired values served because their load failed (fail-safe).", labels,
                s.fail_safe);
    out.counter("hitbox_cache_loader_timeouts_total", "Calls that stopped waiting for the loader.",
                {{"backend", label}, {"timeout", "soft"}}, s.soft_timeouts);
    out.counter("hitbox_cache_loader_timeouts_total", "Calls that stopped waiting for the loader.",
                {{"backend", label}, {"timeout", "hard"}}, s.hard_timeouts);
    out.counter("hitbox_cache_late_loads_total", "Loads that finished after their caller had returned.", labels,
                s.late_loads);
    out.counter("hitbox_cache_loads_shed_total",
                "Calls with a timeout that did not call the loader: max_timed_loads were running.", labels,
                s.loads_shed);
    out.counter("hitbox_cache_locks_taken_total", "Stampede locks taken before loading.", labels, s.locks_taken);
    out.counter("hitbox_cache_lock_waits_total", "Calls answered by another instance's load after finding its lock.",
                labels, s.lock_waits);
    out.counter("hitbox_cache_lock_timeouts_total", "Calls that stopped waiting for another instance's lock.", labels,
                s.lock_timeouts);
    out.gauge("hitbox_cache_waiters", "Callers waiting for another caller's load.", labels,
              static_cast<double>(s.waiting));
    out.counter("hitbox_offload_revalidation_spawned_total", "Background refreshes the offload accepted.", labels,
                s.revalidations);
    out.counter("hitbox_offload_revalidation_dropped_total", "Background refreshes the offload refused.", labels,
                s.revalidations_dropped);
    out.counter("hitbox_offload_revalidation_skipped_total",
                "Accepted refreshes that found the entry fresh or a load running.", labels, s.revalidations_skipped);
    out.counter("hitbox_offload_revalidation_completed_total", "Background refreshes whose load finished.", labels,
                s.revalidations_done);
    for (const auto& t : s.tiers) {
        out.counter("hitbox_backend_read_errors_total", "Backend read errors the cache front survived (each a miss).",
                    {{"backend", t.backend}}, t.read_errors);
        out.counter("hitbox_backend_write_errors_total", "Backend write errors the cache front reported.",
                    {{"backend", t.backend}}, t.write_errors);
    }
    // Tier counters, each through its stats' export hook; levels of a tiered backend (a composition) are
    // written after the leaf tiers, those sharing a path (the unlabelled inner levels of a fold) summed; an
    // AnyBackend writes the tiers it hides.
    detail::write_tier_metrics(out, cache.backend(), {});
    if constexpr (CountingOffload<O>) write_offload_counters(out, label, cache.offload().counters());
    if constexpr (requires { cache.offload().task_durations(); })
        write_offload_durations(out, label, cache.offload().task_durations());
}

/// The Prometheus text exposition of a cache with its tiers and offload (see write_metrics).
///
/// \code
/// std::cout << hitbox::prometheus_text(cache);
/// \endcode
template <class B, class O, class M, class C>
std::string prometheus_text(const Cache<B, O, M, C>& cache) {
    PrometheusWriter out;
    write_metrics(out, cache);
    return out.str();
}

}  // namespace hitbox
