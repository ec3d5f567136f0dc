#pragma once
/// \file
/// Metrics for the cache front: the metrics policies (NoMetrics, the zero-cost default, and CountingMetrics)
/// and their Prometheus rendering, plus the offload counters' series. Includes the parts they rest on:
/// core/histogram.hpp (lock-free latency histograms) and core/prometheus.hpp (PrometheusWriter, and the
/// export of any tier's `stats()` through the `hitbox_write_stats` customization point as `hitbox_backend_*`
/// and `hitbox_compose_*` series labelled by backend).
///
/// Metric names follow the Rust hitbox crates: `hitbox_cache_hit_total`, `hitbox_cache_miss_total`,
/// `hitbox_cache_stale_total`, `hitbox_request_duration_seconds`, `hitbox_upstream_duration_seconds`,
/// `hitbox_backend_read_total`, `hitbox_backend_read_errors_total`, `hitbox_backend_read_bytes_total` (and
/// the `write` twins), `hitbox_offload_tasks_*`.

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <hitbox/core/error.hpp>
#include <hitbox/core/histogram.hpp>
#include <hitbox/core/prometheus.hpp>

namespace hitbox {

/// How a cache call was answered.
enum class CacheStatus : std::uint8_t {
    Hit,    ///< a fresh entry from a tier (or a cached "not found")
    Miss,   ///< no usable entry: the value came from the loader (or the load failed)
    Stale,  ///< an entry past its stale time, served as it was
};

/// Stable lower-case name of a status ("hit", "miss", "stale"), used as a metric label.
constexpr std::string_view to_string(CacheStatus s) noexcept {
    switch (s) {
        case CacheStatus::Hit: return "hit";
        case CacheStatus::Miss: return "miss";
        case CacheStatus::Stale: return "stale";
    }
    return "unknown";
}

/// What one loader call produced.
enum class LoadResult : std::uint8_t {
    found,      ///< a value
    not_found,  ///< the loader said there is no such value (std::nullopt)
    error,      ///< the loader returned an error or threw
};

/// Stable lower-case name of a load result ("found", "not_found", "error").
constexpr std::string_view to_string(LoadResult r) noexcept {
    switch (r) {
        case LoadResult::found: return "found";
        case LoadResult::not_found: return "not_found";
        case LoadResult::error: return "error";
    }
    return "unknown";
}

/// A metrics policy for hitbox::Cache: what the cache front reports on its hot path.
///
/// Minimal complete definition: `static constexpr bool enabled` (false: the cache does not even read the
/// clock for latencies); `std::size_t source_id(std::string_view label_path)`, called when a cache is
/// constructed for each tier label path and for "upstream" (may lock and allocate); `void record(CacheStatus,
/// std::size_t source_id, std::chrono::nanoseconds request) noexcept` once per call;
/// `void record_upstream(LoadResult, std::chrono::nanoseconds) noexcept` once per loader call.
/// Laws: the record functions never block and never throw; a copy of a policy object reports into the
/// same counters as the original (policies are handles).
template <class M>
concept MetricsPolicy = std::copy_constructible<M> &&
    requires(M& m, std::string_view path, std::size_t id, std::chrono::nanoseconds d) {
    { M::enabled } -> std::convertible_to<bool>;
    { m.source_id(path) } -> std::convertible_to<std::size_t>;
    m.record(CacheStatus::Hit, id, d);
    m.record_upstream(LoadResult::found, d);
};

/// The default metrics policy: counts nothing, costs nothing (no clock read, no shared write).
struct NoMetrics {
    static constexpr bool enabled = false;
    std::size_t source_id(std::string_view) noexcept { return 0; }
    void record(CacheStatus, std::size_t, std::chrono::nanoseconds) noexcept {}
    void record_upstream(LoadResult, std::chrono::nanoseconds) noexcept {}
};

/// Counters of one source (a tier label path, or "upstream") in a MetricsSnapshot.
struct SourceMetrics {
    std::string backend;     ///< label path ("cache.memory") or "upstream"
    std::uint64_t hits = 0;  ///< calls answered Hit by this source
    std::uint64_t misses = 0;
    std::uint64_t stale = 0;
    std::array<HistogramSnapshot, 3> duration{};  ///< request latency by CacheStatus (hit, miss, stale)
};

/// A snapshot of CountingMetrics: one SourceMetrics per source that was registered, plus the upstream
/// (loader) latency by LoadResult.
struct MetricsSnapshot {
    std::vector<SourceMetrics> sources;
    std::array<HistogramSnapshot, 3> upstream{};  ///< indexed by LoadResult

