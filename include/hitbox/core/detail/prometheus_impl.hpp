#pragma once
/// \file
/// The definitions of <hitbox/core/prometheus.hpp>: included by that header in a header-only build,
/// compiled once into the hitbox library with HITBOX_COMPILED_LIB=1 (hitbox/core/linkage.hpp).

#include <hitbox/core/prometheus.hpp>

namespace hitbox::detail {

HITBOX_LIB_INLINE void append_escaped(std::string& out, std::string_view v, bool quote) {
    // The format is UTF-8: a byte that starts no valid sequence, and a control character other than the
    // escaped line break, is written as U+FFFD (a tier's label is the user's text).
    constexpr std::string_view replacement = "\xEF\xBF\xBD";
    const auto* p = reinterpret_cast<const unsigned char*>(v.data());
    const std::size_t n = v.size();
    for (std::size_t i = 0; i < n;) {
        const unsigned char c = p[i];
        if (c < 0x80) {
            if (c == '\\')
                out += "\\\\";
            else if (c == '"' && quote)
                out += "\\\"";
            else if (c == '\n')
                out += "\\n";
            else if (c < 0x20 || c == 0x7f)
                out += replacement;
            else
                out.push_back(static_cast<char>(c));
            ++i;
            continue;
        }
        // A multi-byte sequence: its length from the lead byte, the continuation bytes' ranges as UTF-8
        // defines them (no overlong forms, no surrogates, nothing past U+10FFFF).
        std::size_t len = 0;
        unsigned char lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            if (c == 0xE0) lo = 0xA0;
            if (c == 0xED) hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            if (c == 0xF0) lo = 0x90;
            if (c == 0xF4) hi = 0x8F;
        }
        bool valid = len != 0 && i + len <= n;
        for (std::size_t k = 1; valid && k < len; ++k) {
            const unsigned char b = p[i + k];
            valid = k == 1 ? (b >= lo && b <= hi) : (b >= 0x80 && b <= 0xBF);
        }
        if (!valid) {
            out += replacement;
            ++i;
            continue;
        }
        out.append(v.substr(i, len));
        i += len;
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
    add_(f, series_(name, {}, labels, {}), value);
}

HITBOX_LIB_INLINE void PrometheusWriter::gauge(std::string_view name, std::string_view help, Labels labels,
                                               double value) {
    auto& f = family_(name, help, "gauge");
    add_(f, series_(name, {}, labels, {}), value);
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
        add_(f, series_(name, "_bucket", labels, le), cumulative);
    }
    add_(f, series_(name, "_sum", labels, {}), h.sum_seconds());
    add_(f, series_(name, "_count", labels, {}), cumulative);
}

HITBOX_LIB_INLINE std::string PrometheusWriter::str() const {
    std::string out;
    for (const auto& f : families_) {
        out.append("# HELP ").append(f.name).push_back(' ');
        detail::append_escaped(out, f.help, false);
        out.append("\n# TYPE ").append(f.name).append(" ").append(f.type).push_back('\n');
        for (const auto& sample : f.samples) {
            out += sample.series;
            if (sample.whole)
                detail::append_number(out, sample.count);
            else
                detail::append_number(out, sample.value);
            out.push_back('\n');
        }
    }
    return out;
}

HITBOX_LIB_INLINE PrometheusWriter::Family& PrometheusWriter::family_(std::string_view name, std::string_view help,
                                                                      std::string_view type) {
    for (auto& f : families_)
        if (f.name == name) return f;
    families_.push_back(Family{std::string(name), std::string(help), std::string(type), {}, {}});
    return families_.back();
}

HITBOX_LIB_INLINE PrometheusWriter::Sample& PrometheusWriter::sample_(Family& f, std::string series, bool whole) {
    // One series once: a second sample of it (two tiers under one label path, a tier's counter named as
    // the front's) is added to the first, as levels sharing a path are.
    auto [at, fresh] = f.index.try_emplace(series, f.samples.size());
    if (!fresh) return f.samples[at->second];
    f.samples.push_back(Sample{std::move(series), whole, 0, 0.0});
    return f.samples.back();
}

HITBOX_LIB_INLINE void PrometheusWriter::add_(Family& f, std::string series, std::uint64_t value) {
    Sample& s = sample_(f, std::move(series), true);
    s.count = value > UINT64_MAX - s.count ? UINT64_MAX : s.count + value;
}

HITBOX_LIB_INLINE void PrometheusWriter::add_(Family& f, std::string series, double value) {
    sample_(f, std::move(series), false).value += value;
}

HITBOX_LIB_INLINE std::string PrometheusWriter::series_(std::string_view name, std::string_view suffix, Labels labels,
                                                        std::string_view le) {
    std::string out;
    out.append(name).append(suffix);
    if (labels.size() == 0 && le.empty()) {
        out.push_back(' ');
        return out;
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
    return out;
}

}  // namespace hitbox
