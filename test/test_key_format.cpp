// Bitcode and UrlEncoded: golden bytes, losslessness, and garbage input.
#include <catch2/catch.hpp>

#include <random>

#include <hitbox/key_format/bitcode.hpp>
#include <hitbox/key_format/url_encoded.hpp>

using hitbox::CacheKey;

namespace {
std::string bytes(std::initializer_list<int> b) {
    std::string s;
    for (int c : b) s.push_back(static_cast<char>(c));
    return s;
}

std::vector<CacheKey> edge_keys() {
    std::string nul_and_more("a\0b&c=d:e%f", 11);
    std::string binary;
    for (int i = 0; i < 256; ++i) binary.push_back(static_cast<char>(i));
    return {
        CacheKey{},
        CacheKey{"user", 1, {{"id", "42"}, {"lang", "en"}}},
        CacheKey{"k", 0, {{"flag", std::nullopt}}},
        CacheKey{"k", 0, {{"flag", ""}}},
        CacheKey{"k", 0, {{"", std::nullopt}}},
        CacheKey{"k", 0, {{"", ""}}},
        CacheKey{"k", 0, {{"", std::nullopt}, {"", std::nullopt}}},
        CacheKey{nul_and_more, 4294967295u, {{nul_and_more, nul_and_more}}},
        CacheKey{"", 0, {{binary, binary}}},
        CacheKey{"h\xc3\xa9llo", 7, {{"\xe6\x97\xa5", "\xe2\x9c\x93"}}},
        CacheKey{std::string(100000, 'x'), 1, {{"big", std::string(200000, 'y')}}},
    };
}
}  // namespace

TEMPLATE_TEST_CASE("Key formats are lossless on edge cases", "[key]", hitbox::Bitcode, hitbox::UrlEncoded) {
    TestType fmt;
    std::vector<std::string> encodings;
    for (const auto& key : edge_keys()) {
        auto enc = fmt.encode(key);
        auto dec = fmt.decode(enc);
        REQUIRE(dec.has_value());
        CHECK(*dec == key);
        encodings.push_back(enc);
    }
    // injective: distinct keys, distinct bytes
    std::sort(encodings.begin(), encodings.end());
    CHECK(std::adjacent_find(encodings.begin(), encodings.end()) == encodings.end());
}

TEMPLATE_TEST_CASE("Key formats reject garbage without crashing", "[key]", hitbox::Bitcode, hitbox::UrlEncoded) {
    TestType fmt;
    std::mt19937 rng(7);
    int rejected = 0;
    for (int i = 0; i < 20000; ++i) {
        std::string junk(rng() % 40, '\0');
        for (auto& c : junk) c = static_cast<char>(rng());
        auto r = fmt.decode(junk);
        if (!r) {
            CHECK(r.error().kind() == hitbox::ErrorKind::decode);
            ++rejected;
        } else {
            CHECK(fmt.encode(*r).size() > 0);
        }
    }
    CHECK(rejected > 0);
    // every truncation of a valid encoding is rejected or decodes to a different, valid key
    auto full = fmt.encode(CacheKey{"user", 1, {{"id", "42"}, {"lang", "en"}}});
    for (std::size_t n = 0; n < full.size(); ++n) {
        auto r = fmt.decode(std::string_view(full).substr(0, n));
        if (r) CHECK_FALSE(*r == CacheKey("user", 1, {{"id", "42"}, {"lang", "en"}}));
    }
}

TEST_CASE("Bitcode golden bytes") {
    hitbox::Bitcode fmt;
    CHECK(fmt.encode(CacheKey{}) == bytes({0, 0, 0}));
    CHECK(fmt.encode(CacheKey{"user", 1, {{"id", "42"}, {"lang", "en"}, {"admin", std::nullopt}}}) ==
          bytes({4, 'u', 's', 'e', 'r', 1,   3,         //
                 2, 'i', 'd', 3,   '4', '2',            //
                 4, 'l', 'a', 'n', 'g', 3,   'e', 'n',  //
                 5, 'a', 'd', 'm', 'i', 'n', 0}));
    CHECK(fmt.encode(CacheKey{"", 300, {{"e", ""}}}) == bytes({0, 0xac, 0x02, 1, 1, 'e', 1}));
}

TEST_CASE("Bitcode refuses huge counts and non-canonical varints") {
    hitbox::Bitcode fmt;
    // claims 2^62 parts in a 12-byte input: refused before any allocation
    auto r = fmt.decode(bytes({0, 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40}));
    REQUIRE_FALSE(r);
    CHECK(r.error().kind() == hitbox::ErrorKind::decode);
    CHECK_FALSE(fmt.decode(bytes({0x80, 0x00, 0, 0})));                    // overlong zero prefix length
    CHECK_FALSE(fmt.decode(bytes({0, 0, 0, 0})));                          // trailing byte
    CHECK_FALSE(fmt.decode(bytes({0, 0x80, 0x80, 0x80, 0x80, 0x10, 0})));  // version > u32
}

TEST_CASE("UrlEncoded golden text") {
    hitbox::UrlEncoded fmt;
    CHECK(fmt.encode(CacheKey{"user", 1, {{"id", "42"}, {"lang", "en"}}}) == "user:v1:id=42&lang=en");
    CHECK(fmt.encode(CacheKey{"user", 1}) == "user:v1");
    CHECK(fmt.encode(CacheKey{"k", 0, {{"flag", std::nullopt}, {"empty", ""}}}) == "k:v0:flag&empty=");
    CHECK(fmt.encode(CacheKey{"a:b", 2, {{"x&y", "1=2 %"}}}) == "a%3Ab:v2:x%26y=1%3D2%20%25");
    CHECK(fmt.encode(CacheKey{"k", 0, {{std::string("\0", 1), "\xff"}}}) == "k:v0:%00=%FF");
    CHECK(fmt.encode(CacheKey{"k", 0, {{"", std::nullopt}}}) == "k:v0:");
}

TEST_CASE("UrlEncoded rejects malformed text") {
    hitbox::UrlEncoded fmt;
    for (std::string bad : {"", "user", "user:", "user:1", "user:v", "user:vx", "user:v01", "user:v4294967296",
                            "user:v1:a=%4", "user:v1:a=%zz", "user:v1:a b", "us er:v1", "user:v1:a=b=c"}) {
        INFO(bad);
        CHECK_FALSE(fmt.decode(bad));
    }
    auto lower = fmt.decode("k:v0:x=%ff");
    REQUIRE(lower);
    CHECK(*lower->parts()[0].value == "\xff");
}
