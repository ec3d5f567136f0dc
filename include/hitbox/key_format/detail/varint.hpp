#pragma once
// Unsigned LEB128 varints: the length and count encoding of Bitcode and the envelope tools.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace hitbox::detail {

inline void put_varint(std::string& out, std::uint64_t v) {
    while (v >= 0x80) {
        out.push_back(static_cast<char>((v & 0x7f) | 0x80));
        v >>= 7;
    }
    out.push_back(static_cast<char>(v));
}

/// Reads a canonical (shortest-form) varint at `pos`, advancing it; nullopt on truncation, overflow or
/// an overlong encoding, so every value has exactly one accepted byte form.
inline std::optional<std::uint64_t> get_varint(std::string_view in, std::size_t& pos) {
    std::uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (pos >= in.size()) return std::nullopt;
        auto byte = static_cast<std::uint8_t>(in[pos++]);
        std::uint64_t bits = byte & 0x7f;
        if (shift == 63 && bits > 1) return std::nullopt;  // overflow past 64 bits
        v |= bits << shift;
        if (!(byte & 0x80)) {
            if (byte == 0 && shift != 0) return std::nullopt;  // overlong: trailing zero group
            return v;
        }
    }
    return std::nullopt;
}

}  // namespace hitbox::detail
