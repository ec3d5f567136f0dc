#pragma once
/// \file
/// The Prometheus text exposition (format 0.0.4): hitbox::PrometheusWriter, and the export of a tier's
/// stats snapshot through the customization point `hitbox_write_stats` (see hitbox::ExportableStats).
/// A tier's stats header defines the hook next to its struct (backend/memory/stats.hpp,
/// backend/byte_stats.hpp, compose/stats.hpp), so this header knows no tier; a CounterStruct needs no
/// hook at all: each of its members `m` becomes the counter `hitbox_backend_<m>_total{backend}`.

#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <utility>
#include <vector>

#include <hitbox/core/concepts.hpp>
#include <hitbox/core/histogram.hpp>
#include <hitbox/core/linkage.hpp>
#include <hitbox/core/stats.hpp>

namespace hitbox {

namespace detail {

/// Escapes text for the text format: backslash and newline, and double quote when `quote` (label values
/// escape it, HELP text does not).
HITBOX_LIB_INLINE void append_escaped(std::string& out, std::string_view v, bool quote);

HITBOX_LIB_INLINE void append_number(std::string& out, std::uint64_t v);

HITBOX_LIB_INLINE void append_number(std::string& out, double v);

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
    void counter(std::string_view name, std::string_view help, Labels labels, std::uint64_t value);

    void gauge(std::string_view name, std::string_view help, Labels labels, double value);

    void histogram(std::string_view name, std::string_view help, Labels labels, const HistogramSnapshot& h);

    /// The exposition text.
    std::string str() const;

    /// True when no sample was added.
    bool empty() const noexcept { return families_.empty(); }

private:
    /// One series: its name and labels as written ("name{labels} "), and its value.
    struct Sample {
        std::string series;
        bool whole = true;  // count (counters, buckets, _count) or value (gauges, _sum)
        std::uint64_t count = 0;
        double value = 0.0;
    };
    struct Family {
        std::string name, help, type;
        std::vector<Sample> samples;
        std::unordered_map<std::string, std::size_t> index;  // series -> samples
    };

    Family& family_(std::string_view name, std::string_view help, std::string_view type);
    Sample& sample_(Family& f, std::string series, bool whole);
    void add_(Family& f, std::string series, std::uint64_t value);
    void add_(Family& f, std::string series, double value);

    static std::string series_(std::string_view name, std::string_view suffix, Labels labels, std::string_view le);

    std::vector<Family> families_;
};

/// The export of a CounterStruct that has no hook of its own: each member `m` as the counter
/// `hitbox_backend_<m>_total{backend}` (a tier that wants other names, gauges or labels writes its own
/// `hitbox_write_stats`, which is preferred over this template).
template <class S>
    requires CounterStruct<S>
void hitbox_write_stats(PrometheusWriter& out, std::string_view backend, const S& s) {
    std::string name, help;
    for_each_counter(s, [&](std::string_view member, std::uint64_t value) {
        name.assign("hitbox_backend_").append(member).append("_total");
        help.assign("Counter ").append(member).append(" of a tier's stats(), per backend.");
        out.counter(name, help, {{"backend", backend}}, value);
    });
}

/// Adds the series of one tier's stats snapshot, labelled `backend`, through its `hitbox_write_stats`
/// (see ExportableStats). The built-in tiers' series: `hitbox_backend_read_total`,
/// `hitbox_backend_write_total`, `hitbox_backend_read_bytes_total`, `hitbox_backend_write_bytes_total`,
/// `hitbox_backend_hits_total`, `hitbox_backend_misses_total`, `hitbox_backend_errors_total{kind}`,
/// `hitbox_backend_entries` (gauge), `hitbox_backend_evictions_total`, `hitbox_backend_expirations_total`,
/// `hitbox_compose_refills_total`, `hitbox_compose_refills_dropped_total`, `hitbox_compose_unavailable_total`.
template <class Stats>
void write_backend_stats(PrometheusWriter& out, std::string_view backend, const Stats& s) {
    static_assert(detail::holds<ExportableStats<Stats>>,
                  "hitbox::write_backend_stats(out, backend, stats): the stats type must model "
                  "hitbox::ExportableStats: declare void hitbox_write_stats(hitbox::PrometheusWriter&, "
                  "std::string_view backend, const Stats&) next to it, or make it a hitbox::CounterStruct "
                  "(std::uint64_t members named in BOOST_HANA_ADAPT_STRUCT)");
    if constexpr (ExportableStats<Stats>) hitbox_write_stats(out, backend, s);
}

}  // namespace hitbox

// The definitions: included here in a header-only build, compiled once into the hitbox library otherwise.
#if !HITBOX_COMPILED_LIB
#include <hitbox/core/detail/prometheus_impl.hpp>
#endif
