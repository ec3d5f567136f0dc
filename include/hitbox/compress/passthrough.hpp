#pragma once
/// \file
/// hitbox::PassthroughCompressor: the null compressor (the default).

#include <cstdint>
#include <string>
#include <string_view>

#include <hitbox/core/error.hpp>

namespace hitbox {

/// Stores bytes as they are. The default: small values rarely gain from compression.
struct PassthroughCompressor {
    static constexpr std::uint8_t id = 0;
    static constexpr std::string_view name = "passthrough";
    Result<std::string> compress(std::string_view in) const { return std::string(in); }
    Result<std::string> decompress(std::string_view in) const { return std::string(in); }
};

/// Default limit on decompressed size: larger output is refused (decompression-bomb guard).
inline constexpr std::size_t default_max_decompressed = std::size_t{64} << 20;

}  // namespace hitbox
