// Suite 'redis': configurations built by hitbox::make_backend against a real redis-server (started on a free
// loopback port): every key format x value format x compressor round-trips, entries interoperate with the
// static RedisBackend of the same policies, and memory + redis serves L2 hits with a refill of L1.
#include <catch2/catch.hpp>

#include <string>

#include <hitbox/config.hpp>
#include <hitbox/hitbox.hpp>

#include "support/redis_server.hpp"
#include "support/test_types.hpp"

using namespace std::chrono_literals;
using hitbox::BackendConfig;
using hitbox::CacheKey;
using hitbox::CacheValue;
using hitbox::TierConfig;

namespace {

[[maybe_unused]] const bool have_server = hitbox_test::require_redis_server();

hitbox_test::RedisServer& server() {
    static hitbox_test::RedisServer s;
    return s;
}

TierConfig redis_tier(std::string prefix) {
    TierConfig t;
    t.name = "redis";
    t.urls = {server().url()};
    t.key_prefix = std::move(prefix);
    return t;
}

template <class R>
std::string message_of(const R& r) {
    return r ? std::string("(no error)") : r.error().message();
}

}  // namespace

TEST_CASE("config_redis: every key format x value format x compressor round-trips through a real server") {
    hitbox::InlineOffload offload;
    const auto profile = hitbox_test::sample_profile();
    for (auto kf : hitbox::config_names::key_formats)
        for (auto vf : hitbox::config_names::value_formats)
            for (auto comp : hitbox::config_names::compressors) {
                const std::string combo = std::string(kf) + "/" + std::string(vf) + "/" + std::string(comp);
                BackendConfig c;
                c.tiers = {redis_tier("cfg:" + combo + ":")};
                c.tiers[0].key_format = std::string(kf);
                c.tiers[0].value_format = std::string(vf);
                c.tiers[0].compressor = std::string(comp);
                auto b = hitbox::make_backend(c, offload);
                INFO(combo << ": " << message_of(b));
                REQUIRE(b);
                const CacheKey key{"p", 1, {{"combo", combo}}};
                const auto now = hitbox::Clock::now();
                if (vf == "raw") {
                    const CacheValue<hitbox_test::Point> v{{3, 4, 1.5}, now + 60s, now + 30s, now};
                    REQUIRE(b->set(key, v));
                    auto back = b->get<hitbox_test::Point>(key);
                    INFO(message_of(back));
                    REQUIRE(back);
                    REQUIRE(back->has_value());
                    CHECK(**back == v);
                } else {
                    const CacheValue<hitbox_test::Profile> v{profile, now + 60s, now + 30s, now};
                    REQUIRE(b->set(key, v));
                    auto back = b->get<hitbox_test::Profile>(key);
                    INFO(message_of(back));
                    REQUIRE(back);
                    REQUIRE(back->has_value());
                    CHECK(**back == v);
                }
                auto removed = b->remove(key);
                REQUIRE(removed);
                CHECK(*removed);
            }
}

