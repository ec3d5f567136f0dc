// The entry envelope and EntryCodec: golden bytes, metadata, and the full KeyFmt x ValueFmt x Compressor
// round-trip matrix.
#include <catch2/catch.hpp>

#include <tuple>

#include <hitbox/backend/redis/envelope.hpp>
#include <hitbox/compress/gzip.hpp>
#include <hitbox/compress/zstd.hpp>
#include <hitbox/format/json.hpp>
#include <hitbox/format/raw.hpp>
#include <hitbox/format/xml.hpp>
#include <hitbox/key_format/url_encoded.hpp>

#include "support/test_types.hpp"

using namespace std::chrono_literals;
using namespace hitbox_test;

namespace {

template <class... Ks>
struct KeyList {};
template <class... Vs>
struct ValueList {};
template <class... Cs>
struct CompList {};

template <class K, class V, class... Cs>
using codecs_for_kv = std::tuple<hitbox::EntryCodec<K, V, Cs>...>;

template <class K, class... Vs>
using codecs_for_k = decltype(std::tuple_cat(
    std::declval<
        codecs_for_kv<K, Vs, hitbox::PassthroughCompressor, hitbox::GzipCompressor, hitbox::ZstdCompressor>>()...));

using AllCodecs =
    decltype(std::tuple_cat(std::declval<codecs_for_k<hitbox::Bitcode, hitbox::BinaryFormat, hitbox::JsonFormat,
                                                      hitbox::XmlFormat, hitbox::RawFormat>>(),
                            std::declval<codecs_for_k<hitbox::UrlEncoded, hitbox::BinaryFormat, hitbox::JsonFormat,
                                                      hitbox::XmlFormat, hitbox::RawFormat>>()));
static_assert(std::tuple_size_v<AllCodecs> == 24);

template <class Codec>
void check_value_roundtrip(const Codec& codec, const auto& data, hitbox::TimePoint now) {
    using T = std::remove_cvref_t<decltype(data)>;
    for (auto [stale, expire] : {std::pair<std::optional<hitbox::TimePoint>, std::optional<hitbox::TimePoint>>{},
                                 {now + 45s, now + 60s},
                                 {std::nullopt, now + 1ms},
                                 {now - 5s, std::nullopt}}) {
        hitbox::CacheValue<T> v{data, expire, stale, now};
        auto blob = codec.encode(v);
        REQUIRE(blob);
        auto back = codec.template decode<T>(*blob);
        REQUIRE(back);
        CHECK(back->data == data);
        CHECK(back->created == now);
        CHECK(back->stale == stale);
        CHECK(back->expire == expire);
    }
}

}  // namespace

TEMPLATE_LIST_TEST_CASE("Every KeyFmt x ValueFmt x Compressor round-trips keys and values", "[codec]", AllCodecs) {
    TestType codec;
    hitbox::ManualClock clock;
    const auto now = clock.now();

    for (const auto& key : {hitbox::CacheKey{}, hitbox::CacheKey{"user", 1, {{"id", "42"}, {"flag", std::nullopt}}},
                            hitbox::CacheKey{binary_string(), 9, {{unicode_string(), binary_string()}}}}) {
        auto stored = codec.key(key);
        auto back = codec.key_format_policy().decode(stored);
        REQUIRE(back);
        CHECK(*back == key);
    }

    using V = typename TestType::value_format;
    check_value_roundtrip(codec, std::string(), now);
    check_value_roundtrip(codec, unicode_string(), now);
    check_value_roundtrip(codec, large_string(200000), now);
    if constexpr (std::is_same_v<V, hitbox::RawFormat>) {
        check_value_roundtrip(codec, binary_string(), now);
        check_value_roundtrip(codec, Point{1, -2, 3.5}, now);
    } else {
        check_value_roundtrip(codec, sample_profile(unicode_string()), now);
        if constexpr (std::is_same_v<V, hitbox::BinaryFormat>) check_value_roundtrip(codec, binary_string(), now);
    }
}

