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
#include <hitbox/core/linkage.hpp>
#include <hitbox/key_format/detail/varint.hpp>

namespace hitbox {

namespace detail {

inline void put_bytes(std::string& out, std::string_view s) {
    put_varint(out, s.size());
    out.append(s);
}

HITBOX_LIB_INLINE std::string bitcode_encode(const CacheKey& key);

HITBOX_LIB_INLINE Result<CacheKey> bitcode_decode(std::string_view in);

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

// The definitions: included here in a header-only build, compiled once into the hitbox library otherwise.
#if !HITBOX_COMPILED_LIB
#include <hitbox/key_format/detail/bitcode_impl.hpp>
#endif
