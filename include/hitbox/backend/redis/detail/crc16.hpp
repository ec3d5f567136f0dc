#pragma once
/// \file
/// Redis Cluster key hashing: CRC16 (XMODEM: polynomial 0x1021, initial value 0, no reflection) of the key,
/// or of its `{hash tag}`, modulo 16384. Binary-safe. Non-generic: plain inline functions.

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace hitbox::detail {

/// Number of hash slots of a Redis Cluster.
inline constexpr std::uint16_t cluster_slot_count = 16384;

/// The 256-entry CRC16/XMODEM table, computed at compile time.
inline constexpr std::array<std::uint16_t, 256> crc16_table = [] {
    std::array<std::uint16_t, 256> t{};
    for (unsigned byte = 0; byte < 256; ++byte) {
        auto crc = static_cast<std::uint16_t>(byte << 8);
        for (int bit = 0; bit < 8; ++bit)
            crc = static_cast<std::uint16_t>((crc & 0x8000u) ? (crc << 1) ^ 0x1021u : crc << 1);
        t[byte] = crc;
    }
    return t;
}();

/// CRC16/XMODEM of `bytes` (crc16("123456789") == 0x31C3).
constexpr std::uint16_t crc16(std::string_view bytes) noexcept {
    std::uint16_t crc = 0;
    for (char c : bytes) {
        const auto index = static_cast<std::uint8_t>((crc >> 8) ^ static_cast<std::uint8_t>(c));
        crc = static_cast<std::uint16_t>((crc << 8) ^ crc16_table[index]);
    }
    return crc;
}

/// The part of `key` that is hashed: the bytes between the first `{` and the first `}` after it when
/// that is not empty, else the whole key (Redis Cluster's hash tag rule).
constexpr std::string_view hash_tag(std::string_view key) noexcept {
    const auto open = key.find('{');
    if (open == std::string_view::npos) return key;
    const auto close = key.find('}', open + 1);
    if (close == std::string_view::npos || close == open + 1) return key;
    return key.substr(open + 1, close - open - 1);
}

/// The hash slot (0..16383) of `key`, as the server's `CLUSTER KEYSLOT` computes it.
constexpr std::uint16_t key_slot(std::string_view key) noexcept {
    return static_cast<std::uint16_t>(crc16(hash_tag(key)) & (cluster_slot_count - 1));
}

static_assert(crc16("123456789") == 0x31C3);

}  // namespace hitbox::detail
