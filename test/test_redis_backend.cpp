// RedisBackend against real redis-server processes: storage, TTLs, keys, batches, raw access, stats,
// corrupt entries and credentials. Connection faults (kill, restart, pause, CLIENT KILL) are in
// test_redis_connection.cpp.
#include <catch2/catch.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <optional>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <hitbox/backend/redis.hpp>
#include <hitbox/compress/gzip.hpp>
#include <hitbox/compress/zstd.hpp>
#include <hitbox/format/json.hpp>
#include <hitbox/format/raw.hpp>
#include <hitbox/format/xml.hpp>
#include <hitbox/key_format/url_encoded.hpp>

#include "support/redis_server.hpp"
#include "support/test_types.hpp"

using namespace std::chrono_literals;
using namespace hitbox_test;

namespace {

const bool redis_available = require_redis_server();

RedisServer& shared_server() {
    static RedisServer server;
    return server;
}

using ReadableBackend = hitbox::RedisBackend<hitbox::UrlEncoded>;

/// A backend with readable keys (UrlEncoded) so redis-cli can address them; short test timeouts.
ReadableBackend readable_backend(const std::string& url, const std::string& prefix) {
    auto b = ReadableBackend::builder()
                 .connection(hitbox::ConnectionMode::single(url))
                 .key_prefix(prefix)
                 .connect_timeout(500ms)
                 .command_timeout(500ms)
                 .build();
    REQUIRE(b);
    return std::move(*b);
}

// Every key format, value format and compressor once through Redis: the Redis host only stores the bytes the
// codec makes, so each policy needs one trip through it. Every combination of the three (24) round-trips through
// the codec itself in test_envelope.cpp, with the same values; compiling all 24 RedisBackend types here took
// about as long as the rest of this file.
using AllBackends =
    std::tuple<hitbox::RedisBackend<hitbox::Bitcode, hitbox::BinaryFormat, hitbox::PassthroughCompressor>,
               hitbox::RedisBackend<hitbox::UrlEncoded, hitbox::JsonFormat, hitbox::GzipCompressor>,
               hitbox::RedisBackend<hitbox::Bitcode, hitbox::XmlFormat, hitbox::ZstdCompressor>,
               hitbox::RedisBackend<hitbox::UrlEncoded, hitbox::RawFormat, hitbox::ZstdCompressor>>;

template <class Backend, class T>
void check_roundtrip(Backend& backend, const hitbox::CacheKey& key, const T& data) {
    const auto now = hitbox::Clock::now();
    for (auto [stale, expire] : {std::pair<std::optional<hitbox::TimePoint>, std::optional<hitbox::TimePoint>>{},
                                 {now + 45s, now + 60s},
                                 {std::nullopt, now + 30s},
                                 {now - 5s, std::nullopt}}) {
        hitbox::CacheValue<T> v{data, expire, stale, now - 1s};
        REQUIRE(backend.set(key, v));
        auto back = backend.template get<T>(key);
        REQUIRE(back);
        REQUIRE(*back);
        CHECK((*back)->data == data);
        CHECK((*back)->created == now - 1s);
        CHECK((*back)->stale == stale);
        CHECK((*back)->expire == expire);
    }
}

}  // namespace

TEMPLATE_LIST_TEST_CASE("Each KeyFmt, ValueFmt and Compressor round-trips through Redis", "[redis]", AllBackends) {
    using V = typename TestType::value_format;
    auto built = TestType::builder()
                     .connection(hitbox::ConnectionMode::single(shared_server().url()))
                     .key_prefix(std::string("matrix:") + std::string(TestType::key_format::name) + ":" +
                                 std::string(V::name) + ":" + std::string(TestType::compressor_type::name) + ":")
                     .command_timeout(2s)
                     .build();
    REQUIRE(built);
    auto& backend = *built;
    const hitbox::CacheKey key{"user", 1, {{"id", "42"}, {"flag", std::nullopt}}};
    check_roundtrip(backend, key, unicode_string());
    check_roundtrip(backend, key, large_string(100000));
    if constexpr (std::is_same_v<V, hitbox::RawFormat>) {
        check_roundtrip(backend, key, binary_string());
        check_roundtrip(backend, key, Point{1, -2, 3.5});
    } else {
        check_roundtrip(backend, key, sample_profile(unicode_string()));
    }
    CHECK(backend.stats().error_total() == 0);
    CHECK(backend.remove(key).value());
    CHECK_FALSE(backend.template get<std::string>(key).value());
}