TEST_CASE("config_redis: a configured tier and the static RedisBackend of the same policies share entries") {
    hitbox::InlineOffload offload;
    BackendConfig c;
    c.tiers = {redis_tier("interop:")};
    c.tiers[0].key_format = "url";
    c.tiers[0].value_format = "json";
    c.tiers[0].compressor = "zstd";
    c.tiers[0].compression_level = 7;
    auto configured = hitbox::make_backend(c, offload);
    REQUIRE(configured);
    auto typed = hitbox::RedisBackend<>::builder()
                     .connection(hitbox::ConnectionMode::single(server().url()))
                     .key_prefix("interop:")
                     .key_format<hitbox::UrlEncoded>()
                     .value_format<hitbox::JsonFormat>()
                     .compressor(hitbox::ZstdCompressor{7})
                     .build();
    REQUIRE(typed);
    const CacheKey a{"user", 1, {{"id", "1"}}};
    const CacheKey b{"user", 1, {{"id", "2"}}};
    const auto now = hitbox::Clock::now();
    const CacheValue<hitbox_test::Profile> va{hitbox_test::sample_profile("A"), now + 60s, std::nullopt, now};
    const CacheValue<hitbox_test::Profile> vb{hitbox_test::sample_profile("B"), std::nullopt, std::nullopt, now};

    REQUIRE(configured->set(a, va));
    auto read_typed = typed->get<hitbox_test::Profile>(a);
    REQUIRE(read_typed);
    REQUIRE(read_typed->has_value());
    CHECK(**read_typed == va);

    REQUIRE(typed->set(b, vb));
    auto read_configured = configured->get<hitbox_test::Profile>(b);
    REQUIRE(read_configured);
    REQUIRE(read_configured->has_value());
    CHECK(**read_configured == vb);

    // The expiry reached Redis as a PX in milliseconds; "no expiry" stayed no expiry.
    const auto pttl_a = std::stoll(server().cli({"PTTL", "interop:user:v1:id=1"}));
    CHECK(pttl_a > 55'000);
    CHECK(pttl_a <= 60'000);
    CHECK(server().cli({"PTTL", "interop:user:v1:id=2"}) == "-1");
}

TEST_CASE("config_redis: a configured tier counts what it reads as the static RedisBackend does") {
    hitbox::InlineOffload offload;
    BackendConfig c;
    c.tiers = {redis_tier("counted:")};
    c.tiers[0].key_format = "url";
    auto configured = hitbox::make_backend(c, offload);
    REQUIRE(configured);
    auto typed = hitbox::RedisBackend<hitbox::UrlEncoded>::builder()
                     .connection(hitbox::ConnectionMode::single(server().url()))
                     .key_prefix("counted:")
                     .build();
    REQUIRE(typed);
    const auto now = hitbox::Clock::now();
    const CacheKey good{"c", 1, {{"id", "good"}}}, absent{"c", 1, {{"id", "absent"}}};
    const CacheKey expired{"c", 1, {{"id", "expired"}}}, corrupt{"c", 1, {{"id", "corrupt"}}};
    const CacheKey other{"c", 1, {{"id", "other"}}}, foreign{"c", 1, {{"id", "foreign"}}};
    REQUIRE(typed->set(good, CacheValue<hitbox_test::Profile>{hitbox_test::sample_profile(), now + 60s}));
    // An envelope past its expiry, stored without a Redis TTL (clocks of two hosts may differ).
    REQUIRE(
        typed->write(expired, *typed->codec().encode(CacheValue<hitbox_test::Profile>{{}, now - 1s}), std::nullopt));
    (void)server().cli({"SET", "counted:c:v1:id=corrupt", "not an envelope"});
    REQUIRE(typed->set(other, CacheValue<std::string>{"not a profile"}));  // a payload of another type
    hitbox::EntryCodec<hitbox::UrlEncoded, hitbox::JsonFormat> json;       // another value format
    REQUIRE(typed->write(foreign, *json.encode(CacheValue<hitbox_test::Profile>{{}}), std::nullopt));

    auto* tier = configured->target<hitbox::RedisBackend<hitbox::UrlEncoded, hitbox::BinaryFormat,
                                                         hitbox::PassthroughCompressor, hitbox::AnyConnection>>();
    REQUIRE(tier != nullptr);
    const auto static_before = typed->stats();
    for (const auto& k : {good, absent, expired, corrupt, other, foreign}) {
        INFO(hitbox::UrlEncoded{}.encode(k));
        auto a = typed->get<hitbox_test::Profile>(k);
        auto b = configured->get<hitbox_test::Profile>(k);
        REQUIRE(a.has_value() == b.has_value());
        if (a)
            CHECK(a->has_value() == b->has_value());
        else
            CHECK(a.error().kind() == b.error().kind());
    }
    const auto s = typed->stats(), t = tier->stats();
    CHECK(t.reads == 6);
    CHECK(t.misses == s.misses - static_before.misses);  // absent and expired
    CHECK(t.misses == 2);
    CHECK(t.errors_of(hitbox::ErrorKind::decode) ==
          s.errors_of(hitbox::ErrorKind::decode) - static_before.errors_of(hitbox::ErrorKind::decode));
    CHECK(t.errors_of(hitbox::ErrorKind::decode) == 3);  // corrupt, another format, another type
    // The configured tier decodes a payload on its first typed read, after the read that found it: the
    // payload of another type is a hit of the read and a decode error of that typed read.
    CHECK(t.hits == s.hits - static_before.hits + 1);
    CHECK(t.hits == 2);
}

TEST_CASE("config_redis: cache.lock_ttl takes the stampede lock in the configured Redis tier") {
    // Written L1 memory, L2 Redis and the other way round: the lock is found in whichever tier has one.
    for (const std::string tiers : {"memory, redis", "redis, memory"}) {
        INFO(tiers);
        auto text = "tiers = " + tiers + "\nmemory.max_entries = 100\nredis.url = " + server().url() +
                    "\nredis.key_prefix = locked:\ncache.ttl = 60s\ncache.lock_ttl = 5s\n";
        auto c = hitbox::parse_config(text);
        REQUIRE(c);
        hitbox::OffloadManager offload{c->offload};
        auto backend = hitbox::make_backend(*c, offload);
        REQUIRE(backend);
        hitbox::Cache cache{*backend, offload, hitbox::NoMetrics{}, hitbox::SystemClock{},
                            hitbox::CacheOptions{.policy = c->cache}};
        int calls = 0;
        auto r = cache.get_or_compute<int>(CacheKey{"locked", 1, {{"t", tiers}}}, [&] { return ++calls + 41; });
        INFO((r.error ? r.error->what() : std::string("no error")));
        CHECK(r.value == std::optional<int>(42));
        CHECK(calls == 1);
        CHECK(r.backend_errors.empty());
        CHECK(cache.stats().locks_taken == 1);
    }
    // Without a Redis tier there is no lock to take: refused when the text is read.
    auto alone = hitbox::parse_config("tiers = memory\nmemory.max_entries = 10\ncache.lock_ttl = 5s\n");
    REQUIRE_FALSE(alone);
    CHECK(alone.error().message().find("cache.lock_ttl needs a redis tier") != std::string::npos);
    // An AnyBackend over a memory tier written in code: its lock calls answer config; the front loads
    // without the lock and reports that error.
    auto memory = hitbox::MemoryBackend::builder().max_entries(10).build();
    REQUIRE(memory);
    hitbox::AnyBackend any(std::move(*memory));
    hitbox::InlineOffload inline_offload;
    hitbox::Cache plain{any, inline_offload};
    auto p = plain.get_or_compute<int>(CacheKey{"plain", 1}, [] { return 7; }, {.ttl = 60s, .lock_ttl = 5s});
    CHECK(p.value == std::optional<int>(7));
    REQUIRE(p.backend_errors.size() == 1);
    CHECK(p.backend_errors[0].kind() == hitbox::ErrorKind::config);
    CHECK(p.backend_errors[0].message().find("holds no lock") != std::string::npos);
}

TEST_CASE("config_redis: memory + redis from text: write-through, L2 hit refills L1") {
    auto text = "tiers = memory, redis\nmemory.max_entries = 100\nredis.url = " + server().url() +
                "\nredis.key_prefix = two:\nredis.value_format = binary\nredis.compressor = gzip\n"
                "redis.duration_histograms = true\nmemory.duration_histograms = true\n";
    auto c = hitbox::parse_config(text);
    REQUIRE(c);
    hitbox::OffloadManager offload{c->offload};
    auto tiers = hitbox::make_backend(*c, offload);
    REQUIRE(tiers);
    const CacheKey key{"k", 1, {{"id", "9"}}};
    const CacheValue<std::string> v{"value", hitbox::Clock::now() + 60s};
    auto stored = tiers->store(key, v);
    REQUIRE(stored);
    CHECK(stored->written == std::vector<std::string>{"cache.memory", "cache.redis"});

    // A second, independent configured backend over the same Redis sees the entry in L2 only.
    hitbox::OffloadManager offload2{c->offload};
    auto other = hitbox::make_backend(*c, offload2);
    REQUIRE(other);
    auto first = other->lookup<std::string>(key);
    REQUIRE(first);
    CHECK(first->source == "cache.redis");
    CHECK(first->value->data == "value");
    CHECK(first->value->expire == v.expire);
    auto second = other->lookup<std::string>(key);
    REQUIRE(second);
    CHECK(second->source == "cache.memory");
    // The configured tiers export their own series (prometheus_text calls this for an AnyBackend): the
    // Redis tier's round trip and the memory tier's miss then hit, under the same label paths.
    hitbox::PrometheusWriter metrics;
    other->write_metrics(metrics);
    const std::string series = metrics.str();
    auto has = [&](const std::string& line) {
        INFO(series);
        CHECK(series.find(line + "\n") != std::string::npos);
    };
    has("hitbox_backend_read_total{backend=\"cache.redis\"} 1");
    has("hitbox_backend_hits_total{backend=\"cache.redis\"} 1");
    has("hitbox_backend_hits_total{backend=\"cache.memory\"} 1");
    has("hitbox_backend_misses_total{backend=\"cache.memory\"} 1");
    has("hitbox_compose_refills_total{backend=\"cache\"} 1");
    // duration_histograms = true: the Redis round trip is timed (encoding is the erased tier's, not timed).
    has("hitbox_backend_read_duration_seconds_count{backend=\"cache.redis\"} 1");
    has("hitbox_backend_read_duration_seconds_count{backend=\"cache.memory\"} 2");
    CHECK(series.find("hitbox_backend_deserialize_duration_seconds") == std::string::npos);

    auto removed = tiers->remove(key);
    REQUIRE(removed);
    CHECK(*removed);
    auto direct = hitbox::RedisBackend<>::builder()
                      .connection(hitbox::ConnectionMode::single(server().url()))
                      .key_prefix("two:")
                      .compressor(hitbox::GzipCompressor{})
                      .build();
    REQUIRE(direct);
    auto gone = direct->get<std::string>(key);
    REQUIRE(gone);
    CHECK_FALSE(gone->has_value());
}

TEST_CASE(
    "config_redis: three tiers (memory, memory, redis): an entry only in Redis is served from it and refills both") {
    auto text =
        "tiers = near, far, redis\nnear.type = memory\nnear.max_entries = 10\nfar.type = memory\n"
        "far.max_entries = 1000\nredis.url = " +
        server().url() + "\nredis.key_prefix = three:\n";
    auto c = hitbox::parse_config(text);
    REQUIRE(c);
    hitbox::InlineOffload offload;
    auto tiers = hitbox::make_backend(*c, offload);
    REQUIRE(tiers);
    auto direct = hitbox::RedisBackend<>::builder()
                      .connection(hitbox::ConnectionMode::single(server().url()))
                      .key_prefix("three:")
                      .build();
    REQUIRE(direct);
    const CacheKey key{"k", 1, {{"id", "3"}}};
    REQUIRE(direct->set(key, CacheValue<std::string>{"deep", hitbox::Clock::now() + 60s}));
    auto first = tiers->lookup<std::string>(key);
    REQUIRE(first);
    CHECK(first->source == "cache.redis");
    CHECK(first->value->data == "deep");
    auto second = tiers->lookup<std::string>(key);
    REQUIRE(second);
    CHECK(second->source == "cache.near");
    REQUIRE(tiers->remove(key));
    auto gone = direct->get<std::string>(key);
    REQUIRE(gone);
    CHECK_FALSE(gone->has_value());
}
