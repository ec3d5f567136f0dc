#pragma once
/// \file
/// Metrics for the cache front: the metrics policies (NoMetrics, the zero-cost default, and CountingMetrics),
/// lock-free latency histograms, and the Prometheus text exposition (PrometheusWriter), which also renders
/// the tiers' own counters (MemoryBackend / RedisBackend `stats()`, ComposeStats, offload counters) as
/// `hitbox_backend_*`, `hitbox_compose_*` and `hitbox_offload_*` series labelled by backend.
///
/// Metric names follow the Rust hitbox crates: `hitbox_cache_hit_total`, `hitbox_cache_miss_total`,
/// `hitbox_cache_stale_total`, `hitbox_request_duration_seconds`, `hitbox_upstream_duration_seconds`,
/// `hitbox_backend_read_total`, `hitbox_backend_read_errors_total`, `hitbox_backend_read_bytes_total` (and
/// the `write` twins), `hitbox_offload_tasks_*`.

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <hitbox/core/error.hpp>

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

/// Upper bounds of the latency histogram buckets, in nanoseconds (1 µs .. 10 s); a last, implicit bucket
/// is +Inf. Wide enough for an in-process hit (~100 ns lands in the first bucket) and a slow upstream.
inline constexpr std::array<std::int64_t, 22> latency_bucket_bounds_ns = {
    1'000,      2'500,      5'000,       10'000,      25'000,      50'000,        100'000,       250'000,
    500'000,    1'000'000,  2'500'000,   5'000'000,   10'000'000,  25'000'000,    50'000'000,    100'000'000,
    250'000'000, 500'000'000, 1'000'000'000, 2'500'000'000, 5'000'000'000, 10'000'000'000};

/// A snapshot of a LatencyHistogram: per-bucket counts (not cumulative; the last one is +Inf), the count
/// and the sum.
struct HistogramSnapshot {
    static constexpr std::size_t bucket_count = latency_bucket_bounds_ns.size() + 1;
    std::array<std::uint64_t, bucket_count> buckets{};
    std::uint64_t count = 0;
    std::uint64_t sum_ns = 0;

    /// Sum of the recorded durations in seconds.
    double sum_seconds() const noexcept { return static_cast<double>(sum_ns) / 1e9; }

    /// Upper bound of bucket i in seconds (+Inf for the last).
    static double upper_bound_seconds(std::size_t i) noexcept {
        if (i >= latency_bucket_bounds_ns.size()) return std::numeric_limits<double>::infinity();
        return static_cast<double>(latency_bucket_bounds_ns[i]) / 1e9;
    }

    /// Estimated q-quantile (0..1) in seconds, interpolated linearly inside the bucket that holds it (the
    /// way Prometheus' histogram_quantile does); 0 when empty. Accurate to the bucket width only.
    double quantile(double q) const noexcept {
        if (count == 0) return 0;
        q = std::clamp(q, 0.0, 1.0);
        const double rank = q * static_cast<double>(count);
        std::uint64_t below = 0;
        for (std::size_t i = 0; i < bucket_count; ++i) {
            if (buckets[i] == 0) continue;
            if (static_cast<double>(below + buckets[i]) >= rank) {
                const double lo = i == 0 ? 0.0 : upper_bound_seconds(i - 1);
                if (i + 1 == bucket_count) return lo;  // +Inf bucket: the last finite bound
                const double hi = upper_bound_seconds(i);
                const double within = (rank - static_cast<double>(below)) / static_cast<double>(buckets[i]);
                return lo + (hi - lo) * std::clamp(within, 0.0, 1.0);
            }
            below += buckets[i];
        }
        return upper_bound_seconds(bucket_count - 2);
    }

    /// Adds another snapshot's observations.
    HistogramSnapshot& operator+=(const HistogramSnapshot& o) noexcept {
        for (std::size_t i = 0; i < bucket_count; ++i) buckets[i] += o.buckets[i];
        count += o.count;
        sum_ns += o.sum_ns;
        return *this;
    }
};

/// A latency histogram with fixed buckets (latency_bucket_bounds_ns): two relaxed atomic additions per
/// observation (its bucket and the sum; the count is the bucket total). Thread-safe, never blocks.
class LatencyHistogram {
public:
    /// Records one duration (negative durations count as zero).
    void record(std::chrono::nanoseconds d) noexcept {
        const std::int64_t ns = std::max<std::int64_t>(0, d.count());
        std::size_t i = 0;
        while (i < latency_bucket_bounds_ns.size() && ns > latency_bucket_bounds_ns[i]) ++i;
        buckets_[i].fetch_add(1, std::memory_order_relaxed);
        sum_ns_.fetch_add(static_cast<std::uint64_t>(ns), std::memory_order_relaxed);
    }

