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
#include <utility>
#include <vector>

#include <hitbox/core/concepts.hpp>
#include <hitbox/core/histogram.hpp>
#include <hitbox/core/stats.hpp>

namespace hitbox {

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
