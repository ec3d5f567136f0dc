// Value formats: round trips of Hana structs and std types, and corrupt input.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <hitbox/format/binary.hpp>
#include <hitbox/format/json.hpp>
#include <hitbox/format/raw.hpp>
#include <hitbox/format/xml.hpp>

#include "support/test_types.hpp"

using namespace hitbox_test;

TEMPLATE_TEST_CASE("Cereal formats round-trip Hana structs and std types", "[format]", hitbox::BinaryFormat,
                   hitbox::JsonFormat, hitbox::XmlFormat) {
    TestType fmt;
    auto p = sample_profile(unicode_string());
    auto enc = fmt.encode(p);
    REQUIRE(enc);
    auto dec = fmt.template decode<Profile>(*enc);
    REQUIRE(dec);
    CHECK(*dec == p);

    Profile empty{};
    auto e2 = fmt.template decode<Profile>(*fmt.encode(empty));
    REQUIRE(e2);
    CHECK(*e2 == empty);

    std::vector<std::optional<std::string>> v{std::nullopt, std::string(""), std::string("x")};
    auto ev = fmt.template decode<decltype(v)>(*fmt.encode(v));
    REQUIRE(ev);
    CHECK(*ev == v);

    for (const std::string& s : {std::string(), unicode_string(), large_string(100000)}) {
        auto es = fmt.template decode<std::string>(*fmt.encode(s));
        REQUIRE(es);
        CHECK(*es == s);
    }
}

// JSON and XML store text: cereal's JSON reader ends a string at NUL and XML forbids control characters.
TEMPLATE_TEST_CASE("Binary-safe formats round-trip arbitrary bytes", "[format]", hitbox::BinaryFormat,
                   hitbox::RawFormat) {
    TestType fmt;
    auto s = binary_string();
    auto dec = fmt.template decode<std::string>(*fmt.encode(s));
    REQUIRE(dec);
    CHECK(*dec == s);
}

TEST_CASE("RawFormat stores trivially copyable values and checks their size") {
    hitbox::RawFormat fmt;
    Point pt{-3, 9, 0.25};
    auto enc = fmt.encode(pt);
    REQUIRE(enc);
    CHECK(enc->size() == sizeof(Point));
    CHECK(*fmt.decode<Point>(*enc) == pt);
    auto shorter = fmt.decode<Point>(enc->substr(1));
    REQUIRE_FALSE(shorter);
    CHECK(shorter.error().kind() == hitbox::ErrorKind::decode);

    std::vector<std::byte> blob{std::byte{0}, std::byte{255}};
    CHECK(*fmt.decode<std::vector<std::byte>>(*fmt.encode(blob)) == blob);

    // A bool is 0 or 1: another byte (an entry of another type) is a decode error, not a bool that is
    // neither (undefined behaviour to read; UBSan reported it).
    CHECK(*fmt.decode<bool>(*fmt.encode(true)) == true);
    CHECK(*fmt.decode<bool>(std::string(1, '\0')) == false);
    auto five = fmt.decode<bool>("\x05");
    REQUIRE_FALSE(five);
    CHECK(five.error().kind() == hitbox::ErrorKind::decode);
    CHECK(five.error().message() == "raw decode: a bool is stored as 0 or 1, got 5");
}

TEST_CASE("BinaryFormat golden bytes are little-endian with varint lengths") {
    hitbox::BinaryFormat fmt;
    CHECK(*fmt.encode(std::uint32_t{0x01020304}) == std::string("\x04\x03\x02\x01", 4));
    CHECK(*fmt.encode(std::string("hi")) == std::string("\x02hi", 3));
    CHECK(*fmt.encode(std::string(300, 'a')) == std::string("\xac\x02", 2) + std::string(300, 'a'));
    CHECK(*fmt.encode(true) == std::string("\x01", 1));
}

