#pragma once
/// \file
/// hitbox::ZstdCompressor. Needs libzstd: use the `hitbox-zstd` meson dependency.

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include <zstd.h>
#include <zstd_errors.h>

#include <hitbox/compress/builtin.hpp>
#include <hitbox/compress/passthrough.hpp>
#include <hitbox/core/error.hpp>

namespace hitbox {

namespace detail {

struct ZstdContexts {
    std::unique_ptr<ZSTD_CCtx, decltype(&ZSTD_freeCCtx)> c{ZSTD_createCCtx(), &ZSTD_freeCCtx};
    std::unique_ptr<ZSTD_DCtx, decltype(&ZSTD_freeDCtx)> d{ZSTD_createDCtx(), &ZSTD_freeDCtx};
};

/// One compression and one decompression context per thread: creating them per call costs more than
/// compressing a small value.
inline ZstdContexts& zstd_contexts() {
    thread_local ZstdContexts ctx;
    return ctx;
}

inline Result<std::string> zstd_compress(std::string_view in, int level) {
    auto& ctx = zstd_contexts();
    if (!ctx.c) return fail(ErrorKind::compression, "zstd: cannot create context");
    std::string out;
    out.resize(ZSTD_compressBound(in.size()));
    // A content checksum (4 bytes) lets decompression detect corrupted bytes instead of returning them.
    ZSTD_CCtx_reset(ctx.c.get(), ZSTD_reset_session_only);
    ZSTD_CCtx_setParameter(ctx.c.get(), ZSTD_c_compressionLevel, level);
    ZSTD_CCtx_setParameter(ctx.c.get(), ZSTD_c_checksumFlag, 1);
    std::size_t n = ZSTD_compress2(ctx.c.get(), out.data(), out.size(), in.data(), in.size());
    if (ZSTD_isError(n)) return fail(ErrorKind::compression, std::string("zstd: ") + ZSTD_getErrorName(n));
    out.resize(n);
    return out;
}

inline Unexpected zstd_too_large(std::size_t limit) {
    return fail(ErrorKind::compression,
                "zstd: decompressed size exceeds the limit of " + std::to_string(limit) + " bytes");
}

/// The content size of the frame `in` by decompressing it into a small scratch buffer, output thrown away: a
/// frame that does not state its size (streamed by another writer) is measured before its output is
/// allocated, so a bomb costs the decoder's window and a scratch buffer, never an output buffer. The window
/// a frame may ask for is capped at the largest power of two within the limit (at most zstd's default cap,
/// 128 MiB): a window larger than the output it may produce serves no valid frame. A context that grew a
/// window past 16 MiB is replaced, so no thread keeps it.
inline Result<std::size_t> zstd_measure(ZstdContexts& ctx, std::string_view in, std::size_t limit) {
    ZSTD_DCtx_reset(ctx.d.get(), ZSTD_reset_session_only);
    constexpr int min_window_log = 10, default_max_window_log = 27;  // zstd's own bounds (static-linking API)
    const int window_log =
        std::clamp(static_cast<int>(std::bit_width(limit)) - 1, min_window_log, default_max_window_log);
    ZSTD_DCtx_setParameter(ctx.d.get(), ZSTD_d_windowLogMax, window_log);
    const std::size_t room = ZSTD_DStreamOutSize();
    const std::unique_ptr<char[]> scratch(new char[room]);
    ZSTD_inBuffer src{in.data(), in.size(), 0};
    std::size_t produced = 0;
    Result<std::size_t> r = 0;
    while (true) {
        ZSTD_outBuffer dst{scratch.get(), room, 0};
        const std::size_t rc = ZSTD_decompressStream(ctx.d.get(), &dst, &src);
        produced += dst.pos;
        if (ZSTD_isError(rc) && ZSTD_getErrorCode(rc) == ZSTD_error_frameParameter_windowTooLarge) {
            r = fail(ErrorKind::compression, "zstd: the frame's window is larger than the decompression limit of " +
                                                 std::to_string(limit) + " bytes");
        } else if (ZSTD_isError(rc)) {
            r = fail(ErrorKind::compression, std::string("zstd: ") + ZSTD_getErrorName(rc));
        } else if (produced > limit) {
            r = zstd_too_large(limit);
        } else if (rc == 0) {
            r = produced;
        } else if (src.pos == src.size && dst.pos < dst.size) {
            r = fail(ErrorKind::compression, "zstd: truncated frame");
        } else {
            continue;
        }
        break;
    }
    if (ZSTD_sizeof_DCtx(ctx.d.get()) > (std::size_t{16} << 20)) ctx.d.reset(ZSTD_createDCtx());
    return r;
}

/// One frame, exactly: trailing bytes are an error. The output is allocated once, at its final size: the
/// size the frame header states (zstd_compress always writes it), else the size zstd_measure finds. So a
/// refused bomb allocates no output at all, and an accepted frame costs one buffer of its own size; peak
/// memory never nears twice the limit as growing a buffer by doubling (copy + zero fill) does.
inline Result<std::string> zstd_decompress(std::string_view in, std::size_t limit) {
    auto& ctx = zstd_contexts();
    if (!ctx.d) return fail(ErrorKind::compression, "zstd: cannot create context");
    const std::size_t frame = ZSTD_findFrameCompressedSize(in.data(), in.size());
    if (ZSTD_isError(frame))
        return fail(ErrorKind::compression,
                    std::string("zstd: corrupt or truncated frame: ") + ZSTD_getErrorName(frame));
    if (frame != in.size()) return fail(ErrorKind::compression, "zstd: trailing bytes after the frame");
    // The header's size can lie; a lie is caught by the decompression below, which checks it. It cannot
    // exceed what the frame's blocks can hold (each takes at least 3 bytes and yields at most 128 KiB).
    const unsigned long long declared = ZSTD_getFrameContentSize(in.data(), in.size());
    std::size_t size = 0;
    if (declared == ZSTD_CONTENTSIZE_ERROR) return fail(ErrorKind::compression, "zstd: not a zstd frame");
    if (declared == ZSTD_CONTENTSIZE_UNKNOWN) {
        auto measured = zstd_measure(ctx, in, limit);
        if (!measured) return fail(std::move(measured.error()));
        if (!ctx.d) return fail(ErrorKind::compression, "zstd: cannot create context");
        size = *measured;
    } else if (declared > limit) {
        return zstd_too_large(limit);
    } else if (declared / ZSTD_BLOCKSIZE_MAX > in.size() / 3 + 1) {
        return fail(ErrorKind::compression, "zstd: frame header states more content than the frame holds");
    } else {
        size = static_cast<std::size_t>(declared);
    }
    std::string out;
    try {
        out.resize(size);
    } catch (const std::exception&) {
        return fail(ErrorKind::compression, "zstd: cannot allocate " + std::to_string(size) + " bytes");
    }
    ZSTD_DCtx_reset(ctx.d.get(), ZSTD_reset_session_only);
    const std::size_t n = ZSTD_decompressDCtx(ctx.d.get(), out.data(), out.size(), in.data(), in.size());
    if (ZSTD_isError(n)) return fail(ErrorKind::compression, std::string("zstd: ") + ZSTD_getErrorName(n));
    if (n != size) return fail(ErrorKind::compression, "zstd: frame content shorter than measured");
    return out;
}

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
