#pragma once
/// \file
/// The built-in compressors, listed once, as the facts run-time configuration needs: name, id and level
/// range. Needs no zlib or zstd: a compressor with a library behind it is listed by its spec (GzipSpec,
/// ZstdSpec), whose `compressor` type is complete only where its header (hitbox/compress/gzip.hpp, ...)
/// is included, as the factory (hitbox/config.hpp) does. A new compressor is its header (the class, and a
/// spec here when it needs a library), one entry in builtin_compressors and its tests (doc/extending.md).

#include <cstdint>
#include <string_view>

#include <hitbox/compress/passthrough.hpp>
#include <hitbox/core/type_list.hpp>

namespace hitbox {

struct GzipCompressor;
struct ZstdCompressor;

/// GzipCompressor's facts (hitbox/compress/gzip.hpp needs zlib): levels 0..9, 6 by default.
struct GzipSpec {
    using compressor = GzipCompressor;
    static constexpr std::uint8_t id = 1;
    static constexpr std::string_view name = "gzip";
    static constexpr int min_level = 0;
    static constexpr int max_level = 9;
    static constexpr int default_level = 6;
};

/// ZstdCompressor's facts (hitbox/compress/zstd.hpp needs libzstd): levels 1..22, 3 by default.
struct ZstdSpec {
    using compressor = ZstdCompressor;
    static constexpr std::uint8_t id = 2;
    static constexpr std::string_view name = "zstd";
    static constexpr int min_level = 1;
    static constexpr int max_level = 22;
    static constexpr int default_level = 3;
};

/// The compressors a configuration can name, in the order messages list them: each a compressor without
/// a library (its own spec) or the spec of one with a library. Ids and names must be unique.
using builtin_compressors = TypeList<PassthroughCompressor, GzipSpec, ZstdSpec>;

namespace detail {

/// The compressor type of a builtin_compressors entry.
template <class S>
struct compressor_of {
    using type = S;
};
template <class S>
    requires requires { typename S::compressor; }
struct compressor_of<S> {
    using type = typename S::compressor;
};

/// Whether a builtin_compressors entry takes a level (then it also takes a decompression limit).
template <class S>
inline constexpr bool compressor_leveled = requires {
    S::min_level;
    S::max_level;
    S::default_level;
};

}  // namespace detail

}  // namespace hitbox
