#pragma once
// Test support: a strict parser for the Prometheus text exposition format (0.0.4), written from the format's
// specification, to check what hitbox renders. It returns the parsed samples and every problem it finds:
//   - line grammar: `# HELP name text`, `# TYPE name type`, comments, `name{label="value",...} value [ts]`;
//   - names [a-zA-Z_:][a-zA-Z0-9_:]*, label names [a-zA-Z_][a-zA-Z0-9_]*, escapes \\ \" \n only;
//   - values are floats (+Inf, -Inf, NaN allowed); counters are not negative;
//   - one TYPE per family, before its samples; a family's samples are contiguous; no series twice;
//   - histograms: only _bucket (with le), _sum, _count; per label set le increases, counts are cumulative,
//     le="+Inf" is present and equals _count.

#include <cmath>
#include <cstdlib>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hitbox_test {

struct PromSample {
    std::string name;                                         // full sample name (with _bucket / _sum / _count)
    std::vector<std::pair<std::string, std::string>> labels;  // unescaped values, in order
    double value = 0;

    /// The value of label `name`, or nullopt.
    std::optional<std::string> label(std::string_view n) const {
        for (const auto& [k, v] : labels)
            if (k == n) return v;
        return std::nullopt;
    }
};

struct PromParse {
    std::vector<PromSample> samples;
    std::map<std::string, std::string> types;  // family -> type
    std::vector<std::string> problems;

    bool ok() const { return problems.empty(); }

    /// The value of the sample `name` whose labels include every pair of `want`; nullopt when none.
    std::optional<double> value(std::string_view name,
                                std::vector<std::pair<std::string, std::string>> want = {}) const {
        for (const auto& s : samples) {
            if (s.name != name) continue;
            bool all = true;
            for (const auto& [k, v] : want)
                if (s.label(k) != v) all = false;
            if (all) return s.value;
        }
        return std::nullopt;
    }
};

namespace detail {

inline bool name_start(char c, bool colon) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':');
}
inline bool name_char(char c, bool colon) { return name_start(c, colon) || (c >= '0' && c <= '9'); }

/// Reads a name at `pos`; empty when there is none.
inline std::string read_name(std::string_view line, std::size_t& pos, bool colon) {
    std::size_t start = pos;
    if (pos >= line.size() || !name_start(line[pos], colon)) return {};
    while (pos < line.size() && name_char(line[pos], colon)) ++pos;
    return std::string(line.substr(start, pos - start));
}

inline std::optional<double> parse_value(std::string_view v) {
    if (v == "+Inf" || v == "Inf") return HUGE_VAL;
    if (v == "-Inf") return -HUGE_VAL;
    if (v == "NaN") return NAN;
    if (v.empty()) return std::nullopt;
    std::string s(v);
    char* end = nullptr;
    double d = std::strtod(s.c_str(), &end);
    if (end != s.c_str() + s.size()) return std::nullopt;
    return d;
}

inline std::string family_of(const std::string& sample, const std::map<std::string, std::string>& types) {
    for (std::string_view suffix : {"_bucket", "_sum", "_count"}) {
        if (sample.size() > suffix.size() &&
            sample.compare(sample.size() - suffix.size(), suffix.size(), suffix) == 0) {
            std::string base = sample.substr(0, sample.size() - suffix.size());
            auto it = types.find(base);
            if (it != types.end() && (it->second == "histogram" || it->second == "summary")) return base;
        }
    }
    return sample;
}

}  // namespace detail

