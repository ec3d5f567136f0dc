// Resilience. hitbox::CircuitBreaker (hitbox/resilience/circuit_breaker.hpp): opens after N counted failures within
// the window, answers at once without touching the tier while open, lets one probe through after the
// cool-down, closes on its success and reopens on its failure; errors about an entry do not count. Then a
// real redis-server frozen with SIGSTOP behind Compose + Cache: once the breaker opens, calls are answered
// from the loader in a fraction of the command timeout, and Redis is used again after SIGCONT. The stampede
// lock across instances; expiry jitter; fail-safe (expired entries served when the load fails, throttled,
// bounded) and loader timeouts (soft: serve the old value, hard: return whatever happens).
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <hitbox/any_backend.hpp>
#include <hitbox/backend/memory/memory_backend.hpp>
#include <hitbox/backend/redis.hpp>
#include <hitbox/backend_config.hpp>
#include <hitbox/cache.hpp>
#include <hitbox/compose/compose.hpp>
#include <hitbox/key_format/url_encoded.hpp>
#include <hitbox/offload/inline_offload.hpp>
#include <hitbox/resilience/circuit_breaker.hpp>

#include "support/manual_memory.hpp"
#include "support/prometheus_parse.hpp"
#include "support/redis_server.hpp"
#include "support/test_backends.hpp"

using namespace std::chrono_literals;
using hitbox::BreakerState;
using hitbox::CacheKey;
using hitbox::CacheStatus;
using hitbox::CacheValue;
using hitbox::ErrorKind;
using hitbox::StalePolicy;
using hitbox_test::Op;

namespace {

using Failing = hitbox_test::BasicFailingBackend<hitbox::ManualClock>;
using Breaker = hitbox::CircuitBreaker<Failing, hitbox::ManualClock>;

const CacheKey key{"k", 0};

std::uint64_t tier_gets(const Breaker& b) { return b.tier().counts().gets; }

}  // namespace

TEST_CASE("CircuitBreaker: opens after N counted failures within the window, then skips the tier") {
    hitbox::ManualClock clock;
    Breaker b(Failing{"redis", clock}, {.failures = 3, .window = 1s, .cool_down = 5s}, clock);
    b.tier().fail(Op::get, ErrorKind::timeout, "slow");
    for (int i = 0; i < 3; ++i) {
        auto r = b.get<std::string>(key);
        REQUIRE_FALSE(r);
        CHECK(r.error().kind() == ErrorKind::timeout);  // the tier's own error while closed
        clock.advance(100ms);
    }
    CHECK(b.breaker_stats().state == BreakerState::open);
    CHECK(tier_gets(b) == 3);
    for (int i = 0; i < 10; ++i) {
        auto r = b.get<std::string>(key);
        REQUIRE_FALSE(r);
        CHECK(r.error().kind() == ErrorKind::unavailable);
        CHECK(r.error().backend() == "redis");
        CHECK(r.error().message().find("circuit breaker open") != std::string::npos);
        CHECK(r.error().message().find("slow") != std::string::npos);  // the last failure, for the operator
    }
    CHECK(tier_gets(b) == 3);  // none of the ten reached the tier
    CHECK_FALSE(b.set(key, CacheValue<std::string>{"v"}));
    CHECK_FALSE(b.remove(key));
    CHECK(b.tier().counts().sets == 0);
    const auto s = b.breaker_stats();
    CHECK(s.failures == 3);
    CHECK(s.opened == 1);
    CHECK(s.short_circuited == 12);
}

TEST_CASE("Handles moved from: a Redis tier still works, a breaker keeps its state and answers for its tier") {
    if (!hitbox_test::require_redis_server()) return;
    hitbox_test::RedisServer server;
    auto redis = hitbox::RedisBackend<>::builder()
                     .connection(hitbox::ConnectionMode::single(server.url()))
                     .key_prefix("moved:")
                     .command_timeout(2s)
                     .build();
    REQUIRE(redis);
    auto taken = std::move(*redis);
    // The handle moved from is still a handle on the same store and counters.
    REQUIRE(redis->set(key, CacheValue<std::string>{"v"}));
    auto back = taken.get<std::string>(key);
    REQUIRE(back);
    REQUIRE(*back);
    CHECK((*back)->data == "v");
    CHECK(redis->stats().writes == 1);
    CHECK(redis->stats().hits == 1);

    hitbox::ManualClock clock;
    Breaker b(Failing{"redis", clock}, {.failures = 1, .window = 1s, .cool_down = 5s}, clock);
    b.tier().fail(Op::get, ErrorKind::timeout, "slow");
    REQUIRE_FALSE(b.get<std::string>(key));
    CHECK(b.breaker_stats().state == BreakerState::open);
    Breaker moved = std::move(b);
    // Both share the breaker: open, and the call is refused without reaching a tier.
    auto r = b.get<std::string>(key);
    REQUIRE_FALSE(r);
    CHECK(r.error().message().find("circuit breaker open") != std::string::npos);
    CHECK(b.breaker_stats().short_circuited == 1);
    CHECK(moved.breaker_stats().short_circuited == 1);
}

TEST_CASE("CircuitBreaker: failures spread wider than the window do not open it") {
    hitbox::ManualClock clock;
    Breaker b(Failing{"redis", clock}, {.failures = 3, .window = 1s, .cool_down = 5s}, clock);
    b.tier().fail(Op::get, ErrorKind::connection, "refused");
    for (int i = 0; i < 10; ++i) {
        CHECK_FALSE(b.get<std::string>(key));
        clock.advance(600ms);  // any 3 consecutive failures span 1.2 s
    }
    CHECK(b.breaker_stats().state == BreakerState::closed);
    CHECK(tier_gets(b) == 10);
}

TEST_CASE("CircuitBreaker: errors about an entry (decode, type mismatch) do not count") {
    hitbox::ManualClock clock;
    Breaker b(Failing{"redis", clock}, {.failures = 2, .window = 1s, .cool_down = 5s}, clock);
    b.tier().fail(Op::get, ErrorKind::decode, "corrupt entry");
    for (int i = 0; i < 10; ++i) CHECK_FALSE(b.get<std::string>(key));
    CHECK(b.breaker_stats().state == BreakerState::closed);
    CHECK(b.breaker_stats().failures == 0);
    CHECK(tier_gets(b) == 10);
}

TEST_CASE("CircuitBreaker: after the cool-down one probe goes through; success closes, failure reopens") {
    hitbox::ManualClock clock;
    Breaker b(Failing{"redis", clock}, {.failures = 1, .window = 1s, .cool_down = 2s}, clock);
    b.tier().fail(Op::get, ErrorKind::connection, "refused");
    CHECK_FALSE(b.get<std::string>(key));
    REQUIRE(b.breaker_stats().state == BreakerState::open);

    clock.advance(1999ms);
    CHECK_FALSE(b.get<std::string>(key));
    CHECK(tier_gets(b) == 1);

    SECTION("the probe fails: open for another cool-down") {
        clock.advance(1ms);
        auto r = b.get<std::string>(key);
        REQUIRE_FALSE(r);
        CHECK(r.error().kind() == ErrorKind::connection);  // the probe's own answer
        CHECK(tier_gets(b) == 2);
        CHECK(b.breaker_stats().state == BreakerState::open);
        CHECK(b.breaker_stats().opened == 2);
        clock.advance(1s);
        CHECK_FALSE(b.get<std::string>(key));
        CHECK(tier_gets(b) == 2);
    }
    SECTION("the probe succeeds: closed, every call reaches the tier again") {
        b.tier().heal();
        clock.advance(1ms);
        CHECK(b.get<std::string>(key));
        CHECK(b.breaker_stats().state == BreakerState::closed);
        CHECK(b.breaker_stats().probes == 1);
        REQUIRE(b.set(key, CacheValue<std::string>{"v"}));
        auto got = b.get<std::string>(key);
        REQUIRE(got);
        REQUIRE(*got);
        CHECK((*got)->data == "v");
        CHECK(tier_gets(b) == 3);
    }
}

TEST_CASE("CircuitBreaker: while a probe is out, the other callers are still answered at once") {
    hitbox::ManualClock clock;
    Breaker b(Failing{"redis", clock}, {.failures = 1, .window = 1s, .cool_down = 1s}, clock);
    b.tier().fail(Op::get, ErrorKind::timeout, "slow", 1);
    CHECK_FALSE(b.get<std::string>(key));
    clock.advance(1s);
    std::atomic<bool> in_probe{false}, release{false};
    b.tier().on(Op::get, [&](const CacheKey&) {
        in_probe = true;
        for (int i = 0; i < 5000 && !release; ++i) std::this_thread::sleep_for(1ms);
    });
    std::thread probe([&] { CHECK(b.get<std::string>(key)); });
    for (int i = 0; i < 5000 && !in_probe; ++i) std::this_thread::sleep_for(1ms);
    REQUIRE(in_probe);
    CHECK(b.breaker_stats().state == BreakerState::half_open);
    for (int i = 0; i < 8; ++i) {
        auto r = b.get<std::string>(key);
        REQUIRE_FALSE(r);
        CHECK(r.error().message().find("probe") != std::string::npos);
    }
    release = true;
    probe.join();
    CHECK(b.breaker_stats().state == BreakerState::closed);
    CHECK(tier_gets(b) == 2);
}

TEST_CASE("CircuitBreaker: a probe whose tier throws opens the breaker again instead of hanging half open") {
    hitbox::ManualClock clock;
    Breaker b(Failing{"redis", clock}, {.failures = 1, .window = 1s, .cool_down = 1s}, clock);
    b.tier().fail(Op::get, ErrorKind::timeout, "slow", 1);
    CHECK_FALSE(b.get<std::string>(key));
    clock.advance(1s);
    b.tier().on(Op::get, [](const CacheKey&) { throw std::runtime_error("tier bug"); });
    CHECK_THROWS(b.get<std::string>(key));
    CHECK(b.breaker_stats().state == BreakerState::open);
    b.tier().on(Op::get, {});
    clock.advance(1s);
    CHECK(b.get<std::string>(key));
    CHECK(b.breaker_stats().state == BreakerState::closed);
}