    /// A copy of the counts (each read on its own; the count is the bucket total).
    HistogramSnapshot snapshot() const noexcept {
        HistogramSnapshot s;
        for (std::size_t i = 0; i < HistogramSnapshot::bucket_count; ++i)
            s.buckets[i] = buckets_[i].load(std::memory_order_relaxed);
        s.sum_ns = sum_ns_.load(std::memory_order_relaxed);
        // The count is the bucket total, so a snapshot taken under load stays self-consistent.
        for (auto b : s.buckets) s.count += b;
        return s;
    }

private:
    std::array<std::atomic<std::uint64_t>, HistogramSnapshot::bucket_count> buckets_{};
    std::atomic<std::uint64_t> sum_ns_{0};
};

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
concept MetricsPolicy = std::copy_constructible<M> && requires(M& m, std::string_view path, std::size_t id,
                                                               std::chrono::nanoseconds d) {
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
    std::string name;             // written once, before `used` publishes the slot
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

namespace detail {

/// Escapes a label value for the text format: backslash, double quote and newline.
inline void append_label_value(std::string& out, std::string_view v) {
    for (char c : v) {
        if (c == '\\')
            out += "\\\\";
        else if (c == '"')
            out += "\\\"";
        else if (c == '\n')
            out += "\\n";
        else
            out.push_back(c);
    }
}

/// Escapes HELP text: backslash and newline.
inline void append_help(std::string& out, std::string_view v) {
    for (char c : v) {
        if (c == '\\')
            out += "\\\\";
        else if (c == '\n')
            out += "\\n";
        else
            out.push_back(c);
    }
}

inline void append_number(std::string& out, std::uint64_t v) {
    char buf[32];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, ec == std::errc{} ? end : buf);
}

inline void append_number(std::string& out, double v) {
    if (std::isnan(v)) {
        out += "NaN";
        return;
    }
    if (std::isinf(v)) {
        out += v > 0 ? "+Inf" : "-Inf";
        return;
    }
    char buf[64];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, ec == std::errc{} ? end : buf);
}

}  // namespace detail

/// Collects samples and renders them in the Prometheus text exposition format (version 0.0.4): one
/// `# HELP` and `# TYPE` line per metric family, the family's samples together, label values escaped,
/// histogram buckets cumulative with `le="+Inf"`, `_sum` and `_count`. Families appear in the order they
/// were first added. Not thread-safe (build one per scrape).
///
/// \code
/// hitbox::PrometheusWriter out;
/// out.counter("hitbox_cache_hit_total", "Cache hits.", {{"backend", "cache.memory"}}, 42);
/// hitbox::write_backend_stats(out, "cache.memory", memory.stats());
/// std::string text = out.str();
/// \endcode
class PrometheusWriter {
public:
    /// Label name / value pairs; names must match [a-zA-Z_][a-zA-Z0-9_]*.
    using Labels = std::initializer_list<std::pair<std::string_view, std::string_view>>;

    /// Adds one sample of a counter, gauge or histogram family (HELP and TYPE written once per family).
    void counter(std::string_view name, std::string_view help, Labels labels, std::uint64_t value) {
        auto& f = family_(name, help, "counter");
        sample_(f.samples, name, {}, labels, {});
        detail::append_number(f.samples, value);
        f.samples.push_back('\n');
    }

    void gauge(std::string_view name, std::string_view help, Labels labels, double value) {
        auto& f = family_(name, help, "gauge");
        sample_(f.samples, name, {}, labels, {});
        detail::append_number(f.samples, value);
        f.samples.push_back('\n');
    }

    void histogram(std::string_view name, std::string_view help, Labels labels, const HistogramSnapshot& h) {
        auto& f = family_(name, help, "histogram");
        std::uint64_t cumulative = 0;
        std::string le;
        for (std::size_t i = 0; i < HistogramSnapshot::bucket_count; ++i) {
            cumulative += h.buckets[i];
            le.clear();
            detail::append_number(le, HistogramSnapshot::upper_bound_seconds(i));
            sample_(f.samples, name, "_bucket", labels, le);
            detail::append_number(f.samples, cumulative);
            f.samples.push_back('\n');
        }
        sample_(f.samples, name, "_sum", labels, {});
        detail::append_number(f.samples, h.sum_seconds());
        f.samples.push_back('\n');
        sample_(f.samples, name, "_count", labels, {});
        detail::append_number(f.samples, cumulative);
        f.samples.push_back('\n');
    }

    /// The exposition text.
    std::string str() const {
        std::string out;
        for (const auto& f : families_) {
            out.append("# HELP ").append(f.name).push_back(' ');
            detail::append_help(out, f.help);
            out.append("\n# TYPE ").append(f.name).append(" ").append(f.type).push_back('\n');
            out += f.samples;
        }
        return out;
    }

    /// True when no sample was added.
    bool empty() const noexcept { return families_.empty(); }

private:
    struct Family {
        std::string name, help, type, samples;
    };

    Family& family_(std::string_view name, std::string_view help, std::string_view type) {
        for (auto& f : families_)
            if (f.name == name) return f;
        families_.push_back(Family{std::string(name), std::string(help), std::string(type), {}});
        return families_.back();
    }