TEST_CASE("Millisecond TTL: PX from the expire time, metadata preserved; no expire means no TTL") {
    auto backend = readable_backend(shared_server().url(), "ttl:");
    const hitbox::CacheKey key{"item", 1, {{"id", "1"}}};
    const auto now = hitbox::Clock::now();
    hitbox::CacheValue<std::string> v{"payload", now + 1500ms, now + 700ms, now - 250ms};
    REQUIRE(backend.set(key, v));
    const std::string stored = "ttl:item:v1:id=1";
    auto pttl = std::stoll(shared_server().cli({"PTTL", stored}));
    CHECK(pttl > 1000);  // generous for a loaded CI machine, but proves milliseconds, not seconds
    CHECK(pttl <= 1500);
    auto back = backend.get<std::string>(key);
    REQUIRE(back);
    REQUIRE(*back);
    CHECK((*back)->created == now - 250ms);
    CHECK((*back)->stale == now + 700ms);
    CHECK((*back)->expire == now + 1500ms);

    hitbox::CacheValue<std::string> forever{"forever", std::nullopt, std::nullopt, now};
    REQUIRE(backend.set(key, forever));
    CHECK(shared_server().cli({"PTTL", stored}) == "-1");
}

TEST_CASE("Far-future expiry: stored without PX (Redis refuses an expire near the int64 limit), kept exactly") {
    auto backend = readable_backend(shared_server().url(), "far:");
    const hitbox::CacheKey key{"item", 1, {{"id", "far"}}};
    const std::string stored = "far:item:v1:id=far";
    const auto now = hitbox::Clock::now();
    for (auto expire : {hitbox::TimePoint::max(), now + std::chrono::hours(24 * 365 * 5000)}) {
        hitbox::CacheValue<std::string> v{"far", expire, std::nullopt, now};
        auto w = backend.set(key, v);
        INFO((w ? std::string("ok") : w.error().what()));
        REQUIRE(w);
        CHECK(shared_server().cli({"PTTL", stored}) == "-1");
        auto back = backend.get<std::string>(key);
        REQUIRE(back);
        REQUIRE(*back);
        CHECK((*back)->expire == expire);
    }
    // A TTL of ~3 000 years is still a real PX.
    hitbox::CacheValue<std::string> v{"far", now + std::chrono::hours(24 * 365 * 3000), std::nullopt, now};
    REQUIRE(backend.set(key, v));
    CHECK(std::stoll(shared_server().cli({"PTTL", stored})) > 0);
    // An expiry at TimePoint::min() is long past: the entry is removed, nothing overflows.
    REQUIRE(backend.set(key, hitbox::CacheValue<std::string>{"gone", hitbox::TimePoint::min(), std::nullopt, now}));
    CHECK(shared_server().cli({"EXISTS", stored}) == "0");
}

