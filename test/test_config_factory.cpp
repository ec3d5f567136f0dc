// Run-time configuration: hitbox::parse_config, config_from_env, validate_config (unknown names list the
// valid ones) and the factory hitbox::make_backend / make_tier, which builds every combination doc/configuration.md
// lists. Redis tiers here point at a closed port (building never connects); suite 'redis' runs the same
// configurations against a real server (test_config_factory_redis.cpp).
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <clocale>
#include <string>
#include <vector>

#include <hitbox/config.hpp>
#include <hitbox/hitbox.hpp>

#include "support/test_types.hpp"

using namespace std::chrono_literals;
using hitbox::BackendConfig;
using hitbox::CacheKey;
using hitbox::CacheValue;
using hitbox::ErrorKind;
using hitbox::TierConfig;

namespace {

/// A URL nothing listens on: connects are refused at once.
const std::string closed_url = "redis://127.0.0.1:1/";

TierConfig memory_tier(std::string name = "memory", std::uint64_t entries = 1000) {
    TierConfig t;
    if (name != "memory") t.type = "memory";
    t.name = std::move(name);
    t.max_entries = entries;
    return t;
}

TierConfig redis_tier(std::string name = "redis") {
    TierConfig t;
    t.name = std::move(name);
    t.urls = {closed_url};
    t.connect_timeout = 200ms;
    t.command_timeout = 200ms;
    return t;
}

std::string error_of(const hitbox::Result<BackendConfig>& r) {
    return r ? std::string("(no error)") : r.error().message();
}

template <class R>
std::string message_of(const R& r) {
    return r ? std::string("(no error)") : r.error().message();
}

const CacheKey key{"config", 1, {{"id", "1"}}};

}  // namespace

TEST_CASE("parse_config: every key lands in its field") {
    auto c = hitbox::parse_config(R"(
        # a comment, then blank lines

        tiers = local, shared
        label = users
        read = race
        write = sequential
        refill = always
        refill_offloaded = true
        race_loser = drop
        steal_after = 250us
        offload.workers = 2
        offload.max_queue = 64
        offload.drain_timeout = 3s
        cache.ttl = 60s
        cache.stale = 45s
        cache.stale_policy = offload_revalidate
        cache.concurrency = 2
        cache.waiter_timeout = 1500ms
        cache.retries = 3
        cache.negative_ttl = 5s
        cache.negative_l1_only = yes
        local.type = memory
        local.max_bytes = 64MiB
        local.shards = 8
        local.cleanup_interval = 1m
        local.duration_histograms = yes
        shared.type = redis
        shared.url = redis://cache.internal:6379/2
        shared.username = app
        shared.password = s3cret
        shared.key_format = url
        shared.value_format = json
        shared.compressor = zstd
        shared.compression_level = 5
        shared.max_decompressed = 8MiB
        shared.key_prefix = app:
        shared.connect_timeout = 2s
        shared.command_timeout = 250ms
        shared.reconnect_backoff_initial = 50ms
        shared.reconnect_backoff_max = 10s
        shared.max_reply_bytes = 16MiB
        shared.duration_histograms = true
    )");
    INFO(error_of(c));
    REQUIRE(c);
    CHECK(c->label == "users");
    CHECK(c->read == "race");
    CHECK(c->write == "sequential");
    CHECK(c->refill == "always");
    CHECK(c->refill_offloaded);
    CHECK(c->race_loser == "drop");
    CHECK(c->steal_after == 250us);
    CHECK(c->offload.workers == 2);
    CHECK(c->offload.max_queue == 64);
    CHECK(c->offload.drain_timeout == 3s);
    CHECK(c->cache.ttl == 60s);
    CHECK(c->cache.stale == 45s);
    CHECK(c->cache.stale_policy == hitbox::StalePolicy::OffloadRevalidate);
    CHECK(c->cache.concurrency == 2);
    CHECK(c->cache.waiter_timeout == 1500ms);
    CHECK(c->cache.retries == 3);
    CHECK(c->cache.negative_ttl == 5s);
    CHECK(c->cache.negative_l1_only);
    REQUIRE(c->tiers.size() == 2);
    const TierConfig& local = c->tiers[0];
    CHECK(local.name == "local");
    CHECK(local.effective_type() == "memory");
    CHECK(local.max_bytes == 64u << 20);
    CHECK(local.shards == 8u);
    CHECK(local.cleanup_interval == 60s);
    CHECK(local.duration_histograms);
    const TierConfig& shared = c->tiers[1];
    CHECK(shared.effective_type() == "redis");
    CHECK(shared.urls == std::vector<std::string>{"redis://cache.internal:6379/2"});
    CHECK(shared.username == "app");
    CHECK(shared.password == "s3cret");
    CHECK(shared.key_format == "url");
    CHECK(shared.value_format == "json");
    CHECK(shared.compressor == "zstd");
    CHECK(shared.compression_level == 5);
    CHECK(shared.max_decompressed == 8u << 20);
    CHECK(shared.key_prefix == "app:");
    CHECK(shared.connect_timeout == 2s);
    CHECK(shared.command_timeout == 250ms);
    CHECK(shared.reconnect_backoff_initial == 50ms);
    CHECK(shared.reconnect_backoff_max == 10s);
    CHECK(shared.max_reply_bytes == 16u << 20);
    CHECK(shared.duration_histograms);
    CHECK(hitbox::validate_config(*c));
}

