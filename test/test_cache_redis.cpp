// hitbox::Cache over Memory L1 + Redis L2 against a real redis-server started by the test: values land in
// both tiers, an L2 hit is named cache.redis, concurrent callers of a cold key load once, and with the
// server stopped every call is still served from the loader while the errors are counted and reported.
// Metrics text includes the Redis tier's own counters and parses as Prometheus exposition format.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <latch>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <hitbox/backend/memory/memory_backend.hpp>
#include <hitbox/backend/redis.hpp>
#include <hitbox/cache.hpp>
#include <hitbox/compose/compose.hpp>
#include <hitbox/offload/offload_manager.hpp>

#include "support/prometheus_parse.hpp"
#include "support/redis_server.hpp"
#include "support/test_types.hpp"

using namespace std::chrono_literals;
using hitbox::CacheKey;
using hitbox::CacheStatus;

namespace {

const bool redis_available = hitbox_test::require_redis_server();

hitbox::RedisBackend<> redis_at(const std::string& url, const std::string& prefix) {
    auto r = hitbox::RedisBackend<>::builder()
                 .connection(hitbox::ConnectionMode::single(url))
                 .key_prefix(prefix)
                 .connect_timeout(300ms)
                 .command_timeout(300ms)
                 .reconnect_backoff(20ms, 100ms)
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

struct Errors {
    std::mutex mutex;
    std::vector<hitbox::Error> reads, writes;
    hitbox::CacheOptions options() {
        return {{}, [this](const hitbox::CacheErrorEvent& e) {
                    std::lock_guard lock(mutex);
                    (e.op == hitbox::CacheOp::read ? reads : writes).push_back(e.error);
                }};
    }
};

}  // namespace

TEST_CASE("Cache over Memory + Redis: loads land in both tiers, L2 hits refill L1, metrics include Redis") {
    hitbox_test::RedisServer server;
    hitbox::OffloadManager offload;
    auto l1 = memory();
    auto l2 = redis_at(server.url(), "cache-basic:");
    auto tiers = hitbox::compose(l1, l2, offload);
    hitbox::CountingMetrics metrics;
    hitbox::Cache cache{tiers, offload, metrics};
    const hitbox::CachePolicy policy{.ttl = 60s, .stale = 45s};

    std::atomic<int> calls{0};
    auto loader = [&] {
        ++calls;
        return hitbox_test::sample_profile();
    };
    auto first = cache.get_or_compute<hitbox_test::Profile>(user_key(1), loader, policy);
    CHECK(first.status == CacheStatus::Miss);
    CHECK(first.ok());
    CHECK(first.backend_errors.empty());
    CHECK(*first == hitbox_test::sample_profile());
    auto in_redis = l2.get<hitbox_test::Profile>(user_key(1));
    REQUIRE(in_redis);
    REQUIRE(in_redis->has_value());
    CHECK((*in_redis)->stale == (*in_redis)->created + 45s);
    CHECK((*in_redis)->expire == (*in_redis)->created + 60s);
    // Redis holds it with a millisecond TTL of about a minute.
    const auto pttl = std::stoll(server.cli({"-x", "PTTL"}, l2.codec().key(user_key(1))));
    CHECK(pttl > 55'000);
    CHECK(pttl <= 60'000);

    CHECK(cache.get_or_compute<hitbox_test::Profile>(user_key(1), loader, policy).source == "cache.memory");
    REQUIRE(l1.remove(user_key(1)));
    auto from_redis = cache.get_or_compute<hitbox_test::Profile>(user_key(1), loader, policy);
    CHECK(from_redis.status == CacheStatus::Hit);
    CHECK(from_redis.source == "cache.redis");
    CHECK(*from_redis == hitbox_test::sample_profile());
    CHECK(cache.get_or_compute<hitbox_test::Profile>(user_key(1), loader, policy).source == "cache.memory");
    CHECK(calls == 1);

    const std::string text = hitbox::prometheus_text(cache);
    INFO(text);
    auto p = hitbox_test::parse_prometheus(text);
    for (const auto& problem : p.problems) FAIL_CHECK(problem);
    CHECK(p.value("hitbox_cache_hit_total", {{"backend", "cache.redis"}}) == 1.0);
    CHECK(p.value("hitbox_cache_hit_total", {{"backend", "cache.memory"}}) == 2.0);
    CHECK(p.value("hitbox_cache_miss_total", {{"backend", "upstream"}}) == 1.0);
    CHECK(p.value("hitbox_backend_read_total", {{"backend", "cache.redis"}}) >= 2.0);
    CHECK(p.value("hitbox_backend_write_total", {{"backend", "cache.redis"}}) >= 1.0);
    CHECK(p.value("hitbox_backend_read_bytes_total", {{"backend", "cache.redis"}}) > 0.0);
    CHECK(p.value("hitbox_backend_write_bytes_total", {{"backend", "cache.redis"}}) > 0.0);
    CHECK(p.value("hitbox_backend_hits_total", {{"backend", "cache.memory"}}) >= 2.0);
    CHECK(p.value("hitbox_offload_tasks_spawned_total", {{"backend", "cache"}}).has_value());
}

TEST_CASE("Cache over Redis: concurrent callers of a cold key load once and write once") {
    hitbox_test::RedisServer server;
    hitbox::OffloadManager offload;
    auto l1 = memory();
    auto l2 = redis_at(server.url(), "cache-stampede:");
    auto tiers = hitbox::compose(l1, l2, offload);
    hitbox::Cache cache{tiers, offload};
    constexpr int callers = 32;
    std::atomic<int> calls{0};
    auto loader = [&] {
        ++calls;
        const auto deadline = std::chrono::steady_clock::now() + 20s;
        while (cache.stats().waiting < callers - 1 && std::chrono::steady_clock::now() < deadline)
            std::this_thread::sleep_for(1ms);
        return std::string("loaded");
    };
    std::vector<hitbox::CacheResult<std::string>> results(callers);
    std::latch start(callers);
    std::vector<std::thread> threads;
    for (int i = 0; i < callers; ++i)
        threads.emplace_back([&, i] {
            start.arrive_and_wait();
            results[static_cast<std::size_t>(i)] =
                cache.get_or_compute<std::string>(user_key(2), loader, {.ttl = 60s, .waiter_timeout = 30s});
        });
    for (auto& t : threads) t.join();
    CHECK(calls == 1);
    for (const auto& r : results) CHECK(r.value == std::optional<std::string>("loaded"));
    CHECK(l2.stats().writes == 1);
}

TEST_CASE("Redis down: values are still served from the loader, errors are counted and reported") {
    hitbox_test::RedisServer server;
    hitbox::OffloadManager offload;
    auto l1 = memory();
    auto l2 = redis_at(server.url(), "cache-down:");
    auto tiers = hitbox::compose(l1, l2, offload);
    Errors errors;
    hitbox::Cache cache{tiers, offload, hitbox::NoMetrics{}, hitbox::SystemClock{}, errors.options()};
    std::atomic<int> calls{0};
    auto loader = [&] { return "value " + std::to_string(++calls); };
    const hitbox::CachePolicy policy{.ttl = 60s};

    REQUIRE(*cache.get_or_compute<std::string>(user_key(10), loader, policy) == "value 1");
    server.stop();

    for (int id = 11; id <= 15; ++id) {
        const auto started = std::chrono::steady_clock::now();
        auto r = cache.get_or_compute<std::string>(user_key(id), loader, policy);
        const auto took = std::chrono::steady_clock::now() - started;
        CHECK(r.value == std::optional<std::string>("value " + std::to_string(id - 9)));
        CHECK(r.status == CacheStatus::Miss);
        CHECK(r.ok());
        REQUIRE(r.backend_errors.size() == 2);  // the read and the write of L2
        for (const auto& e : r.backend_errors) CHECK(e.backend() == "cache.redis");
        CHECK(took < 3s);  // bounded by the connect / command timeouts, never a hang
    }
    // What L1 holds is still served, without asking the loader.
    auto cached = cache.get_or_compute<std::string>(user_key(10), loader, policy);
    CHECK(cached.status == CacheStatus::Hit);
    CHECK(cached.source == "cache.memory");
    CHECK(*cached == "value 1");

    const auto s = cache.stats();
    CHECK(s.read_errors == 5);
    CHECK(s.write_errors == 5);
    REQUIRE(s.tiers.size() == 1);
    CHECK(s.tiers[0].backend == "cache.redis");
    CHECK(s.tiers[0].read_errors == 5);
    CHECK(s.tiers[0].write_errors == 5);
    {
        std::lock_guard lock(errors.mutex);
        CHECK(errors.reads.size() == 5);
        CHECK(errors.writes.size() == 5);
    }
    CHECK(l2.stats().error_total() >= 10);
    auto p = hitbox_test::parse_prometheus(hitbox::prometheus_text(cache));
    for (const auto& problem : p.problems) FAIL_CHECK(problem);
    CHECK(p.value("hitbox_backend_read_errors_total", {{"backend", "cache.redis"}}) == 5.0);
    CHECK(p.value("hitbox_backend_write_errors_total", {{"backend", "cache.redis"}}) == 5.0);

    // Back up: after its reconnect backoff the tier takes writes again.
    server.start();
    bool reached = false;
    for (int attempt = 0; attempt < 100 && !reached; ++attempt) {
        auto r = cache.get_or_compute<std::string>(user_key(100 + attempt), loader, policy);
        reached = r.backend_errors.empty();
        if (!reached) std::this_thread::sleep_for(20ms);
    }
    CHECK(reached);
}

TEST_CASE("Redis alone, server stopped: every call is answered by the loader") {
    hitbox_test::RedisServer server;
    hitbox::OffloadManager offload;
    auto redis = redis_at(server.url(), "cache-alone:");
    Errors errors;
    hitbox::Cache cache{redis, offload, hitbox::NoMetrics{}, hitbox::SystemClock{}, errors.options()};
    server.kill();
    std::atomic<int> calls{0};
    for (int i = 0; i < 3; ++i) {
        auto r = cache.get_or_compute<int>(user_key(1), [&] { return ++calls; }, {.ttl = 60s});
        CHECK(*r == i + 1);
        REQUIRE_FALSE(r.backend_errors.empty());
        CHECK(r.backend_errors.front().backend() == "redis");
    }
    CHECK(cache.stats().read_errors == 3);
    CHECK(cache.stats().write_errors == 3);
}
