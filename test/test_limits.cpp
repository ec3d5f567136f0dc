// Limits that must hold under abuse, no server needed: the memory tier stays within its bound while four
// threads write ten times its capacity (checked during the storm, not only at the end), and compression
// bombs are refused without a heap request anywhere near their expanded size (measured by interposing the
// allocator: support/alloc_probe.hpp).
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include <zstd.h>

#include <hitbox/backend/memory/memory_backend.hpp>
#include <hitbox/compress/gzip.hpp>
#include <hitbox/compress/zstd.hpp>

#include "support/alloc_probe.hpp"

using hitbox::CacheKey;
using hitbox::CacheValue;

namespace {

CacheKey storm_key(int thread, int i) {
    return CacheKey{"storm", 0, {{"t", std::to_string(thread)}, {"i", std::to_string(i)}}};
}

struct StormFigures {
    std::uint64_t peak = 0;     // the largest figure seen by the watcher while writers ran
    std::uint64_t samples = 0;  // how often the watcher looked
    int write_errors = 0;
};

/// Four writers put 10x `capacity` distinct entries into `memory` (with some reads, so admission has
/// frequencies to use) while a fifth thread samples `figure(stats)` as fast as it can.
template <class Backend, class Figure, class Make>
StormFigures storm(Backend& memory, std::uint64_t capacity, Figure figure, Make make) {
    constexpr int writers = 4;
    const int per_writer = static_cast<int>(capacity * 10 / writers);
    std::atomic<int> running{writers};
    std::atomic<int> errors{0};
    StormFigures f;
    std::thread watcher([&] {
        while (running.load() > 0) {
            f.peak = std::max(f.peak, figure(memory.stats()));
            ++f.samples;
        }
    });
    std::vector<std::thread> pool;
    for (int t = 0; t < writers; ++t)
        pool.emplace_back([&, t] {
            for (int i = 0; i < per_writer; ++i) {
                if (!memory.set(storm_key(t, i), make(t, i))) ++errors;
                if (i % 4 == 0) (void)memory.template get<std::string>(storm_key(t, i / 2));
            }
            --running;
        });
    for (auto& th : pool) th.join();
    watcher.join();
    f.write_errors = errors.load();
    return f;
}

std::string zstd_stream_without_size(const std::string& plain) {
    // Streaming compression with no pledged size: the frame header does not state the content size, so
    // the decompressor cannot refuse early and must stop at the limit while it expands.
    ZSTD_CCtx* c = ZSTD_createCCtx();
    std::string out(ZSTD_compressBound(plain.size()), '\0');
    ZSTD_outBuffer dst{out.data(), out.size(), 0};
    // Fed in pieces: a single ZSTD_e_end call would know the whole size and write it into the header.
    constexpr std::size_t piece = std::size_t{1} << 20;
    for (std::size_t off = 0; off < plain.size(); off += piece) {
        ZSTD_inBuffer in{plain.data() + off, std::min(piece, plain.size() - off), 0};
        while (in.pos < in.size) ZSTD_compressStream2(c, &dst, &in, ZSTD_e_continue);
    }
    ZSTD_inBuffer none{nullptr, 0, 0};
    std::size_t rc = 1;
    while (rc != 0) rc = ZSTD_compressStream2(c, &dst, &none, ZSTD_e_end);
    ZSTD_freeCCtx(c);
    out.resize(dst.pos);
    return out;
}

}  // namespace

TEST_CASE("Limits: MemoryBackend max_entries holds during a 10x write storm from 4 threads") {
    constexpr std::uint64_t capacity = 2000;
    auto built = hitbox::MemoryBackend::builder().max_entries(capacity).shards(8).build();
    REQUIRE(built);
    auto& memory = *built;
    auto f = storm(
        memory, capacity, [](const hitbox::MemoryStats& s) { return s.entries; },
        [](int t, int i) { return CacheValue<std::string>{std::to_string(t) + ":" + std::to_string(i)}; });
    std::printf("limits: max_entries %llu, 4 writers x %llu sets, peak %llu entries over %llu samples\n",
                static_cast<unsigned long long>(capacity), static_cast<unsigned long long>(capacity * 10 / 4),
                static_cast<unsigned long long>(f.peak), static_cast<unsigned long long>(f.samples));
    CHECK(f.write_errors == 0);
    CHECK(f.samples > 100);
    // The documented contract: a write in progress may hold its own entry until it has evicted, so the
    // bound plus one entry per concurrent writer.
    CHECK(f.peak <= capacity + 4);
    const auto s = memory.stats();
    CHECK(s.entries <= capacity);
    CHECK(s.entries + s.evictions == capacity * 10);
}