    static void sample_(std::string& out, std::string_view name, std::string_view suffix, Labels labels,
                        std::string_view le) {
        out.append(name).append(suffix);
        if (labels.size() == 0 && le.empty()) {
            out.push_back(' ');
            return;
        }
        out.push_back('{');
        bool first = true;
        for (const auto& [k, v] : labels) {
            if (!first) out.push_back(',');
            first = false;
            out.append(k).append("=\"");
            detail::append_label_value(out, v);
            out.push_back('"');
        }
        if (!le.empty()) {
            if (!first) out.push_back(',');
            out.append("le=\"").append(le).push_back('"');
        }
        out.append("} ");
    }

    std::vector<Family> families_;
};

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

/// Adds the counters of one tier, labelled `backend`, from its `stats()` snapshot. Recognises the shapes
/// of MemoryStats (hits, misses, entries, evictions, expirations), RedisStats (reads, writes, bytes_in,
/// bytes_out, errors by kind) and ComposeStats (refills, read/write errors per level) by their members,
/// so this header needs neither backend.
///
/// Series: `hitbox_backend_read_total`, `hitbox_backend_write_total`, `hitbox_backend_read_bytes_total`,
/// `hitbox_backend_write_bytes_total`, `hitbox_backend_hits_total`, `hitbox_backend_misses_total`,
/// `hitbox_backend_errors_total{kind}`, `hitbox_backend_entries` (gauge), `hitbox_backend_evictions_total`,
/// `hitbox_backend_expirations_total`, `hitbox_compose_refills_total`, `hitbox_compose_refills_dropped_total`,
/// `hitbox_compose_unavailable_total`.
template <class Stats>
void write_backend_stats(PrometheusWriter& out, std::string_view backend, const Stats& s) {
    constexpr bool redis_like = requires { s.reads; s.writes; s.bytes_in; s.bytes_out; s.errors; };
    constexpr bool memory_like = requires { s.entries; s.evictions; s.expirations; s.hits; s.misses; };
    constexpr bool compose_like = requires { s.refills; s.refills_dropped; s.unavailable; s.l1_read_errors; };
    static_assert(redis_like || memory_like || compose_like,
                  "hitbox::write_backend_stats: unknown stats type (expected MemoryStats, RedisStats or ComposeStats)");
    const PrometheusWriter::Labels labels = {{"backend", backend}};
    if constexpr (redis_like) {
        out.counter("hitbox_backend_read_total", "Reads (key lookups) per backend.", labels, s.reads);
        out.counter("hitbox_backend_write_total", "Writes per backend.", labels, s.writes);
        out.counter("hitbox_backend_read_bytes_total", "Stored bytes read per backend.", labels, s.bytes_in);
        out.counter("hitbox_backend_write_bytes_total", "Stored bytes written per backend.", labels, s.bytes_out);
        out.counter("hitbox_backend_hits_total", "Reads that found an entry, per backend.", labels, s.hits);
        out.counter("hitbox_backend_misses_total", "Reads that found no entry, per backend.", labels, s.misses);
        for (std::size_t k = 0; k < std::size(s.errors); ++k) {
            if (s.errors[k] == 0) continue;
            out.counter("hitbox_backend_errors_total", "Failed backend operations by error kind.",
                        {{"backend", backend}, {"kind", to_string(static_cast<ErrorKind>(k))}}, s.errors[k]);
        }
    } else if constexpr (memory_like) {
        out.counter("hitbox_backend_read_total", "Reads (key lookups) per backend.", labels, s.hits + s.misses);
        out.counter("hitbox_backend_hits_total", "Reads that found an entry, per backend.", labels, s.hits);
        out.counter("hitbox_backend_misses_total", "Reads that found no entry, per backend.", labels, s.misses);
        out.gauge("hitbox_backend_entries", "Entries held by an in-process tier.", labels,
                  static_cast<double>(s.entries));
        out.counter("hitbox_backend_evictions_total", "Entries evicted to honour the bound.", labels, s.evictions);
        out.counter("hitbox_backend_expirations_total", "Expired entries reclaimed.", labels, s.expirations);
    } else {
        out.counter("hitbox_compose_refills_total", "L2 hits written back to L1, per composition.", labels,
                    s.refills);
        out.counter("hitbox_compose_refills_dropped_total", "Offloaded refills the offload refused.", labels,
                    s.refills_dropped);
        out.counter("hitbox_compose_unavailable_total", "Calls that failed in every tier, per composition.", labels,
                    s.unavailable);
    }
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

/// A CountingMetrics handle rendered alone (cache series only; see prometheus_text(const Cache&) for the
/// tiers and the offload too).
inline std::string prometheus_text(const CountingMetrics& metrics) {
    PrometheusWriter out;
    write_metrics(out, metrics.snapshot());
    return out.str();
}

}  // namespace hitbox
