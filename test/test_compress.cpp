// Compressors: round trips, levels, and the decompression-bomb limit.
#include <catch2/catch.hpp>

#include <cstdint>
#include <random>

#include <hitbox/compress/gzip.hpp>
#include <hitbox/compress/passthrough.hpp>
#include <hitbox/compress/zstd.hpp>

#include "support/test_types.hpp"

using namespace hitbox_test;

TEMPLATE_TEST_CASE("Compressors round-trip edge cases", "[compress]", hitbox::PassthroughCompressor,
                   hitbox::GzipCompressor, hitbox::ZstdCompressor) {
    TestType c;
    for (const std::string& s :
         {std::string(), binary_string(), unicode_string(), large_string(3 << 20), std::string(5 << 20, 'z')}) {
        auto packed = c.compress(s);
        REQUIRE(packed);
        auto back = c.decompress(*packed);
        REQUIRE(back);
        CHECK(*back == s);
    }
}

TEMPLATE_TEST_CASE("Real compressors shrink repetitive data and honour levels", "[compress]", hitbox::GzipCompressor,
                   hitbox::ZstdCompressor) {
    std::string text;
    for (int i = 0; i < 2000; ++i) text += "{\"id\":" + std::to_string(i) + ",\"name\":\"user\",\"roles\":[\"a\"]},";
    TestType fast(1), small(9);
    auto a = fast.compress(text), b = small.compress(text);
    REQUIRE(a);
    REQUIRE(b);
    CHECK(a->size() < text.size() / 4);
    CHECK(b->size() <= a->size());
    CHECK(*small.decompress(*a) == text);
}

TEMPLATE_TEST_CASE("Decompression refuses output past the limit", "[compress]", hitbox::GzipCompressor,
                   hitbox::ZstdCompressor) {
    // a 1 GiB bomb would be ~1 MiB compressed; 64 MiB of zeros shows the same refusal cheaply
    TestType maker;
    auto bomb = maker.compress(std::string(std::size_t{80} << 20, '\0'));
    REQUIRE(bomb);
    CHECK(bomb->size() < (std::size_t{1} << 20));
    auto r = maker.decompress(*bomb);  // default limit: 64 MiB
    REQUIRE_FALSE(r);
    CHECK(r.error().kind() == hitbox::ErrorKind::compression);
    CHECK(r.error().message().find("limit") != std::string::npos);

    TestType tight(3, 1000);
    auto small = tight.compress(std::string(1000, 'a'));
    CHECK(tight.decompress(*small));
    auto over = tight.compress(std::string(1001, 'a'));
    CHECK_FALSE(tight.decompress(*over));
}

TEMPLATE_TEST_CASE("Decompressors reject corrupt, truncated and trailing input", "[compress]", hitbox::GzipCompressor,
                   hitbox::ZstdCompressor) {
    TestType c;
    auto packed = *c.compress(large_string(10000));
    CHECK_FALSE(c.decompress(""));
    CHECK_FALSE(c.decompress("definitely not compressed"));
    CHECK_FALSE(c.decompress(std::string_view(packed).substr(0, packed.size() / 2)));
    CHECK_FALSE(c.decompress(packed + "x"));
    std::mt19937 rng(5);
    for (int i = 0; i < 2000; ++i) {
        std::string junk = packed;
        junk[rng() % junk.size()] ^= static_cast<char>(1 + rng() % 255);
        auto r = c.decompress(junk);
        if (!r) CHECK(r.error().kind() == hitbox::ErrorKind::compression);
    }
}

TEMPLATE_TEST_CASE("Decompression with no limit (SIZE_MAX) works", "[compress]", hitbox::GzipCompressor,
                   hitbox::ZstdCompressor) {
    // limit + 1 once wrapped to 0 here, and every decompression failed
    TestType c(3, SIZE_MAX);
    for (const std::string& s : {std::string(), binary_string(), large_string(3 << 20)}) {
        auto back = c.decompress(*c.compress(s));
        REQUIRE(back);
        CHECK(*back == s);
    }
}

TEST_CASE("A zstd header stating an impossible size is a compression error, not an allocation", "[compress]") {
    // magic, single-segment frame with an 8-byte content size of 2^60, then one empty last raw block
    std::string frame("\x28\xb5\x2f\xfd\xe0", 5);
    for (int i = 0; i < 8; ++i) frame.push_back(static_cast<char>((std::uint64_t{1} << 60) >> (8 * i)));
    frame += std::string("\x01\x00\x00", 3);
    auto r = hitbox::ZstdCompressor(3, SIZE_MAX).decompress(frame);
    REQUIRE_FALSE(r);
    CHECK(r.error().kind() == hitbox::ErrorKind::compression);
}
