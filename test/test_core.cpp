// CacheKey, key_of, CacheValue states, clocks and Error.
#include <catch2/catch.hpp>

#include <thread>
#include <unordered_set>

#include <hitbox/core/clock.hpp>
#include <hitbox/core/error.hpp>
#include <hitbox/core/key.hpp>
#include <hitbox/core/value.hpp>

#include "support/test_types.hpp"

using namespace std::chrono_literals;
using hitbox::CacheKey;
using hitbox::KeyPart;

namespace {
struct Query {
    BOOST_HANA_DEFINE_STRUCT(Query, (std::uint64_t, id), (std::string, lang), (std::optional<std::string>, region),
                             (bool, beta), (double, ratio));
};
struct Outer {
    BOOST_HANA_DEFINE_STRUCT(Outer, (int, page), (hitbox_test::Address, where));
};
enum class Color : std::uint8_t { red = 1, blue = 7 };
struct WithEnum {
    BOOST_HANA_DEFINE_STRUCT(WithEnum, (Color, color), (std::int64_t, delta));
};
}  // namespace

TEST_CASE("CacheKey equality, hashing and cheap copies") {
    CacheKey a{"user", 1, {{"id", "42"}, {"lang", "en"}}};
    CacheKey b{"user", 1, {{"id", "42"}, {"lang", "en"}}};
    CHECK(a == b);
    CHECK(a.hash() == b.hash());
    CHECK(std::hash<CacheKey>{}(a) == a.hash());

    CacheKey copy = a;
    CHECK(&copy.parts() == &a.parts());  // copies share the immutable data

    CHECK_FALSE(a == CacheKey("user", 2, {{"id", "42"}, {"lang", "en"}}));
    CHECK_FALSE(a == CacheKey("users", 1, {{"id", "42"}, {"lang", "en"}}));
    CHECK_FALSE(a == CacheKey("user", 1, {{"lang", "en"}, {"id", "42"}}));  // order matters
}

TEST_CASE("An absent part value differs from an empty one") {
    CacheKey absent{"k", 0, {{"flag", std::nullopt}}};
    CacheKey empty{"k", 0, {{"flag", ""}}};
    CHECK_FALSE(absent == empty);
    CHECK(absent.hash() != empty.hash());
    REQUIRE(absent.find("flag") != nullptr);
    CHECK_FALSE(absent.find("flag")->has_value());
    CHECK(absent.find("missing") == nullptr);
}

TEST_CASE("CacheKey::with appends without touching the original") {
    CacheKey base{"p"};
    auto more = base.with("a", "1").with("b");
    CHECK(base.parts().empty());
    REQUIRE(more.parts().size() == 2);
    CHECK(more.parts()[0] == KeyPart{"a", "1"});
    CHECK(more.parts()[1] == KeyPart{"b", std::nullopt});
}

TEST_CASE("Distinct keys spread over hash buckets") {
    std::unordered_set<std::size_t> hashes;
    for (int i = 0; i < 10000; ++i) hashes.insert(CacheKey("k", 0, {{"id", std::to_string(i)}}).hash());
    CHECK(hashes.size() == 10000);
}

TEST_CASE("key_of builds one part per member, in order") {
    auto key = hitbox::key_of(Query{42, "en", std::nullopt, true, 0.5}, "query", 3);
    CHECK(key.prefix() == "query");
    CHECK(key.version() == 3);
    REQUIRE(key.parts().size() == 5);
    CHECK(key.parts()[0] == KeyPart{"id", "42"});
    CHECK(key.parts()[1] == KeyPart{"lang", "en"});
    CHECK(key.parts()[2] == KeyPart{"region", std::nullopt});
    CHECK(key.parts()[3] == KeyPart{"beta", "true"});
    CHECK(key.parts()[4] == KeyPart{"ratio", "0.5"});

    auto with_region = hitbox::key_of(Query{42, "en", std::string(""), true, 0.5}, "query", 3);
    CHECK(with_region.parts()[2] == KeyPart{"region", ""});
    CHECK_FALSE(with_region == key);
}

TEST_CASE("key_of flattens nested structs and writes enums as integers") {
    auto key = hitbox::key_of(Outer{2, {"Oslo", 150}});
    REQUIRE(key.parts().size() == 3);
    CHECK(key.parts()[0] == KeyPart{"page", "2"});
    CHECK(key.parts()[1] == KeyPart{"where.city", "Oslo"});
    CHECK(key.parts()[2] == KeyPart{"where.zip", "150"});

    auto e = hitbox::key_of(WithEnum{Color::blue, -5});
    CHECK(e.parts()[0] == KeyPart{"color", "7"});
    CHECK(e.parts()[1] == KeyPart{"delta", "-5"});
}