TEST_CASE("Golden stored bytes (doc/wire-format.md)") {
    auto backend = readable_backend(shared_server().url(), "golden:");
    const hitbox::CacheKey key{"user", 1, {{"id", "42"}}};
    REQUIRE(
        backend.set(key, hitbox::CacheValue<std::uint8_t>{std::uint8_t{0xAB}, hitbox::from_unix_ms(4'102'444'800'000),
                                                          std::nullopt, hitbox::from_unix_ms(1'700'000'000'000)}));
    const std::string expected(
        "\x48\x42\x01\x01\x00\x02"
        "\x00\x68\xE5\xCF\x8B\x01\x00\x00"
        "\x00\xD8\xC3\x2C\xBB\x03\x00\x00"
        "\xAB",
        23);
    auto raw = backend.read(key);
    REQUIRE(raw);
    REQUIRE(*raw);
    CHECK(**raw == expected);
    CHECK(shared_server().cli({"STRLEN", "golden:user:v1:id=42"}) == "23");
    CHECK(std::stoll(shared_server().cli({"PTTL", "golden:user:v1:id=42"})) > 1'000'000'000);
}

TEST_CASE("An overwrite replaces value and metadata") {
    auto backend = readable_backend(shared_server().url(), "overwrite:");
    const hitbox::CacheKey key{"k", 0};
    const auto now = hitbox::Clock::now();
    REQUIRE(backend.set(key, hitbox::CacheValue<int>{1, now + 60s, now + 30s, now}));
    REQUIRE(backend.set(key, hitbox::CacheValue<int>{2, std::nullopt, std::nullopt, now + 1s}));
    auto back = backend.get<int>(key);
    REQUIRE(back);
    REQUIRE(*back);
    CHECK((*back)->data == 2);
    CHECK_FALSE((*back)->stale);
    CHECK_FALSE((*back)->expire);
    CHECK((*back)->created == now + 1s);
    CHECK(shared_server().cli({"PTTL", "overwrite:k:v0"}) == "-1");
}

TEST_CASE("An already expired value is not written and removes the old entry") {
    auto backend = readable_backend(shared_server().url(), "expired:");
    const hitbox::CacheKey key{"k", 0};
    const auto now = hitbox::Clock::now();
    REQUIRE(backend.set(key, hitbox::CacheValue<int>{1, now + 60s}));
    REQUIRE(shared_server().cli({"EXISTS", "expired:k:v0"}) == "1");
    REQUIRE(backend.set(key, hitbox::CacheValue<int>{2, now - 1ms}));
    CHECK(shared_server().cli({"EXISTS", "expired:k:v0"}) == "0");
    CHECK_FALSE(backend.get<int>(key).value());
    REQUIRE(backend.set(hitbox::CacheKey{"never", 0}, hitbox::CacheValue<int>{3, now - 1h}));
    CHECK(shared_server().cli({"EXISTS", "expired:never:v0"}) == "0");
}

TEST_CASE("Binary and very long keys; key_prefix") {
    auto built = hitbox::RedisBackend<>::builder()
                     .connection(hitbox::ConnectionMode::single(shared_server().url()))
                     .key_prefix(std::string("bin\0ary:", 8))
                     .build();
    REQUIRE(built);
    auto& backend = *built;
    const hitbox::CacheKey binary{
        binary_string(), 7, {{binary_string(), binary_string()}, {"\r\n*1\r\n", std::string(1, '\0')}}};
    const hitbox::CacheKey other{binary_string(), 7, {{binary_string(), binary_string()}, {"\r\n*1\r\n", ""}}};
    const hitbox::CacheKey long_key{"long", 1, {{"blob", large_string(1 << 20)}}};
    REQUIRE(backend.set(binary, hitbox::CacheValue<std::string>{"binary"}));
    REQUIRE(backend.set(other, hitbox::CacheValue<std::string>{"other"}));
    REQUIRE(backend.set(long_key, hitbox::CacheValue<std::string>{"long"}));
    CHECK(backend.get<std::string>(binary).value()->data == "binary");
    CHECK(backend.get<std::string>(other).value()->data == "other");
    CHECK(backend.get<std::string>(long_key).value()->data == "long");
    CHECK(backend.codec().key(binary).substr(0, 8) == std::string("bin\0ary:", 8));

    auto readable = readable_backend(shared_server().url(), "app:");
    REQUIRE(readable.set(hitbox::CacheKey{"user", 1, {{"id", "9"}}}, hitbox::CacheValue<int>{9}));
    CHECK(shared_server().cli({"EXISTS", "app:user:v1:id=9"}) == "1");
    CHECK(shared_server().cli({"EXISTS", "user:v1:id=9"}) == "0");
}

TEST_CASE("remove reports whether the key existed; misses and hits are counted") {
    auto backend = readable_backend(shared_server().url(), "remove:");
    const hitbox::CacheKey key{"k", 0};
    CHECK_FALSE(backend.remove(key).value());
    REQUIRE(backend.set(key, hitbox::CacheValue<std::string>{"v"}));
    CHECK(backend.remove(key).value());
    CHECK_FALSE(backend.remove(key).value());
    CHECK_FALSE(backend.get<std::string>(key).value());
    auto s = backend.stats();
    CHECK(s.removes == 3);
    CHECK(s.writes == 1);
    CHECK(s.reads == 1);
    CHECK(s.misses == 1);
    CHECK(s.hits == 0);
    CHECK(s.bytes_out > 1);
    CHECK(s.error_total() == 0);
}

TEST_CASE("Duration histograms against a real server: round trips, zstd and the format, a paused server's wait") {
    auto built = hitbox::RedisBackend<>::builder()
                     .connection(hitbox::ConnectionMode::single(shared_server().url()))
                     .key_prefix("durations:")
                     .compressor(hitbox::ZstdCompressor{3})
                     .command_timeout(5s)
                     .duration_histograms()
                     .build();
    REQUIRE(built);
    auto& redis = *built;
    const hitbox::CacheKey key{"k", 0};
    REQUIRE(redis.set(key, hitbox::CacheValue<std::string>{std::string(20'000, 'x'), hitbox::Clock::now() + 60s}));
    REQUIRE(redis.get<std::string>(key).value());
    const hitbox::DurationStats before = redis.durations();
    CHECK(before.enabled);
    CHECK(before.format == "binary");
    CHECK(before.compressor == "zstd");
    for (auto stage : {hitbox::TierStage::read, hitbox::TierStage::write, hitbox::TierStage::serialize,
                       hitbox::TierStage::deserialize, hitbox::TierStage::compress, hitbox::TierStage::decompress}) {
        INFO(hitbox::to_string(stage));
        CHECK(before[stage].count == 1);
        CHECK(before[stage].sum_ns > 0);
    }

    // The server stops answering for 200 ms while a read waits: the wait is in the read histogram only.
    shared_server().pause();
    std::atomic<bool> started{false};
    hitbox::Result<std::optional<hitbox::CacheValue<std::string>>> late =
        std::optional<hitbox::CacheValue<std::string>>{};
    std::thread reader([&] {
        started = true;
        late = redis.get<std::string>(key);
    });
    while (!started) std::this_thread::yield();
    std::this_thread::sleep_for(200ms);
    shared_server().resume();
    reader.join();
    REQUIRE(late);
    REQUIRE(*late);
    const hitbox::DurationStats after = redis.durations();
    CHECK(after[hitbox::TierStage::read].count == 2);
    CHECK(after[hitbox::TierStage::read].sum_ns - before[hitbox::TierStage::read].sum_ns >= 150'000'000u);
    CHECK(after[hitbox::TierStage::decompress].count == 2);
    CHECK(after[hitbox::TierStage::decompress].sum_ns - before[hitbox::TierStage::decompress].sum_ns < 150'000'000u);

    hitbox::PrometheusWriter out;
    hitbox::write_backend_stats(out, "cache.redis", after);
    const std::string text = out.str();
    CHECK(text.find("hitbox_backend_read_duration_seconds_count{backend=\"cache.redis\"} 2\n") != std::string::npos);
    CHECK(text.find(
              "hitbox_backend_decompress_duration_seconds_count{backend=\"cache.redis\",compressor=\"zstd\"} 2\n") !=
          std::string::npos);
    CHECK(text.find("hitbox_backend_serialize_duration_seconds_count{backend=\"cache.redis\",format=\"binary\"} 1\n") !=
          std::string::npos);

    // Off by default.
    auto plain = readable_backend(shared_server().url(), "durations-off:");
    REQUIRE(plain.set(key, hitbox::CacheValue<std::string>{"v"}));
    CHECK_FALSE(plain.durations().enabled);
    CHECK(plain.durations()[hitbox::TierStage::write].count == 0);
}

TEST_CASE("get_many / set_many are pipelined and keep per-key results") {
    auto backend = readable_backend(shared_server().url(), "many:");
    const auto now = hitbox::Clock::now();
    std::vector<std::pair<hitbox::CacheKey, hitbox::CacheValue<std::string>>> entries;
    for (int i = 0; i < 100; ++i)
        entries.emplace_back(
            hitbox::CacheKey{"k", 0, {{"i", std::to_string(i)}}},
            hitbox::CacheValue<std::string>{"value-" + std::to_string(i),
                                            i == 7 ? std::optional(now - 1s) : std::optional(now + 60s)});
    auto written = backend.set_many(entries);
    REQUIRE(written.size() == 100);
    for (auto& w : written) CHECK(w);

    shared_server().cli({"SET", "many:k:v0:i=50", "not an envelope"});
    std::vector<hitbox::CacheKey> keys;
    for (auto& e : entries) keys.push_back(e.first);
    keys.push_back(hitbox::CacheKey{"absent", 0});
    const auto before = backend.stats();
    auto got = backend.get_many<std::string>(keys);
    REQUIRE(got.size() == 101);
    for (int i = 0; i < 100; ++i) {
        INFO(i);
        if (i == 50) {
            REQUIRE_FALSE(got[i]);
            CHECK(got[i].error().kind() == hitbox::ErrorKind::decode);
        } else if (i == 7) {
            REQUIRE(got[i]);
            CHECK_FALSE(*got[i]);  // written already expired: not stored
        } else {
            REQUIRE(got[i]);
            REQUIRE(*got[i]);
            CHECK((*got[i])->data == "value-" + std::to_string(i));
        }
    }
    REQUIRE(got[100]);
    CHECK_FALSE(*got[100]);
    auto after = backend.stats();
    CHECK(after.reads - before.reads == 101);
    CHECK(after.hits - before.hits == 98);
    CHECK(after.misses - before.misses == 2);
    CHECK(after.errors_of(hitbox::ErrorKind::decode) - before.errors_of(hitbox::ErrorKind::decode) == 1);
    CHECK(backend.get_many<std::string>(std::span<const hitbox::CacheKey>{}).empty());
}

TEST_CASE("Corrupt, foreign and wrongly typed entries are decode / server errors, counted, attributed") {
    auto backend = readable_backend(shared_server().url(), "corrupt:");
    const hitbox::CacheKey key{"k", 1};
    shared_server().cli({"SET", "corrupt:k:v1", "written by hand"});
    auto r = backend.get<std::string>(key);
    REQUIRE_FALSE(r);
    CHECK(r.error().kind() == hitbox::ErrorKind::decode);
    CHECK(r.error().backend() == "redis");

    // A valid header claiming a stale time that is not there (truncated), written with redis-cli -x.
    shared_server().cli({"-x", "SET", "corrupt:k:v1"}, std::string("HB\x01\x01\x00\x01\x00\x00\x00", 9));
    CHECK(backend.get<std::string>(key).error().kind() == hitbox::ErrorKind::decode);

    // A well-formed envelope of another value format (JSON id 2) read by a BinaryFormat backend.
    hitbox::EntryCodec<hitbox::UrlEncoded, hitbox::JsonFormat> json;
    REQUIRE(backend.write(key, *json.encode(hitbox::CacheValue<std::string>{"json"}), std::nullopt));
    auto foreign = backend.get<std::string>(key);
    REQUIRE_FALSE(foreign);
    CHECK(foreign.error().message().find("format id 2") != std::string::npos);

    shared_server().cli({"DEL", "corrupt:list:v0"});
    shared_server().cli({"RPUSH", "corrupt:list:v0", "x"});
    auto wrongtype = backend.get<std::string>(hitbox::CacheKey{"list", 0});
    REQUIRE_FALSE(wrongtype);
    CHECK(wrongtype.error().kind() == hitbox::ErrorKind::server);
    CHECK(wrongtype.error().message().find("WRONGTYPE") != std::string::npos);

    auto s = backend.stats();
    CHECK(s.errors_of(hitbox::ErrorKind::decode) == 3);
    CHECK(s.errors_of(hitbox::ErrorKind::server) == 1);
    CHECK(s.error_total() == 4);
}

TEST_CASE("Raw read / write of envelopes") {
    auto backend = readable_backend(shared_server().url(), "raw:");
    const hitbox::CacheKey key{"k", 0};
    const auto now = hitbox::Clock::now();
    REQUIRE(backend.set(key, hitbox::CacheValue<std::string>{"typed", now + 60s, now + 30s, now}));
    auto bytes = backend.read(key);
    REQUIRE(bytes);
    REQUIRE(*bytes);
    CHECK(**bytes == *backend.codec().encode(hitbox::CacheValue<std::string>{"typed", now + 60s, now + 30s, now}));

    const hitbox::CacheKey copy{"copy", 0};
    REQUIRE(backend.write(copy, **bytes, 2000ms));
    auto pttl = std::stoll(shared_server().cli({"PTTL", "raw:copy:v0"}));
    CHECK(pttl > 1000);
    CHECK(pttl <= 2000);
    CHECK(backend.get<std::string>(copy).value()->data == "typed");

    auto refused = backend.write(copy, "not an envelope", std::nullopt);
    REQUIRE_FALSE(refused);
    CHECK(refused.error().kind() == hitbox::ErrorKind::encode);
    CHECK(backend.get<std::string>(copy).value()->data == "typed");  // nothing was written

    REQUIRE(backend.write(copy, **bytes, 0ms));  // ttl <= 0: delete
    CHECK_FALSE(backend.read(copy).value());
}

TEST_CASE("Large values cross many socket reads and writes") {
    auto backend = readable_backend(shared_server().url(), "large:");
    const std::string big = large_string(8 << 20);
    REQUIRE(backend.set(hitbox::CacheKey{"big", 0}, hitbox::CacheValue<std::string>{big}));
    auto back = backend.get<std::string>(hitbox::CacheKey{"big", 0});
    REQUIRE(back);
    REQUIRE(*back);
    CHECK((*back)->data == big);
}

TEST_CASE("Database selection, unix sockets") {
    auto db3 = readable_backend("redis://127.0.0.1:" + std::to_string(shared_server().port()) + "/3", "db:");
    REQUIRE(db3.set(hitbox::CacheKey{"k", 0}, hitbox::CacheValue<int>{3}));
    CHECK(shared_server().cli({"-n", "3", "EXISTS", "db:k:v0"}) == "1");
    CHECK(shared_server().cli({"-n", "0", "EXISTS", "db:k:v0"}) == "0");

    auto bad_db = readable_backend("redis://127.0.0.1:" + std::to_string(shared_server().port()) + "/999", "db:");
    auto r = bad_db.get<int>(hitbox::CacheKey{"k", 0});
    REQUIRE_FALSE(r);
    CHECK(r.error().kind() == hitbox::ErrorKind::config);
    CHECK(r.error().message().find("SELECT 999") != std::string::npos);

    auto unix_backend = readable_backend("unix://" + shared_server().unix_socket() + "?db=3", "db:");
    auto v = unix_backend.get<int>(hitbox::CacheKey{"k", 0});
    REQUIRE(v);
    REQUIRE(*v);
    CHECK((*v)->data == 3);
}

TEST_CASE("A user not allowed to SELECT its database is an auth error; a database out of range a config one") {
    RedisServer acl({.acl_user = "cacheuser",
                     .acl_password = "correct-horse-battery",
                     .extra_config = {"user noselect on >noselect-pw ~* &* +@all -select"}});
    const std::string at = "@127.0.0.1:" + std::to_string(acl.port());
    auto denied = readable_backend("redis://noselect:noselect-pw" + at + "/3", "db:");
    auto r = denied.get<int>(hitbox::CacheKey{"k", 0});
    REQUIRE_FALSE(r);
    CHECK(r.error().kind() == hitbox::ErrorKind::auth);
    CHECK(r.error().message().find("SELECT 3") != std::string::npos);
    CHECK(r.error().message().find("NOPERM") != std::string::npos);
    CHECK(r.error().what().find("noselect-pw") == std::string::npos);
    // The same user on database 0 needs no SELECT and works.
    auto db0 = readable_backend("redis://noselect:noselect-pw" + at + "/", "db:");
    CHECK(db0.set(hitbox::CacheKey{"k", 0}, hitbox::CacheValue<int>{1}));
}

TEST_CASE("ACL user and password: builder, URL, precedence; a wrong password is an auth error without it") {
    RedisServer acl({.acl_user = "cacheuser", .acl_password = "correct-horse-battery"});
    const std::string host = "127.0.0.1:" + std::to_string(acl.port()) + "/";
    const hitbox::CacheKey key{"k", 0};

    auto ok = hitbox::RedisBackend<>::builder()
                  .connection(hitbox::ConnectionMode::single("redis://" + host))
                  .username("cacheuser")
                  .password("correct-horse-battery")
                  .command_timeout(500ms)
                  .build();
    REQUIRE(ok);
    REQUIRE(ok->set(key, hitbox::CacheValue<int>{1}));
    CHECK(ok->get<int>(key).value()->data == 1);

    auto via_url = hitbox::RedisBackend<>::builder()
                       .connection(hitbox::ConnectionMode::single("redis://cacheuser:correct-horse-battery@" + host))
                       .build();
    REQUIRE(via_url);
    CHECK(via_url->get<int>(key).value()->data == 1);

    auto builder_wins = hitbox::RedisBackend<>::builder()
                            .connection(hitbox::ConnectionMode::single("redis://cacheuser:stale-url-password@" + host))
                            .password("correct-horse-battery")
                            .build();
    REQUIRE(builder_wins);
    CHECK(builder_wins->get<int>(key).value()->data == 1);

    auto wrong = hitbox::RedisBackend<>::builder()
                     .connection(hitbox::ConnectionMode::single("redis://" + host))
                     .username("cacheuser")
                     .password("wrong-pass-1234")
                     .reconnect_backoff(10s, 10s)
                     .build();
    REQUIRE(wrong);
    auto denied = wrong->get<int>(key);
    REQUIRE_FALSE(denied);
    CHECK(denied.error().kind() == hitbox::ErrorKind::auth);
    CHECK(denied.error().message().find("configured ACL user") != std::string::npos);
    CHECK(denied.error().what().find("cacheuser") == std::string::npos);  // the user name is a credential too
    CHECK(denied.error().what().find("wrong-pass-1234") == std::string::npos);
    auto again = wrong->get<int>(key);  // during the backoff: same kind, no new attempt, still no password
    REQUIRE_FALSE(again);
    CHECK(again.error().kind() == hitbox::ErrorKind::auth);
    CHECK(again.error().what().find("wrong-pass-1234") == std::string::npos);
    CHECK(wrong->connection().counters().connect_attempts == 1);
    CHECK(wrong->stats().errors_of(hitbox::ErrorKind::auth) == 2);

    auto anonymous =
        hitbox::RedisBackend<>::builder().connection(hitbox::ConnectionMode::single("redis://" + host)).build();
    REQUIRE(anonymous);
    auto noauth = anonymous->get<int>(key);
    REQUIRE_FALSE(noauth);
    CHECK(noauth.error().kind() == hitbox::ErrorKind::auth);
}

TEST_CASE("A server at maxclients refuses the connection: a connection error with backoff, not auth") {
    RedisServer full({.acl_user = "cacheuser", .acl_password = "correct-horse-battery"});
    redisContext* holder = redisConnect("127.0.0.1", full.port());  // takes the one client slot
    REQUIRE(holder != nullptr);
    REQUIRE(holder->err == 0);
    full.cli({"CONFIG", "SET", "maxclients", "1"});
    const hitbox::CacheKey key{"k", 0};
    auto make = [&](bool with_user) {
        auto builder = hitbox::RedisBackend<>::builder()
                           .connection(hitbox::ConnectionMode::single(full.url()))
                           .command_timeout(500ms)
                           .reconnect_backoff(100ms, 1s);
        if (with_user) builder.username("cacheuser").password("correct-horse-battery");
        auto built = builder.build();
        INFO((built ? std::string() : built.error().what()));
        REQUIRE(built);
        return std::move(*built);
    };
    // The refusal comes before the handshake's AUTH (it was reported as wrong credentials) and, without
    // credentials, as the first command's reply (it was a server error, and nothing backed off).
    for (bool with_user : {true, false}) {
        CAPTURE(with_user);
        auto backend = make(with_user);
        for (int i = 0; i < 200; ++i) {
            auto r = backend.get<int>(key);
            REQUIRE_FALSE(r);
            CHECK(r.error().kind() == hitbox::ErrorKind::connection);
            // Usually the server's refusal; the write of the first command may also meet the closed socket
            // first (a reset): a connection error either way, never an authentication failure.
            CHECK(r.error().message().find("authentication") == std::string::npos);
            CHECK(r.error().what().find("correct-horse-battery") == std::string::npos);
        }
        CHECK(backend.connection().counters().connect_attempts <= 3);  // 200 before, one per GET
    }
    redisFree(holder);
    auto backend = make(true);
    bool served = false;
    for (int i = 0; i < 100 && !served; ++i) {
        served = backend.set(key, hitbox::CacheValue<int>{7}).has_value();
        if (!served) std::this_thread::sleep_for(20ms);
    }
    CHECK(served);
    CHECK(backend.get<int>(key).value()->data == 7);
}

TEST_CASE("A backend used in a child of fork() refuses; the parent's connection is untouched") {
    std::optional<ReadableBackend> backend = readable_backend(shared_server().url(), "fork:");
    constexpr int keys = 4;
    auto key = [](int i) { return hitbox::CacheKey{"k", 0, {{"i", std::to_string(i)}}}; };
    for (int i = 0; i < keys; ++i) REQUIRE(backend->set(key(i), hitbox::CacheValue<int>{i * 1000}));
    std::atomic<bool> stop{false};
    std::atomic<long> wrong{0}, ok{0}, failed{0};
    std::vector<std::thread> readers;
    for (int t = 0; t < keys; ++t)
        readers.emplace_back([&, t] {
            while (!stop) {
                auto r = backend->get<int>(key(t));
                if (!r) {
                    ++failed;
                } else if (!*r || (*r)->data != t * 1000) {
                    ++wrong;
                } else {
                    ++ok;
                }
            }
        });
    std::this_thread::sleep_for(100ms);
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        // In the child: every call is refused at once, nothing is sent on the parent's socket, and the
        // last handle goes away without waiting for the parent's I/O thread.
        int code = 0;
        for (int i = 0; i < 200; ++i) {
            auto r = backend->get<int>(key(i % keys));
            if (r || r.error().kind() != hitbox::ErrorKind::unavailable ||
                r.error().message().find("fork()") == std::string::npos)
                code = 1;
            if (backend->set(key(i % keys), hitbox::CacheValue<int>{-1})) code = 2;
        }
        backend.reset();
        ::_exit(code);
    }
    int status = -1;
    bool exited = false;
    for (int i = 0; i < 1000 && !exited; ++i) {  // 10 s at most
        exited = ::waitpid(child, &status, WNOHANG) == child;
        if (!exited) std::this_thread::sleep_for(10ms);
    }
    if (!exited) {
        ::kill(child, SIGKILL);
        ::waitpid(child, &status, 0);
    }
    std::this_thread::sleep_for(200ms);
    stop = true;
    for (auto& t : readers) t.join();
    REQUIRE(exited);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    CHECK(wrong == 0);
    CHECK(failed == 0);
    CHECK(ok > 0);
    for (int i = 0; i < keys; ++i) CHECK(backend->get<int>(key(i)).value()->data == i * 1000);
}

TEST_CASE("requirepass: password-only AUTH") {
    RedisServer legacy({.requirepass = "legacy-secret-77"});
    auto ok = hitbox::RedisBackend<>::builder()
                  .connection(hitbox::ConnectionMode::single(
                      "redis://:legacy-secret-77@127.0.0.1:" + std::to_string(legacy.port()) + "/"))
                  .build();
    REQUIRE(ok);
    REQUIRE(ok->set(hitbox::CacheKey{"k", 0}, hitbox::CacheValue<int>{5}));
    CHECK(ok->get<int>(hitbox::CacheKey{"k", 0}).value()->data == 5);

    auto wrong = hitbox::RedisBackend<>::builder()
                     .connection(hitbox::ConnectionMode::single(legacy.url()))
                     .password("legacy-secret-78")
                     .build();
    REQUIRE(wrong);
    auto denied = wrong->get<int>(hitbox::CacheKey{"k", 0});
    REQUIRE_FALSE(denied);
    CHECK(denied.error().kind() == hitbox::ErrorKind::auth);
    CHECK(denied.error().what().find("legacy-secret-78") == std::string::npos);
}
