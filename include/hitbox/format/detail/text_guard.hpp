#pragma once
// Pre-parse checks for the text value formats: cereal's JSON and XML parsers recurse per nesting level, so
// hostile input nested deeply enough would exhaust the stack. These scans bound the depth first.

#include <cstddef>
#include <string_view>

namespace hitbox::detail {

inline constexpr std::size_t max_text_nesting = 256;

inline bool json_nesting_ok(std::string_view s, std::size_t limit = max_text_nesting) noexcept {
    std::size_t depth = 0;
    bool in_string = false;
    for (std::size_t i = 0; i < s.size(); ++i) {
        char c = s[i];
        if (in_string) {
            if (c == '\\') ++i;
            else if (c == '"') in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '{' || c == '[') {
            if (++depth > limit) return false;
        } else if ((c == '}' || c == ']') && depth > 0) {
            --depth;
        }
    }
    return true;
}

/// True when `s` has no number whose digits are all zero but which carries an exponent ("0e66", "-0.00E5").
/// rapidjson's full-precision parser (which cereal enables) takes such numbers through __builtin_clzll(0)
/// and an out-of-range shift: undefined behaviour found by fuzzing. hitbox's own writer never emits them.
inline bool json_numbers_ok(std::string_view s) noexcept {
    bool in_string = false;
    for (std::size_t i = 0; i < s.size(); ++i) {
        char c = s[i];
        if (in_string) {
            if (c == '\\') ++i;
            else if (c == '"') in_string = false;
            continue;
        }
        if (c == '"') {
            in_string = true;
            continue;
        }
        const bool starts_number = (c == '-' || (c >= '0' && c <= '9')) &&
                                   (i == 0 || !((s[i - 1] >= '0' && s[i - 1] <= '9') || s[i - 1] == '.' ||
                                                s[i - 1] == 'e' || s[i - 1] == 'E' || s[i - 1] == '+' ||
                                                s[i - 1] == '-'));
        if (!starts_number) continue;
        bool nonzero_digit = false, exponent = false;
        std::size_t j = i;
        for (; j < s.size(); ++j) {
            char d = s[j];
            if (d == 'e' || d == 'E') {
                exponent = true;
                break;
            }
            if (!((d >= '0' && d <= '9') || d == '.' || d == '-')) break;
            if (d >= '1' && d <= '9') nonzero_digit = true;
        }
        if (exponent && !nonzero_digit) return false;
        i = j;
    }
    return true;
}

inline bool xml_nesting_ok(std::string_view s, std::size_t limit = max_text_nesting) noexcept {
    std::size_t depth = 0;
    for (std::size_t i = 0; i + 1 < s.size(); ++i) {
        if (s[i] != '<') continue;
        char n = s[i + 1];
        if (n == '/') {
            if (depth > 0) --depth;
        } else if (n != '?' && n != '!') {
            if (++depth > limit) return false;
        }
    }
    return true;
}

}  // namespace hitbox::detail