TEST_CASE("CacheValue states: fresh, stale, expired, and no expiry") {
    hitbox::ManualClock clock;
    auto now = clock.now();
    hitbox::CacheValue<int> v{7, now + 60s, now + 45s, now};
    CHECK(v.state(now) == hitbox::EntryState::Fresh);
    CHECK(v.state(now + 44999ms) == hitbox::EntryState::Fresh);
    CHECK(v.state(now + 45s) == hitbox::EntryState::Stale);
    CHECK(v.state(now + 59999ms) == hitbox::EntryState::Stale);
    CHECK(v.state(now + 60s) == hitbox::EntryState::Expired);
    CHECK(v.ttl(now + 10s) == std::optional<std::chrono::milliseconds>(50s));

    hitbox::CacheValue<int> forever{1, std::nullopt, std::nullopt, now};
    CHECK(forever.state(now + std::chrono::hours(24 * 365 * 100)) == hitbox::EntryState::Fresh);
    CHECK_FALSE(forever.ttl(now).has_value());

    hitbox::CacheValue<int> already{1, now - 1ms, std::nullopt, now};
    CHECK(already.state(now) == hitbox::EntryState::Expired);
}

TEST_CASE("CacheValue keeps millisecond precision") {
    auto t = hitbox::to_time_point(std::chrono::system_clock::time_point(std::chrono::microseconds(1'500'999)));
    CHECK(hitbox::to_unix_ms(t) == 1500);
    CHECK(hitbox::from_unix_ms(1500) == t);
}

TEST_CASE("ManualClock copies share one time and never move on their own") {
    hitbox::ManualClock a;
    auto b = a;
    auto start = a.now();
    std::this_thread::sleep_for(2ms);
    CHECK(a.now() == start);
    b.advance(1500ms);
    CHECK(a.now() == start + 1500ms);
    a.set(hitbox::from_unix_ms(5));
    CHECK(hitbox::to_unix_ms(b.now()) == 5);
}

TEST_CASE("Error renders kind, backend and message in one place") {
    hitbox::Error e(hitbox::ErrorKind::decode, "bad magic", "redis");
    CHECK(e.what() == "[redis] decode: bad magic");
    CHECK(e.in("cache").backend() == "cache.redis");
    CHECK(hitbox::Error(hitbox::ErrorKind::timeout, "slow").what() == "timeout: slow");
    hitbox::Result<int> r = hitbox::fail(hitbox::ErrorKind::capacity, "full");
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().kind() == hitbox::ErrorKind::capacity);
}

TEST_CASE("Saturating time arithmetic clamps instead of overflowing") {
    using hitbox::TimePoint;
    using std::chrono::milliseconds;
    using std::chrono::nanoseconds;
    const TimePoint now = hitbox::from_unix_ms(1'704'067'200'000);
    CHECK(hitbox::detail::saturating_add(now, milliseconds(5)) == now + milliseconds(5));
    CHECK(hitbox::detail::saturating_add(now, milliseconds::max()) == TimePoint::max());
    CHECK(hitbox::detail::saturating_add(hitbox::from_unix_ms(-5), milliseconds::min()) == TimePoint::min());
    CHECK(hitbox::detail::saturating_add(now, milliseconds::min()) ==
          TimePoint(now.time_since_epoch() + milliseconds::min()));
    CHECK(hitbox::detail::saturating_add(TimePoint::max(), milliseconds(1)) == TimePoint::max());
    // Into a finer unit: milliseconds::max() is past nanoseconds' range.
    const auto steady = std::chrono::steady_clock::time_point(std::chrono::seconds(1000));
    CHECK(hitbox::detail::saturating_add(steady, milliseconds::max()) == std::chrono::steady_clock::time_point::max());
    CHECK(hitbox::detail::saturating_add(steady, milliseconds(1)) == steady + milliseconds(1));
    CHECK(hitbox::detail::saturating_duration_cast<nanoseconds>(milliseconds::max()) == nanoseconds::max());
    CHECK(hitbox::detail::saturating_duration_cast<nanoseconds>(milliseconds::min()) == nanoseconds::min());
    CHECK(hitbox::detail::saturating_duration_cast<nanoseconds>(milliseconds(3)) == nanoseconds(3'000'000));
    CHECK(hitbox::detail::saturating_sub(TimePoint::max(), TimePoint::min()) == milliseconds::max());
    CHECK(hitbox::detail::saturating_sub(TimePoint::min(), now) == milliseconds::min());
    CHECK(hitbox::detail::saturating_sub(now, now - milliseconds(7)) == milliseconds(7));
    CHECK(hitbox::detail::deadline_after(milliseconds::max()) == std::chrono::steady_clock::time_point::max());
    CHECK(hitbox::detail::deadline_after(std::chrono::microseconds::max()) ==
          std::chrono::steady_clock::time_point::max());
    CHECK(hitbox::detail::deadline_after(milliseconds(10)) > std::chrono::steady_clock::now());

    // CacheValue::ttl on times a decoded entry may carry.
    const hitbox::CacheValue<int> forever(1, TimePoint::max(), std::nullopt, now);
    CHECK(forever.ttl(TimePoint::min()) == milliseconds::max());
    const hitbox::CacheValue<int> ancient(1, TimePoint::min(), std::nullopt, now);
    CHECK(ancient.ttl(now) == milliseconds::min());
    CHECK(ancient.state(now) == hitbox::EntryState::Expired);
}
