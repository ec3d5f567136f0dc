// Memory L1 + Redis L2 end to end, against a real redis-server started by the test: label paths, refill with
// the remaining TTL, stale hits, each tier's own format, Redis down (a failing tier is a miss), and
// concurrent callers on every read policy.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <hitbox/backend/memory/memory_backend.hpp>
#include <hitbox/backend/redis.hpp>
#include <hitbox/compose/compose.hpp>
#include <hitbox/format/json.hpp>
#include <hitbox/offload/offload_manager.hpp>

#include "support/redis_server.hpp"
#include "support/test_types.hpp"

using namespace std::chrono_literals;
using hitbox::CacheKey;
using hitbox::CacheValue;

namespace {

const bool redis_available = hitbox_test::require_redis_server();

hitbox_test::RedisServer& shared_server() {
    static hitbox_test::RedisServer server;
    return server;
}

using Redis = hitbox::RedisBackend<hitbox::Bitcode, hitbox::JsonFormat>;

Redis redis_at(const std::string& url, const std::string& prefix) {
    auto r = Redis::builder()
                 .connection(hitbox::ConnectionMode::single(url))
                 .value_format<hitbox::JsonFormat>()
                 .key_prefix(prefix)
                 .connect_timeout(300ms)
                 .command_timeout(300ms)
                 .build();
    REQUIRE(r);
    return std::move(*r);
}

hitbox::MemoryBackend memory() {
    auto m = hitbox::MemoryBackend::builder().max_entries(1000).build();
    REQUIRE(m);
    return std::move(*m);
}

CacheKey user_key(int id) { return CacheKey{"user", 1, {{"id", std::to_string(id)}}}; }

}  // namespace

TEST_CASE("Memory + Redis: writes reach both tiers, reads name the tier that answered") {
    hitbox::OffloadManager offload;
    auto l1 = memory();
    auto l2 = redis_at(shared_server().url(), "two-tier-basic:");
    auto tiers = hitbox::compose(l1, l2, offload);  // copies are handles on the same stores
    const auto now = hitbox::Clock::now();
    const CacheValue<hitbox_test::Profile> value{hitbox_test::sample_profile(), now + 60s, now + 30s, now};
    const auto key = user_key(1);

    auto stored = tiers.store(key, value);
    REQUIRE(stored);
    CHECK(stored->written == std::vector<std::string>{"cache.memory", "cache.redis"});
    CHECK(stored->errors.empty());

    // Each tier keeps its own form: the object in memory, a JSON envelope in Redis.
    auto in_memory = l1.get<hitbox_test::Profile>(key);
    REQUIRE(in_memory);
    CHECK(*in_memory == std::optional(value));
    auto raw = l2.read(key);
    REQUIRE(raw);
    REQUIRE(raw->has_value());
    auto envelope = hitbox::parse_envelope(**raw);
    REQUIRE(envelope);
    CHECK(envelope->header.format_id == hitbox::JsonFormat::id);

    const auto redis_reads = l2.stats().reads;
    auto first = tiers.lookup<hitbox_test::Profile>(key);
    REQUIRE(first);
    CHECK(first->source == "cache.memory");
    CHECK(*first->value == value);
    CHECK(l2.stats().reads == redis_reads);  // an L1 hit never reaches Redis

    REQUIRE(l1.remove(key));
    auto second = tiers.lookup<hitbox_test::Profile>(key);
    REQUIRE(second);
    CHECK(second->source == "cache.redis");
    CHECK(*second->value == value);

    auto removed = tiers.remove(key);
    REQUIRE(removed);
    CHECK(*removed);
    CHECK_FALSE(l2.read(key)->has_value());
    CHECK_FALSE(l1.get<hitbox_test::Profile>(key)->has_value());
}

