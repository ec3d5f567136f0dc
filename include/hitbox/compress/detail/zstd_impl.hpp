#pragma once
/// \file
/// The definitions of <hitbox/compress/zstd.hpp>: included by that header in a header-only build, compiled
/// once into the hitbox-zstd library with HITBOX_COMPILED_LIB=1 (hitbox/core/linkage.hpp).

#include <algorithm>
#include <bit>
#include <exception>

#include <zstd_errors.h>

#include <hitbox/compress/zstd.hpp>

namespace hitbox::detail {

HITBOX_LIB_INLINE ZstdContexts& zstd_contexts() {
    thread_local ZstdContexts ctx;
    return ctx;
}

HITBOX_LIB_INLINE Result<std::string> zstd_compress(std::string_view in, int level) {
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

HITBOX_LIB_INLINE Unexpected zstd_too_large(std::size_t limit) {
    return fail(ErrorKind::compression,
                "zstd: decompressed size exceeds the limit of " + std::to_string(limit) + " bytes");
}

HITBOX_LIB_INLINE Result<std::size_t> zstd_measure(ZstdContexts& ctx, std::string_view in, std::size_t limit) {
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

HITBOX_LIB_INLINE Result<std::string> zstd_decompress(std::string_view in, std::size_t limit) {
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

}  // namespace hitbox::detail