TEST_CASE("Limits: MemoryBackend max_bytes holds during a 10x write storm from 4 threads") {
    constexpr std::uint64_t max_bytes = 512 * 1024;
    auto built = hitbox::MemoryBackend::builder().max_bytes(max_bytes).shards(4).build();
    REQUIRE(built);
    auto& memory = *built;
    const std::string payload(500, 'x');  // every entry weighs about the same (~600 bytes)
    // Entries to write: ten times what fits.
    std::uint64_t one = 0;
    {
        auto probe = hitbox::MemoryBackend::builder().max_bytes(max_bytes).shards(1).build();
        REQUIRE(probe->set(storm_key(9, 0), CacheValue<std::string>{payload}));
        one = probe->stats().weighted_bytes;
    }
    REQUIRE(one > 500);
    const std::uint64_t fits = max_bytes / one;
    auto f = storm(
        memory, fits, [](const hitbox::MemoryStats& s) { return s.weighted_bytes; },
        [&](int, int) { return CacheValue<std::string>{payload}; });
    std::printf("limits: max_bytes %llu (%llu entries of %llu B), peak %llu bytes over %llu samples\n",
                static_cast<unsigned long long>(max_bytes), static_cast<unsigned long long>(fits),
                static_cast<unsigned long long>(one), static_cast<unsigned long long>(f.peak),
                static_cast<unsigned long long>(f.samples));
    CHECK(f.write_errors == 0);
    CHECK(f.peak <= max_bytes + 4 * one);
    CHECK(memory.stats().weighted_bytes <= max_bytes);
}

TEMPLATE_TEST_CASE("Limits: a compression bomb is refused without allocating near its expanded size", "[compress]",
                   hitbox::GzipCompressor, hitbox::ZstdCompressor) {
    constexpr std::size_t limit = std::size_t{1} << 20;    // 1 MiB allowed
    const std::string plain(std::size_t{64} << 20, '\0');  // expands 64x past it
    TestType codec(3, limit);
    std::string bomb;
    if constexpr (std::is_same_v<TestType, hitbox::ZstdCompressor>) {
        SECTION("frame without a declared size") {
            bomb = zstd_stream_without_size(plain);
            REQUIRE(ZSTD_getFrameContentSize(bomb.data(), bomb.size()) == ZSTD_CONTENTSIZE_UNKNOWN);
        }
        SECTION("frame whose header declares the size") { bomb = *TestType{}.compress(plain); }
    } else {
        bomb = *codec.compress(plain);
    }
    REQUIRE(bomb.size() < plain.size() / 100);
    hitbox_test::reset_largest_request();
    auto r = codec.decompress(bomb);
    const std::size_t largest = hitbox_test::largest_request_bytes();
    REQUIRE_FALSE(r);
    CHECK(r.error().kind() == hitbox::ErrorKind::compression);
    CHECK(r.error().message().find("limit") != std::string::npos);
    if (hitbox_test::alloc_probe_active()) {
        std::printf("limits: %s bomb of %zu B (64 MiB expanded), limit 1 MiB: largest allocation %zu B\n",
                    std::string(TestType::name).c_str(), bomb.size(), largest);
        // The output buffer stops at the limit (+1 byte to detect the overflow, + the string's NUL); zstd's
        // stream window (2 MiB at level 3) is allocated by the library itself, once per thread.
        CHECK(largest <= 4 * limit);
    } else {
        WARN("sanitizer build: the allocation probe is off; only the refusal is checked");
    }
}