/// Parses `text`; see the file comment for what is checked.
inline PromParse parse_prometheus(std::string_view text) {
    PromParse out;
    auto problem = [&](std::size_t line_no, const std::string& what) {
        out.problems.push_back("line " + std::to_string(line_no) + ": " + what);
    };
    if (!text.empty() && text.back() != '\n') out.problems.push_back("the text does not end with a newline");

    std::set<std::string> closed_families;  // families whose samples ended
    std::string current_family;
    std::set<std::string> seen_series;
    std::set<std::string> helped;
    std::size_t line_no = 0;
    std::size_t start = 0;
    while (start < text.size()) {
        std::size_t end = text.find('\n', start);
        if (end == std::string_view::npos) end = text.size();
        std::string_view line = text.substr(start, end - start);
        start = end + 1;
        ++line_no;
        if (line.empty()) continue;
        if (line[0] == '#') {
            std::size_t pos = 1;
            while (pos < line.size() && line[pos] == ' ') ++pos;
            std::string_view rest = line.substr(pos);
            bool help = rest.substr(0, 5) == "HELP ";
            bool type = rest.substr(0, 5) == "TYPE ";
            if (!help && !type) continue;  // a plain comment
            pos += 5;
            std::string name = detail::read_name(line, pos, true);
            if (name.empty()) {
                problem(line_no, "HELP/TYPE without a metric name");
                continue;
            }
            if (help) {
                if (!helped.insert(name).second) problem(line_no, "second HELP for " + name);
                if (pos < line.size() && line[pos] != ' ') problem(line_no, "bad HELP line");
                for (std::size_t i = pos; i < line.size(); ++i)
                    if (line[i] == '\\' && (i + 1 >= line.size() || (line[i + 1] != '\\' && line[i + 1] != 'n')))
                        problem(line_no, "bad escape in HELP");
                    else if (line[i] == '\\')
                        ++i;
                continue;
            }
            if (pos >= line.size() || line[pos] != ' ') {
                problem(line_no, "TYPE without a type");
                continue;
            }
            std::string t(line.substr(pos + 1));
            if (t != "counter" && t != "gauge" && t != "histogram" && t != "summary" && t != "untyped")
                problem(line_no, "unknown type '" + t + "'");
            if (out.types.count(name)) problem(line_no, "second TYPE for " + name);
            if (closed_families.count(name) || current_family == name)
                problem(line_no, "TYPE after samples of " + name);
            out.types[name] = t;
            continue;
        }
        PromSample s;
        std::size_t pos = 0;
        s.name = detail::read_name(line, pos, true);
        if (s.name.empty()) {
            problem(line_no, "sample without a valid metric name: " + std::string(line));
            continue;
        }
        std::string series = s.name + "{";
        if (pos < line.size() && line[pos] == '{') {
            ++pos;
            bool ok = true;
            while (ok && pos < line.size() && line[pos] != '}') {
                std::string label = detail::read_name(line, pos, false);
                if (label.empty() || pos >= line.size() || line[pos] != '=' || pos + 1 >= line.size() ||
                    line[pos + 1] != '"') {
                    problem(line_no, "bad label syntax");
                    ok = false;
                    break;
                }
                pos += 2;
                std::string value;
                bool closed = false;
                while (pos < line.size()) {
                    char c = line[pos++];
                    if (c == '"') {
                        closed = true;
                        break;
                    }
                    if (c == '\\') {
                        if (pos >= line.size()) break;
                        char e = line[pos++];
                        if (e == '\\')
                            value.push_back('\\');
                        else if (e == '"')
                            value.push_back('"');
                        else if (e == 'n')
                            value.push_back('\n');
                        else {
                            problem(line_no, std::string("bad escape \\") + e + " in a label value");
                            ok = false;
                        }
                        continue;
                    }
                    value.push_back(c);
                }
                if (!closed) {
                    problem(line_no, "unterminated label value");
                    ok = false;
                    break;
                }
                for (const auto& [k, v] : s.labels)
                    if (k == label) problem(line_no, "label " + label + " twice");
                series += label + "=" + value + ",";
                s.labels.emplace_back(label, value);
                if (pos < line.size() && line[pos] == ',') ++pos;
            }
            if (!ok) continue;
            if (pos >= line.size() || line[pos] != '}') {
                problem(line_no, "unterminated label set");
                continue;
            }
            ++pos;
        }
        if (pos >= line.size() || line[pos] != ' ') {
            problem(line_no, "no space before the value");
            continue;
        }
        ++pos;
        std::string_view rest = line.substr(pos);
        std::string_view value_text = rest.substr(0, rest.find(' '));
        auto value = detail::parse_value(value_text);
        if (!value) {
            problem(line_no, "bad value '" + std::string(value_text) + "'");
            continue;
        }
        if (value_text.size() < rest.size()) {  // an optional integer timestamp
            auto ts = rest.substr(value_text.size() + 1);
            for (char c : ts)
                if (!(c >= '0' && c <= '9') && c != '-') problem(line_no, "bad timestamp");
        }
        s.value = *value;
        const std::string family = detail::family_of(s.name, out.types);
        if (family != current_family) {
            if (closed_families.count(family)) problem(line_no, "samples of " + family + " are not contiguous");
            if (!current_family.empty()) closed_families.insert(current_family);
            current_family = family;
        }
        if (!seen_series.insert(series).second) problem(line_no, "series twice: " + std::string(line));
        auto type = out.types.find(family);
        if (type == out.types.end()) {
            problem(line_no, "sample of " + family + " without a TYPE line");
        } else if (type->second == "counter" && !(s.value >= 0)) {
            problem(line_no, "negative counter");
        } else if (type->second == "histogram" && s.name == family) {
            problem(line_no, "histogram sample without _bucket/_sum/_count suffix");
        } else if (type->second == "histogram" && s.name == family + "_bucket" && !s.label("le")) {
            problem(line_no, "histogram bucket without le");
        }
        out.samples.push_back(std::move(s));
    }

    // Histogram consistency, per family and label set (le excluded).
    for (const auto& [family, type] : out.types) {
        if (type != "histogram") continue;
        std::map<std::string, std::vector<std::pair<double, double>>> buckets;  // labels -> (le, count)
        std::map<std::string, double> counts;
        for (const auto& s : out.samples) {
            if (s.name != family + "_bucket" && s.name != family + "_count") continue;
            std::string key;
            for (const auto& [k, v] : s.labels)
                if (k != "le") key += k + "=" + v + ",";
            if (s.name == family + "_count") {
                counts[key] = s.value;
            } else if (auto le = s.label("le")) {
                auto bound = detail::parse_value(*le);
                if (!bound) {
                    out.problems.push_back(family + ": bad le '" + *le + "'");
                    continue;
                }
                buckets[key].emplace_back(*bound, s.value);
            }
        }
        for (const auto& [key, list] : buckets) {
            for (std::size_t i = 1; i < list.size(); ++i) {
                if (!(list[i].first > list[i - 1].first))
                    out.problems.push_back(family + "{" + key + "}: le not increasing");
                if (list[i].second < list[i - 1].second)
                    out.problems.push_back(family + "{" + key + "}: not cumulative");
            }
            if (list.empty() || !std::isinf(list.back().first))
                out.problems.push_back(family + "{" + key + "}: no le=\"+Inf\" bucket");
            else if (!counts.count(key) || counts[key] != list.back().second)
                out.problems.push_back(family + "{" + key + "}: _count differs from the +Inf bucket");
        }
    }
    return out;
}

}  // namespace hitbox_test
