#pragma once
/// \file
/// The definitions of <hitbox/key_format/bitcode.hpp>: included by that header in a header-only build,
/// compiled once into the hitbox library with HITBOX_COMPILED_LIB=1 (hitbox/core/linkage.hpp).

#include <hitbox/key_format/bitcode.hpp>

namespace hitbox::detail {

HITBOX_LIB_INLINE std::string bitcode_encode(const CacheKey& key) {
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

HITBOX_LIB_INLINE Result<CacheKey> bitcode_decode(std::string_view in) {
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

}  // namespace hitbox::detail
