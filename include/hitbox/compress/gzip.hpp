#pragma once
/// \file
/// hitbox::GzipCompressor (zlib). Needs zlib: use the `hitbox-gzip` meson dependency.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <zlib.h>

#include <hitbox/compress/builtin.hpp>
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

/// Inflates the stream's pending input into out[0, cap) until zlib stops: Z_STREAM_END (the member is
/// complete), Z_BUF_ERROR (no progress: the output is full or the input ran out) or an error. Feeds zlib at
/// most 4 GiB - 1 of room per call (its counters are 32-bit).
struct InflateRun {
    int rc = Z_OK;
    std::size_t produced = 0;
};

inline InflateRun inflate_into(z_stream* zs, char* out, std::size_t cap) {
    InflateRun run;
    while (run.rc == Z_OK) {
        const std::size_t room = std::min<std::size_t>(cap - run.produced, std::numeric_limits<uInt>::max());
        zs->next_out = reinterpret_cast<Bytef*>(out + run.produced);
        zs->avail_out = static_cast<uInt>(room);
        run.rc = inflate(zs, Z_NO_FLUSH);
        run.produced += room - zs->avail_out;
    }
    return run;
}

inline void inflate_restart(z_stream* zs, std::string_view in) {
    inflateReset(zs);
    zs->next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    zs->avail_in = static_cast<uInt>(in.size());
}

inline Unexpected gzip_too_large(std::size_t limit) {
    return fail(ErrorKind::compression,
                "gzip: decompressed size exceeds the limit of " + std::to_string(limit) + " bytes");
}

inline Unexpected gzip_failed(const InflateRun& run, const z_stream* zs) {
    return fail(ErrorKind::compression, run.rc == Z_STREAM_END && zs->avail_in != 0
                                            ? "gzip: trailing bytes after the stream"
                                            : "gzip: corrupt or truncated stream");
}

/// The member's decompressed size, by inflating it into a small scratch buffer, output thrown away: used
/// when the trailer's size is wrong, so that a bomb is refused without allocating output.
inline Result<std::size_t> gzip_measure(z_stream* zs, std::string_view in, std::size_t limit) {
    inflate_restart(zs, in);
    constexpr std::size_t room = std::size_t{64} << 10;
    const std::unique_ptr<char[]> scratch(new char[room]);
    std::size_t total = 0;
    while (true) {
        const InflateRun run = inflate_into(zs, scratch.get(), room);
        total += run.produced;
        if (total > limit) return gzip_too_large(limit);
        if (run.rc == Z_STREAM_END && zs->avail_in == 0) return total;
        if (run.rc != Z_BUF_ERROR || run.produced < room) return gzip_failed(run, zs);
    }
}

/// Decompresses one gzip member into `out`, allocated once at `size` (+1 byte that shows more output).
/// Returns the run, or nothing when `size` cannot be allocated.
inline std::optional<InflateRun> gzip_inflate_sized(z_stream* zs, std::string_view in, std::size_t size,
                                                    std::string& out) {
    out = std::string();
    try {
        out.resize(size < std::numeric_limits<std::size_t>::max() ? size + 1 : size);
    } catch (const std::exception&) {
        return std::nullopt;
    }
    inflate_restart(zs, in);
    return inflate_into(zs, out.data(), out.size());
}

/// One gzip member, exactly: trailing bytes are an error. The output is allocated once, at the size the
/// trailer states (ISIZE, the size modulo 2^32: a valid member's size is ISIZE + k * 2^32, so ISIZE past the
/// limit is refused before inflating). When the member yields more than ISIZE (a lying trailer, or 4 GiB
/// more) the buffer is freed and the member measured first (gzip_measure). So a refused bomb never holds
/// more than a buffer of at most the limit, never nearly twice the limit as growth by doubling did.
inline Result<std::string> gzip_decompress(std::string_view in, std::size_t limit) {
    z_stream* zs = gzip_streams().inflater();
    if (!zs) return fail(ErrorKind::compression, "gzip: inflateInit failed");
    if (in.size() < 18 || in.size() > std::numeric_limits<uInt>::max())  // header 10 + deflate 2 + trailer 8
        return fail(ErrorKind::compression, "gzip: corrupt or truncated stream");
    const auto* tail = reinterpret_cast<const unsigned char*>(in.data() + in.size() - 4);
    const std::uint32_t isize = std::uint32_t{tail[0]} | std::uint32_t{tail[1]} << 8 | std::uint32_t{tail[2]} << 16 |
                                std::uint32_t{tail[3]} << 24;
    if (isize > limit)
        return fail(ErrorKind::compression, "gzip: the stream's trailer states " + std::to_string(isize) +
                                                " bytes, past the decompression limit of " + std::to_string(limit));
    std::string out;
    std::size_t size = isize;
    auto run = gzip_inflate_sized(zs, in, size, out);
    if (run && run->rc == Z_BUF_ERROR && run->produced == out.size()) {  // more output than ISIZE
        out = std::string();
        auto measured = gzip_measure(zs, in, limit);
        if (!measured) return fail(std::move(measured.error()));
        size = *measured;
        run = gzip_inflate_sized(zs, in, size, out);
    }
    if (!run) return fail(ErrorKind::compression, "gzip: cannot allocate " + std::to_string(size) + " bytes");
    if (run->rc != Z_STREAM_END || zs->avail_in != 0) return gzip_failed(*run, zs);
    out.resize(run->produced);
    return out;
}

}  // namespace detail

/// gzip (RFC 1952) through zlib. Level 1 (fast) to 9 (small), default 6. Decompression refuses output past
/// `max_decompressed` (default 64 MiB; SIZE_MAX: no limit) with a compression error, and allocates its
/// output once, at the size the stream's trailer states: a refused bomb holds at most one buffer no larger
/// than the limit. Only one gzip member per value (what compress() writes).
struct GzipCompressor {
    static constexpr std::uint8_t id = GzipSpec::id;
    static constexpr std::string_view name = GzipSpec::name;

    int level = GzipSpec::default_level;
    std::size_t max_decompressed = default_max_decompressed;

    GzipCompressor() = default;
    explicit GzipCompressor(int lvl, std::size_t max_out = default_max_decompressed)
        : level(lvl), max_decompressed(max_out) {}

    /// One gzip member of `in`; the stream back, refusing output past `max_decompressed`.
    Result<std::string> compress(std::string_view in) const { return detail::gzip_compress(in, level); }
    Result<std::string> decompress(std::string_view in) const { return detail::gzip_decompress(in, max_decompressed); }
};

}  // namespace hitbox
