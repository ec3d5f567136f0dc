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
#include <hitbox/core/linkage.hpp>

namespace hitbox {

namespace detail {

inline bool url_unreserved(unsigned char c) noexcept {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
           c == '_' || c == '~';
}

HITBOX_LIB_INLINE void url_escape_into(std::string& out, std::string_view s);

inline int url_hex_value(char c) noexcept {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/// Decodes one escaped component; nullopt on a bad escape or a raw character that encode never emits.
HITBOX_LIB_INLINE std::optional<std::string> url_unescape(std::string_view s);

HITBOX_LIB_INLINE std::string url_encode_key(const CacheKey& key);

HITBOX_LIB_INLINE Result<CacheKey> url_decode_key(std::string_view in);

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

// The definitions: included here in a header-only build, compiled once into the hitbox library otherwise.
#if !HITBOX_COMPILED_LIB
#include <hitbox/key_format/detail/url_encoded_impl.hpp>
#endif
