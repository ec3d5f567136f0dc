#pragma once
/// \file
/// The definitions of <hitbox/core/prometheus.hpp>: included by that header in a header-only build,
/// compiled once into the hitbox library with HITBOX_COMPILED_LIB=1 (hitbox/core/linkage.hpp).

#include <hitbox/core/prometheus.hpp>

namespace hitbox::detail {

HITBOX_LIB_INLINE void append_escaped(std::string& out, std::string_view v, bool quote) {
    for (char c : v) {
        if (c == '\\')
            out += "\\\\";
        else if (c == '"' && quote)
            out += "\\\"";
        else if (c == '\n')
            out += "\\n";
        else
            out.push_back(c);
    }
}

HITBOX_LIB_INLINE void append_number(std::string& out, std::uint64_t v) {
    char buf[32];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, ec == std::errc{} ? end : buf);
}

HITBOX_LIB_INLINE void append_number(std::string& out, double v) {
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

}  // namespace hitbox::detail

namespace hitbox {

HITBOX_LIB_INLINE void PrometheusWriter::counter(std::string_view name, std::string_view help, Labels labels,
                                                 std::uint64_t value) {
    auto& f = family_(name, help, "counter");
    sample_(f.samples, name, {}, labels, {});
    detail::append_number(f.samples, value);
    f.samples.push_back('\n');
}

HITBOX_LIB_INLINE void PrometheusWriter::gauge(std::string_view name, std::string_view help, Labels labels,
                                               double value) {
    auto& f = family_(name, help, "gauge");
    sample_(f.samples, name, {}, labels, {});
    detail::append_number(f.samples, value);
    f.samples.push_back('\n');
}

HITBOX_LIB_INLINE void PrometheusWriter::histogram(std::string_view name, std::string_view help, Labels labels,
                                                   const HistogramSnapshot& h) {
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

HITBOX_LIB_INLINE std::string PrometheusWriter::str() const {
    std::string out;
    for (const auto& f : families_) {
        out.append("# HELP ").append(f.name).push_back(' ');
        detail::append_escaped(out, f.help, false);
        out.append("\n# TYPE ").append(f.name).append(" ").append(f.type).push_back('\n');
        out += f.samples;
    }
    return out;
}

HITBOX_LIB_INLINE PrometheusWriter::Family& PrometheusWriter::family_(std::string_view name, std::string_view help,
                                                                      std::string_view type) {
    for (auto& f : families_)
        if (f.name == name) return f;
    families_.push_back(Family{std::string(name), std::string(help), std::string(type), {}});
    return families_.back();
}

HITBOX_LIB_INLINE void PrometheusWriter::sample_(std::string& out, std::string_view name, std::string_view suffix,
                                                 Labels labels, std::string_view le) {
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
        detail::append_escaped(out, v, true);
        out.push_back('"');
    }
    if (!le.empty()) {
        if (!first) out.push_back(',');
        out.append("le=\"").append(le).push_back('"');
    }
    out.append("} ");
}

}  // namespace hitbox
