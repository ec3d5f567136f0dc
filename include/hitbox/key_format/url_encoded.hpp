#pragma once
/// \file
/// hitbox::UrlEncoded: a readable key format, `prefix:v1:name=value&flag&empty=`.

#include <charconv>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <hitbox/core/error.hpp>
#include <hitbox/core/key.hpp>

namespace hitbox {

namespace detail {

inline bool url_unreserved(unsigned char c) noexcept {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
           c == '_' || c == '~';
}

inline void url_escape_into(std::string& out, std::string_view s) {
    static constexpr char hex[] = "0123456789ABCDEF";
    for (unsigned char c : s) {
        if (url_unreserved(c)) {
            out.push_back(static_cast<char>(c));
        } else {
            out.push_back('%');
            out.push_back(hex[c >> 4]);
            out.push_back(hex[c & 0xf]);
        }
    }
}

inline int url_hex_value(char c) noexcept {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/// Decodes one escaped component; nullopt on a bad escape or a raw character that encode never emits.
inline std::optional<std::string> url_unescape(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
        auto c = static_cast<unsigned char>(s[i]);
        if (c == '%') {
            if (s.size() - i < 3) return std::nullopt;
            int hi = url_hex_value(s[i + 1]), lo = url_hex_value(s[i + 2]);
            if (hi < 0 || lo < 0) return std::nullopt;
            out.push_back(static_cast<char>(hi * 16 + lo));
            i += 2;
        } else if (url_unreserved(c)) {
            out.push_back(static_cast<char>(c));
        } else {
            return std::nullopt;
        }
    }
    return out;
}

inline std::string url_encode_key(const CacheKey& key) {
    std::string out;
    out.reserve(8 + key.prefix().size() * 3 + key.parts().size() * 16);
    url_escape_into(out, key.prefix());
    out.append(":v").append(std::to_string(key.version()));
    if (key.parts().empty()) return out;  // "prefix:v1" has no parts; "prefix:v1:" has one empty part
    out.push_back(':');
    bool first = true;
    for (const auto& p : key.parts()) {
        if (!first) out.push_back('&');
        first = false;
        url_escape_into(out, p.name);
        if (p.value) {
            out.push_back('=');
            url_escape_into(out, *p.value);
        }
    }
    return out;
}

inline Result<CacheKey> url_decode_key(std::string_view in) {
    auto bad = [](const char* what) { return fail(ErrorKind::decode, std::string("url-encoded key: ") + what); };
    auto colon = in.find(':');
    if (colon == std::string_view::npos) return bad("missing ':v<version>'");
    auto prefix = url_unescape(in.substr(0, colon));
    if (!prefix) return bad("bad escape in prefix");
    std::string_view rest = in.substr(colon + 1);
    if (rest.empty() || rest[0] != 'v') return bad("missing version");
    auto vend = rest.find(':');
    std::string_view digits = rest.substr(1, vend == std::string_view::npos ? rest.size() - 1 : vend - 1);
    std::uint32_t version = 0;
    auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), version);
    if (digits.empty() || ec != std::errc{} || ptr != digits.data() + digits.size() ||
        (digits.size() > 1 && digits[0] == '0'))
        return bad("bad version number");
    std::vector<KeyPart> parts;
    if (vend != std::string_view::npos) {
        std::string_view list = rest.substr(vend + 1);
        while (true) {
            auto amp = list.find('&');
            std::string_view item = list.substr(0, amp);
            auto eq = item.find('=');
            auto name = url_unescape(item.substr(0, eq));
            if (!name) return bad("bad escape in part name");
            std::optional<std::string> value;
            if (eq != std::string_view::npos) {
                value = url_unescape(item.substr(eq + 1));
                if (!value) return bad("bad escape in part value");
            }
            parts.push_back(KeyPart{std::move(*name), std::move(value)});
            if (amp == std::string_view::npos) break;
            list.remove_prefix(amp + 1);
        }
    }
    return CacheKey(std::move(*prefix), version, std::move(parts));
}

}  // namespace detail

/// Readable key encoding: `prefix:v<version>[:name[=value]&...]`. Prefix, names and values are
/// percent-escaped (everything but `A-Z a-z 0-9 - . _ ~`, upper-case hex), so `:`, `&`, `=` and NUL
/// never clash with the separators. A part without a value has no `=`; an empty value is `name=`.
/// A key without parts ends after the version (`user:v1`), which keeps one part with an empty name
/// and no value (`user:v1:`) distinct.
struct UrlEncoded {
    static constexpr std::string_view name = "url";
    std::string encode(const CacheKey& key) const { return detail::url_encode_key(key); }
    Result<CacheKey> decode(std::string_view bytes) const { return detail::url_decode_key(bytes); }
};

}  // namespace hitbox
