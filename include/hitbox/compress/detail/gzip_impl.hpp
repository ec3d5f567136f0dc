#pragma once
/// \file
/// The definitions of <hitbox/compress/gzip.hpp>: included by that header in a header-only build, compiled
/// once into the hitbox-gzip library with HITBOX_COMPILED_LIB=1 (hitbox/core/linkage.hpp).

#include <algorithm>
#include <exception>
#include <limits>

#include <hitbox/compress/gzip.hpp>

namespace hitbox::detail {

HITBOX_LIB_INLINE GzipStreams& gzip_streams() {
    thread_local GzipStreams streams;
    return streams;
}

HITBOX_LIB_INLINE Result<std::string> gzip_compress(std::string_view in, int level) {
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

HITBOX_LIB_INLINE InflateRun inflate_into(z_stream* zs, char* out, std::size_t cap) {
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

HITBOX_LIB_INLINE void inflate_restart(z_stream* zs, std::string_view in) {
    inflateReset(zs);
    zs->next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    zs->avail_in = static_cast<uInt>(in.size());
}

HITBOX_LIB_INLINE Unexpected gzip_too_large(std::size_t limit) {
    return fail(ErrorKind::compression,
                "gzip: decompressed size exceeds the limit of " + std::to_string(limit) + " bytes");
}

HITBOX_LIB_INLINE Unexpected gzip_failed(const InflateRun& run, const z_stream* zs) {
    return fail(ErrorKind::compression, run.rc == Z_STREAM_END && zs->avail_in != 0
                                            ? "gzip: trailing bytes after the stream"
                                            : "gzip: corrupt or truncated stream");
}

HITBOX_LIB_INLINE Result<std::size_t> gzip_measure(z_stream* zs, std::string_view in, std::size_t limit) {
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

HITBOX_LIB_INLINE std::optional<InflateRun> gzip_inflate_sized(z_stream* zs, std::string_view in, std::size_t size,
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

HITBOX_LIB_INLINE Result<std::string> gzip_decompress(std::string_view in, std::size_t limit) {
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

}  // namespace hitbox::detail
