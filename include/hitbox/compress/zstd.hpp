#pragma once
/// \file
/// hitbox::ZstdCompressor. Needs libzstd: use the `hitbox-zstd` meson dependency.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include <zstd.h>

#include <hitbox/compress/builtin.hpp>
#include <hitbox/compress/passthrough.hpp>
#include <hitbox/core/error.hpp>
#include <hitbox/core/linkage.hpp>

namespace hitbox {

namespace detail {

struct ZstdContexts {
    std::unique_ptr<ZSTD_CCtx, decltype(&ZSTD_freeCCtx)> c{ZSTD_createCCtx(), &ZSTD_freeCCtx};
    std::unique_ptr<ZSTD_DCtx, decltype(&ZSTD_freeDCtx)> d{ZSTD_createDCtx(), &ZSTD_freeDCtx};
};

/// One compression and one decompression context per thread: creating them per call costs more than
/// compressing a small value.
HITBOX_LIB_INLINE ZstdContexts& zstd_contexts();

HITBOX_LIB_INLINE Result<std::string> zstd_compress(std::string_view in, int level);

HITBOX_LIB_INLINE Unexpected zstd_too_large(std::size_t limit);

/// The content size of the frame `in` by decompressing it into a small scratch buffer, output thrown away: a
/// frame that does not state its size (streamed by another writer) is measured before its output is
/// allocated, so a bomb costs the decoder's window and a scratch buffer, never an output buffer. The window
/// a frame may ask for is capped at the largest power of two within the limit (at most zstd's default cap,
/// 128 MiB): a window larger than the output it may produce serves no valid frame. A context that grew a
/// window past 16 MiB is replaced, so no thread keeps it.
HITBOX_LIB_INLINE Result<std::size_t> zstd_measure(ZstdContexts& ctx, std::string_view in, std::size_t limit);

/// One frame, exactly: trailing bytes are an error. The output is allocated once, at its final size: the
/// size the frame header states (zstd_compress always writes it), else the size zstd_measure finds. So a
/// refused bomb allocates no output at all, and an accepted frame costs one buffer of its own size; peak
/// memory never nears twice the limit as growing a buffer by doubling (copy + zero fill) does.
HITBOX_LIB_INLINE Result<std::string> zstd_decompress(std::string_view in, std::size_t limit);

}  // namespace detail

/// Zstandard with a content checksum. Level 1..19 (default 3): better ratio and speed than gzip for most
/// payloads. Decompression refuses output past `max_decompressed` (default 64 MiB; SIZE_MAX: no limit) with
/// a compression error, and allocates its output once, at the final size: a refused bomb allocates none,
/// only the decoder's window. A frame that does not state its size (not one compress() wrote) is
/// decompressed twice, once to measure it and once into its buffer, and may use a window of at most the
/// largest power of two within the limit (and 128 MiB, zstd's default).
struct ZstdCompressor {
    static constexpr std::uint8_t id = ZstdSpec::id;
    static constexpr std::string_view name = ZstdSpec::name;

    int level = ZstdSpec::default_level;
    std::size_t max_decompressed = default_max_decompressed;

    ZstdCompressor() = default;
    explicit ZstdCompressor(int lvl, std::size_t max_out = default_max_decompressed)
        : level(lvl), max_decompressed(max_out) {}

    /// One zstd frame of `in`; the bytes back, refusing output past `max_decompressed`.
    Result<std::string> compress(std::string_view in) const { return detail::zstd_compress(in, level); }
    Result<std::string> decompress(std::string_view in) const { return detail::zstd_decompress(in, max_decompressed); }
};

}  // namespace hitbox

// The definitions: included here in a header-only build, compiled once into the hitbox-zstd library otherwise.
#if !HITBOX_COMPILED_LIB
#include <hitbox/compress/detail/zstd_impl.hpp>
#endif