TEST_CASE("parse_config: mistakes are config errors that say where and what is valid") {
    auto error = [](std::string_view text) {
        auto c = hitbox::parse_config(text);
        REQUIRE_FALSE(c);
        CHECK(c.error().kind() == ErrorKind::config);
        return c.error().message();
    };
    CHECK(error("memory.max_entries = 10") ==
          "missing key \"tiers\" (the tiers, fastest first, e.g. tiers = memory, redis)");
    CHECK(error("tiers = memory\nnonsense") == "line 2: expected key = value");
    CHECK(error("tiers = memory, memory") == "tiers: \"memory\" is listed twice");
    CHECK(error("tiers = memory\nredis.url = redis://x/") ==
          "line 2: key \"redis.url\" names tier \"redis\", which is not in tiers (memory)");
    const auto unknown_option = error("tiers = memory\nmemory.max_entires = 10");
    CHECK(
        unknown_option.starts_with("line 2: unknown tier option \"max_entires\" (memory.max_entires); valid: type, "
                                   "max_entries, max_bytes,"));
    const auto unknown_key = error("tiers = memory\n\nreed = race");
    CHECK(unknown_key.starts_with("line 3: unknown key \"reed\"; valid: tiers, label, read, write,"));
    CHECK(unknown_key.find("<tier>.<option> with option one of: type, max_entries") != std::string::npos);
    CHECK(error("tiers = memory\nmemory.max_entries = ten") ==
          "line 2: memory.max_entries: expected a non-negative integer, got \"ten\"");
    CHECK(error("tiers = memory\nmemory.max_bytes = 10 PB") ==
          "line 2: memory.max_bytes: unknown size unit in \"10 PB\"; valid: B, KiB, MiB, GiB, kB, MB, GB (or none: "
          "bytes)");
    CHECK(error("tiers = redis\nredis.command_timeout = 250") ==
          "line 2: redis.command_timeout: expected a duration with a unit (us, ms, s, m, h), got \"250\"");
    CHECK(error("tiers = memory\nrefill_offloaded = maybe") ==
          "line 2: refill_offloaded: expected true or false, got \"maybe\"");
    CHECK(error("tiers = memory\ncache.stale_policy = later") ==
          "line 2: unknown cache.stale_policy \"later\"; valid: return, revalidate, offload_revalidate");
    // A key set twice is an error naming both lines, not a silent last-wins (nor "unknown key \"tiers\"").
    CHECK(error("tiers = memory\ntiers = memory, redis") == "line 2: key \"tiers\" is set twice (also line 1)");
    CHECK(error("tiers = memory\nmemory.max_entries = 5\n# bigger\nmemory.max_entries = 6") ==
          "line 4: key \"memory.max_entries\" is set twice (also line 2)");
    // url and urls set the same field.
    CHECK(error("tiers = redis\nredis.url = redis://a/\nredis.urls = redis://b/") ==
          "line 3: key \"redis.urls\" is set twice (also line 2 as redis.url)");
    // What parse_config returns can be built: the checks of validate_config run too (an OffloadManager
    // built from offload.workers = 0 would throw).
    CHECK(error("tiers = memory\nmemory.max_entries = 10\noffload.workers = 0") ==
          "OffloadManager: workers must be 1..1024, got 0");
    CHECK(error("tiers = memory") == "memory tier \"memory\" needs a bound: max_entries or max_bytes");
    // ... the memory builder's rules and the Redis URLs' form too (make_backend refused these after
    // parse_config had accepted them).
    CHECK(error("tiers = memory\nmemory.max_entries = 100\nmemory.shards = 3") ==
          "tier memory: shards must be a power of two from 1 to 1024, got 3");
    CHECK(error("tiers = memory\nmemory.max_entries = 100\nmemory.shards = 2048") ==
          "tier memory: shards must be a power of two from 1 to 1024, got 2048");
    CHECK(error("tiers = memory\nmemory.max_entries = 10\nmemory.shards = 16") ==
          "tier memory: shards (16) exceeds max_entries (10)");
    CHECK(error("tiers = memory\nmemory.max_entries = 10\nmemory.cleanup_interval = 0s") ==
          "tier memory: cleanup_interval must be positive");
    CHECK(error("tiers = redis\nredis.url = http://h:1/") ==
          "tier redis: Redis URL 'http://h:1/': unknown scheme 'http' (expected redis, rediss, unix or redis+unix)");
    CHECK(
        error("tiers = redis\nredis.url = redis://h:99999/").starts_with("tier redis: Redis URL 'redis://h:99999/': "));
    CHECK(error("tiers = redis\nredis.mode = cluster\nredis.urls = redis://a:7000/, redis://:secret@b:x/")
              .find("secret") == std::string::npos);
    // A long tiers list is refused before any work per tier (it once took 45 s for 100 000 names).
    std::string many = "tiers = t0";
    for (int i = 1; i < 100'000; ++i) many += ", t" + std::to_string(i);
    const auto started = std::chrono::steady_clock::now();
    CHECK(error(many) == "line 1: at most 3 tiers can be composed, got 100000");
    CHECK(std::chrono::steady_clock::now() - started < 10s);  // 45 s before; milliseconds now
    // Control bytes the input carries into a message are escaped: no NUL, no forged log line.
    using namespace std::string_literals;
    const auto escaped = error("tiers = memory\nreed\0x\x1b[31m = race"s);
    CHECK(escaped.starts_with("line 2: unknown key \"reed\\x00x\\x1b[31m\"; valid: tiers,"));
    CHECK(std::none_of(escaped.begin(), escaped.end(), [](char ch) { return static_cast<unsigned char>(ch) < 0x20; }));
    CHECK(error("tiers = memory\nmemory.max_entries = 1\r0") ==
          "line 2: memory.max_entries: expected a non-negative integer, got \"1\\x0d0\"");
    BackendConfig bad;
    bad.tiers.push_back({});
    bad.tiers.back().name = "a\nb";
    auto v = hitbox::validate_config(bad);
    REQUIRE_FALSE(v);
    CHECK(v.error().message() == "tier name \"a\\x0ab\": use letters, digits, '_' and '-' only");
}

TEST_CASE("parse_config: a byte order mark is skipped; fractions read the same in any locale") {
    auto c = hitbox::parse_config("\xEF\xBB\xBFtiers = memory\nmemory.max_entries = 10\ncache.jitter = 0.25\n");
    INFO(error_of(c));
    REQUIRE(c);
    CHECK(c->tiers.size() == 1);
    CHECK(c->cache.jitter == 0.25);
    // A locale with a decimal comma (when the machine has one) must not change what "0.25" means.
    const std::string before = std::setlocale(LC_NUMERIC, nullptr);
    for (const char* name : {"de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8", "C.UTF-8"}) {
        if (std::setlocale(LC_NUMERIC, name) == nullptr) continue;
        auto again = hitbox::parse_config("tiers = memory\nmemory.max_entries = 10\ncache.jitter = 0.25\n");
        CHECK(again);
        if (again) CHECK(again->cache.jitter == 0.25);
        CHECK_FALSE(hitbox::parse_config("tiers = memory\nmemory.max_entries = 10\ncache.jitter = 0,25\n"));
    }
    std::setlocale(LC_NUMERIC, before.c_str());
    // Hexadecimal is not a fraction, as it is not an integer elsewhere.
    CHECK_FALSE(hitbox::parse_config("tiers = memory\nmemory.max_entries = 10\ncache.jitter = 0x0.8\n"));
}

TEST_CASE("parse_config never repeats a password") {
    auto c = hitbox::parse_config("tiers = redis\nredis.password = hunter2\nredis.compression_level = hunter2");
    REQUIRE_FALSE(c);
    CHECK(c.error().message().find("hunter2") != std::string::npos);  // compression_level is not a secret
    auto d = hitbox::parse_config("tiers = redis\nredis.password = hunter2\nredis.nope = 1");
    REQUIRE_FALSE(d);
    CHECK(d.error().message().find("hunter2") == std::string::npos);
    // A parsed configuration is validated: the unknown format is reported by parse_config already...
    auto e = hitbox::parse_config("tiers = redis\nredis.url = redis://u:hunter2@host/\nredis.value_format = jsn");
    REQUIRE_FALSE(e);
    CHECK(e.error().message().find("hunter2") == std::string::npos);
    CHECK(e.error().message().find("jsn") != std::string::npos);
    // ... and by make_tier for a TierConfig written in code.
    hitbox::TierConfig t;
    t.name = "redis";
    t.urls = {"redis://u:hunter2@host/"};
    t.value_format = "jsn";
    auto built = hitbox::make_tier(t);
    REQUIRE_FALSE(built);
    CHECK(built.error().message().find("hunter2") == std::string::npos);
    CHECK(built.error().message().find("jsn") != std::string::npos);
}

TEST_CASE("config_from_env: HITBOX_ variables, tier options by tier name") {
    std::vector<std::string> vars = {"PATH=/usr/bin",
                                     "HITBOX_TIERS=memory,redis",
                                     "HITBOX_READ=parallel",
                                     "HITBOX_OFFLOAD_WORKERS=3",
                                     "HITBOX_CACHE_TTL=30s",
                                     "HITBOX_MEMORY_MAX_ENTRIES=500",
                                     "HITBOX_REDIS_URL=redis://127.0.0.1:6380/",
                                     "HITBOX_REDIS_VALUE_FORMAT=xml",
                                     "HITBOX_REDIS_COMPRESSOR=gzip",
                                     "OTHER_REDIS_URL=ignored"};
    std::vector<char*> env;
    for (auto& v : vars) env.push_back(v.data());
    env.push_back(nullptr);
    auto c = hitbox::config_from_env(env.data());
    INFO(error_of(c));
    REQUIRE(c);
    CHECK(c->read == "parallel");
    CHECK(c->offload.workers == 3);
    CHECK(c->cache.ttl == 30s);
    REQUIRE(c->tiers.size() == 2);
    CHECK(c->tiers[0].max_entries == 500u);
    CHECK(c->tiers[1].urls == std::vector<std::string>{"redis://127.0.0.1:6380/"});
    CHECK(c->tiers[1].value_format == "xml");
    CHECK(c->tiers[1].compressor == "gzip");
    CHECK(hitbox::validate_config(*c));

    std::vector<std::string> bad = {"HITBOX_TIERS=memory", "HITBOX_MEMORY_MAX_ENTRIES=5", "HITBOX_MEMORY_SIZE=9"};
    std::vector<char*> env2;
    for (auto& v : bad) env2.push_back(v.data());
    env2.push_back(nullptr);
    auto d = hitbox::config_from_env(env2.data());
    REQUIRE_FALSE(d);
    CHECK(d.error().message().starts_with("HITBOX_MEMORY_SIZE: unknown tier option \"size\" (memory.size); valid:"));
}

TEST_CASE("validate_config: every unknown name lists the valid ones") {
    BackendConfig base;
    base.tiers = {memory_tier(), redis_tier()};
    REQUIRE(hitbox::validate_config(base));

    auto error = [](const BackendConfig& c) {
        auto r = hitbox::validate_config(c);
        REQUIRE_FALSE(r);
        CHECK(r.error().kind() == ErrorKind::config);
        return r.error().message();
    };
    auto with = [&](auto change) {
        BackendConfig c = base;
        change(c);
        return error(c);
    };
    // More tiers than make_backend folds: refused here already, before anything is built.
    CHECK(with([](BackendConfig& c) {
              c.tiers = {memory_tier("a"), memory_tier("b"), memory_tier("c"), memory_tier("d")};
          }) == "at most 3 tiers can be composed, got 4");
    CHECK(with([](BackendConfig& c) { c.tiers[1].value_format = "jsn"; }) ==
          "unknown value_format \"jsn\" (tier redis); valid: binary, json, xml, raw");
    CHECK(with([](BackendConfig& c) { c.tiers[1].key_format = "hex"; }) ==
          "unknown key_format \"hex\" (tier redis); valid: bitcode, url");
    CHECK(with([](BackendConfig& c) { c.tiers[1].compressor = "lz4"; }) ==
          "unknown compressor \"lz4\" (tier redis); valid: passthrough, none, gzip, zstd");
    CHECK(with([](BackendConfig& c) { c.tiers[1].mode = "sentinel"; }) ==
          "unknown mode \"sentinel\" (tier redis); valid: single, cluster");
    CHECK(with([](BackendConfig& c) { c.tiers[1].type = "memcached"; }) ==
          "unknown tier type \"memcached\" (tier redis); valid: memory, redis");
    CHECK(with([](BackendConfig& c) { c.read = "fastest"; }) ==
          "unknown read policy \"fastest\"; valid: sequential, race, parallel");
    CHECK(with([](BackendConfig& c) { c.write = "parallel"; }) ==
          "unknown write policy \"parallel\"; valid: sequential, optimistic_parallel, race");
    CHECK(with([](BackendConfig& c) { c.refill = "sometimes"; }) ==
          "unknown refill policy \"sometimes\"; valid: always, never");
    CHECK(with([](BackendConfig& c) { c.race_loser = "keep"; }) == "unknown race_loser \"keep\"; valid: offload, drop");
    CHECK(with([](BackendConfig& c) {
              c.tiers[0].name = "l1";
              c.tiers[0].type.clear();
          }) == "tier \"l1\" has no type (set l1.type); valid: memory, redis");
    CHECK(with([](BackendConfig& c) { c.tiers[1].name = "memory"; }) == "tier name \"memory\" is used twice");
    CHECK(with([](BackendConfig& c) { c.tiers[1].name = "my.redis"; }) ==
          "tier name \"my.redis\": use letters, digits, '_' and '-' only");
    CHECK(with([](BackendConfig& c) { c.tiers[1].name = "offload"; }) ==
          "tier name \"offload\" is reserved (cache.* and offload.* are settings)");
    CHECK(with([](BackendConfig& c) { c.tiers[0].urls = {"redis://x/"}; }) ==
          "option url/urls does not apply to memory tier \"memory\"");
    CHECK(with([](BackendConfig& c) { c.tiers[1].max_entries = 5; }) ==
          "option max_entries does not apply to redis tier \"redis\"");
    CHECK(with([](BackendConfig& c) { c.tiers[0].max_entries.reset(); }) ==
          "memory tier \"memory\" needs a bound: max_entries or max_bytes");
    CHECK(with([](BackendConfig& c) { c.tiers[1].urls.clear(); }) ==
          "redis tier \"redis\" needs a url (redis.url = redis://host:6379/)");
    CHECK(with([](BackendConfig& c) { c.tiers[1].urls.push_back("redis://b/"); }) ==
          "redis tier \"redis\" in single mode takes one url, got 2");
    CHECK(with([](BackendConfig& c) { c.tiers[1].compression_level = 3; }) ==
          "tier redis: compression_level and max_decompressed need compressor gzip or zstd");
    CHECK(with([](BackendConfig& c) {
              c.tiers[1].compressor = "gzip";
              c.tiers[1].compression_level = 12;
          }) == "tier redis: gzip compression_level must be 0..9, got 12");
    CHECK(with([](BackendConfig& c) {
              c.tiers[1].compressor = "zstd";
              c.tiers[1].compression_level = 0;
          }) == "tier redis: zstd compression_level must be 1..22, got 0");
    CHECK(with([](BackendConfig& c) {
              c.refill = "never";
              c.refill_offloaded = true;
          }) == "refill_offloaded needs refill = always");
    CHECK(with([](BackendConfig& c) { c.offload.workers = 0; }) == "OffloadManager: workers must be 1..1024, got 0");
    CHECK(with([](BackendConfig& c) {
              c.cache.ttl = 10s;
              c.cache.stale = 20s;
          }) == "CachePolicy: stale (20000 ms) must be shorter than ttl (10000 ms)");
    CHECK(error(BackendConfig{}) == "no tiers configured (list them fastest first)");
}

TEST_CASE("make_backend: a memory tier alone is the tier itself") {
    hitbox::InlineOffload offload;
    BackendConfig c;
    c.tiers = {memory_tier("local")};
    auto b = hitbox::make_backend(c, offload);
    REQUIRE(b);
    CHECK(b->label() == "local");
    CHECK(b->target<hitbox::MemoryBackend>() != nullptr);
    REQUIRE(b->set(key, CacheValue<hitbox_test::Profile>{hitbox_test::sample_profile()}));
    auto hit = b->get<hitbox_test::Profile>(key);
    REQUIRE(hit);
    REQUIRE(hit->has_value());
    CHECK((*hit)->data == hitbox_test::sample_profile());
}

TEST_CASE("make_backend: what the builders would refuse is a config error before anything is built") {
    hitbox::InlineOffload offload;
    BackendConfig c;
    c.tiers = {memory_tier()};
    c.tiers[0].shards = 3;
    auto b = hitbox::make_backend(c, offload);
    REQUIRE_FALSE(b);
    CHECK(b.error().kind() == ErrorKind::config);
    CHECK(b.error().message() == "tier memory: shards must be a power of two from 1 to 1024, got 3");
    CHECK_FALSE(hitbox::validate_config(c));  // the same check: what validates, builds

    c.tiers = {redis_tier()};
    c.tiers[0].urls = {"http://example.com/"};
    auto r = hitbox::make_backend(c, offload);
    REQUIRE_FALSE(r);
    CHECK(r.error().kind() == ErrorKind::config);
    CHECK(r.error().message().starts_with("tier redis: Redis URL 'http://example.com/': unknown scheme"));

    c.tiers = {memory_tier("a"), memory_tier("b"), memory_tier("c"), memory_tier("d")};
    auto four = hitbox::make_backend(c, offload);
    REQUIRE_FALSE(four);
    CHECK(four.error().message() == "at most 3 tiers can be composed, got 4");
}

TEST_CASE("make_backend: cluster mode builds (every key format, replica reads)") {
    hitbox::InlineOffload offload;
    for (auto kf : hitbox::config_names::key_formats)
        for (bool replicas : {false, true}) {
            BackendConfig c;
            c.tiers = {redis_tier()};
            c.tiers[0].mode = "cluster";
            c.tiers[0].urls = {"redis://127.0.0.1:1/", "redis://127.0.0.1:2/"};
            c.tiers[0].key_format = std::string(kf);
            c.tiers[0].read_from_replicas = replicas;
            c.tiers[0].value_format = "json";
            c.tiers[0].compressor = "zstd";
            auto b = hitbox::make_backend(c, offload);
            INFO(message_of(b));
            REQUIRE(b);
            CHECK(b->label() == "redis");
            auto r = b->get<int>(key);  // no node answers: an error, not a hang or a crash
            CHECK_FALSE(r);
        }
}

TEST_CASE("make_backend: every key format x value format x compressor of a Redis tier builds") {
    hitbox::InlineOffload offload;
    int built = 0;
    for (auto kf : hitbox::config_names::key_formats)
        for (auto vf : hitbox::config_names::value_formats)
            for (auto comp : hitbox::config_names::compressors) {
                BackendConfig c;
                c.tiers = {redis_tier()};
                c.tiers[0].key_format = std::string(kf);
                c.tiers[0].value_format = std::string(vf);
                c.tiers[0].compressor = std::string(comp);
                auto b = hitbox::make_backend(c, offload);
                INFO(std::string(kf) + " " + std::string(vf) + " " + std::string(comp) + ": " + message_of(b));
                REQUIRE(b);
                CHECK(b->label() == "redis");
                // Nothing listens: an operation fails with a connection error, it does not hang or crash.
                auto r = b->get<int>(key);
                REQUIRE_FALSE(r);
                CHECK(r.error().kind() == ErrorKind::connection);
                ++built;
            }
    CHECK(built == 2 * 4 * 4);
}

TEST_CASE("make_backend: every read x write x refill policy over memory + redis builds and serves from L1") {
    hitbox::InlineOffload offload;
    int built = 0;
    for (auto read : hitbox::config_names::reads)
        for (auto write : hitbox::config_names::writes)
            for (auto refill : hitbox::config_names::refills) {
                BackendConfig c;
                c.tiers = {memory_tier(), redis_tier()};
                c.read = std::string(read);
                c.write = std::string(write);
                c.refill = std::string(refill);
                auto b = hitbox::make_backend(c, offload);
                INFO(std::string(read) + " " + std::string(write) + " " + std::string(refill) + ": " + message_of(b));
                REQUIRE(b);
                CHECK(b->label() == "cache");
                // Redis is unreachable: the write lands in L1 (all but sequential writes succeed with one
                // tier; sequential writes L1 first and reports L2's failure), and L1 answers the read.
                auto stored = b->store(key, CacheValue<std::string>{"v"});
                if (write == "sequential") {
                    REQUIRE_FALSE(stored);
                    CHECK(stored.error().backend() == "cache.redis");
                } else {
                    REQUIRE(stored);
                    CHECK(stored->written.front() == "cache.memory");
                }
                auto found = b->lookup<std::string>(key);
                REQUIRE(found);
                REQUIRE(found->hit());
                CHECK(found->source == "cache.memory");
                CHECK(found->value->data == "v");
                ++built;
            }
    CHECK(built == 3 * 3 * 2);
}

TEST_CASE("make_backend: three tiers fold with label paths per tier, under every outer policy") {
    hitbox::InlineOffload offload;
    for (auto read : hitbox::config_names::reads) {
        const std::size_t n = 3;
        BackendConfig c;
        for (std::size_t i = 0; i < n; ++i) {
            c.tiers.push_back(memory_tier("m" + std::to_string(i)));
        }
        c.label = "stack";
        c.read = std::string(read);
        auto b = hitbox::make_backend(c, offload);
        INFO(read << ": " << message_of(b));
        REQUIRE(b);
        auto stored = b->store(key, CacheValue<int>{7});
        REQUIRE(stored);
        std::vector<std::string> expected;
        for (std::size_t i = 0; i < n; ++i) expected.push_back("stack.m" + std::to_string(i));
        CHECK(stored->written == expected);
        auto found = b->lookup<int>(key);
        REQUIRE(found);
        CHECK(found->source == "stack.m0");
        CHECK(found->value->data == 7);
        auto removed = b->remove(key);
        REQUIRE(removed);
        CHECK(*removed);
        auto gone = b->get<int>(key);
        REQUIRE(gone);
        CHECK_FALSE(gone->has_value());
    }
}

TEST_CASE("make_backend: a parsed configuration sits under hitbox::Cache with its policy") {
    auto c = hitbox::parse_config(R"(
        tiers = memory, redis
        memory.max_entries = 100
        redis.url = redis://127.0.0.1:1/
        redis.connect_timeout = 100ms
        redis.value_format = json
        cache.ttl = 60s
    )");
    REQUIRE(c);
    hitbox::InlineOffload offload;
    auto backend = hitbox::make_backend(*c, offload);
    REQUIRE(backend);
    std::vector<hitbox::Error> seen;
    hitbox::Cache cache{*backend, offload, hitbox::NoMetrics{}, hitbox::SystemClock{},
                        hitbox::CacheOptions{.policy = c->cache, .on_error = [&](const hitbox::CacheErrorEvent& e) {
                                                 seen.push_back(e.error);
                                             }}};
    int loads = 0;
    auto loader = [&] {
        ++loads;
        return hitbox_test::sample_profile();
    };
    auto first = cache.get_or_compute<hitbox_test::Profile>(key, loader);
    REQUIRE(first);
    CHECK(first.status == hitbox::CacheStatus::Miss);
    auto second = cache.get_or_compute<hitbox_test::Profile>(key, loader);
    REQUIRE(second);
    CHECK(second.status == hitbox::CacheStatus::Hit);
    CHECK(*second == hitbox_test::sample_profile());
    CHECK(loads == 1);
    CHECK_FALSE(seen.empty());  // Redis is down: reported, served anyway (fail-open)
}