TEST_CASE("BinaryFormat refuses lengths beyond the input, trailing bytes and bad bools") {
    hitbox::BinaryFormat fmt;
    // a string claiming 2^40 bytes in an 8-byte input: refused, nothing allocated
    std::string claim(
        "\x80\x80\x80\x80\x80\x20"
        "ab",
        8);
    auto r = fmt.decode<std::string>(claim);
    REQUIRE_FALSE(r);
    CHECK(r.error().kind() == hitbox::ErrorKind::decode);
    CHECK_FALSE(fmt.decode<std::vector<Profile>>(std::string("\xff\xff\xff\xff\xff\xff\xff\x7f", 8)));
    CHECK_FALSE(fmt.decode<std::string>(std::string("\x82\x00hi", 4)));  // overlong length varint
    CHECK_FALSE(fmt.decode<std::uint32_t>(std::string("\1\2\3\4\5", 5)));
    CHECK_FALSE(fmt.decode<bool>(std::string("\x02", 1)));
}

TEMPLATE_TEST_CASE("Formats turn random and truncated bytes into decode errors", "[format]", hitbox::BinaryFormat,
                   hitbox::JsonFormat, hitbox::XmlFormat) {
    TestType fmt;
    auto valid = *fmt.encode(sample_profile());
    for (std::size_t n = 0; n < valid.size(); n += 1 + valid.size() / 200) {
        auto r = fmt.template decode<Profile>(std::string_view(valid).substr(0, n));
        if (!r) CHECK(r.error().kind() == hitbox::ErrorKind::decode);
    }
    std::mt19937 rng(11);
    for (int i = 0; i < 3000; ++i) {
        std::string junk = valid;
        for (int k = 0; k < 4; ++k) junk[rng() % junk.size()] = static_cast<char>(rng());
        auto r = fmt.template decode<Profile>(junk);
        if (!r) CHECK(r.error().kind() == hitbox::ErrorKind::decode);
    }
}

TEST_CASE("Text formats refuse input nested too deeply before parsing") {
    hitbox::JsonFormat json;
    std::string deep = "{\"value\":" + std::string(100000, '[') + std::string(100000, ']') + "}";
    auto r = json.decode<std::vector<int>>(deep);
    REQUIRE_FALSE(r);
    CHECK(r.error().message().find("nesting") != std::string::npos);

    hitbox::XmlFormat xml;
    std::string xdeep;
    for (int i = 0; i < 100000; ++i) xdeep += "<a>";
    CHECK_FALSE(xml.decode<int>(xdeep));
    // An "</" inside an attribute value, a comment or a CDATA section closes nothing: the parser still
    // nests one level per element (each of these once overflowed the stack).
    for (const std::string unit : {"<a x=\"</\">", "<a x='</'>", "<a><!--</-->", "<a><![CDATA[</]]>", "<a><?p </?>"}) {
        INFO(unit);
        std::string s = "<cereal>";
        for (int i = 0; i < 100000; ++i) s += unit;
        auto bad = xml.decode<int>(s);
        REQUIRE_FALSE(bad);
        CHECK(bad.error().kind() == hitbox::ErrorKind::decode);
        CHECK(bad.error().message().find("nesting") != std::string::npos);
    }
    CHECK(hitbox::detail::xml_nesting_ok("<a><b/><c x='>'/></a>", 2));
    CHECK_FALSE(hitbox::detail::xml_nesting_ok("<a><b><c/></b></a>", 2));  // <c/> is a third level while read
    CHECK(hitbox::detail::xml_nesting_ok("<!DOCTYPE d [<!ENTITY e \"<x>\">]><a></a>", 1));
}

TEST_CASE("Text formats decode their own output of shallow values with many empty containers") {
    // cereal writes an empty container as a self-closing tag: 300 of them are 300 siblings, not 300 levels.
    hitbox::XmlFormat xml;
    const std::vector<std::vector<int>> empties(300);
    auto bytes = xml.encode(empties);
    REQUIRE(bytes);
    auto back = xml.decode<std::vector<std::vector<int>>>(*bytes);
    REQUIRE(back);
    CHECK(*back == empties);
    std::map<std::string, std::vector<int>> by_name;
    for (int i = 0; i < 300; ++i) by_name["k" + std::to_string(i)];
    auto map_bytes = xml.encode(by_name);
    REQUIRE(map_bytes);
    auto map_back = xml.decode<std::map<std::string, std::vector<int>>>(*map_bytes);
    REQUIRE(map_back);
    CHECK(*map_back == by_name);
    hitbox::JsonFormat json;
    auto json_back = json.decode<std::vector<std::vector<int>>>(*json.encode(empties));
    REQUIRE(json_back);
    CHECK(*json_back == empties);
}