    /// The counters of `backend`, or nullptr.
    const SourceMetrics* find(std::string_view backend) const noexcept {
        for (const auto& s : sources)
            if (s.backend == backend) return &s;
        return nullptr;
    }
    /// Totals over every source.
    std::uint64_t hits() const noexcept { return sum_(&SourceMetrics::hits); }
    std::uint64_t misses() const noexcept { return sum_(&SourceMetrics::misses); }
    std::uint64_t stale() const noexcept { return sum_(&SourceMetrics::stale); }
    /// Request latency of every call with `status`, all sources together.
    HistogramSnapshot duration(CacheStatus status) const noexcept {
        HistogramSnapshot h;
        for (const auto& s : sources) h += s.duration[static_cast<std::size_t>(status)];
        return h;
    }
    /// Loader calls (the upstream histogram counts).
    std::uint64_t loads() const noexcept {
        std::uint64_t n = 0;
        for (const auto& h : upstream) n += h.count;
        return n;
    }

private:
    std::uint64_t sum_(std::uint64_t SourceMetrics::*field) const noexcept {
        std::uint64_t n = 0;
        for (const auto& s : sources) n += s.*field;
        return n;
    }
};

namespace detail {

struct SourceSlot {
    std::string name;              // written once, before `used` publishes the slot
    LatencyHistogram duration[3];  // by CacheStatus; their counts are the hit / miss / stale counters
};

struct CountingState {
    static constexpr std::size_t max_sources = 32;
    std::mutex register_mutex;
    std::atomic<std::size_t> used{0};
    std::array<SourceSlot, max_sources> slots;
    LatencyHistogram upstream[3];
};

}  // namespace detail

/// The counting metrics policy: hits / misses / stale per source and request latency histograms per
/// (status, source), plus loader latency per LoadResult. A handle: copies share the counters, so keep one
/// to read `snapshot()` or render `prometheus_text()` while a cache reports into another copy. Up to 31
/// sources are kept apart; further ones share a source named "other". About 20 KiB per handle family.
///
/// \code
/// hitbox::CountingMetrics metrics;
/// hitbox::Cache cache{tiers, offload, metrics};
/// std::cout << hitbox::prometheus_text(cache);   // cache, tiers and offload series
/// \endcode
class CountingMetrics {
public:
    static constexpr bool enabled = true;

    /// A new, empty set of counters (copies of this handle share it).
    CountingMetrics() : state_(std::make_shared<detail::CountingState>()) {}

    /// The id of `path`, registering it on first use.
    std::size_t source_id(std::string_view path) {
        auto& s = *state_;
        std::lock_guard lock(s.register_mutex);
        const std::size_t used = s.used.load(std::memory_order_relaxed);
        for (std::size_t i = 0; i < used; ++i)
            if (s.slots[i].name == path) return i;
        const std::size_t last = detail::CountingState::max_sources - 1;
        if (used == last) {  // full: the last slot collects every further source
            s.slots[last].name = "other";
            s.used.store(last + 1, std::memory_order_release);
            return last;
        }
        if (used > last) return last;
        s.slots[used].name = std::string(path);
        s.used.store(used + 1, std::memory_order_release);
        return used;
    }

    /// Counts one cache call of `status` answered by source `id`, with its latency.
    void record(CacheStatus status, std::size_t id, std::chrono::nanoseconds took) noexcept {
        auto& slot = state_->slots[std::min(id, detail::CountingState::max_sources - 1)];
        slot.duration[static_cast<std::size_t>(status)].record(took);
    }

    /// Records one loader call and its latency.
    void record_upstream(LoadResult result, std::chrono::nanoseconds took) noexcept {
        state_->upstream[static_cast<std::size_t>(result)].record(took);
    }

