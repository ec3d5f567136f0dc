#pragma once
/// \file
/// hitbox::GzipCompressor (zlib). Needs zlib: use the `hitbox-gzip` meson dependency.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <zlib.h>

#include <hitbox/compress/passthrough.hpp>
#include <hitbox/core/error.hpp>

namespace hitbox {

namespace detail {

/// zlib stream state per thread, reset between calls: initialising a deflate stream allocates ~256 KiB and
/// costs more than compressing a small value.
class GzipStreams {
public:
    GzipStreams() = default;
    GzipStreams(const GzipStreams&) = delete;
    GzipStreams& operator=(const GzipStreams&) = delete;
    ~GzipStreams() {
        if (deflate_level_ >= -1) deflateEnd(&deflate_);
        if (inflate_ready_) inflateEnd(&inflate_);
    }

    z_stream* deflater(int level) {
        if (deflate_level_ == level) {
            if (deflateReset(&deflate_) == Z_OK) return &deflate_;
        }
        if (deflate_level_ >= -1) deflateEnd(&deflate_);
        deflate_ = z_stream{};
        deflate_level_ = -2;
        if (deflateInit2(&deflate_, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) return nullptr;
        deflate_level_ = level;
        return &deflate_;
    }

    z_stream* inflater() {
        if (inflate_ready_ && inflateReset(&inflate_) == Z_OK) return &inflate_;
        if (inflate_ready_) inflateEnd(&inflate_);
        inflate_ = z_stream{};
        inflate_ready_ = inflateInit2(&inflate_, 15 + 16) == Z_OK;
        return inflate_ready_ ? &inflate_ : nullptr;
    }

private:
    z_stream deflate_{};
    int deflate_level_ = -2;  // -2: not initialised (-1 is zlib's default level)
    z_stream inflate_{};
    bool inflate_ready_ = false;
};

inline GzipStreams& gzip_streams() {
    thread_local GzipStreams streams;
    return streams;
}

inline Result<std::string> gzip_compress(std::string_view in, int level) {
    z_stream* zs = gzip_streams().deflater(level);
    if (!zs) return fail(ErrorKind::compression, "gzip: deflateInit failed (level " + std::to_string(level) + ")");
    std::string out;
    out.resize(deflateBound(zs, static_cast<uLong>(in.size())));
    zs->next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    zs->avail_in = static_cast<uInt>(in.size());
    zs->next_out = reinterpret_cast<Bytef*>(out.data());
    zs->avail_out = static_cast<uInt>(out.size());
    int rc = deflate(zs, Z_FINISH);
    out.resize(zs->total_out);
    if (rc != Z_STREAM_END) return fail(ErrorKind::compression, "gzip: deflate did not finish");
    return out;
}

inline Result<std::string> gzip_decompress(std::string_view in, std::size_t limit) {
    z_stream* zs = gzip_streams().inflater();
    if (!zs) return fail(ErrorKind::compression, "gzip: inflateInit failed");
    std::string out;
    out.resize(std::min<std::size_t>(limit, std::max<std::size_t>(256, in.size() * 4)));
    zs->next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    zs->avail_in = static_cast<uInt>(in.size());
    int rc = Z_OK;
    while (true) {
        if (zs->total_out == out.size()) {
            if (out.size() >= limit)
                return fail(ErrorKind::compression,
                            "gzip: decompressed size exceeds the limit of " + std::to_string(limit) + " bytes");
            out.resize(std::min(limit, out.size() * 2));
        }
        zs->next_out = reinterpret_cast<Bytef*>(out.data() + zs->total_out);
        zs->avail_out = static_cast<uInt>(out.size() - zs->total_out);
        rc = inflate(zs, Z_NO_FLUSH);
        if (rc != Z_OK) break;  // Z_STREAM_END, or an error (Z_BUF_ERROR here means the input ended early)
    }
    const bool complete = rc == Z_STREAM_END && zs->avail_in == 0;
    out.resize(zs->total_out);
    if (!complete)
        return fail(ErrorKind::compression, rc == Z_STREAM_END ? "gzip: trailing bytes after the stream"
                                                                : "gzip: corrupt or truncated stream");
    return out;
}

}  // namespace detail

/// gzip (RFC 1952) through zlib. Level 1 (fast) to 9 (small), default 6. Decompression stops with a
/// compression error once output would pass `max_decompressed` (default 64 MiB).
struct GzipCompressor {
    static constexpr std::uint8_t id = 1;
    static constexpr std::string_view name = "gzip";

    int level = 6;
    std::size_t max_decompressed = default_max_decompressed;

    GzipCompressor() = default;
    explicit GzipCompressor(int lvl, std::size_t max_out = default_max_decompressed)
        : level(lvl), max_decompressed(max_out) {}

    /// One gzip member of `in`; the stream back, refusing output past `max_decompressed`.
    Result<std::string> compress(std::string_view in) const { return detail::gzip_compress(in, level); }
    Result<std::string> decompress(std::string_view in) const {
        return detail::gzip_decompress(in, max_decompressed);
    }
};

}  // namespace hitbox