TEST_CASE("XmlFormat: an entry holding a struct read as a string is a decode error, not \"\"") {
    hitbox::XmlFormat xml;
    const auto profile = xml.encode(sample_profile());
    REQUIRE(profile);
    auto as_string = xml.decode<std::string>(*profile);
    REQUIRE_FALSE(as_string);
    CHECK(as_string.error().kind() == hitbox::ErrorKind::decode);
    CHECK(as_string.error().message().find("holds elements, not a string") != std::string::npos);
    // Strings themselves still round-trip: empty, markup characters (escaped), a text like a tag.
    for (const std::string& s : {std::string(), std::string("hello"), std::string("<value>x</value> & <b/>"),
                                 std::string("</value>"), std::string(" spaced ")}) {
        auto bytes = xml.encode(s);
        REQUIRE(bytes);
        auto back = xml.decode<std::string>(*bytes);
        INFO(*bytes);
        REQUIRE(back);
        CHECK(*back == s);
    }
}

TEST_CASE("Inputs found by the fuzzers stay decode errors") {
    // fuzz_json_format: a number rapidjson's full-precision parser takes through __builtin_clzll(0)
    hitbox::JsonFormat json;
    auto r = json.decode<Profile>("{\"v1u6l2u66\":0e66v\"6");
    REQUIRE_FALSE(r);
    CHECK(r.error().kind() == hitbox::ErrorKind::decode);
    CHECK_FALSE(json.decode<double>("{\"value\": 0e66}"));
    CHECK_FALSE(json.decode<double>("{\"value\": -0.000E-400}"));
    // ordinary numbers, and exponents with a non-zero digit, still parse
    CHECK(*json.decode<double>("{\"value\": 1.5e3}") == 1500.0);
    CHECK(*json.decode<double>("{\"value\": 0.25}") == 0.25);
    CHECK(*json.decode<std::string>("{\"value\": \"0e66\"}") == "0e66");

    // fuzz_json_format: 400 zeros after the point put rapidjson's power-of-ten lookup out of bounds (a crash)
    std::string tiny = "{\"value\": 0." + std::string(400, '0') + "118414764245331794}";
    CHECK_FALSE(json.decode<double>(tiny));
    CHECK_FALSE(json.decode<double>("{\"value\": 0." + std::string(30, '0') + "}"));  // zero significand
    CHECK_FALSE(json.decode<double>("{\"value\": 1e-99999}"));
    // ... and 21 significant digits round its 64-bit significand past 2^64 - 1 to zero
    CHECK_FALSE(json.decode<double>("{\"value\": 0.0000000000184467440737095516157370955}"));
    CHECK(*json.decode<double>("{\"value\": 0.18446744073709551615}") == 0.18446744073709551615);
    // ... and it reads a fraction after NaN / Infinity the same way
    CHECK_FALSE(
        json.decode<double>("NaN.000000000000000000000000\xf0"
                            "1847794772503399992a"));
    CHECK_FALSE(json.decode<double>("{\"value\": -Infinity.0000000000000000000000001}"));
    CHECK_FALSE(json.decode<double>("{\"value\": NaNe5}"));
    // 20 significant digits whose first is at 10^-330: the lookup would start below rapidjson's table
    CHECK_FALSE(json.decode<double>("{\"value\": 0.00000000012345678901234567891e-320}"));
    // leading zeros up to a value past the largest double: rapidjson's correction step asserts
    CHECK_FALSE(json.decode<double>("{\"value\": 0.0000000000000000000000000009413873845E336}"));
    CHECK_FALSE(json.decode<double>("{\"value\": " + std::string(41, '7') + "}"));
    // fuzz_xml_format: a "nullopt" flag that is not true/false left cereal's flag uninitialised
    hitbox::XmlFormat xml;
    auto opt = xml.decode<std::optional<int>>(
        "<?xml version=\"1.0\"?><cereal><value><nullopt>\xa0</nullopt><data>5</data></value></cereal>");
    // cereal's XML bool load reports no failure: an unreadable flag reads as false (the data follows), an
    // empty one leaves the flag at its initial "no value" (cereal's own load read it uninitialised)
    REQUIRE(opt);
    CHECK(*opt == std::optional<int>(5));
    auto empty = xml.decode<std::optional<int>>(
        "<?xml version=\"1.0\"?><cereal><value><nullopt></nullopt><data>5</data></value></cereal>");
    REQUIRE(empty);
    CHECK_FALSE(empty->has_value());
}

