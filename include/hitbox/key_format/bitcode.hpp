#pragma once
/// \file
/// hitbox::Bitcode: the default key format, compact and binary.

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <hitbox/core/error.hpp>
#include <hitbox/core/key.hpp>
#include <hitbox/key_format/detail/varint.hpp>

namespace hitbox {

namespace detail {

inline void put_bytes(std::string& out, std::string_view s) {
    put_varint(out, s.size());
    out.append(s);
}

inline std::string bitcode_encode(const CacheKey& key) {
    std::string out;
    std::size_t hint = 4 + key.prefix().size();
    for (const auto& p : key.parts()) hint += 4 + p.name.size() + (p.value ? p.value->size() : 0);
    out.reserve(hint);
    put_bytes(out, key.prefix());
    put_varint(out, key.version());
    put_varint(out, key.parts().size());
    for (const auto& p : key.parts()) {
        put_bytes(out, p.name);
        if (p.value) {
            put_varint(out, p.value->size() + 1);
            out.append(*p.value);
        } else {
            put_varint(out, 0);
        }
    }
    return out;
}

inline Result<CacheKey> bitcode_decode(std::string_view in) {
    std::size_t pos = 0;
    auto bad = [&](const char* what) {
        return fail(ErrorKind::decode, std::string("bitcode key: ") + what + " at byte " + std::to_string(pos));
    };
    auto take = [&](std::uint64_t n) -> std::optional<std::string> {
        if (n > in.size() - pos) return std::nullopt;
        std::string s(in.substr(pos, static_cast<std::size_t>(n)));
        pos += static_cast<std::size_t>(n);
        return s;
    };
    auto plen = get_varint(in, pos);
    if (!plen) return bad("bad prefix length");
    auto prefix = take(*plen);
    if (!prefix) return bad("truncated prefix");
    auto version = get_varint(in, pos);
    if (!version || *version > std::numeric_limits<std::uint32_t>::max()) return bad("bad version");
    auto count = get_varint(in, pos);
    // every part takes at least two bytes, so a count beyond that is corrupt (and never allocated)
    if (!count || *count > (in.size() - pos) / 2) return bad("bad part count");
    std::vector<KeyPart> parts;
    parts.reserve(static_cast<std::size_t>(*count));
    for (std::uint64_t i = 0; i < *count; ++i) {
        auto nlen = get_varint(in, pos);
        if (!nlen) return bad("bad part name length");
        auto name = take(*nlen);
        if (!name) return bad("truncated part name");
        auto vtag = get_varint(in, pos);
        if (!vtag) return bad("bad part value length");
        std::optional<std::string> value;
        if (*vtag != 0) {
            value = take(*vtag - 1);
            if (!value) return bad("truncated part value");
        }
        parts.push_back(KeyPart{std::move(*name), std::move(value)});
    }
    if (pos != in.size()) return bad("trailing bytes");
    return CacheKey(std::move(*prefix), static_cast<std::uint32_t>(*version), std::move(parts));
}

}  // namespace detail

/// Compact binary key encoding (the default KeyFormat). Layout, all integers unsigned LEB128 varints:
/// `len(prefix) prefix version count { len(name) name tag [value] }*`, where `tag` is 0 for a part
/// without a value and `len(value) + 1` otherwise. Specified with golden bytes in doc/wire-format.md.
struct Bitcode {
    static constexpr std::string_view name = "bitcode";
    std::string encode(const CacheKey& key) const { return detail::bitcode_encode(key); }
    Result<CacheKey> decode(std::string_view bytes) const { return detail::bitcode_decode(bytes); }
};

}  // namespace hitbox