TEST_CASE("CircuitBreaker: a tier that keeps throwing opens it like a tier that keeps failing") {
    hitbox::ManualClock clock;
    SECTION("the exception goes on to the caller and counts as unavailable") {
        Breaker b(Failing{"redis", clock}, {.failures = 3, .window = 1s, .cool_down = 5s}, clock);
        b.tier().on(Op::get, [](const CacheKey&) { throw std::runtime_error("driver bug"); });
        for (int i = 0; i < 3; ++i) CHECK_THROWS_WITH(b.get<std::string>(key), "driver bug");
        CHECK(b.breaker_stats().failures == 3);
        REQUIRE(b.breaker_stats().state == BreakerState::open);
        auto r = b.get<std::string>(key);  // answered at once, naming the last exception
        REQUIRE_FALSE(r);
        CHECK(r.error().kind() == ErrorKind::unavailable);
        CHECK(r.error().message().find("driver bug") != std::string::npos);
        CHECK(tier_gets(b) == 3);
    }
    SECTION("not when unavailable is not among the kinds that count") {
        Breaker b(Failing{"redis", clock},
                  {.failures = 1, .window = 1s, .cool_down = 5s, .trips_on = {ErrorKind::connection}}, clock);
        b.tier().on(Op::get, [](const CacheKey&) { throw 42; });
        for (int i = 0; i < 5; ++i) CHECK_THROWS(b.get<std::string>(key));
        CHECK(b.breaker_stats().state == BreakerState::closed);
        CHECK(b.breaker_stats().failures == 0);
    }
}

TEST_CASE("CircuitBreaker: in a composition, a throwing L2 is skipped once the breaker opens") {
    hitbox::ManualClock clock;
    hitbox::InlineOffload offload;
    Breaker b(Failing{"flaky", clock}, {.failures = 3, .window = 10s, .cool_down = 5s}, clock);
    b.tier().on(Op::get, [](const CacheKey&) { throw std::runtime_error("driver bug"); });
    auto memory = hitbox::MemoryBackend::builder().max_entries(100).build();
    REQUIRE(memory);
    auto tiers = hitbox::compose(std::move(*memory), std::ref(b), offload);
    for (int i = 0; i < 20; ++i) {
        auto r = tiers.lookup<std::string>(CacheKey{"k", 1, {{"i", std::to_string(i)}}});
        REQUIRE(r);  // L1 answered (a miss): a failing L2 is a miss, not a failed read
        CHECK_FALSE(r->value);
        REQUIRE(r->errors.size() == 1);
        CHECK(r->errors[0].kind() == ErrorKind::unavailable);
    }
    CHECK(tier_gets(b) == 3);  // the 17 reads after the third throw never reached the tier
    CHECK(b.breaker_stats().opened == 1);
    CHECK(b.breaker_stats().short_circuited == 17);
}

TEST_CASE("CircuitBreaker: failures above max_failures count as max_failures (no huge allocation)") {
    hitbox::ManualClock clock;
    Breaker b(Failing{"redis", clock},
              {.failures = std::numeric_limits<std::uint32_t>::max(), .window = std::chrono::milliseconds::max()},
              clock);
    b.tier().fail(Op::get, ErrorKind::timeout, "slow");
    for (std::uint32_t i = 0; i + 1 < hitbox::BreakerOptions::max_failures; ++i) (void)b.get<std::string>(key);
    CHECK(b.breaker_stats().state == BreakerState::closed);
    (void)b.get<std::string>(key);
    CHECK(b.breaker_stats().state == BreakerState::open);
    CHECK(b.breaker_stats().failures == hitbox::BreakerOptions::max_failures);
}

TEST_CASE("CircuitBreaker: durations of max() saturate") {
    hitbox::ManualClock clock;
    SECTION("a cool-down of max() never probes") {
        Breaker b(Failing{"redis", clock}, {.failures = 1, .window = 1s, .cool_down = std::chrono::milliseconds::max()},
                  clock);
        b.tier().fail(Op::get, ErrorKind::timeout, "slow");
        CHECK_FALSE(b.get<std::string>(key));
        clock.advance(std::chrono::hours(24 * 365 * 100));
        auto r = b.get<std::string>(key);
        REQUIRE_FALSE(r);
        CHECK(r.error().kind() == ErrorKind::unavailable);
        CHECK(tier_gets(b) == 1);
    }
    SECTION("a window of max() counts every failure ever") {
        Breaker b(Failing{"redis", clock}, {.failures = 2, .window = std::chrono::milliseconds::max(), .cool_down = 1s},
                  clock);
        b.tier().fail(Op::get, ErrorKind::timeout, "slow");
        CHECK_FALSE(b.get<std::string>(key));
        clock.advance(std::chrono::hours(24 * 365 * 100));
        CHECK_FALSE(b.get<std::string>(key));
        CHECK(b.breaker_stats().state == BreakerState::open);
    }
}

TEST_CASE("CircuitBreaker: negative durations count as 0") {
    hitbox::ManualClock clock;
    Breaker b(Failing{"redis", clock}, {.failures = 2, .window = -1s, .cool_down = -1s}, clock);
    CHECK(b.options().window == 0ms);
    CHECK(b.options().cool_down == 0ms);
    b.tier().fail(Op::get, ErrorKind::timeout, "slow");
    // Two failures at one instant are within a window of 0: it opens (a negative window never did).
    CHECK_FALSE(b.get<std::string>(key));
    CHECK_FALSE(b.get<std::string>(key));
    CHECK(b.breaker_stats().state == BreakerState::open);
    CHECK(b.breaker_stats().opened == 1);
    // A cool-down of 0 probes with the next call.
    b.tier().heal(Op::get);
    clock.advance(1ms);
    CHECK(b.get<std::string>(key).has_value());
    CHECK(b.breaker_stats().probes == 1);
    CHECK(b.breaker_stats().state == BreakerState::closed);
}

TEST_CASE("CircuitBreaker: in a composition the L1 keeps serving and L2 misses are answered at once") {
    hitbox::ManualClock clock;
    hitbox::InlineOffload offload;
    auto l1 = hitbox::MemoryBackend::builder().max_entries(100).build();
    REQUIRE(l1);
    auto tiers = hitbox::compose(
        std::move(*l1), Breaker(Failing{"redis", clock}, {.failures = 2, .window = 1s, .cool_down = 5s}, clock),
        offload);
    REQUIRE(tiers.set(CacheKey{"hot", 0}, CacheValue<std::string>{"l1"}));
    tiers.l2().tier().fail(Op::get, ErrorKind::timeout, "slow");
    CHECK(tiers.get<std::string>(CacheKey{"cold1", 0}));  // an L2 error reads as a miss
    CHECK(tiers.get<std::string>(CacheKey{"cold2", 0}));
    CHECK(tiers.l2().breaker_stats().state == BreakerState::open);
    const auto before = tiers.l2().tier().counts().gets;
    for (int i = 0; i < 20; ++i) {
        auto miss = tiers.get<std::string>(CacheKey{"cold" + std::to_string(i), 0});
        REQUIRE(miss);
        CHECK_FALSE(*miss);
        auto hit = tiers.get<std::string>(CacheKey{"hot", 0});
        REQUIRE(hit);
        REQUIRE(*hit);
        CHECK((*hit)->data == "l1");
    }
    CHECK(tiers.l2().tier().counts().gets == before);
}

TEST_CASE(
    "CircuitBreaker: Redis frozen by SIGSTOP: after the breaker opens, calls answer from the loader "
    "well under the command timeout; after SIGCONT Redis is used again",
    "[redis]") {
    if (!hitbox_test::require_redis_server()) return;
    hitbox_test::RedisServer server;
    constexpr auto command_timeout = 300ms;
    auto redis = hitbox::RedisBackend<>::builder()
                     .connection(hitbox::ConnectionMode::single(server.url()))
                     .key_prefix("breaker:")
                     .connect_timeout(command_timeout)
                     .command_timeout(command_timeout)
                     .reconnect_backoff(20ms, 100ms)
                     .build();
    REQUIRE(redis);
    auto l1 = hitbox::MemoryBackend::builder().max_entries(10'000).build();
    REQUIRE(l1);
    hitbox::InlineOffload offload;
    auto tiers = hitbox::compose(
        std::move(*l1), hitbox::circuit_breaker(std::move(*redis), {.failures = 3, .window = 10s, .cool_down = 1s}),
        offload);
    hitbox::Cache cache{tiers, offload};
    std::atomic<int> loads{0};
    auto loader = [&] {
        ++loads;
        return std::string("from the database");
    };
    REQUIRE(cache.get_or_compute<std::string>(CacheKey{"warm", 0}, loader, {.ttl = 60s}).value);

    REQUIRE(::kill(server.pid(), SIGSTOP) == 0);
    struct Resume {
        pid_t pid;
        ~Resume() { ::kill(pid, SIGCONT); }
    } resume{server.pid()};

    // Each cold key misses L1 and asks the frozen Redis: the first calls wait out the command timeout.
    std::vector<std::chrono::microseconds> after_open;
    int until_open = 0;
    for (int i = 0; i < 200; ++i) {
        const auto t0 = std::chrono::steady_clock::now();
        auto r = cache.get_or_compute<std::string>(CacheKey{"cold" + std::to_string(i), 0}, loader, {.ttl = 60s});
        const auto took = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0);
        REQUIRE(r.value);
        CHECK(*r.value == "from the database");
        if (until_open == 0) {  // this call waited for Redis (it may be the one that opened the breaker)
            if (tiers.l2().breaker_stats().opened > 0) until_open = i + 1;
            continue;
        }
        after_open.push_back(took);
    }
    // Reads and the writes that follow them count: three failures open it within the first few calls.
    CHECK(until_open >= 1);
    CHECK(until_open <= 3);
    REQUIRE(after_open.size() >= 190);
    std::sort(after_open.begin(), after_open.end());
    const auto p99 = after_open[after_open.size() * 99 / 100];
    std::printf("breaker: opened after %d calls; afterwards p99 %lld us over %zu calls (command timeout %lld ms)\n",
                until_open, static_cast<long long>(p99.count()), after_open.size(),
                static_cast<long long>(command_timeout.count()));
    CHECK(p99 < std::chrono::microseconds(command_timeout) / 4);
    CHECK(tiers.l2().breaker_stats().short_circuited > 190);
    {
        const auto text = hitbox::prometheus_text(cache);
        const auto p = hitbox_test::parse_prometheus(text);
        CHECK(p.ok());
        CHECK(p.types.at("hitbox_breaker_state") == "gauge");
        CHECK(p.value("hitbox_breaker_state", {{"backend", "cache.redis"}}) == 1.0);
        CHECK(p.value("hitbox_breaker_opened_total", {{"backend", "cache.redis"}}) >= 1.0);
        CHECK(p.value("hitbox_breaker_short_circuited_total", {{"backend", "cache.redis"}}) > 190.0);
        CHECK(p.value("hitbox_backend_read_total", {{"backend", "cache.redis"}}) >= 1.0);  // the tier's own
    }

    ::kill(server.pid(), SIGCONT);
    // After the cool-down a probe reaches Redis again and closes the breaker; new writes land in Redis.
    bool closed = false;
    for (int i = 0; i < 100 && !closed; ++i) {
        std::this_thread::sleep_for(50ms);
        (void)cache.get_or_compute<std::string>(CacheKey{"probe" + std::to_string(i), 0}, loader, {.ttl = 60s});
        closed = tiers.l2().breaker_stats().state == BreakerState::closed;
    }
    REQUIRE(closed);
    REQUIRE(cache.get_or_compute<std::string>(CacheKey{"after", 0}, loader, {.ttl = 60s}).value);
    auto in_redis = tiers.l2().tier().get<std::string>(CacheKey{"after", 0});
    REQUIRE(in_redis);
    REQUIRE(*in_redis);
    CHECK((*in_redis)->data == "from the database");
}

