#pragma once
/// \file
/// hitbox::GzipCompressor (zlib). Needs zlib: use the `hitbox-gzip` meson dependency.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <zlib.h>

#include <hitbox/compress/builtin.hpp>
#include <hitbox/compress/passthrough.hpp>
#include <hitbox/core/error.hpp>
#include <hitbox/core/linkage.hpp>

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

HITBOX_LIB_INLINE GzipStreams& gzip_streams();

HITBOX_LIB_INLINE Result<std::string> gzip_compress(std::string_view in, int level);

/// Inflates the stream's pending input into out[0, cap) until zlib stops: Z_STREAM_END (the member is
/// complete), Z_BUF_ERROR (no progress: the output is full or the input ran out) or an error. Feeds zlib at
/// most 4 GiB - 1 of room per call (its counters are 32-bit).
struct InflateRun {
    int rc = Z_OK;
    std::size_t produced = 0;
};

HITBOX_LIB_INLINE InflateRun inflate_into(z_stream* zs, char* out, std::size_t cap);

HITBOX_LIB_INLINE void inflate_restart(z_stream* zs, std::string_view in);

HITBOX_LIB_INLINE Unexpected gzip_too_large(std::size_t limit);

HITBOX_LIB_INLINE Unexpected gzip_failed(const InflateRun& run, const z_stream* zs);

/// The member's decompressed size, by inflating it into a small scratch buffer, output thrown away: used
/// when the trailer's size is wrong, so that a bomb is refused without allocating output.
HITBOX_LIB_INLINE Result<std::size_t> gzip_measure(z_stream* zs, std::string_view in, std::size_t limit);

/// Decompresses one gzip member into `out`, allocated once at `size` (+1 byte that shows more output).
/// Returns the run, or nothing when `size` cannot be allocated.
HITBOX_LIB_INLINE std::optional<InflateRun> gzip_inflate_sized(z_stream* zs, std::string_view in, std::size_t size,
                                                               std::string& out);

/// One gzip member, exactly: trailing bytes are an error. The output is allocated once, at the size the
/// trailer states (ISIZE, the size modulo 2^32: a valid member's size is ISIZE + k * 2^32, so ISIZE past the
/// limit is refused before inflating). When the member yields more than ISIZE (a lying trailer, or 4 GiB
/// more) the buffer is freed and the member measured first (gzip_measure). So a refused bomb never holds
/// more than a buffer of at most the limit, never nearly twice the limit as growth by doubling did.
HITBOX_LIB_INLINE Result<std::string> gzip_decompress(std::string_view in, std::size_t limit);

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

// The definitions: included here in a header-only build, compiled once into the hitbox-gzip library otherwise.
#if !HITBOX_COMPILED_LIB
#include <hitbox/compress/detail/gzip_impl.hpp>
#endif
