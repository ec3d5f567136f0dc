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