TEST_CASE("Stampede lock: one owner at a time across backends sharing a Redis, through Compose and the breaker",
          "[redis]") {
    if (!hitbox_test::require_redis_server()) return;
    hitbox_test::RedisServer server;
    auto make = [&] {
        auto r = hitbox::RedisBackend<hitbox::UrlEncoded>::builder()
                     .connection(hitbox::ConnectionMode::single(server.url()))
                     .key_prefix("app:")
                     .command_timeout(1s)
                     .build();
        REQUIRE(r);
        return std::move(*r);
    };
    // Two "instances": separate backends (separate connections) on the same server.
    auto a = make();
    auto b = make();
    const CacheKey user{"user", 1, {{"id", std::string("42")}}};
    auto took = a.try_lock(user, "token-a", 10s);
    REQUIRE(took);
    CHECK(*took);
    auto blocked = b.try_lock(user, "token-b", 10s);
    REQUIRE(blocked);
    CHECK_FALSE(*blocked);
    // The lock is beside the entry, under the prefix, and is not the entry.
    auto raw = a.connection().get(std::string("app:\xfflock:") + hitbox::UrlEncoded{}.encode(user));
    REQUIRE(raw);
    REQUIRE(*raw);
    CHECK(**raw == "token-a");
    auto entry = a.get<std::string>(user);
    REQUIRE(entry);
    CHECK_FALSE(*entry);
    auto not_owner = b.unlock(user, "token-b");
    REQUIRE(not_owner);
    CHECK_FALSE(*not_owner);
    auto released = a.unlock(user, "token-a");
    REQUIRE(released);
    CHECK(*released);

    // A Compose forwards to its shared (L2) tier; a CircuitBreaker passes it through.
    hitbox::InlineOffload offload;
    auto l1 = hitbox::MemoryBackend::builder().max_entries(10).build();
    REQUIRE(l1);
    auto tiers = hitbox::compose(std::move(*l1), hitbox::circuit_breaker(std::move(b)), offload);
    static_assert(hitbox::LockingBackend<decltype(tiers)>);
    static_assert(!hitbox::LockingBackend<hitbox::MemoryBackend>);
    auto via_compose = tiers.try_lock(user, "token-c", 50ms);
    REQUIRE(via_compose);
    CHECK(*via_compose);
    auto held = a.try_lock(user, "token-a", 10s);
    REQUIRE(held);
    CHECK_FALSE(*held);
    // Its owner crashed (never unlocks): the lock expires by itself.
    bool retaken = false;
    for (int i = 0; i < 200 && !retaken; ++i) {
        std::this_thread::sleep_for(5ms);
        auto r = a.try_lock(user, "token-a", 10s);
        REQUIRE(r);
        retaken = *r;
    }
    CHECK(retaken);
    auto late = tiers.unlock(user, "token-c");  // too late: token-a's lock stays
    REQUIRE(late);
    CHECK_FALSE(*late);
    CHECK(a.unlock(user, "token-a").value());
    // Durations saturate: max() is the longest Redis takes, 0 is 1 ms.
    CHECK(a.try_lock(user, "t", std::chrono::milliseconds::max()).value());
    CHECK(a.unlock(user, "t").value());
    CHECK(a.try_lock(user, "t", 0ms).value());
    CHECK(a.unlock(user, "t").value());
    // max() of a coarser type is the longest too (it overflowed to a 0-1 ms lock), through every layer.
    const std::string lock_key = std::string("app:\xfflock:") + hitbox::UrlEncoded{}.encode(user);
    auto pttl = [&] { return std::stoll(server.cli({"PTTL", lock_key})); };
    CHECK(a.try_lock(user, "t", std::chrono::hours::max()).value());
    CHECK(pttl() > 1'000'000'000);
    CHECK(a.unlock(user, "t").value());
    CHECK(tiers.try_lock(user, "t", std::chrono::seconds::max()).value());
    CHECK(pttl() > 1'000'000'000);
    CHECK(tiers.unlock(user, "t").value());
    hitbox::AnyBackend erased(a);
    CHECK(erased.try_lock(user, "t", std::chrono::hours::max()).value());
    CHECK(pttl() > 1'000'000'000);
    CHECK(erased.unlock(user, "t").value());
}

TEST_CASE("Stampede lock tokens: a child of fork() draws tokens of its own, not its parent's or a sibling's") {
    // The generator's state is per thread; fork() copies it. Each process reports its next token.
    const std::string parent_first = hitbox::detail::lock_token();
    std::vector<std::string> drawn;
    for (int child = 0; child < 2; ++child) {
        int out[2];
        REQUIRE(::pipe(out) == 0);
        std::fflush(nullptr);
        const pid_t pid = ::fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            const std::string t = hitbox::detail::lock_token();
            const bool ok = ::write(out[1], t.data(), t.size()) == static_cast<ssize_t>(t.size());
            std::_Exit(ok ? 0 : 1);
        }
        ::close(out[1]);
        std::string t(32, '\0');
        std::size_t got = 0;
        while (got < t.size()) {
            const ssize_t n = ::read(out[0], t.data() + got, t.size() - got);
            if (n <= 0) break;
            got += static_cast<std::size_t>(n);
        }
        ::close(out[0]);
        int status = 0;
        REQUIRE(::waitpid(pid, &status, 0) == pid);
        REQUIRE(got == t.size());
        drawn.push_back(t);
    }
    drawn.push_back(hitbox::detail::lock_token());  // the parent's next one: what both children drew before
    drawn.push_back(parent_first);
    std::sort(drawn.begin(), drawn.end());
    CHECK(std::adjacent_find(drawn.begin(), drawn.end()) == drawn.end());
}

TEST_CASE("Cache jitter: expiries spread over (1 - jitter) x ttl .. ttl, stale shortened alike; 0 is exact") {
    hitbox::ManualClock clock;
    hitbox::InlineOffload offload;
    auto memory = hitbox::MemoryBackend::builder().max_entries(10'000).clock(clock).build();
    REQUIRE(memory);
    hitbox::Cache cache{*memory, offload, hitbox::NoMetrics{}, clock};
    const auto now = clock.now();
    auto loader = [] { return std::string("v"); };
    std::vector<std::int64_t> lives;
    for (int i = 0; i < 1000; ++i) {
        const CacheKey k{"j", 0, {{"i", std::to_string(i)}}};
        REQUIRE(cache.get_or_compute<std::string>(k, loader, {.ttl = 100s, .stale = 50s, .jitter = 0.1}).value);
        auto e = memory->get<std::string>(k);
        REQUIRE(e);
        REQUIRE(*e);
        REQUIRE((*e)->expire);
        REQUIRE((*e)->stale);
        const auto life = ((*e)->expire->time_since_epoch() - now.time_since_epoch()).count();
        const auto stale = ((*e)->stale->time_since_epoch() - now.time_since_epoch()).count();
        CHECK(life >= 90'000);  // 100 s x a factor in [0.9, 1], rounded down to the ms
        CHECK(life <= 100'000);
        CHECK(stale * 2 <= life + 1);  // the same proportion
        CHECK(stale * 2 >= life - 2);
        lives.push_back(life);
    }
    std::sort(lives.begin(), lives.end());
    CHECK(lives.front() < 91'000);  // 1000 draws cover the range
    CHECK(lives.back() > 99'000);
    CHECK(std::unique(lives.begin(), lives.end()) - lives.begin() > 500);

    const CacheKey exact{"exact", 0};
    REQUIRE(cache.get_or_compute<std::string>(exact, loader, {.ttl = 100s}).value);
    CHECK(*memory->get<std::string>(exact).value()->expire == now + 100s);
    const CacheKey never{"never", 0};
    REQUIRE(cache.get_or_compute<std::string>(never, loader, {.ttl = std::chrono::milliseconds::max(), .jitter = 0.5})
                .value);
    CHECK_FALSE(memory->get<std::string>(never).value()->expire);

    for (double bad : {-0.1, 1.0, std::numeric_limits<double>::quiet_NaN()}) {
        auto r = cache.get_or_compute<std::string>(CacheKey{"bad", 0}, loader, {.ttl = 1s, .jitter = bad});
        REQUIRE_FALSE(r.value);
        REQUIRE(r.error);
        CHECK(r.error->kind() == ErrorKind::config);
    }
    auto parsed = hitbox::parse_config("tiers = memory\nmemory.max_entries = 10\ncache.jitter = 10%\n");
    REQUIRE(parsed);
    CHECK(parsed->cache.jitter == Approx(0.1));
    CHECK_FALSE(hitbox::parse_config("tiers = memory\nmemory.max_entries = 10\ncache.jitter = 100%\n"));
    CHECK_FALSE(hitbox::parse_config("tiers = memory\nmemory.max_entries = 10\ncache.jitter = lots\n"));
    // The resilience options of the cache, by name.
    // (The lock lives in Redis: lock_ttl needs a redis tier, which parsing checks without connecting.)
    auto more = hitbox::parse_config(
        "tiers = memory, redis\nmemory.max_entries = 10\nredis.url = redis://127.0.0.1:6379/\n"
        "cache.fail_safe_max = 2h\ncache.fail_safe_throttle = 30s\n"
        "cache.soft_timeout = 100ms\ncache.hard_timeout = 2s\ncache.lock_ttl = 10s\ncache.lock_poll = 5ms\n");
    INFO((more ? std::string() : more.error().what()));
    REQUIRE(more);
    CHECK(more->cache.fail_safe_max == std::chrono::milliseconds(2h));
    CHECK(more->cache.fail_safe_throttle == 30s);
    CHECK(more->cache.soft_timeout == 100ms);
    CHECK(more->cache.hard_timeout == 2s);
    CHECK(more->cache.lock_ttl == std::chrono::milliseconds(10s));
    CHECK(more->cache.lock_poll == 5ms);
}

// ---- fail-safe and loader timeouts (CachePolicy::fail_safe_max, soft_timeout, hard_timeout) ----------------

namespace {

using ClockedMemory = hitbox_test::ManualMemory;
using hitbox_test::manual_memory;

/// A loader whose answer the test controls: it counts its calls, fails while `failing`, and blocks while
/// `held` until released. Shared by value, as a loader that may outlive its call must be.
struct Upstream {
    std::mutex mutex;
    std::condition_variable cv;
    bool held = false;
    bool failing = false;
    std::string value = "v1";
    std::atomic<int> calls{0};
    std::atomic<int> finished{0};

    void hold() {
        std::lock_guard lock(mutex);
        held = true;
    }
    void release() {
        {
            std::lock_guard lock(mutex);
            held = false;
        }
        cv.notify_all();
    }
    hitbox::Result<std::string> load() {
        ++calls;
        std::unique_lock lock(mutex);
        // Bounded: a test that forgets to release fails instead of hanging.
        cv.wait_for(lock, 20s, [&] { return !held; });
        ++finished;
        if (failing) return hitbox::fail(ErrorKind::unavailable, "database down", "db");
        return value;
    }
};

/// A cache over one memory tier on a manual clock, and an upstream: the fixture of the fail-safe and
/// timeout cases.
struct ManualCache {
    hitbox::ManualClock clock;
    hitbox::InlineOffload offload;
    ClockedMemory memory = manual_memory(clock);
    hitbox::Cache<ClockedMemory&, hitbox::InlineOffload, hitbox::NoMetrics, hitbox::ManualClock> cache{
        memory, offload, hitbox::NoMetrics{}, clock};
    std::shared_ptr<Upstream> up = std::make_shared<Upstream>();
};

auto loader_of(const std::shared_ptr<Upstream>& up) {
    return [up] { return up->load(); };
}

/// Polls `done` every 5 ms for at most `limit`.
template <class F>
bool eventually(F&& done, std::chrono::milliseconds limit = 10s) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (!done()) {
        if (std::chrono::steady_clock::now() > end) return false;
        std::this_thread::sleep_for(5ms);
    }
    return true;
}

}  // namespace

TEST_CASE("Fail-safe in a composition: an L1 entry kept past its expiry is judged by the L1 tier's clock") {
    // Tiers on a ManualClock (2024, long before the system clock): an entry fresh by their clock must end
    // a sequential read at L1, as any fresh entry does; only once it expires by that clock is L2 read too.
    hitbox::ManualClock clock;
    hitbox::InlineOffload offload;
    auto tiers = hitbox::compose(manual_memory(clock), manual_memory(clock), offload);
    CHECK(tiers.now() == clock.now());
    const CacheKey k{"kept", 1};
    const auto t0 = clock.now();
    const hitbox::CacheValue<std::string> v{"v", t0 + 60s, std::nullopt, t0, t0 + 1h};
    REQUIRE(tiers.set(k, v));
    const auto l2_before = tiers.l2().stats().hits + tiers.l2().stats().misses;
    for (int i = 0; i < 3; ++i) {
        auto r = tiers.get<std::string>(k);
        REQUIRE(r);
        REQUIRE(*r);
        CHECK((*r)->data == "v");
    }
    CHECK(tiers.l2().stats().hits + tiers.l2().stats().misses == l2_before);
    clock.advance(61s);  // expired by the tiers' clock, kept for fail-safe: L2 may hold a newer copy
    auto r = tiers.get<std::string>(k);
    REQUIRE(r);
    REQUIRE(*r);
    CHECK(tiers.l2().stats().hits + tiers.l2().stats().misses == l2_before + 1);
}

TEST_CASE_METHOD(ManualCache,
                 "Fail-safe: an expired entry is served when the load fails, cached again for the throttle, "
                 "and only up to fail_safe_max") {
    const hitbox::CachePolicy policy{.ttl = 10s, .fail_safe_max = 1h, .fail_safe_throttle = 30s};
    const CacheKey k{"fs", 1};

    REQUIRE(cache.get_or_compute<std::string>(k, loader_of(up), policy).value == "v1");
    {  // the tier keeps the entry past its expiry and says so
        auto stored = memory.get<std::string>(k);
        REQUIRE(stored);
        REQUIRE(*stored);
        REQUIRE((*stored)->retain);
        CHECK(*(*stored)->retain - *(*stored)->expire == 1h);
    }
    clock.advance(11s);  // expired
    up->failing = true;
    auto r = cache.get_or_compute<std::string>(k, loader_of(up), policy);
    REQUIRE(r.value);
    CHECK(*r.value == "v1");
    CHECK(r.fail_safe);
    CHECK(r.status == CacheStatus::Stale);
    CHECK(r.source == "memory");
    REQUIRE(r.error);  // why it is not fresh: the loader's error
    CHECK(r.error->message().find("database down") != std::string::npos);
    CHECK(up->calls == 2);

    // Throttled: the next calls within fail_safe_throttle do not reach the upstream.
    for (int i = 0; i < 20; ++i) {
        auto again = cache.get_or_compute<std::string>(k, loader_of(up), policy);
        REQUIRE(again.value);
        CHECK(*again.value == "v1");
        clock.advance(1s);
    }
    CHECK(up->calls == 2);
    clock.advance(11s);  // past the throttle: one more attempt, which fails and throttles again
    CHECK(cache.get_or_compute<std::string>(k, loader_of(up), policy).fail_safe);
    CHECK(up->calls == 3);
    CHECK(cache.stats().fail_safe == 2);

    // Past fail_safe_max the entry is gone: the failure is the answer.
    clock.advance(2h);
    auto gone = cache.get_or_compute<std::string>(k, loader_of(up), policy);
    CHECK_FALSE(gone.value);
    CHECK_FALSE(gone.fail_safe);
    REQUIRE(gone.error);
    CHECK(gone.status == CacheStatus::Miss);

    // The upstream is back: a fresh value replaces the fail-safe one.
    up->failing = false;
    up->value = "v2";
    auto back = cache.get_or_compute<std::string>(k, loader_of(up), policy);
    REQUIRE(back.value);
    CHECK(*back.value == "v2");
    CHECK_FALSE(back.fail_safe);
}

TEST_CASE_METHOD(ManualCache,
                 "Fail-safe: without fail_safe_max an expired entry is never served, and a call without it ignores "
                 "one kept by another policy") {
    const CacheKey k{"fs-off", 1};
    REQUIRE(cache.get_or_compute<std::string>(k, loader_of(up), {.ttl = 10s}).value);
    CHECK_FALSE((*memory.get<std::string>(k))->retain);  // written exactly as before: no retention
    clock.advance(11s);
    CHECK_FALSE(*memory.get<std::string>(k));  // gone at its expiry
    REQUIRE(cache.get_or_compute<std::string>(k, loader_of(up), {.ttl = 10s, .fail_safe_max = 1h}).value);
    clock.advance(11s);
    up->failing = true;
    auto r = cache.get_or_compute<std::string>(k, loader_of(up), {.ttl = 10s});  // this call has no fail-safe
    CHECK_FALSE(r.value);
    CHECK(r.error);
    // Read directly, a kept entry says it has expired.
    auto kept = memory.get<std::string>(k);
    REQUIRE(kept);
    REQUIRE(*kept);
    CHECK((*kept)->state(clock.now()) == hitbox::EntryState::Expired);
}

TEST_CASE_METHOD(ManualCache,
                 "Fail-safe: waiters of a coalesced load get the fail-safe value; the loader is not retried") {
    const hitbox::CachePolicy policy{.ttl = 10s, .retries = 3, .fail_safe_max = 1h};
    const CacheKey k{"fs-wait", 1};
    REQUIRE(cache.get_or_compute<std::string>(k, loader_of(up), policy).value);
    clock.advance(11s);
    up->failing = true;
    up->hold();
    std::vector<std::thread> callers;
    std::atomic<int> served{0};
    for (int i = 0; i < 8; ++i)
        callers.emplace_back([&] {
            auto r = cache.get_or_compute<std::string>(k, loader_of(up), policy);
            if (r.value && *r.value == "v1" && r.fail_safe) ++served;
        });
    REQUIRE(eventually([&] { return up->calls == 2 && cache.stats().waiting == 7; }));
    up->release();
    for (auto& t : callers) t.join();
    CHECK(served == 8);
    CHECK(up->calls == 2);  // one failed load for all eight, no retries
}

TEST_CASE_METHOD(
    ManualCache,
    "Loader timeouts: past soft_timeout the stale value is served and the late result lands in the cache") {
    const hitbox::CachePolicy policy{.ttl = 10s,
                                     .stale = 5s,
                                     .stale_policy = StalePolicy::Revalidate,
                                     .fail_safe_max = 1h,
                                     .soft_timeout = 100ms,
                                     .hard_timeout = 5s};
    const CacheKey k{"soft", 1};
    REQUIRE(cache.get_or_compute<std::string>(k, loader_of(up), policy).value == "v1");

    for (const auto step : {6s, 11s}) {  // stale, then expired (fail-safe)
        INFO("advanced " << step.count() << " s");
        clock.advance(step);
        up->hold();
        up->value = "v" + std::to_string(up->calls + 1);
        const auto t0 = std::chrono::steady_clock::now();
        auto r = cache.get_or_compute<std::string>(k, loader_of(up), policy);
        const auto took = std::chrono::steady_clock::now() - t0;
        REQUIRE(r.value);
        CHECK(*r.value != up->value);  // the old value
        CHECK(r.status == CacheStatus::Stale);
        CHECK(r.fail_safe == (step == 11s));
        CHECK_FALSE(r.error);
        CHECK(took >= 100ms);
        CHECK(took < 3s);  // the soft timeout, with room for a loaded machine; the loader is still held
        // While the load goes on, another call does not start a second one: it waits its own soft timeout.
        const int calls = up->calls;
        auto meanwhile = cache.get_or_compute<std::string>(k, loader_of(up), policy);
        CHECK(meanwhile.value);
        CHECK(up->calls == calls);
        up->release();
        REQUIRE(eventually([&] {
            auto now = memory.get<std::string>(k);
            return now && *now && (*now)->data == up->value;
        }));
        auto fresh = cache.get_or_compute<std::string>(k, loader_of(up), policy);
        REQUIRE(fresh.value);
        CHECK(*fresh.value == up->value);
        CHECK(fresh.status == CacheStatus::Hit);
    }
    const auto s = cache.stats();
    CHECK(s.soft_timeouts == 4);
    CHECK(s.late_loads == 2);
    REQUIRE(eventually([&] { return cache.loads_in_flight() == 0; }));
}

TEST_CASE_METHOD(ManualCache,
                 "Coalesced waiters answer by their own policy, not by the leader's timeout or fail-safe") {
    const hitbox::CachePolicy plain{.ttl = 10s};
    auto run_pair = [&](const CacheKey& k, const hitbox::CachePolicy& leader_policy,
                        const hitbox::CachePolicy& waiter_policy, auto&& before_release) {
        up->hold();
        hitbox::CacheResult<std::string> leader_result, waiter_result;
        std::atomic<bool> waiter_done{false};
        std::thread leader([&] { leader_result = cache.get_or_compute<std::string>(k, loader_of(up), leader_policy); });
        REQUIRE(eventually([&] { return up->calls >= 1; }));
        std::thread waiter([&] {
            waiter_result = cache.get_or_compute<std::string>(k, loader_of(up), waiter_policy);
            waiter_done = true;
        });
        REQUIRE(eventually([&] { return cache.stats().waiting == 1; }));
        before_release(leader, waiter_done);
        up->release();
        if (leader.joinable()) leader.join();
        waiter.join();
        return std::pair{leader_result, waiter_result};
    };

    SECTION("the leader's hard_timeout is not the waiter's") {
        up->value = "late value";
        const CacheKey k{"coalesced", 1};
        auto [leader, waiter] =
            run_pair(k, {.ttl = 10s, .hard_timeout = 100ms}, plain, [&](std::thread& t, auto& done) {
                t.join();  // the leader gave up at its 100 ms ...
                std::this_thread::sleep_for(100ms);
                CHECK_FALSE(done);  // ... and the waiter, without timeouts, still waits for the load
            });
        REQUIRE(leader.error);
        CHECK(leader.error->kind() == ErrorKind::timeout);
        CHECK(waiter.value == std::optional<std::string>("late value"));  // it got the leader's timeout before
        CHECK_FALSE(waiter.error);
        CHECK(up->calls == 1);
    }
    SECTION("the leader's fail-safe value is not served to a waiter whose policy has no fail_safe_max") {
        const CacheKey k{"coalesced", 2};
        const hitbox::CachePolicy fail_safe{.ttl = 10s, .fail_safe_max = 1h};
        REQUIRE(cache.get_or_compute<std::string>(k, loader_of(up), fail_safe).value);
        clock.advance(20s);
        up->failing = true;
        auto [leader, waiter] = run_pair(k, fail_safe, plain, [](std::thread&, auto&) {});
        CHECK(leader.value == std::optional<std::string>("v1"));
        CHECK(leader.fail_safe);
        CHECK_FALSE(waiter.value);  // it got the expired value, marked fail_safe, before
        CHECK_FALSE(waiter.fail_safe);
        REQUIRE(waiter.error);
        CHECK(waiter.error->kind() == ErrorKind::unavailable);
    }
}

TEST_CASE_METHOD(ManualCache, "retries: a failed round hands one retry to a waiter, also with concurrency 2") {
    const CacheKey k{"retried", 1};
    const hitbox::CachePolicy policy{.ttl = 10s, .concurrency = 2, .retries = 1};
    up->failing = true;
    up->hold();
    std::vector<std::thread> callers;
    std::atomic<int> errors{0};
    auto call = [&] {
        if (cache.get_or_compute<std::string>(k, loader_of(up), policy).error) ++errors;
    };
    for (int i = 0; i < 2; ++i) callers.emplace_back(call);
    REQUIRE(eventually([&] { return up->calls == 2; }));
    for (int i = 0; i < 3; ++i) callers.emplace_back(call);
    REQUIRE(eventually([&] { return cache.stats().waiting == 3; }));
    up->release();
    for (auto& t : callers) t.join();
    CHECK(up->calls == 3);  // 2 before: both failures of one round counted against the one retry
    CHECK(cache.stats().retries == 1);
    CHECK(errors == 5);
    CHECK(cache.loads_in_flight() == 0);
}

TEST_CASE("Loader timeouts: hard_timeout bounds 16 concurrent callers of a hung loader, which runs once") {
    hitbox::ManualClock clock;
    hitbox::InlineOffload offload;
    auto memory = manual_memory(clock);
    auto up = std::make_shared<Upstream>();
    {
        hitbox::Cache cache{memory, offload, hitbox::NoMetrics{}, clock};
        const hitbox::CachePolicy policy{.ttl = 10s, .hard_timeout = 200ms};
        const CacheKey k{"hard", 1};
        up->hold();
        std::vector<std::thread> callers;
        std::vector<std::chrono::milliseconds> took(16);
        std::atomic<int> timeouts{0};
        for (int i = 0; i < 16; ++i)
            callers.emplace_back([&, i] {
                const auto t0 = std::chrono::steady_clock::now();
                auto r = cache.get_or_compute<std::string>(k, loader_of(up), policy);
                took[i] = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
                if (!r.value && r.error && r.error->kind() == ErrorKind::timeout) ++timeouts;
            });
        for (auto& t : callers) t.join();
        CHECK(timeouts == 16);
        CHECK(up->calls == 1);              // the hung loader is not called again by those who gave up on it
        for (auto t : took) CHECK(t < 3s);  // 200 ms, with room for a loaded machine
        CHECK(*std::max_element(took.begin(), took.end()) >= 200ms);
        // A later caller still does not start a second load while the first one hangs.
        auto again = cache.get_or_compute<std::string>(k, loader_of(up), policy);
        CHECK_FALSE(again.value);
        CHECK(up->calls == 1);
        CHECK(cache.stats().hard_timeouts >= 2);  // the leader and the later caller (waiters take its answer)
        up->release();
        REQUIRE(eventually([&] { return cache.stats().late_loads == 1 && cache.loads_in_flight() == 0; }));
        auto landed = cache.get_or_compute<std::string>(k, loader_of(up), policy);
        REQUIRE(landed.value);
        CHECK(*landed.value == "v1");
        CHECK(landed.status == CacheStatus::Hit);
        // A loader that hangs past the cache's life: the cache goes, the loader finishes later.
        up->hold();
        CHECK_FALSE(cache.get_or_compute<std::string>(CacheKey{"hard", 2}, loader_of(up), policy).value);
    }
    up->release();
    REQUIRE(eventually([&] { return up->finished == 2; }));
}

TEST_CASE_METHOD(ManualCache,
                 "Fail-safe throttle: a stale entry whose reload fails is served for the throttle without reloads") {
    for (auto stale_policy : {hitbox::StalePolicy::Revalidate, hitbox::StalePolicy::OffloadRevalidate}) {
        CAPTURE(static_cast<int>(stale_policy));
        const CacheKey k{"stale-throttle", static_cast<std::uint32_t>(stale_policy)};
        const hitbox::CachePolicy policy{
            .ttl = 60s, .stale = 10s, .stale_policy = stale_policy, .fail_safe_max = 1h, .fail_safe_throttle = 5s};
        up->failing = false;
        up->calls = 0;
        REQUIRE(cache.get_or_compute<std::string>(k, loader_of(up), policy).value == "v1");
        clock.advance(11s);  // stale
        up->failing = true;  // and the database fails
        auto first = cache.get_or_compute<std::string>(k, loader_of(up), policy);
        CHECK(first.value == "v1");
        CHECK(first.status == CacheStatus::Stale);
        CHECK(up->calls == 2);
        for (int i = 0; i < 5; ++i) {  // one failing reload per request before
            auto again = cache.get_or_compute<std::string>(k, loader_of(up), policy);
            CHECK(again.value == "v1");
        }
        CHECK(up->calls == 2);
        clock.advance(6s);  // the throttle passed: one more attempt
        (void)cache.get_or_compute<std::string>(k, loader_of(up), policy);
        CHECK(up->calls == 3);
        up->failing = false;  // the database is back
        clock.advance(6s);
        (void)cache.get_or_compute<std::string>(k, loader_of(up), policy);
        CHECK(up->calls == 4);
        auto fresh = cache.get_or_compute<std::string>(k, loader_of(up), policy);
        CHECK(fresh.status == CacheStatus::Hit);
        CHECK(fresh.value == "v1");
        CHECK(up->calls == 4);
    }
}

TEST_CASE("Loader timeouts: at most max_timed_loads loader threads; past them calls answer at once") {
    hitbox::ManualClock clock;
    hitbox::InlineOffload offload;
    auto memory = manual_memory(clock);
    auto up = std::make_shared<Upstream>();
    hitbox::CacheOptions options;
    options.max_timed_loads = 4;
    {
        hitbox::Cache cache{memory, offload, hitbox::NoMetrics{}, clock, options};
        const hitbox::CachePolicy policy{.ttl = 10s, .hard_timeout = 50ms};
        up->hold();  // the database hangs
        for (std::uint32_t i = 0; i < 4; ++i) {
            auto r = cache.get_or_compute<std::string>(CacheKey{"hung", i}, loader_of(up), policy);
            REQUIRE(r.error);
            CHECK(r.error->kind() == ErrorKind::timeout);
        }
        CHECK(up->calls == 4);
        // Four loads run past their callers: the next calls neither call the loader nor start a thread, and
        // answer before their hard timeout.
        for (std::uint32_t i = 4; i < 10; ++i) {
            const auto t0 = std::chrono::steady_clock::now();
            auto r = cache.get_or_compute<std::string>(CacheKey{"hung", i}, loader_of(up), policy);
            CHECK(std::chrono::steady_clock::now() - t0 < 2s);  // no thread waits for a loader here
            REQUIRE(r.error);
            CHECK(r.error->kind() == ErrorKind::timeout);
            CHECK(r.error->message().find("max_timed_loads") != std::string::npos);
        }
        CHECK(up->calls == 4);
        CHECK(cache.stats().loads_shed == 6);
        CHECK(cache.stats().hard_timeouts == 4);
        // A call that holds a fail-safe value is served it at the bound, as at its timeout.
        const hitbox::CachePolicy safe{.ttl = 10s, .fail_safe_max = 1h, .hard_timeout = 50ms};
        up->release();
        REQUIRE(eventually([&] { return cache.stats().late_loads == 4; }));
        REQUIRE(cache.get_or_compute<std::string>(CacheKey{"kept", 1}, loader_of(up), safe).value);
        clock.advance(11s);  // expired, kept
        up->hold();
        for (std::uint32_t i = 0; i < 4; ++i)
            (void)cache.get_or_compute<std::string>(CacheKey{"hung2", i}, loader_of(up), policy);
        auto kept = cache.get_or_compute<std::string>(CacheKey{"kept", 1}, loader_of(up), safe);
        REQUIRE(kept.value);
        CHECK(*kept.value == "v1");
        CHECK(kept.fail_safe);
        CHECK(cache.stats().loads_shed == 7);
        up->release();
        REQUIRE(eventually([&] { return cache.stats().late_loads == 8; }));
        // Threads gone: loads start again.
        const int before = up->calls;
        auto fresh = cache.get_or_compute<std::string>(CacheKey{"after", 1}, loader_of(up), policy);
        REQUIRE(fresh.value);
        CHECK(up->calls == before + 1);
    }
}

TEST_CASE("Loader timeouts and fail-safe: invalid values are config errors; max() is no limit") {
    hitbox::InlineOffload offload;
    auto memory = hitbox::MemoryBackend::builder().max_entries(10).build();
    REQUIRE(memory);
    hitbox::Cache cache{*memory, offload};
    auto loader = [] { return std::string("x"); };
    for (const hitbox::CachePolicy& bad :
         {hitbox::CachePolicy{.fail_safe_max = 0ms}, hitbox::CachePolicy{.fail_safe_throttle = -1ms},
          hitbox::CachePolicy{.soft_timeout = 0ms}, hitbox::CachePolicy{.hard_timeout = -5ms},
          hitbox::CachePolicy{.soft_timeout = 2s, .hard_timeout = 1s}}) {
        auto r = cache.get_or_compute<std::string>(CacheKey{"bad", 0}, loader, bad);
        REQUIRE(r.error);
        CHECK(r.error->kind() == ErrorKind::config);
    }
    auto ok = cache.get_or_compute<std::string>(CacheKey{"max", 0}, loader,
                                                {.ttl = 1min,
                                                 .fail_safe_max = std::chrono::milliseconds::max(),
                                                 .fail_safe_throttle = std::chrono::milliseconds::max(),
                                                 .soft_timeout = std::chrono::milliseconds::max(),
                                                 .hard_timeout = std::chrono::milliseconds::max()});
    REQUIRE(ok.value);
    auto stored = memory->get<std::string>(CacheKey{"max", 0});
    REQUIRE(stored);
    REQUIRE(*stored);
    CHECK((*stored)->retain == hitbox::TimePoint::max());
}

TEST_CASE(
    "Fail-safe over Redis: the entry outlives its ttl in Redis, and another instance serves it "
    "when its loader fails, throttled for every instance",
    "[redis]") {
    if (!hitbox_test::require_redis_server()) return;
    hitbox_test::RedisServer server;
    auto redis_tier = [&] {
        auto r = hitbox::RedisBackend<>::builder()
                     .connection(hitbox::ConnectionMode::single(server.url()))
                     .key_prefix("fs:")
                     .build();
        REQUIRE(r);
        return std::move(*r);
    };
    auto memory_tier = [] {
        auto m = hitbox::MemoryBackend::builder().max_entries(100).build();
        REQUIRE(m);
        return std::move(*m);
    };
    hitbox::InlineOffload offload;
    const hitbox::CachePolicy policy{.ttl = 300ms, .fail_safe_max = 1min, .fail_safe_throttle = 30s};
    const CacheKey k{"report", 1};
    auto up = std::make_shared<Upstream>();

    auto first = hitbox::compose(memory_tier(), redis_tier(), offload);
    hitbox::Cache a{first, offload};
    REQUIRE(a.get_or_compute<std::string>(k, loader_of(up), policy).value == "v1");
    std::this_thread::sleep_for(400ms);  // past the ttl
    {
        auto kept = first.l2().get<std::string>(k);  // Redis still holds it (PX covers fail_safe_max)
        REQUIRE(kept);
        REQUIRE(*kept);
        CHECK((*kept)->state(hitbox::SystemClock::now()) == hitbox::EntryState::Expired);
        CHECK((*kept)->data == "v1");
    }

    // Another instance (its own, empty L1) while the database is down.
    up->failing = true;
    auto second = hitbox::compose(memory_tier(), redis_tier(), offload);
    hitbox::Cache b{second, offload};
    auto r = b.get_or_compute<std::string>(k, loader_of(up), policy);
    REQUIRE(r.value);
    CHECK(*r.value == "v1");
    CHECK(r.fail_safe);
    CHECK(r.source == "cache.redis");
    CHECK(up->calls == 2);
    // The throttled copy went to Redis too: neither instance calls the database again for a while.
    for (int i = 0; i < 10; ++i) {
        auto ra = a.get_or_compute<std::string>(k, loader_of(up), policy);
        auto rb = b.get_or_compute<std::string>(k, loader_of(up), policy);
        CHECK(ra.value == std::optional<std::string>("v1"));
        CHECK(rb.value == std::optional<std::string>("v1"));
    }
    CHECK(up->calls == 2);
    const auto p = hitbox_test::parse_prometheus(hitbox::prometheus_text(b));
    CHECK(p.value("hitbox_cache_fail_safe_total", {{"backend", "cache"}}) == 1.0);
}

// ---- the stampede lock in the cache front (CachePolicy::lock_ttl) ------------------------------------------

namespace {

/// One "instance": its own L1 and its own connection to the shared Redis, and its own Cache.
struct Instance {
    using Tiers = hitbox::Compose<hitbox::MemoryBackend, hitbox::RedisBackend<>, hitbox::InlineOffload>;
    hitbox::InlineOffload offload;
    Tiers tiers;
    hitbox::Cache<Tiers&, hitbox::InlineOffload> cache{tiers, offload};

    explicit Instance(const std::string& url)
        : tiers(
              [] {
                  auto m = hitbox::MemoryBackend::builder().max_entries(100).build();
                  REQUIRE(m);
                  return std::move(*m);
              }(),
              [&] {
                  auto r = hitbox::RedisBackend<>::builder()
                               .connection(hitbox::ConnectionMode::single(url))
                               .key_prefix("stampede:")
                               .build();
                  REQUIRE(r);
                  return std::move(*r);
              }(),
              offload) {}
};

/// Counts loader calls in a file (O_APPEND: one byte per call), so that processes can share the count.
struct CallLog {
    std::string path;
    CallLog() {
        char name[] = "/tmp/hitbox-calls-XXXXXX";
        const int fd = ::mkstemp(name);
        REQUIRE(fd >= 0);
        ::close(fd);
        path = name;
    }
    ~CallLog() { ::unlink(path.c_str()); }
    void add() const {
        const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND);
        if (fd >= 0) {
            (void)!::write(fd, "x", 1);
            ::close(fd);
        }
    }
    long count() const {
        struct stat st {};
        return ::stat(path.c_str(), &st) == 0 ? static_cast<long>(st.st_size) : -1;
    }
};

}  // namespace

TEST_CASE("Stampede lock in the cache: 8 instances on one cold key call the loader once", "[redis]") {
    if (!hitbox_test::require_redis_server()) return;
    hitbox_test::RedisServer server;
    std::vector<std::unique_ptr<Instance>> instances;
    for (int i = 0; i < 8; ++i) instances.push_back(std::make_unique<Instance>(server.url()));
    const hitbox::CachePolicy locked{.ttl = 1min, .waiter_timeout = 10s, .lock_ttl = 5s, .lock_poll = 10ms};
    for (int round = 0; round < 3; ++round) {
        const CacheKey k{"hot", static_cast<std::uint32_t>(round)};
        std::atomic<int> calls{0};
        auto loader = [&] {
            ++calls;
            std::this_thread::sleep_for(150ms);  // a slow query: everyone arrives while it runs
            return std::string("row");
        };
        std::vector<std::thread> callers;
        std::atomic<int> served{0};
        for (auto& inst : instances)
            for (int t = 0; t < 2; ++t)  // two threads per instance: the in-process flight is exercised too
                callers.emplace_back([&, cache = &inst->cache] {
                    auto r = cache->get_or_compute<std::string>(k, loader, locked);
                    if (r.value == std::optional<std::string>("row")) ++served;
                });
        for (auto& t : callers) t.join();
        CHECK(served == 16);
        CHECK(calls == 1);
    }
    std::uint64_t taken = 0, waits = 0;
    for (auto& inst : instances) {
        taken += inst->cache.stats().locks_taken;
        waits += inst->cache.stats().lock_waits;
    }
    CHECK(taken >= 3);
    CHECK(waits >= 3);  // at least one other instance per round found the lock and took the value
    // Without the lock each instance loads on its own (the baseline the lock is for).
    std::atomic<int> calls{0};
    auto loader = [&] {
        ++calls;
        std::this_thread::sleep_for(150ms);
        return std::string("row");
    };
    std::vector<std::thread> callers;
    for (auto& inst : instances)
        callers.emplace_back([&, cache = &inst->cache] {
            (void)cache->get_or_compute<std::string>(CacheKey{"unlocked", 0}, loader, {.ttl = 1min});
        });
    for (auto& t : callers) t.join();
    CHECK(calls > 1);
}

TEST_CASE("Stampede lock in the cache: a stale L1 entry does not hide the value another instance wrote to Redis",
          "[redis]") {
    if (!hitbox_test::require_redis_server()) return;
    hitbox_test::RedisServer server;
    Instance a(server.url()), b(server.url());
    const hitbox::CachePolicy policy{.ttl = 1min,
                                     .stale = 200ms,
                                     .stale_policy = hitbox::StalePolicy::Revalidate,
                                     .lock_ttl = 5s,
                                     .lock_poll = 10ms};
    const CacheKey k{"page", 1};
    std::atomic<int> calls{0};
    REQUIRE(a.cache
                .get_or_compute<std::string>(
                    k, [] { return std::string("v1"); }, policy)
                .value == std::optional<std::string>("v1"));
    REQUIRE(b.cache
                .get_or_compute<std::string>(
                    k, [] { return std::string("other"); }, policy)
                .value == std::optional<std::string>("v1"));  // from Redis, now in b's memory tier too
    std::this_thread::sleep_for(250ms);                       // stale in both memory tiers and in Redis
    std::atomic<bool> a_loading{false};
    std::optional<std::string> got_a, got_b;
    std::thread ta([&] {
        got_a = a.cache
                    .get_or_compute<std::string>(
                        k,
                        [&] {
                            ++calls;
                            a_loading = true;
                            std::this_thread::sleep_for(300ms);
                            return std::string("v2");
                        },
                        policy)
                    .value;
    });
    for (int i = 0; i < 400 && !a_loading; ++i) std::this_thread::sleep_for(5ms);
    REQUIRE(a_loading);
    auto rb = b.cache.get_or_compute<std::string>(
        k,
        [&] {
            ++calls;
            return std::string("v2 from b");
        },
        policy);
    ta.join();
    got_b = rb.value;
    CHECK(got_a == std::optional<std::string>("v2"));
    CHECK(got_b == std::optional<std::string>("v2"));  // b took a's value from Redis
    CHECK(calls == 1);                                 // 2 before: b re-read only its own stale L1 entry
    CHECK(b.cache.stats().lock_waits == 1);
    // b's memory tier holds the fresh value now.
    auto in_b = b.tiers.l1().get<std::string>(k);
    REQUIRE(in_b);
    REQUIRE(*in_b);
    CHECK((*in_b)->data == "v2");
}

TEST_CASE("Stampede lock in the cache: waiters wait with a leader that waits for another instance's lock", "[redis]") {
    if (!hitbox_test::require_redis_server()) return;
    hitbox_test::RedisServer server;
    Instance other(server.url()), inst(server.url());
    const CacheKey k{"held", 1};
    // Another instance holds the lock and never writes the value (it crashed, or its lock_ttl is long).
    auto held = other.tiers.try_lock(k, "someone else", std::chrono::seconds(30));
    REQUIRE(held);
    REQUIRE(*held);
    const hitbox::CachePolicy policy{.ttl = 1min, .waiter_timeout = 300ms, .lock_ttl = 10s, .lock_poll = 10ms};
    std::atomic<int> calls{0};
    std::atomic<int> served{0};
    std::vector<std::thread> callers;
    for (int t = 0; t < 8; ++t) {
        callers.emplace_back([&] {
            auto r = inst.cache.get_or_compute<std::string>(
                k,
                [&] {
                    ++calls;
                    std::this_thread::sleep_for(100ms);
                    return std::string("row");
                },
                policy);
            if (r.value == std::optional<std::string>("row")) ++served;
        });
        // The leader first: it stops waiting for the lock (and loads) 50 ms before the waiters' own
        // waiter_timeout passes, when they find it loading, not waiting for the lock.
        if (t == 0) std::this_thread::sleep_for(50ms);
    }
    for (auto& t : callers) t.join();
    CHECK(served == 8);
    // The leader polled up to its waiter_timeout, then loaded without the lock; the 7 waiters, whose own
    // waiter_timeout passed meanwhile, waited for that load instead of each loading (8 calls before).
    CHECK(calls == 1);
    const auto s = inst.cache.stats();
    CHECK(s.lock_timeouts == 1);
    CHECK(s.waiter_timeouts == 0);
    CHECK(s.coalesced == 7);
}

TEST_CASE("Stampede lock in the cache: a waiter waits with a lock-waiting leader for one more timeout at most",
          "[redis]") {
    if (!hitbox_test::require_redis_server()) return;
    hitbox_test::RedisServer server;
    Instance other(server.url()), inst(server.url());
    const CacheKey k{"held long", 1};
    REQUIRE(*other.tiers.try_lock(k, "someone else", std::chrono::seconds(30)));
    // The leader's policy waits for the lock without limit; the waiter's own limit is 200 ms.
    const hitbox::CachePolicy patient{
        .ttl = 1min, .waiter_timeout = std::chrono::milliseconds::max(), .lock_ttl = 10s, .lock_poll = 10ms};
    const hitbox::CachePolicy brief{.ttl = 1min, .waiter_timeout = 200ms, .lock_ttl = 10s, .lock_poll = 10ms};
    std::atomic<int> calls{0};
    std::thread leader([&] {
        (void)inst.cache.get_or_compute<std::string>(
            k,
            [&] {
                ++calls;
                return std::string("leader");
            },
            patient);
    });
    std::this_thread::sleep_for(50ms);  // the leader polls the lock
    const auto t0 = std::chrono::steady_clock::now();
    auto r = inst.cache.get_or_compute<std::string>(
        k,
        [&] {
            ++calls;
            return std::string("waiter");
        },
        brief);
    const auto waited = std::chrono::steady_clock::now() - t0;
    CHECK(r.value == std::optional<std::string>("waiter"));  // it loaded itself after its two timeouts
    CHECK(waited >= 350ms);
    CHECK(waited < 5s);                               // not the leader's unbounded wait (30 s, the lock's life)
    REQUIRE(*other.tiers.unlock(k, "someone else"));  // the leader takes the lock and ends
    leader.join();
}

TEST_CASE("Stampede lock in the cache: a waiter behind a lock-waiting leader still answers at its hard_timeout",
          "[redis]") {
    if (!hitbox_test::require_redis_server()) return;
    hitbox_test::RedisServer server;
    Instance other(server.url()), inst(server.url());
    const CacheKey k{"held, hard", 1};
    REQUIRE(*other.tiers.try_lock(k, "someone else", std::chrono::seconds(30)));
    // hard_timeout above waiter_timeout: the waiter does not give up at its waiter limit, it waits.
    const hitbox::CachePolicy policy{
        .ttl = 1min, .waiter_timeout = 1000ms, .hard_timeout = 1100ms, .lock_ttl = 10s, .lock_poll = 10ms};
    std::atomic<int> calls{0}, finished{0};
    auto slow = [&] {
        ++calls;
        std::this_thread::sleep_for(2s);  // the database hangs; the leader answers at its hard timeout
        ++finished;
        return std::string("late");
    };
    std::thread leader([&] { (void)inst.cache.get_or_compute<std::string>(k, slow, policy); });
    std::this_thread::sleep_for(50ms);
    const auto t0 = std::chrono::steady_clock::now();
    auto r = inst.cache.get_or_compute<std::string>(k, slow, policy);
    const auto waited = std::chrono::steady_clock::now() - t0;
    REQUIRE(r.error);
    CHECK(r.error->kind() == ErrorKind::timeout);
    CHECK(waited >= 1000ms);
    CHECK(waited < 1800ms);  // 2 s and more before: its timeout restarted when the leader began to load
    leader.join();
    CHECK(calls == 1);
    REQUIRE(*other.tiers.unlock(k, "someone else"));
    // The loader's own thread ends before the next test (one of them forks: a process with threads may not).
    REQUIRE(eventually([&] { return finished == 1 && inst.cache.stats().late_loads == 1; }));
    std::this_thread::sleep_for(200ms);  // and has returned (it counts late_loads just before it ends)
}

TEST_CASE("Stampede lock in the cache: a background refresh takes the lock, or leaves the refresh to its holder",
          "[redis]") {
    if (!hitbox_test::require_redis_server()) return;
    hitbox_test::RedisServer server;
    Instance other(server.url()), inst(server.url());
    const hitbox::CachePolicy policy{
        .ttl = 1min, .stale = 200ms, .stale_policy = hitbox::StalePolicy::OffloadRevalidate, .lock_ttl = 5s};
    const CacheKey k{"refreshed", 1};
    std::atomic<int> calls{0};
    auto loader = [&] {
        ++calls;
        return std::string("loaded by inst");
    };
    REQUIRE(other.cache.put<std::string>(k, "v1", policy));
    REQUIRE(inst.cache.get_or_compute<std::string>(k, loader, policy).value == std::optional<std::string>("v1"));
    std::this_thread::sleep_for(250ms);                                        // stale everywhere
    REQUIRE(*other.tiers.try_lock(k, "refresher", std::chrono::seconds(30)));  // another instance refreshes

    auto stale = inst.cache.get_or_compute<std::string>(k, loader, policy);  // InlineOffload: refresh runs here
    CHECK(stale.status == hitbox::CacheStatus::Stale);
    CHECK(calls == 0);  // 1 before: the refresh ignored the lock
    CHECK(inst.cache.stats().revalidations_skipped == 1);

    REQUIRE(other.cache.put<std::string>(k, "v2", policy));  // the holder's refresh lands in Redis
    CHECK(inst.cache.get_or_compute<std::string>(k, loader, policy).status == hitbox::CacheStatus::Stale);
    auto fresh = inst.cache.get_or_compute<std::string>(k, loader, policy);  // the refresh took v2 from Redis
    CHECK(fresh.status == hitbox::CacheStatus::Hit);
    CHECK(fresh.value == std::optional<std::string>("v2"));
    CHECK(calls == 0);

    REQUIRE(*other.tiers.unlock(k, "refresher"));
    std::this_thread::sleep_for(250ms);  // stale again, and nobody holds the lock
    CHECK(inst.cache.get_or_compute<std::string>(k, loader, policy).status == hitbox::CacheStatus::Stale);
    CHECK(calls == 1);  // this instance refreshed, under the lock
    CHECK(inst.cache.stats().locks_taken == 1);
    auto free_again = other.tiers.try_lock(k, "next", std::chrono::seconds(1));  // and released it
    REQUIRE(free_again);
    CHECK(*free_again);
    CHECK(inst.cache.get_or_compute<std::string>(k, loader, policy).value ==
          std::optional<std::string>("loaded by inst"));
}

TEST_CASE(
    "Stampede lock in the cache: lock_poll = milliseconds::max() waits up to the waiter limit, polling "
    "no faster than then",
    "[redis]") {
    if (!hitbox_test::require_redis_server()) return;
    hitbox_test::RedisServer server;
    Instance holder(server.url()), waiter(server.url());
    const CacheKey k{"held-elsewhere", 1};
    // Another instance holds the lock and never publishes a value.
    auto held = holder.tiers.try_lock(k, "another-instance", 10s);
    REQUIRE(held);
    REQUIRE(*held);
    (void)server.cli({"CONFIG", "RESETSTAT"});
    int calls = 0;
    const auto t0 = std::chrono::steady_clock::now();
    auto r = waiter.cache.get_or_compute<std::string>(
        k,
        [&] {
            ++calls;
            return std::string("row");
        },
        {.ttl = 1min, .waiter_timeout = 300ms, .lock_ttl = 10s, .lock_poll = std::chrono::milliseconds::max()});
    const auto took = std::chrono::steady_clock::now() - t0;
    // The wait ends at the waiter limit (the lock stays held), and the caller then loads without the lock.
    CHECK(took >= 250ms);
    CHECK(took < 5s);
    CHECK(r.value == std::optional<std::string>("row"));
    CHECK(calls == 1);
    CHECK(waiter.cache.stats().lock_timeouts == 1);
    // One poll at most in the wait: a max() poll interval once overflowed into a negative sleep, and the
    // caller hammered Redis with GET and SET NX for the whole wait (thousands of commands).
    const std::string stats = server.cli({"INFO", "commandstats"});
    const auto at = stats.find("cmdstat_set:calls=");
    REQUIRE(at != std::string::npos);
    const long sets = std::stol(stats.substr(at + std::string_view("cmdstat_set:calls=").size()));
    CHECK(sets <= 4);  // the lock attempts and the loaded value's write
}

TEST_CASE(
    "Stampede lock in the cache: two processes on one cold key call the loader once; a killed owner's "
    "lock expires and another instance loads",
    "[redis]") {
    if (!hitbox_test::require_redis_server()) return;
    hitbox_test::RedisServer server;
    CallLog log;
    const hitbox::CachePolicy locked{.ttl = 1min, .waiter_timeout = 10s, .lock_ttl = 800ms, .lock_poll = 10ms};
    const CacheKey k{"two-process", 1};
    // What each process does: its own instance, one call on the cold key with a slow, logged loader.
    auto load_once = [&] {
        Instance inst(server.url());
        auto r = inst.cache.get_or_compute<std::string>(
            k,
            [&] {
                log.add();
                std::this_thread::sleep_for(300ms);
                return std::string("row");
            },
            locked);
        return r.value == std::optional<std::string>("row");
    };
    std::fflush(nullptr);
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {  // the other process: its own instance; nothing of Catch2 runs here
        int code = 3;
        try {
            code = load_once() ? 0 : 2;
        } catch (...) {
        }
        std::_Exit(code);
    }
    CHECK(load_once());
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    CHECK(log.count() == 1);

    // A leader that dies holding the lock: the child takes it, then is killed in the middle of its load.
    const CacheKey cold{"orphaned", 1};
    int ready[2];
    REQUIRE(::pipe(ready) == 0);
    std::fflush(nullptr);
    const pid_t owner = ::fork();
    REQUIRE(owner >= 0);
    if (owner == 0) {
        ::close(ready[0]);
        Instance inst(server.url());
        (void)inst.cache.get_or_compute<std::string>(
            cold,
            [&] {
                (void)!::write(ready[1], "1", 1);  // the lock is taken: the loader runs
                for (;;) std::this_thread::sleep_for(1s);
                return std::string("never");
            },
            locked);
        std::_Exit(4);
    }
    ::close(ready[1]);
    char byte = 0;
    REQUIRE(::read(ready[0], &byte, 1) == 1);
    ::close(ready[0]);
    REQUIRE(::kill(owner, SIGKILL) == 0);
    REQUIRE(::waitpid(owner, &status, 0) == owner);
    Instance inst(server.url());
    std::atomic<int> calls{0};
    const auto t0 = std::chrono::steady_clock::now();
    auto r = inst.cache.get_or_compute<std::string>(
        cold,
        [&] {
            ++calls;
            return std::string("recovered");
        },
        locked);
    const auto took = std::chrono::steady_clock::now() - t0;
    CHECK(r.value == std::optional<std::string>("recovered"));
    CHECK(calls == 1);
    CHECK(took < 8s);  // the lock's 800 ms, far below the 10 s waiter limit
    CHECK(inst.cache.stats().locks_taken == 1);
}

TEST_CASE("Stampede lock in the cache: a waiter past its hard_timeout gets a timeout error that names the lock",
          "[redis]") {
    if (!hitbox_test::require_redis_server()) return;
    hitbox_test::RedisServer server;
    Instance owner(server.url()), waiter(server.url());
    const CacheKey k{"held", 1};
    // Another instance holds the lock and never writes the value.
    REQUIRE(owner.tiers.try_lock(k, "owner-token", 10s).value());
    const hitbox::CachePolicy policy{
        .ttl = 1min, .waiter_timeout = 10s, .hard_timeout = 300ms, .lock_ttl = 10s, .lock_poll = 10ms};
    int calls = 0;
    const auto t0 = std::chrono::steady_clock::now();
    auto r = waiter.cache.get_or_compute<std::string>(
        k,
        [&] {
            ++calls;
            return std::string("loaded");
        },
        policy);
    const auto took = std::chrono::steady_clock::now() - t0;
    REQUIRE(r.error);
    CHECK(r.error->kind() == hitbox::ErrorKind::timeout);
    CHECK(r.error->message().find("stampede lock") != std::string::npos);
    CHECK(r.error->message().find("300 ms") != std::string::npos);
    CHECK(calls == 0);
    CHECK(took >= 300ms);
    CHECK(took < 5s);  // the 300 ms limit, far below the 10 s waiter limit and lock
    CHECK(waiter.cache.stats().lock_timeouts == 1);
    CHECK(waiter.cache.stats().locks_taken == 0);
}

TEST_CASE("Stampede lock in the cache: a lock Redis refuses is a write error of the tier, under its path", "[redis]") {
    if (!hitbox_test::require_redis_server()) return;
    hitbox_test::RedisServer server;
    Instance one(server.url());
    // Redis over its memory limit (noeviction) refuses every write with OOM, the lock's SET NX too; reads go.
    server.cli({"-x", "SET", "ballast"}, std::string(2u << 20, 'b'));
    REQUIRE(server.cli({"CONFIG", "SET", "maxmemory", "1mb"}) == "OK");
    std::mutex m;
    std::vector<std::pair<hitbox::CacheOp, hitbox::Error>> events;
    hitbox::Cache<Instance::Tiers&, hitbox::InlineOffload> cache{
        one.tiers, one.offload, hitbox::NoMetrics{}, hitbox::SystemClock{},
        hitbox::CacheOptions{{}, [&](const hitbox::CacheErrorEvent& e) {
                                 std::lock_guard lock(m);
                                 events.emplace_back(e.op, e.error);
                             }}};
    int calls = 0;
    auto r = cache.get_or_compute<std::string>(CacheKey{"oom", 1},
                                               [&] {
                                                   ++calls;
                                                   return std::string("loaded");
                                               },
                                               {.ttl = 1min, .lock_ttl = 10s});
    CHECK(r.value == std::optional<std::string>("loaded"));  // no lock to be had: loaded without it
    CHECK(calls == 1);
    REQUIRE_FALSE(r.backend_errors.empty());
    CHECK(r.backend_errors[0].backend() == "cache.redis");  // the tier's path, as its other errors
    CHECK(r.backend_errors[0].message().find("OOM") != std::string::npos);
    CHECK(cache.stats().read_errors == 0);
    CHECK(cache.stats().write_errors >= 1);  // the lock, then the value's SET
    std::lock_guard lock(m);
    REQUIRE_FALSE(events.empty());
    CHECK(events[0].first == hitbox::CacheOp::write);
    CHECK(events[0].second.backend() == "cache.redis");
}

TEST_CASE("Stampede lock in the cache: lock_ttl over a backend without a lock is a config error") {
    hitbox::InlineOffload offload;
    auto memory = hitbox::MemoryBackend::builder().max_entries(10).build();
    REQUIRE(memory);
    hitbox::Cache cache{*memory, offload};
    int calls = 0;
    auto r = cache.get_or_compute<std::string>(CacheKey{"k", 0},
                                               [&] {
                                                   ++calls;
                                                   return std::string("x");
                                               },
                                               {.ttl = 1min, .lock_ttl = 1s});
    REQUIRE(r.error);
    CHECK(r.error->kind() == ErrorKind::config);
    CHECK(r.error->message().find("lock_ttl") != std::string::npos);
    CHECK(calls == 0);
}