TEST_CASE("Envelope golden bytes") {
    hitbox::EntryCodec<> codec;
    hitbox::CacheValue<std::uint8_t> v{std::uint8_t{0xAB}, hitbox::from_unix_ms(0x0102030405),
                                       hitbox::from_unix_ms(0x0102030400), hitbox::from_unix_ms(0x01020303FF)};
    const std::string expected(
        "HB"                                // magic
        "\x01"                              // envelope version
        "\x01"                              // format id: binary
        "\x00"                              // compressor id: passthrough
        "\x03"                              // flags: stale | expire
        "\xFF\x03\x03\x02\x01\x00\x00\x00"  // created ms, little-endian
        "\x00\x04\x03\x02\x01\x00\x00\x00"  // stale ms
        "\x05\x04\x03\x02\x01\x00\x00\x00"  // expire ms
        "\xAB",                             // payload
        31);
    auto blob = codec.encode(v);
    REQUIRE(blob);
    CHECK(*blob == expected);

    hitbox::CacheValue<std::uint8_t> bare{std::uint8_t{1}, std::nullopt, std::nullopt, hitbox::from_unix_ms(1)};
    CHECK(*codec.encode(bare) == std::string("HB\x01\x01\x00\x00\x01\0\0\0\0\0\0\0\x01", 15));
}

TEST_CASE("Envelope: a fail-safe entry carries its retention time after the expiry (flag bit 2)") {
    hitbox::EntryCodec<> codec;
    hitbox::CacheValue<std::uint8_t> v{std::uint8_t{0xAB}, hitbox::from_unix_ms(0x0102030405), std::nullopt,
                                       hitbox::from_unix_ms(0x01020303FF), hitbox::from_unix_ms(0x0A0B0C0D0E)};
    const std::string expected(
        "HB\x01\x01\x00"
        "\x06"                              // flags: expire | retain
        "\xFF\x03\x03\x02\x01\x00\x00\x00"  // created
        "\x05\x04\x03\x02\x01\x00\x00\x00"  // expire
        "\x0E\x0D\x0C\x0B\x0A\x00\x00\x00"  // retain
        "\xAB",
        31);
    auto blob = codec.encode(v);
    REQUIRE(blob);
    CHECK(*blob == expected);
    auto back = codec.decode<std::uint8_t>(*blob);
    REQUIRE(back);
    CHECK(*back == v);
    CHECK(back->held_until() == hitbox::from_unix_ms(0x0A0B0C0D0E));
    // Without an expiry there is nothing to keep past: no retention is written.
    hitbox::CacheValue<std::uint8_t> forever{std::uint8_t{1}, std::nullopt, std::nullopt, hitbox::from_unix_ms(1),
                                             hitbox::from_unix_ms(5)};
    CHECK((*codec.encode(forever))[5] == '\x00');
    for (std::size_t n = 0; n < blob->size() - 1; ++n) CHECK_FALSE(codec.decode<std::uint8_t>(blob->substr(0, n)));
}

TEST_CASE("Envelope errors: magic, version, flags, ids, truncation") {
    hitbox::EntryCodec<> codec;
    auto good = *codec.encode(hitbox::CacheValue<int>{5, std::nullopt, std::nullopt, hitbox::from_unix_ms(9)});
    auto with = [&](std::size_t i, char c) {
        auto s = good;
        s[i] = c;
        return s;
    };
    auto kind_of = [&](const std::string& s) { return codec.decode<int>(s).error().kind(); };
    CHECK(kind_of(with(0, 'X')) == hitbox::ErrorKind::decode);
    CHECK(kind_of(with(2, '\x02')) == hitbox::ErrorKind::decode);
    CHECK(kind_of(with(5, '\x08')) == hitbox::ErrorKind::decode);  // an unknown flag
    CHECK(kind_of(with(5, '\x04')) == hitbox::ErrorKind::decode);  // a retention time without an expiry
    CHECK(kind_of(with(3, '\x02')) == hitbox::ErrorKind::decode);  // stored as json, read as binary
    CHECK(kind_of(with(4, '\x02')) == hitbox::ErrorKind::decode);  // stored with zstd
    CHECK(kind_of(with(5, '\x02')) == hitbox::ErrorKind::decode);  // claims an expire that is not there
    for (std::size_t n = 0; n < good.size(); ++n) CHECK_FALSE(codec.decode<int>(good.substr(0, n)));
    CHECK(codec.decode<int>("plain text someone SET by hand").error().message().find("magic") != std::string::npos);
}

TEST_CASE("EntryCodec key prefix is prepended to the encoded key") {
    hitbox::EntryCodec<hitbox::UrlEncoded> codec({}, {}, {}, "app:");
    CHECK(codec.key(hitbox::CacheKey{"user", 1, {{"id", "7"}}}) == "app:user:v1:id=7");
}
