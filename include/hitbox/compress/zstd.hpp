#pragma once
/// \file
/// hitbox::ZstdCompressor. Needs libzstd: use the `hitbox-zstd` meson dependency.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include <zstd.h>

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

inline Result<std::string> zstd_decompress(std::string_view in, std::size_t limit) {
    auto& ctx = zstd_contexts();
    if (!ctx.d) return fail(ErrorKind::compression, "zstd: cannot create context");
    ZSTD_DCtx_reset(ctx.d.get(), ZSTD_reset_session_only);
    // The frame header may state the size; it is only a hint (it can lie), used to refuse early.
    unsigned long long declared = ZSTD_getFrameContentSize(in.data(), in.size());
    if (declared != ZSTD_CONTENTSIZE_ERROR && declared != ZSTD_CONTENTSIZE_UNKNOWN && declared > limit)
        return fail(ErrorKind::compression,
                    "zstd: decompressed size exceeds the limit of " + std::to_string(limit) + " bytes");
    std::size_t first = declared == ZSTD_CONTENTSIZE_ERROR || declared == ZSTD_CONTENTSIZE_UNKNOWN
                            ? std::max<std::size_t>(256, in.size() * 4)
                            : static_cast<std::size_t>(declared) + 1;
    std::string out;
    out.resize(std::min(limit + 1, first));
    ZSTD_inBuffer src{in.data(), in.size(), 0};
    std::size_t produced = 0;
    std::size_t rc = 1;
    while (true) {
        ZSTD_outBuffer dst{out.data(), out.size(), produced};
        rc = ZSTD_decompressStream(ctx.d.get(), &dst, &src);
        produced = dst.pos;
        if (ZSTD_isError(rc)) return fail(ErrorKind::compression, std::string("zstd: ") + ZSTD_getErrorName(rc));
        if (produced > limit)
            return fail(ErrorKind::compression,
                        "zstd: decompressed size exceeds the limit of " + std::to_string(limit) + " bytes");
        if (rc == 0 && src.pos == src.size) break;  // frame complete, input consumed
        if (rc == 0) return fail(ErrorKind::compression, "zstd: trailing bytes after the frame");
        if (produced < out.size() && src.pos == src.size)
            return fail(ErrorKind::compression, "zstd: truncated frame");
        if (produced == out.size()) out.resize(std::min(limit + 1, out.size() * 2));
    }
    out.resize(produced);
    return out;
}

}  // namespace detail

/// Zstandard with a content checksum. Level 1..19 (default 3): better ratio and speed than gzip for most
/// payloads. Decompression
/// stops with a compression error once output would pass `max_decompressed` (default 64 MiB).
struct ZstdCompressor {
    static constexpr std::uint8_t id = 2;
    static constexpr std::string_view name = "zstd";

    int level = 3;
    std::size_t max_decompressed = default_max_decompressed;

    ZstdCompressor() = default;
    explicit ZstdCompressor(int lvl, std::size_t max_out = default_max_decompressed)
        : level(lvl), max_decompressed(max_out) {}

    /// One zstd frame of `in`; the bytes back, refusing output past `max_decompressed`.
    Result<std::string> compress(std::string_view in) const { return detail::zstd_compress(in, level); }
    Result<std::string> decompress(std::string_view in) const {
        return detail::zstd_decompress(in, max_decompressed);
    }
};

}  // namespace hitbox
