// Resilience. hitbox::CircuitBreaker (hitbox/resilience/circuit_breaker.hpp): opens after N counted failures within
// the window, answers at once without touching the tier while open, lets one probe through after the
// cool-down, closes on its success and reopens on its failure; errors about an entry do not count. Then a
// real redis-server frozen with SIGSTOP behind Compose + Cache: once the breaker opens, calls are answered
// from the loader in a fraction of the command timeout, and Redis is used again after SIGCONT.
#include <catch2/catch.hpp>

#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include <hitbox/backend/memory/memory_backend.hpp>
#include <hitbox/backend/redis.hpp>
#include <hitbox/backend_config.hpp>
#include <hitbox/cache.hpp>
#include <hitbox/compose/compose.hpp>
#include <hitbox/key_format/url_encoded.hpp>
#include <hitbox/offload/inline_offload.hpp>
#include <hitbox/resilience/circuit_breaker.hpp>

#include "support/prometheus_parse.hpp"
#include "support/redis_server.hpp"
#include "support/test_backends.hpp"

using namespace std::chrono_literals;
using hitbox::BreakerState;
using hitbox::CacheKey;
using hitbox::CacheValue;
using hitbox::ErrorKind;
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
}