TEST_CASE("Memory + Redis: a Redis hit refills memory with the remaining TTL, stale stays stale") {
    hitbox::OffloadManager offload;
    auto l1 = memory();
    auto l2 = redis_at(shared_server().url(), "two-tier-refill:");
    auto tiers = hitbox::compose(l1, l2, offload);
    const auto now = hitbox::Clock::now();

    SECTION("fresh") {
        const CacheValue<std::string> value{"fresh", now + 60s, now + 30s, now - 5s};
        REQUIRE(l2.set(user_key(2), value));
        auto found = tiers.get<std::string>(user_key(2));
        REQUIRE(found);
        REQUIRE(found->has_value());
        auto refilled = l1.get<std::string>(user_key(2));
        REQUIRE(refilled);
        REQUIRE(refilled->has_value());
        // Same absolute times, so memory expires when Redis does (not 60 s after the refill).
        CHECK((*refilled)->expire == value.expire);
        CHECK((*refilled)->stale == value.stale);
        CHECK((*refilled)->created == value.created);
        CHECK(tiers.stats().refills == 1);
    }
    SECTION("stale") {
        const CacheValue<std::string> value{"stale", now + 60s, now - 1s, now - 10s};
        REQUIRE(l2.set(user_key(3), value));
        auto found = tiers.lookup<std::string>(user_key(3));
        REQUIRE(found);
        CHECK(found->source == "cache.redis");
        CHECK(found->value->state(hitbox::Clock::now()) == hitbox::EntryState::Stale);
        auto refilled = l1.get<std::string>(user_key(3));
        REQUIRE(refilled);
        REQUIRE(refilled->has_value());
        CHECK((*refilled)->state(hitbox::Clock::now()) == hitbox::EntryState::Stale);
        auto again = tiers.lookup<std::string>(user_key(3));
        REQUIRE(again);
        CHECK(again->source == "cache.memory");
    }
    SECTION("offloaded refill on the manager") {
        auto background = hitbox::compose(l1, l2, offload).with_refill(hitbox::RefillAlways{.offloaded = true});
        const CacheValue<std::string> value{"later", now + 60s, std::nullopt, now};
        REQUIRE(l2.set(user_key(4), value));
        REQUIRE(background.get<std::string>(user_key(4))->has_value());
        REQUIRE(offload.wait_all(10s));
        auto refilled = l1.get<std::string>(user_key(4));
        REQUIRE(refilled);
        REQUIRE(refilled->has_value());
        CHECK((*refilled)->expire == value.expire);
    }
}

TEST_CASE("Memory + Redis: with Redis down the memory tier still serves, and failures are reported") {
    hitbox_test::RedisServer server;
    hitbox::OffloadManager offload;
    auto l1 = memory();
    auto l2 = redis_at(server.url(), "two-tier-down:");
    auto tiers = hitbox::compose(l1, l2, offload);
    const CacheValue<std::string> value{"v", hitbox::Clock::now() + 60s};
    REQUIRE(tiers.set(user_key(5), value));

    server.kill();

    auto hit = tiers.lookup<std::string>(user_key(5));
    REQUIRE(hit);
    CHECK(hit->source == "cache.memory");

    auto miss = tiers.lookup<std::string>(user_key(6));  // L1 misses, Redis fails: a miss, with the error
    REQUIRE(miss);
    CHECK_FALSE(miss->hit());
    REQUIRE(miss->errors.size() == 1);
    CHECK(miss->errors[0].backend() == "cache.redis");
    CHECK(tiers.stats().l2_read_errors == 1);

    auto stored = tiers.store(user_key(7), value);  // OptimisticParallel: memory took it, Redis failure listed
    REQUIRE(stored);
    CHECK(stored->written == std::vector<std::string>{"cache.memory"});
    REQUIRE(stored->errors.size() == 1);
    CHECK(stored->errors[0].backend() == "cache.redis");
    CHECK(tiers.stats().l2_write_errors == 1);

    auto removed = tiers.remove(user_key(5));  // a delete that could not reach Redis is an error
    REQUIRE_FALSE(removed);
    CHECK(removed.error().backend() == "cache.redis");
    CHECK_FALSE(l1.get<std::string>(user_key(5))->has_value());  // memory was still cleared
}

TEST_CASE("Memory + Redis: concurrent callers on every read policy see only written values") {
    hitbox::OffloadManager offload{{.workers = 2}};
    auto l1 = memory();
    auto l2 = redis_at(shared_server().url(), "two-tier-concurrent:");
    auto run = [&](auto tiers) {
        std::atomic<int> wrong{0}, failures{0}, hits{0};
        std::vector<std::thread> threads;
        for (int t = 0; t < 4; ++t)
            threads.emplace_back([&, t] {
                for (int i = 0; i < 150; ++i) {
                    const int id = (i * 3 + t) % 20;
                    const std::string expect = "user-" + std::to_string(id);
                    if (i % 4 == 0) {
                        if (!tiers.set(user_key(id), CacheValue<std::string>{expect, hitbox::Clock::now() + 60s}))
                            ++failures;
                    } else if (i % 11 == 0) {
                        if (!tiers.remove(user_key(id))) ++failures;
                    } else {
                        auto r = tiers.template lookup<std::string>(user_key(id));
                        if (!r) {
                            ++failures;
                        } else if (r->hit()) {
                            ++hits;
                            if (r->value->data != expect || (r->source != "cache.memory" && r->source != "cache.redis"))
                                ++wrong;
                        }
                    }
                }
            });
        for (auto& th : threads) th.join();
        CHECK(wrong == 0);
        CHECK(failures == 0);
        CHECK(hits > 0);
    };
    run(hitbox::compose(l1, l2, offload));
    run(hitbox::compose(l1, l2, offload).with_read(hitbox::RaceRead{}).with_write(hitbox::RaceWrite{}));
    run(hitbox::compose(l1, l2, offload).with_read(hitbox::ParallelRead{}).with_write(hitbox::SequentialWrite{}));
    REQUIRE(offload.wait_all(30s));
}