TEST_CASE("The JSON number guard accepts every double and integer the writer emits") {
    hitbox::JsonFormat json;
    auto round_trip = [&](double d) {
        auto enc = json.encode(d);
        REQUIRE(enc);
        auto dec = json.decode<double>(*enc);
        INFO(*enc);
        REQUIRE(dec);
        CHECK((std::isnan(d) ? std::isnan(*dec) : *dec == d));
    };
    for (double d : {0.0, -0.0, 1.0, 0.1, 1e-7, 1.5e-5, 123456.789, 1e21, 1e22, std::numeric_limits<double>::max(),
                     std::numeric_limits<double>::lowest(), std::numeric_limits<double>::min(),
                     std::numeric_limits<double>::denorm_min(), -std::numeric_limits<double>::denorm_min(),
                     4.9406564584124654e-324, 1e-310, std::numeric_limits<double>::quiet_NaN(),
                     std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity()})
        round_trip(d);
    std::mt19937_64 rng(7);
    for (int i = 0; i < 20000; ++i) {
        std::uint64_t bits = rng();
        double d;
        std::memcpy(&d, &bits, sizeof d);
        if (std::isfinite(d)) round_trip(d);
    }
    for (std::int64_t v : {std::numeric_limits<std::int64_t>::min(), std::int64_t{-1}, std::int64_t{0},
                           std::numeric_limits<std::int64_t>::max()})
        CHECK(*json.decode<std::int64_t>(*json.encode(v)) == v);
    CHECK(*json.decode<std::uint64_t>(*json.encode(std::numeric_limits<std::uint64_t>::max())) ==
          std::numeric_limits<std::uint64_t>::max());
}

TEST_CASE("JSON output is readable") {
    hitbox::JsonFormat fmt;
    auto enc = fmt.encode(Address{"Oslo", 150});
    REQUIRE(enc);
    CHECK(enc->find("\"city\"") != std::string::npos);
    CHECK(enc->find("\"Oslo\"") != std::string::npos);
}

TEST_CASE("Numbers the JSON guard accepts go through rapidjson cleanly (checked by the ASan+UBSan build)") {
    // Random number shapes around the guard's limits: leading zeros, up to 45 decimals, exponents of up to
    // 5 digits, NaN / Infinity prefixes. Whatever json_input_check lets through is parsed by JsonFormat;
    // the sanitizer build turns any undefined behaviour in rapidjson into a failure.
    hitbox::JsonFormat json;
    std::mt19937_64 rng(20261126);
    auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<std::uint64_t>(n)); };
    int accepted = 0, decoded = 0;
    for (int it = 0; it < 200000; ++it) {
        std::string num;
        if (pick(10) == 0) num += pick(2) ? "NaN" : "Infinity";
        if (pick(3) == 0) num += "-";
        const int int_digits = pick(4) == 0 ? pick(30) : 1 + pick(2);
        for (int i = 0; i < int_digits; ++i) num += static_cast<char>('0' + (pick(3) == 0 ? pick(10) : 0));
        if (pick(2)) {
            const int frac = 1 + pick(45), zeros = pick(frac + 1);
            num += '.';
            for (int i = 0; i < frac; ++i) num += static_cast<char>('0' + (i < zeros ? 0 : pick(10)));
        }
        if (pick(2)) {
            num += pick(2) ? "e" : "E";
            if (int sign = pick(3); sign != 0) num += sign == 1 ? "-" : "+";
            for (int i = 0, n = 1 + pick(5); i < n; ++i) num += static_cast<char>('0' + pick(10));
        }
        const std::string doc = "{\"value\": " + num + "}";
        if (hitbox::detail::json_input_check(doc) != hitbox::detail::JsonCheck::ok) continue;
        ++accepted;
        if (json.decode<double>(doc)) ++decoded;
    }
    CHECK(accepted > 50000);  // the guard refuses the broken shapes, not numbers at large
    CHECK(decoded > 10000);
}
