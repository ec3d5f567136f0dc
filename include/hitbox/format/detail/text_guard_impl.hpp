#pragma once
/// \file
/// The definitions of <hitbox/format/detail/text_guard.hpp>: included by that header in a header-only
/// build, compiled once into the hitbox library with HITBOX_COMPILED_LIB=1 (hitbox/core/linkage.hpp).

#include <hitbox/format/detail/text_guard.hpp>

namespace hitbox::detail {

HITBOX_LIB_INLINE JsonCheck json_input_check(std::string_view s, std::size_t limit) noexcept {
    auto digit = [](char c) { return c >= '0' && c <= '9'; };
    auto number_char = [&](char c) { return digit(c) || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-'; };
    std::size_t depth = 0;
    bool in_string = false;
    for (std::size_t i = 0; i < s.size(); ++i) {
        const char c = s[i];
        if (in_string) {
            if (c == '\\')
                ++i;
            else if (c == '"')
                in_string = false;
            continue;
        }
        if (c == '"') {
            in_string = true;
            continue;
        }
        if (c == '{' || c == '[') {
            if (++depth > limit) return JsonCheck::too_deep;
            continue;
        }
        if (c == '}' || c == ']') {
            if (depth > 0) --depth;
            continue;
        }
        if (c == 'N' || c == 'I') {
            // NaN / Inf / Infinity (cereal writes them for non-finite doubles). rapidjson goes on to read a
            // fraction or exponent after them ("NaN.000…184…") through the same broken path: refuse that.
            const std::string_view rest = s.substr(i);
            const std::size_t len = rest.starts_with("NaN")        ? 3
                                    : rest.starts_with("Infinity") ? 8
                                    : rest.starts_with("Inf")      ? 3
                                                                   : 0;
            if (len != 0 && i + len < s.size() && number_char(s[i + len])) return JsonCheck::bad_number;
            i += len == 0 ? 0 : len - 1;
            continue;
        }
        if (!(c == '-' || digit(c)) || (i > 0 && number_char(s[i - 1]))) continue;
        // One token: -? int ('.' frac)? ([eE] [+-]? exp)?
        std::size_t j = i;
        if (s[j] == '-') ++j;
        // significant: from the first to the last non-zero digit (rapidjson trims zeros at both ends)
        long int_digits = 0, frac_digits = 0, leading_zeros = 0, significant = 0, since_first = 0;
        bool nonzero = false;
        auto take_digit = [&](char d) {
            if (d != '0') nonzero = true;
            if (!nonzero)
                ++leading_zeros;
            else if (++since_first, d != '0')
                significant = since_first;
        };
        for (; j < s.size() && digit(s[j]); ++j, ++int_digits) take_digit(s[j]);
        if (j < s.size() && s[j] == '.')
            for (++j; j < s.size() && digit(s[j]); ++j, ++frac_digits) take_digit(s[j]);
        if (j - i > max_json_number_chars || significant > 20) return JsonCheck::bad_number;
        bool has_exponent = false;
        long exponent = 0;
        if (j < s.size() && (s[j] == 'e' || s[j] == 'E')) {
            has_exponent = true;
            ++j;
            bool negative = false;
            if (j < s.size() && (s[j] == '+' || s[j] == '-')) negative = s[j++] == '-';
            std::size_t exp_digits = 0;
            for (; j < s.size() && digit(s[j]); ++j, ++exp_digits) {
                if (exp_digits == 4) return JsonCheck::bad_number;
                exponent = exponent * 10 + (s[j] - '0');
            }
            if (negative) exponent = -exponent;
        }
        if (!nonzero) {
            if (has_exponent || frac_digits > 15) return JsonCheck::bad_number;
        } else {
            const long magnitude = int_digits - leading_zeros - 1 + exponent;  // power of ten of the first digit
            // rapidjson looks up 10^(magnitude + 1 - digits) with digits <= 20 in a table that starts at
            // 10^-348: magnitude >= -328 keeps it inside (the smallest double is 4.9e-324).
            // At the top of the range only the shape the writer uses (no leading zeros): rapidjson's
            // correction step asserts on "0.<28 zeros>94e336", a value just past the largest double.
            if (magnitude < -328 || magnitude > 308 || (magnitude == 308 && leading_zeros > 0))
                return JsonCheck::bad_number;
        }
        i = j - 1;  // the loop's ++i moves past the token
    }
    return JsonCheck::ok;
}

HITBOX_LIB_INLINE bool xml_root_is_text(std::string_view s) noexcept {
    // XmlFormat writes <cereal><value>...</value></cereal>: the first "<value" is the root value. What
    // cannot be found is left to the parser, which reports it.
    const auto open = s.find("<value");
    if (open == std::string_view::npos) return true;
    const auto end = s.find('>', open);
    if (end == std::string_view::npos || s[end - 1] == '/') return true;  // unterminated, or <value/>: empty
    const auto next = s.find('<', end + 1);
    return next == std::string_view::npos || s.substr(next, 8) == "</value>";
}

HITBOX_LIB_INLINE bool xml_nesting_ok(std::string_view s, std::size_t limit) noexcept {
    // Reads the markup as the parser does, element by element: start tags (attribute values in quotes may
    // hold '<', '>' and "</"), end tags, self-closing tags (a level only while they are read), comments,
    // CDATA sections, processing instructions and declarations (none of them nests). An unterminated
    // construct ends the scan: the parser stops at the same place with an error.
    auto skip_past = [&](std::size_t from, std::string_view end) {
        const auto at = s.find(end, from);
        return at == std::string_view::npos ? s.size() : at + end.size();
    };
    std::size_t depth = 0;
    std::size_t i = 0;
    while ((i = s.find('<', i)) != std::string_view::npos) {
        const std::string_view rest = s.substr(i);
        if (rest.starts_with("<!--")) {
            i = skip_past(i + 4, "-->");
        } else if (rest.starts_with("<![CDATA[")) {
            i = skip_past(i + 9, "]]>");
        } else if (rest.starts_with("<?")) {
            i = skip_past(i + 2, "?>");
        } else if (rest.starts_with("<!")) {  // a declaration (DOCTYPE): '>' ends it outside brackets
            std::size_t brackets = 0;
            for (i += 2; i < s.size(); ++i) {
                if (s[i] == '[')
                    ++brackets;
                else if (s[i] == ']' && brackets > 0)
                    --brackets;
                else if (s[i] == '>' && brackets == 0)
                    break;
            }
            ++i;
        } else if (rest.starts_with("</")) {
            if (depth > 0) --depth;
            i = skip_past(i + 2, ">");
        } else {  // a start tag, up to its '>' outside quoted attribute values
            char quote = 0;
            bool closed = false;
            for (++i; i < s.size(); ++i) {
                const char c = s[i];
                if (quote != 0) {
                    if (c == quote) quote = 0;
                } else if (c == '"' || c == '\'') {
                    quote = c;
                } else if (c == '>') {
                    closed = true;
                    break;
                }
            }
            if (!closed) return true;
            if (depth + 1 > limit) return false;
            if (s[i - 1] != '/') ++depth;  // "<x .../>" is closed where it opens
            ++i;
        }
    }
    return true;
}

}  // namespace hitbox::detail