    /// A copy of every counter (each read on its own: consistent per counter under load).
    MetricsSnapshot snapshot() const {
        MetricsSnapshot out;
        const auto& s = *state_;
        const std::size_t used = s.used.load(std::memory_order_acquire);
        out.sources.reserve(used);
        for (std::size_t i = 0; i < used; ++i) {
            SourceMetrics m;
            m.backend = s.slots[i].name;
            for (std::size_t k = 0; k < 3; ++k) m.duration[k] = s.slots[i].duration[k].snapshot();
            m.hits = m.duration[0].count;
            m.misses = m.duration[1].count;
            m.stale = m.duration[2].count;
            out.sources.push_back(std::move(m));
        }
        for (std::size_t k = 0; k < 3; ++k) out.upstream[k] = s.upstream[k].snapshot();
        return out;
    }

private:
    std::shared_ptr<detail::CountingState> state_;
};

static_assert(MetricsPolicy<NoMetrics>);
static_assert(MetricsPolicy<CountingMetrics>);

/// Adds a CountingMetrics snapshot: `hitbox_cache_{hit,miss,stale}_total{backend}`,
/// `hitbox_request_duration_seconds{status,backend}` and `hitbox_upstream_duration_seconds{result}`.
/// Series with no observation are left out.
inline void write_metrics(PrometheusWriter& out, const MetricsSnapshot& m) {
    static constexpr std::string_view names[3] = {"hitbox_cache_hit_total", "hitbox_cache_miss_total",
                                                  "hitbox_cache_stale_total"};
    static constexpr std::string_view helps[3] = {
        "Cache calls answered by a fresh entry, by the tier that answered.",
        "Cache calls that found no usable entry and went to the loader (backend=\"upstream\").",
        "Cache calls answered by an entry past its stale time, by the tier that answered."};
    for (std::size_t k = 0; k < 3; ++k)
        for (const auto& s : m.sources) {
            const std::uint64_t n = k == 0 ? s.hits : k == 1 ? s.misses : s.stale;
            if (n != 0) out.counter(names[k], helps[k], {{"backend", s.backend}}, n);
        }
    for (const auto& s : m.sources)
        for (std::size_t k = 0; k < 3; ++k)
            if (s.duration[k].count != 0)
                out.histogram("hitbox_request_duration_seconds", "Duration of cache calls (get_or_compute) in seconds.",
                              {{"status", to_string(static_cast<CacheStatus>(k))}, {"backend", s.backend}},
                              s.duration[k]);
    for (std::size_t k = 0; k < 3; ++k)
        if (m.upstream[k].count != 0)
            out.histogram("hitbox_upstream_duration_seconds", "Duration of loader (upstream) calls in seconds.",
                          {{"result", to_string(static_cast<LoadResult>(k))}}, m.upstream[k]);
}

/// Adds an offload's counters (OffloadCounters of OffloadManager, InlineOffload or NoOffload), labelled
/// `backend`: `hitbox_offload_tasks_{spawned,completed,failed,deduplicated,rejected,timeout,discarded}_total`
/// and the gauges `hitbox_offload_tasks_active`, `hitbox_offload_tasks_queued`.
template <class Counters>
void write_offload_counters(PrometheusWriter& out, std::string_view backend, const Counters& c) {
    const PrometheusWriter::Labels labels = {{"backend", backend}};
    out.counter("hitbox_offload_tasks_spawned_total", "Background tasks accepted.", labels, c.spawned);
    out.counter("hitbox_offload_tasks_completed_total", "Background tasks that returned.", labels, c.completed);
    out.counter("hitbox_offload_tasks_failed_total", "Background tasks that threw.", labels, c.failed);
    out.counter("hitbox_offload_tasks_deduplicated_total", "Tasks refused: the same (kind, key) was pending.", labels,
                c.deduplicated);
    out.counter("hitbox_offload_tasks_rejected_total", "Tasks refused: queue full, shut down or disabled.", labels,
                c.rejected);
    out.counter("hitbox_offload_tasks_timeout_total", "Tasks that ran past their timeout.", labels, c.timed_out);
    out.counter("hitbox_offload_tasks_discarded_total", "Tasks dropped unrun at shutdown.", labels, c.discarded);
    out.gauge("hitbox_offload_tasks_active", "Accepted tasks not finished.", labels, static_cast<double>(c.active));
    out.gauge("hitbox_offload_tasks_queued", "Tasks waiting for a worker.", labels, static_cast<double>(c.queued));
}

/// Adds an OffloadManager's task durations (OffloadDurations), labelled `backend`:
/// `hitbox_offload_task_duration_seconds{backend,kind}`, kinds that never ran a task left out.
template <class Durations>
void write_offload_durations(PrometheusWriter& out, std::string_view backend, const Durations& d) {
    for (std::size_t k = 0; k < offload_kind_count; ++k) {
        const auto kind = static_cast<OffloadKind>(k);
        if (d[kind].count == 0) continue;
        out.histogram("hitbox_offload_task_duration_seconds", "Duration of background tasks in seconds, by kind.",
                      {{"backend", backend}, {"kind", to_string(kind)}}, d[kind]);
    }
}

/// A CountingMetrics handle rendered alone (cache series only; see prometheus_text(const Cache&) for the
/// tiers and the offload too).
inline std::string prometheus_text(const CountingMetrics& metrics) {
    PrometheusWriter out;
    write_metrics(out, metrics.snapshot());
    return out.str();
}

}  // namespace hitbox
