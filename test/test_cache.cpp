// hitbox::Cache (get_or_compute) and hitbox::memoize: freshness under each stale policy on a manual clock,
// stampede protection on real threads (64 callers of a cold key, the concurrency limit, a failing leader,
// the waiter timeout), background refresh once per key, fail-open on backend errors, negative caching,
// policy checks, loader shapes, label paths, metrics and lifetime.
//
// Tiers: a MemoryBackend on a ManualClock (L1, "memory") in front of a test double that fails on demand
// (L2, "redis"), sharing the clock; InlineOffload for the composition.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <functional>
#include <iostream>
#include <latch>
#include <mutex>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include <boost/hana/define_struct.hpp>

#include <hitbox/backend/memory/memory_backend.hpp>
#include <hitbox/cache.hpp>
#include <hitbox/compose/compose.hpp>
#include <hitbox/offload/inline_offload.hpp>
#include <hitbox/offload/offload_manager.hpp>

#include "support/manual_memory.hpp"
#include "support/prometheus_parse.hpp"
#include "support/test_backends.hpp"

using namespace std::chrono_literals;
using hitbox::CacheKey;
using hitbox::CachePolicy;
using hitbox::CacheStatus;
using hitbox::ErrorKind;
using hitbox::StalePolicy;
using hitbox_test::Op;

namespace {

using Memory = hitbox_test::ManualMemory;
// The cache front copies a fresh L1 value straight out of the entry (read_with); the tests below drive
// that path (fresh, stale, expired, mismatched) through this tier.
static_assert(hitbox::ReadsInPlace<Memory, std::string>);
using Remote = hitbox_test::BasicFailingBackend<hitbox::ManualClock>;
using Tiers = hitbox::Compose<Memory, Remote, hitbox::InlineOffload>;
// The capabilities the front reads a composition through (core/concepts.hpp).
static_assert(hitbox::TieredBackend<Tiers> && hitbox::ResumableRead<Tiers, std::string> &&
              hitbox::TracedBackend<Tiers, std::string>);
static_assert(!hitbox::TieredBackend<Memory> && !hitbox::TracedBackend<Memory, std::string>);

const CacheKey key{"user", 1, {{"id", "42"}}};

/// L1 memory + L2 double on one manual clock. The tiers are handles: the fixture keeps copies to inspect.
struct Fixture {
    hitbox::ManualClock clock;
    hitbox::InlineOffload offload;
    Memory l1 = hitbox_test::manual_memory(clock);
    Remote l2{"redis", clock};
    Tiers tiers{l1, l2, offload};
};

/// Records what the error handler was told.
struct ErrorLog {
    std::mutex mutex;
    std::vector<std::pair<hitbox::CacheOp, hitbox::Error>> events;

    hitbox::CacheOptions options(CachePolicy policy = {}) {
        return {policy, [this](const hitbox::CacheErrorEvent& e) {
                    std::lock_guard lock(mutex);
                    events.emplace_back(e.op, e.error);
                }};
    }
    std::size_t count(hitbox::CacheOp op) {
        std::lock_guard lock(mutex);
        std::size_t n = 0;
        for (const auto& [o, e] : events) n += o == op;
        return n;
    }
};

/// A one-shot signal with a bounded wait.
class Signal {
public:
    void open() {
        {
            std::lock_guard lock(m_);
            open_ = true;
        }
        cv_.notify_all();
    }
    bool wait(std::chrono::milliseconds limit = 20s) {
        std::unique_lock lock(m_);
        return cv_.wait_for(lock, limit, [&] { return open_; });
    }

private:
    std::mutex m_;
    std::condition_variable cv_;
    bool open_ = false;
};

/// Polls `pred` until it holds or `limit` passes.
template <class P>
bool eventually(P pred, std::chrono::milliseconds limit = 20s) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!pred()) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        std::this_thread::sleep_for(1ms);
    }
    return true;
}

/// A loader returning "v1", "v2", ... and counting its calls.
struct Versions {
    std::atomic<int> calls{0};
    auto loader() {
        return [this] { return "v" + std::to_string(++calls); };
    }
};

const CachePolicy fresh_stale_ttl{.ttl = 60s, .stale = 45s};

}  // namespace

// ---- freshness and stale policies ---------------------------------------------------------------------

TEST_CASE("StalePolicy::Return: fresh, then stale served as it is, then expired and reloaded") {
    Fixture f;
    hitbox::Cache cache{f.tiers, f.offload, hitbox::NoMetrics{}, f.clock};
    Versions v;

    auto first = cache.get_or_compute<std::string>(key, v.loader(), fresh_stale_ttl);
    CHECK(first.status == CacheStatus::Miss);
    CHECK(first.source == "upstream");
    CHECK(*first == "v1");
    CHECK(first.ok());
    CHECK(first.backend_errors.empty());
    // Written with the policy's times, on the cache's clock, in both tiers.
    auto stored = f.l2.peek<std::string>(key);
    REQUIRE(stored);
    CHECK(stored->created == f.clock.now());
    CHECK(stored->stale == f.clock.now() + 45s);
    CHECK(stored->expire == f.clock.now() + 60s);

    f.clock.advance(44'999ms);
    auto fresh = cache.get_or_compute<std::string>(key, v.loader(), fresh_stale_ttl);
    CHECK(fresh.status == CacheStatus::Hit);
    CHECK(fresh.source == "cache.memory");
    CHECK(*fresh == "v1");

    f.clock.advance(1ms);  // exactly at the stale time
    auto stale = cache.get_or_compute<std::string>(key, v.loader(), fresh_stale_ttl);
    CHECK(stale.status == CacheStatus::Stale);
    CHECK(stale.source == "cache.memory");
    CHECK(*stale == "v1");
    CHECK(v.calls == 1);

    f.clock.advance(15s);  // exactly at expiry
    auto expired = cache.get_or_compute<std::string>(key, v.loader(), fresh_stale_ttl);
    CHECK(expired.status == CacheStatus::Miss);
    CHECK(*expired == "v2");
    CHECK(v.calls == 2);
}

TEST_CASE("StalePolicy::Revalidate: a stale entry is a miss, reloaded on the caller and rewritten fresh") {
    Fixture f;
    hitbox::Cache cache{f.tiers, f.offload, hitbox::NoMetrics{}, f.clock};
    Versions v;
    const CachePolicy policy{.ttl = 60s, .stale = 45s, .stale_policy = StalePolicy::Revalidate};

    CHECK(*cache.get_or_compute<std::string>(key, v.loader(), policy) == "v1");
    f.clock.advance(30s);
    auto fresh = cache.get_or_compute<std::string>(key, v.loader(), policy);
    CHECK(fresh.status == CacheStatus::Hit);
    CHECK(*fresh == "v1");

    f.clock.advance(20s);  // 50 s: stale
    auto reloaded = cache.get_or_compute<std::string>(key, v.loader(), policy);
    CHECK(reloaded.status == CacheStatus::Miss);
    CHECK(reloaded.source == "upstream");
    CHECK(*reloaded == "v2");
    CHECK(v.calls == 2);

    f.clock.advance(44s);  // 44 s after the reload: fresh again
    auto after = cache.get_or_compute<std::string>(key, v.loader(), policy);
    CHECK(after.status == CacheStatus::Hit);
    CHECK(*after == "v2");

    f.clock.advance(61s);
    auto expired = cache.get_or_compute<std::string>(key, v.loader(), policy);
    CHECK(expired.status == CacheStatus::Miss);
    CHECK(*expired == "v3");
}

TEST_CASE("StalePolicy::OffloadRevalidate: the stale value is served now and refreshed in the background") {
    Fixture f;
    hitbox::Cache cache{f.tiers, f.offload, hitbox::NoMetrics{}, f.clock};  // InlineOffload: refresh inside the call
    Versions v;
    const CachePolicy policy{.ttl = 60s, .stale = 45s, .stale_policy = StalePolicy::OffloadRevalidate};

    CHECK(*cache.get_or_compute<std::string>(key, v.loader(), policy) == "v1");
    f.clock.advance(10s);
    CHECK(cache.get_or_compute<std::string>(key, v.loader(), policy).status == CacheStatus::Hit);
    CHECK(v.calls == 1);

    f.clock.advance(40s);  // 50 s: stale
    auto stale = cache.get_or_compute<std::string>(key, v.loader(), policy);
    CHECK(stale.status == CacheStatus::Stale);
    CHECK(*stale == "v1");
    CHECK(stale.source == "cache.memory");
    CHECK(v.calls == 2);  // the refresh ran (inline) after the stale value was taken

    auto refreshed = cache.get_or_compute<std::string>(key, v.loader(), policy);
    CHECK(refreshed.status == CacheStatus::Hit);
    CHECK(*refreshed == "v2");
    const auto s = cache.stats();
    CHECK(s.revalidations == 1);
    CHECK(s.revalidations_done == 1);
    CHECK(s.revalidations_dropped == 0);
    auto stored = f.l2.peek<std::string>(key);
    REQUIRE(stored);
    CHECK(stored->data == "v2");
    CHECK(stored->stale == f.clock.now() + 45s);

    f.clock.advance(60s);
    auto expired = cache.get_or_compute<std::string>(key, v.loader(), policy);
    CHECK(expired.status == CacheStatus::Miss);
    CHECK(*expired == "v3");
}

TEST_CASE("OffloadRevalidate refreshes once however many callers see the stale value") {
    Fixture f;
    hitbox::OffloadManager manager{{.workers = 2}};
    hitbox::Cache cache{f.tiers, manager, hitbox::NoMetrics{}, f.clock};
    const CachePolicy policy{.ttl = 60s, .stale = 45s, .stale_policy = StalePolicy::OffloadRevalidate};
    REQUIRE(*cache.get_or_compute<std::string>(
                key, [] { return std::string("old"); }, policy) == "old");
    f.clock.advance(50s);

    std::atomic<int> calls{0};
    Signal release;
    auto slow_refresh = [&] {
        ++calls;
        release.wait();
        return std::string("new");
    };
    constexpr int callers = 16;
    std::vector<hitbox::CacheResult<std::string>> results(callers);
    std::latch start(callers);
    std::vector<std::thread> threads;
    for (int i = 0; i < callers; ++i)
        threads.emplace_back([&, i] {
            start.arrive_and_wait();
            results[static_cast<std::size_t>(i)] = cache.get_or_compute<std::string>(key, slow_refresh, policy);
        });
    for (auto& t : threads) t.join();  // every caller returned while the refresh is still blocked
    for (const auto& r : results) {
        CHECK(r.status == CacheStatus::Stale);
        CHECK(r.value == std::optional<std::string>("old"));
    }
    CHECK(eventually([&] { return calls == 1; }));
    release.open();
    REQUIRE(manager.wait_all(20s));
    CHECK(calls == 1);
    const auto s = cache.stats();
    CHECK(s.revalidations == 1);
    CHECK(s.revalidations_dropped == callers - 1);  // duplicates refused by the offload's per-key dedup
    auto after = cache.get_or_compute<std::string>(key, slow_refresh, policy);
    CHECK(after.status == CacheStatus::Hit);
    CHECK(*after == "new");
    CHECK(calls == 1);
}

TEST_CASE("A background refresh that finds the entry fresh again does not call the loader") {
    Fixture f;
    hitbox::OffloadManager manager{{.workers = 1}};
    hitbox::Cache cache{f.tiers, manager, hitbox::NoMetrics{}, f.clock};
    const CachePolicy policy{.ttl = 60s, .stale = 45s, .stale_policy = StalePolicy::OffloadRevalidate};
    REQUIRE(*cache.get_or_compute<std::string>(
                key, [] { return std::string("old"); }, policy) == "old");
    f.clock.advance(50s);

    Signal unblock;  // occupy the only worker so the refresh stays queued
    REQUIRE(manager.spawn(hitbox::OffloadKind::custom, "", [&] { unblock.wait(); }));
    std::atomic<int> calls{0};
    auto refresh = [&] {
        ++calls;
        return std::string("from refresh");
    };
    auto stale = cache.get_or_compute<std::string>(key, refresh, policy);
    CHECK(stale.status == CacheStatus::Stale);
    REQUIRE(cache.put(key, std::string("written meanwhile"), policy));  // e.g. another caller's reload
    unblock.open();
    REQUIRE(manager.wait_all(20s));
    CHECK(calls == 0);
    CHECK(cache.stats().revalidations_skipped == 1);
    CHECK(*cache.get_or_compute<std::string>(key, refresh, policy) == "written meanwhile");
}

TEST_CASE("Revalidate serves the stale value with the error when the reload fails (stale-if-error)") {
    Fixture f;
    hitbox::Cache cache{f.tiers, f.offload, hitbox::NoMetrics{}, f.clock};
    const CachePolicy policy{.ttl = 60s, .stale = 45s, .stale_policy = StalePolicy::Revalidate};
    REQUIRE(*cache.get_or_compute<std::string>(
                key, [] { return std::string("good"); }, policy) == "good");
    f.clock.advance(50s);
    auto failing = []() -> hitbox::Result<std::string> { return hitbox::fail(ErrorKind::timeout, "db timed out"); };
    auto r = cache.get_or_compute<std::string>(key, failing, policy);
    CHECK(r.status == CacheStatus::Stale);
    CHECK(r.source == "cache.memory");
    REQUIRE(r.value);
    CHECK(*r == "good");
    REQUIRE(r.error);
    CHECK(r.error->kind() == ErrorKind::timeout);
    CHECK(r.error->backend() == "upstream");
    CHECK(cache.stats().stale_if_error == 1);

    f.clock.advance(10s);  // expired: nothing left to fall back on
    auto gone = cache.get_or_compute<std::string>(key, failing, policy);
    CHECK(gone.status == CacheStatus::Miss);
    CHECK_FALSE(gone.value);
    REQUIRE(gone.error);
    CHECK(gone.error->message() == "db timed out");
}

TEST_CASE("Entries without ttl never expire; stale without ttl still turns stale") {
    Fixture f;
    hitbox::Cache cache{f.tiers, f.offload, hitbox::NoMetrics{}, f.clock};
    Versions v;
    CHECK(*cache.get_or_compute<std::string>(key, v.loader(), {}) == "v1");
    auto stored = f.l2.peek<std::string>(key);
    REQUIRE(stored);
    CHECK_FALSE(stored->expire);
    CHECK_FALSE(stored->stale);
    f.clock.advance(std::chrono::hours(24 * 365));
    CHECK(cache.get_or_compute<std::string>(key, v.loader(), {}).status == CacheStatus::Hit);

    const CacheKey other{"user", 1, {{"id", "43"}}};
    CHECK(*cache.get_or_compute<std::string>(other, v.loader(), {.stale = 10s}) == "v2");
    f.clock.advance(10s);
    CHECK(cache.get_or_compute<std::string>(other, v.loader(), {.stale = 10s}).status == CacheStatus::Stale);
    CHECK(v.calls == 2);
}

// ---- stampede protection ------------------------------------------------------------------------------

namespace {

/// Runs `callers` threads that all call `call()` at once; returns their results in thread order.
template <class Call>
auto run_together(int callers, Call call) {
    using R = decltype(call());
    std::vector<R> results(static_cast<std::size_t>(callers));
    std::latch start(callers);
    std::vector<std::thread> threads;
    for (int i = 0; i < callers; ++i)
        threads.emplace_back([&, i] {
            start.arrive_and_wait();
            results[static_cast<std::size_t>(i)] = call();
        });
    for (auto& t : threads) t.join();
    return results;
}

}  // namespace

TEST_CASE("64 threads on a cold key: the loader runs once and every caller gets its value") {
    Fixture f;
    hitbox::Cache cache{f.tiers, f.offload, hitbox::NoMetrics{}, f.clock};
    constexpr int callers = 64;
    std::atomic<int> calls{0};
    std::atomic<bool> all_arrived{false};
    const CachePolicy policy{.ttl = 60s, .waiter_timeout = 30s};
    auto loader = [&] {
        ++calls;
        // Hold the load until every other caller is waiting for it (bounded).
        all_arrived = eventually([&] { return cache.stats().waiting == callers - 1; });
        return std::string("loaded once");
    };
    auto results = run_together(callers, [&] { return cache.get_or_compute<std::string>(key, loader, policy); });
    CHECK(all_arrived);
    CHECK(calls == 1);
    int misses = 0;
    for (const auto& r : results) {
        CHECK(r.value == std::optional<std::string>("loaded once"));
        CHECK(r.status == CacheStatus::Miss);
        CHECK(r.source == "upstream");
        misses += r.status == CacheStatus::Miss;
    }
    CHECK(misses == callers);
    const auto s = cache.stats();
    CHECK(s.loads == 1);
    CHECK(s.coalesced == callers - 1);
    CHECK(s.waiting == 0);
    CHECK(cache.loads_in_flight() == 0);
    CHECK(f.l2.counts().sets == 1);  // one write, not one per caller
}

TEST_CASE("The concurrency limit lets up to N loads of one key run at once") {
    Fixture f;
    hitbox::Cache cache{f.tiers, f.offload, hitbox::NoMetrics{}, f.clock};
    constexpr int callers = 64;
    std::atomic<int> calls{0};
    const CachePolicy policy{.ttl = 60s, .concurrency = 4, .waiter_timeout = 30s};
    std::atomic<bool> go{false};  // once one loader sees everybody, all loaders return
    auto loader = [&] {
        const int n = ++calls;
        eventually([&] {
            if (cache.stats().waiting + static_cast<std::uint64_t>(calls) == callers) go = true;
            return go.load();
        });
        return "load " + std::to_string(n);
    };
    auto results = run_together(callers, [&] { return cache.get_or_compute<std::string>(key, loader, policy); });
    CHECK(go);
    CHECK(calls == 4);
    for (const auto& r : results) CHECK(r.value.has_value());
    CHECK(cache.stats().coalesced == callers - 4);
}

TEST_CASE("A failed leader hands one retry to a waiter; the others get the retry's outcome") {
    Fixture f;
    ErrorLog log;
    hitbox::Cache cache{f.tiers, f.offload, hitbox::NoMetrics{}, f.clock, log.options()};
    constexpr int callers = 64;
    std::atomic<int> calls{0};
    bool second_fails = false;
    std::size_t retries = 1;

    SECTION("the retry succeeds") {}
    SECTION("the retry fails too") { second_fails = true; }
    SECTION("no retries: every waiter gets the leader's error") { retries = 0; }

    const CachePolicy policy{.ttl = 60s, .waiter_timeout = 30s, .retries = retries};
    auto loader = [&]() -> hitbox::Result<std::string> {
        const int n = ++calls;
        if (n == 1) {
            eventually([&] { return cache.stats().waiting == callers - 1; });
            return hitbox::fail(ErrorKind::connection, "db down (attempt 1)");
        }
        if (second_fails) return hitbox::fail(ErrorKind::connection, "db down (attempt " + std::to_string(n) + ")");
        return std::string("from the retry");
    };
    auto results = run_together(callers, [&] { return cache.get_or_compute<std::string>(key, loader, policy); });

    int errors = 0, values = 0, first_error = 0;
    for (const auto& r : results) {
        if (r.value) {
            ++values;
            CHECK(*r.value == "from the retry");
        }
        if (r.error) {
            ++errors;
            CHECK(r.error->backend() == "upstream");
            first_error += r.error->message() == "db down (attempt 1)";
        }
        CHECK(r.status == CacheStatus::Miss);
    }
    const auto s = cache.stats();
    if (retries == 0) {
        CHECK(calls == 1);
        CHECK(errors == callers);
        CHECK(first_error == callers);
        CHECK(s.retries == 0);
    } else if (second_fails) {
        CHECK(calls == 2);
        CHECK(errors == callers);
        CHECK(first_error == 1);  // the leader's own; everyone else got the retry's error
        CHECK(s.retries == 1);
    } else {
        CHECK(calls == 2);
        CHECK(errors == 1);
        CHECK(values == callers - 1);
        CHECK(s.retries == 1);
        CHECK(*cache.get_or_compute<std::string>(key, loader, policy) == "from the retry");
        CHECK(calls == 2);
    }
    CHECK(s.load_errors == static_cast<std::uint64_t>(calls - (second_fails || retries == 0 ? 0 : 1)));
    CHECK(cache.loads_in_flight() == 0);
    CHECK(log.count(hitbox::CacheOp::write) == 0);
}

TEST_CASE("A waiter that waits past the waiter timeout loads by itself") {
    Fixture f;
    hitbox::Cache cache{f.tiers, f.offload, hitbox::NoMetrics{}, f.clock};
    std::atomic<int> calls{0};
    Signal release;
    auto loader = [&] {
        const int n = ++calls;
        if (n == 1) release.wait();
        return "load " + std::to_string(n);
    };
    const CachePolicy policy{.ttl = 60s, .waiter_timeout = 50ms};
    hitbox::CacheResult<std::string> leader_result;
    std::thread leader([&] { leader_result = cache.get_or_compute<std::string>(key, loader, policy); });
    REQUIRE(eventually([&] { return calls == 1; }));

    const auto started = std::chrono::steady_clock::now();
    auto waiter = cache.get_or_compute<std::string>(key, loader, policy);
    const auto waited = std::chrono::steady_clock::now() - started;
    release.open();
    leader.join();

    CHECK(waited >= 50ms);
    CHECK(waiter.value == std::optional<std::string>("load 2"));
    CHECK(waiter.status == CacheStatus::Miss);
    CHECK(leader_result.value == std::optional<std::string>("load 1"));
    CHECK(calls == 2);
    CHECK(cache.stats().waiter_timeouts == 1);
    CHECK(cache.loads_in_flight() == 0);
}

TEST_CASE("Callers arriving after a load finished read the value instead of loading again") {
    Fixture f;
    hitbox::Cache cache{f.tiers, f.offload, hitbox::NoMetrics{}, f.clock};
    std::atomic<int> calls{0};
    auto loader = [&] {
        ++calls;
        return std::string("v");
    };
    // Many rounds of short overlapping bursts: a late caller either joins the flight or finds the entry.
    for (int round = 0; round < 20; ++round) {
        const CacheKey k{"burst", 1, {{"round", std::to_string(round)}}};
        auto results = run_together(8, [&] { return cache.get_or_compute<std::string>(k, loader, {.ttl = 60s}); });
        for (const auto& r : results) CHECK(r.value == std::optional<std::string>("v"));
    }
    CHECK(calls == 20);
}

// ---- fail-open -------------------------------------------------------------------------------------

TEST_CASE("A failing tier is a miss on read and a reported error on write; the loader's value is served") {
    Fixture f;
    ErrorLog log;
    hitbox::Cache cache{f.tiers, f.offload, hitbox::NoMetrics{}, f.clock, log.options()};
    f.l2.fail_all(ErrorKind::connection, "connection refused");
    Versions v;

    auto r = cache.get_or_compute<std::string>(key, v.loader(), {.ttl = 60s});
    CHECK(*r == "v1");
    CHECK(r.status == CacheStatus::Miss);
    CHECK(r.ok());
    REQUIRE(r.backend_errors.size() == 2);
    CHECK(r.backend_errors[0].backend() == "cache.redis");  // the read
    CHECK(r.backend_errors[1].backend() == "cache.redis");  // the write
    CHECK(r.backend_errors[1].kind() == ErrorKind::connection);
    CHECK(log.count(hitbox::CacheOp::read) == 1);
    CHECK(log.count(hitbox::CacheOp::write) == 1);
    auto s = cache.stats();
    CHECK(s.read_errors == 1);
    CHECK(s.write_errors == 1);
    REQUIRE(s.tiers.size() == 1);
    CHECK(s.tiers[0] == hitbox::TierErrors{"cache.redis", 1, 1});

    // L1 took the write: the next call is an L1 hit and L2 is not asked.
    auto hit = cache.get_or_compute<std::string>(key, v.loader(), {.ttl = 60s});
    CHECK(hit.status == CacheStatus::Hit);
    CHECK(hit.source == "cache.memory");
    CHECK(hit.backend_errors.empty());
    CHECK(v.calls == 1);
}

TEST_CASE("Under RaceWrite a tier write that failed before the other succeeded is reported to the cache front") {
    hitbox::ManualClock clock;
    Remote l1{"memory", clock}, l2{"redis", clock};
    l1.fail(Op::set, ErrorKind::capacity, "L1 refused the value");
    hitbox::InlineOffload offload;  // both halves on the caller, L1 first: it fails, then L2 wins
    auto tiers = hitbox::compose(l1, l2, offload).with_write(hitbox::RaceWrite{});
    ErrorLog log;
    hitbox::Cache cache{tiers, offload, hitbox::NoMetrics{}, clock, log.options()};
    auto r = cache.get_or_compute<std::string>(key, [] { return std::string("v"); }, {.ttl = 60s});
    CHECK(*r == "v");
    REQUIRE(r.backend_errors.size() == 1);
    CHECK(r.backend_errors[0].backend() == "cache.memory");
    CHECK(r.backend_errors[0].kind() == ErrorKind::capacity);
    CHECK(log.count(hitbox::CacheOp::write) == 1);
    CHECK(cache.stats().write_errors == 1);
    // L1 writes, L2 fails: the loser (L2) ran on the caller after the winner; its error is there too.
    l1.heal();
    l2.fail(Op::set, ErrorKind::timeout, "slow");
    auto stored = tiers.store(CacheKey{"other", 1}, hitbox::CacheValue<std::string>{"w"});
    REQUIRE(stored);
    CHECK(stored->written == std::vector<std::string>{"cache.memory"});
    REQUIRE(stored->errors.size() == 1);
    CHECK(stored->errors[0].backend() == "cache.redis");
}

TEST_CASE("A backend that fails entirely still serves every call from the loader") {
    hitbox::ManualClock clock;
    Remote only{"redis", clock};
    only.fail_all(ErrorKind::timeout, "no reply");
    hitbox::InlineOffload offload;
    ErrorLog log;
    hitbox::Cache cache{only, offload, hitbox::NoMetrics{}, clock, log.options()};
    Versions v;
    for (int i = 1; i <= 3; ++i) {
        auto r = cache.get_or_compute<std::string>(key, v.loader(), {.ttl = 60s});
        CHECK(*r == "v" + std::to_string(i));
        CHECK(r.status == CacheStatus::Miss);
        REQUIRE(r.backend_errors.size() == 2);
        CHECK(r.backend_errors[0].what() == "[redis] timeout: no reply");
    }
    CHECK(cache.stats().read_errors == 3);
    CHECK(cache.stats().write_errors == 3);
    CHECK(log.count(hitbox::CacheOp::write) == 3);

    only.heal();
    CHECK(*cache.get_or_compute<std::string>(key, v.loader(), {.ttl = 60s}) == "v4");
    CHECK(cache.get_or_compute<std::string>(key, v.loader(), {.ttl = 60s}).status == CacheStatus::Hit);
}

TEST_CASE("An error handler that throws does not reach the caller") {
    Fixture f;
    f.l2.fail(Op::set, ErrorKind::connection, "refused");
    hitbox::CacheOptions options{
        .on_error = [](const hitbox::CacheErrorEvent&) { throw std::runtime_error("bad handler"); }};
    hitbox::Cache cache{f.tiers, f.offload, hitbox::NoMetrics{}, f.clock, options};
    auto r = cache.get_or_compute<std::string>(key, [] { return std::string("x"); }, {.ttl = 60s});
    CHECK(*r == "x");
    CHECK(cache.stats().write_errors == 1);
}

TEST_CASE("The default error handler writes one line per second to std::clog") {
    Fixture f;
    f.l2.fail(Op::set, ErrorKind::connection, "refused");
    hitbox::Cache cache{f.tiers, f.offload, hitbox::NoMetrics{}, f.clock};
    std::ostringstream captured;
    auto* old = std::clog.rdbuf(captured.rdbuf());
    for (int i = 0; i < 5; ++i)
        (void)cache.get_or_compute<std::string>(CacheKey{"k", 1, {{"i", std::to_string(i)}}},
                                                [] { return std::string("x"); }, {.ttl = 60s});
    std::clog.rdbuf(old);
    const std::string text = captured.str();
    INFO(text);
    CHECK(std::count(text.begin(), text.end(), '\n') == 1);
    CHECK(text.find("hitbox cache: write failed for key k:v1:i=0: [cache.redis] connection: refused") == 0);
    CHECK(cache.stats().write_errors == 5);
}

TEST_CASE("An L1 entry of another type is a read error: counted, reported, and the loader's value served") {
    Fixture f;
    ErrorLog log;
    hitbox::Cache cache{f.tiers, f.offload, hitbox::NoMetrics{}, f.clock, log.options()};
    REQUIRE(f.l1.set(key, hitbox::CacheValue<int>{7, std::nullopt, std::nullopt, f.clock.now()}));
    Versions v;

    auto r = cache.get_or_compute<std::string>(key, v.loader(), fresh_stale_ttl);
    CHECK(r.status == CacheStatus::Miss);
    CHECK(r.source == "upstream");
    CHECK(*r == "v1");
    REQUIRE(r.backend_errors.size() == 1);
    CHECK(r.backend_errors[0].kind() == ErrorKind::type_mismatch);
    CHECK(log.count(hitbox::CacheOp::read) == 1);
    // The load replaced the entry: the next call is an L1 hit of the new type.
    auto again = cache.get_or_compute<std::string>(key, v.loader(), fresh_stale_ttl);
    CHECK(again.status == CacheStatus::Hit);
    CHECK(again.source == "cache.memory");
    CHECK(*again == "v1");
    CHECK(v.calls == 1);
}

// ---- negative caching -------------------------------------------------------------------------------

TEST_CASE("Negative caching keeps a \"not found\" for its own TTL") {
    Fixture f;
    hitbox::Cache cache{f.tiers, f.offload, hitbox::NoMetrics{}, f.clock};
    std::atomic<int> calls{0};
    std::optional<std::string> upstream;  // nothing yet
    auto loader = [&] {
        ++calls;
        return upstream;
    };
    const CacheKey marker = key.with("hitbox.not_found");

    SECTION("in every tier") {
        const CachePolicy policy{.ttl = 60s, .negative_ttl = 5s};
        auto first = cache.get_or_compute<std::string>(key, loader, policy);
        CHECK_FALSE(first);
        CHECK(first.ok());
        CHECK(first.status == CacheStatus::Miss);
        CHECK(first.source == "upstream");
        CHECK(f.l2.contains(marker));

        auto cached = cache.get_or_compute<std::string>(key, loader, policy);
        CHECK_FALSE(cached);
        CHECK(cached.ok());
        CHECK(cached.status == CacheStatus::Hit);
        CHECK(cached.source == "cache.memory");
        CHECK(calls == 1);
        CHECK(cache.stats().negative_hits == 1);

        upstream = "now it exists";
        f.clock.advance(4999ms);
        CHECK_FALSE(cache.get_or_compute<std::string>(key, loader, policy));
        f.clock.advance(1ms);  // the "not found" expires
        auto found = cache.get_or_compute<std::string>(key, loader, policy);
        CHECK(*found == "now it exists");
        CHECK(found.status == CacheStatus::Miss);
        CHECK(calls == 2);
        auto hit = cache.get_or_compute<std::string>(key, loader, policy);
        CHECK(hit.status == CacheStatus::Hit);
        CHECK(*hit == "now it exists");
    }
    SECTION("kept out of L2") {
        const CachePolicy policy{.ttl = 60s, .negative_ttl = 5s, .negative_l1_only = true};
        CHECK_FALSE(cache.get_or_compute<std::string>(key, loader, policy));
        CHECK_FALSE(f.l2.contains(marker));
        auto in_l1 = f.l1.get<std::string>(marker);
        REQUIRE(in_l1);
        CHECK(in_l1->has_value());
        auto cached = cache.get_or_compute<std::string>(key, loader, policy);
        CHECK(cached.status == CacheStatus::Hit);
        CHECK(cached.source == "cache.memory");
        CHECK(calls == 1);
    }
    SECTION("off: every call asks the loader and nothing is written") {
        const CachePolicy policy{.ttl = 60s};
        CHECK_FALSE(cache.get_or_compute<std::string>(key, loader, policy));
        CHECK_FALSE(cache.get_or_compute<std::string>(key, loader, policy));
        CHECK(calls == 2);
        CHECK(f.l2.size() == 0);
    }
    SECTION("a \"not found\" ends a kept (fail-safe) entry: the marker answers the next calls") {
        const CachePolicy policy{.ttl = 10s, .negative_ttl = 60s, .fail_safe_max = 1h};
        upstream = "was there";
        CHECK(*cache.get_or_compute<std::string>(key, loader, policy) == "was there");
        f.clock.advance(11s);  // expired, kept by fail-safe
        upstream.reset();      // and now gone upstream
        auto gone = cache.get_or_compute<std::string>(key, loader, policy);
        CHECK_FALSE(gone);
        CHECK(gone.ok());
        CHECK(calls == 2);
        CHECK_FALSE(f.l2.contains(key));  // the old entry went with the "not found"
        for (int i = 0; i < 3; ++i) {
            auto cached = cache.get_or_compute<std::string>(key, loader, policy);
            CHECK_FALSE(cached);
            CHECK(cached.status == CacheStatus::Hit);
        }
        CHECK(calls == 2);  // the marker answered: the loader was not asked again
        CHECK(cache.stats().negative_hits == 3);
    }
    SECTION("a \"not found\" ends a stale entry under Revalidate: the marker answers the next calls") {
        const CachePolicy policy{
            .ttl = 60s, .stale = 10s, .stale_policy = StalePolicy::Revalidate, .negative_ttl = 60s};
        upstream = "was there";
        CHECK(*cache.get_or_compute<std::string>(key, loader, policy) == "was there");
        f.clock.advance(11s);
        upstream.reset();
        CHECK_FALSE(cache.get_or_compute<std::string>(key, loader, policy));
        auto cached = cache.get_or_compute<std::string>(key, loader, policy);
        CHECK_FALSE(cached);
        CHECK(cached.status == CacheStatus::Hit);
        CHECK(calls == 2);
    }
    SECTION(
        "without negative caching, a \"not found\" still drops the kept entry: a later failure serves "
        "nothing") {
        const CachePolicy policy{.ttl = 10s, .fail_safe_max = 1h};
        upstream = "was there";
        CHECK(*cache.get_or_compute<std::string>(key, loader, policy) == "was there");
        f.clock.advance(11s);
        upstream.reset();
        CHECK_FALSE(cache.get_or_compute<std::string>(key, loader, policy));
        auto failing = [&]() -> hitbox::Result<std::string> {
            ++calls;
            return hitbox::fail(ErrorKind::unavailable, "database down");
        };
        auto r = cache.get_or_compute<std::string>(key, failing, policy);
        CHECK_FALSE(r.value);  // not the deleted item's old value as fail-safe
        CHECK_FALSE(r.fail_safe);
        REQUIRE(r.error);
        CHECK(r.error->kind() == ErrorKind::unavailable);
    }
    SECTION("put() of the item drops its cached \"not found\": once the value expires, the loader is asked") {
        const CachePolicy policy{.ttl = 5s, .negative_ttl = 60s};
        CHECK_FALSE(cache.get_or_compute<std::string>(key, loader, policy));
        REQUIRE(f.l2.contains(marker));
        REQUIRE(cache.put<std::string>(key, "created", policy));
        CHECK_FALSE(f.l2.contains(marker));
        CHECK(*cache.get_or_compute<std::string>(key, loader, policy) == "created");
        f.clock.advance(6s);  // the value is gone; the marker would still have 54 s
        upstream = "from the database";
        auto after = cache.get_or_compute<std::string>(key, loader, policy);
        CHECK(after.status == CacheStatus::Miss);
        REQUIRE(after);
        CHECK(*after == "from the database");  // was a Hit with no value before
        CHECK(calls == 2);
    }
    SECTION("put() under negative_l1_only drops the marker from L1") {
        const CachePolicy policy{.ttl = 5s, .negative_ttl = 60s, .negative_l1_only = true};
        CHECK_FALSE(cache.get_or_compute<std::string>(key, loader, policy));
        REQUIRE(f.l1.get<std::string>(marker)->has_value());
        REQUIRE(cache.put<std::string>(key, "created", policy));
        CHECK_FALSE(f.l1.get<std::string>(marker)->has_value());
    }
    SECTION("remove() drops the cached \"not found\" too") {
        const CachePolicy policy{.ttl = 60s, .negative_ttl = 5s};
        CHECK_FALSE(cache.get_or_compute<std::string>(key, loader, policy));
        auto removed = cache.remove(key);
        REQUIRE(removed);
        CHECK(*removed);
        upstream = "fresh";
        CHECK(*cache.get_or_compute<std::string>(key, loader, policy) == "fresh");
    }
}

// ---- policy, loaders, results ------------------------------------------------------------------------

TEST_CASE("An invalid policy is a config error and the loader is not called") {
    Fixture f;
    hitbox::Cache cache{f.tiers, f.offload, hitbox::NoMetrics{}, f.clock};
    std::atomic<int> calls{0};
    auto loader = [&] {
        ++calls;
        return std::string("x");
    };
    const std::vector<std::pair<CachePolicy, std::string>> bad = {
        {{.ttl = 60s, .stale = 60s}, "stale (60000 ms) must be shorter than ttl (60000 ms)"},
        {{.ttl = 30s, .stale = 45s}, "stale (45000 ms) must be shorter than ttl (30000 ms)"},
        {{.ttl = 0s}, "ttl must be positive"},
        {{.stale = -1s}, "stale must not be negative"},
        {{.concurrency = 0}, "concurrency must be at least 1"},
        {{.waiter_timeout = -1ms}, "waiter_timeout must not be negative"},
        {{.negative_ttl = 0s}, "negative_ttl must be positive"},
    };
    for (const auto& [policy, message] : bad) {
        auto r = cache.get_or_compute<std::string>(key, loader, policy);
        INFO(message);
        CHECK_FALSE(r);
        REQUIRE(r.error);
        CHECK(r.error->kind() == ErrorKind::config);
        CHECK(r.error->backend() == "cache");
        CHECK(r.error->message().find(message) != std::string::npos);
        CHECK(r.source.empty());
    }
    CHECK(calls == 0);
    CHECK_FALSE(cache.put(key, std::string("x"), {.ttl = 1s, .stale = 2s}));
}

TEST_CASE("Loaders may return T, something convertible, std::optional<T>, Result<T> or throw") {
    Fixture f;
    hitbox::Cache cache{f.tiers, f.offload, hitbox::NoMetrics{}, f.clock};
    auto k = [](int i) { return CacheKey{"shape", 1, {{"i", std::to_string(i)}}}; };

    // T deduced from the loader.
    auto deduced = cache.get_or_compute(k(1), [] { return std::string("deduced"); });
    STATIC_REQUIRE(std::is_same_v<decltype(deduced), hitbox::CacheResult<std::string>>);
    CHECK(*deduced == "deduced");
    auto deduced_opt = cache.get_or_compute(k(2), [] { return std::optional<int>(7); });
    STATIC_REQUIRE(std::is_same_v<decltype(deduced_opt), hitbox::CacheResult<int>>);
    CHECK(*deduced_opt == 7);
    auto deduced_result = cache.get_or_compute(k(3), []() -> hitbox::Result<std::optional<double>> { return 2.5; });
    STATIC_REQUIRE(std::is_same_v<decltype(deduced_result), hitbox::CacheResult<double>>);
    CHECK(*deduced_result == 2.5);

    CHECK(*cache.get_or_compute<std::string>(k(4), [] { return "a C string"; }) == "a C string");

    auto error = cache.get_or_compute<int>(k(5), []() -> hitbox::Result<int> {
        return hitbox::fail(hitbox::Error(ErrorKind::auth, "db password rejected", "postgres"));
    });
    REQUIRE(error.error);
    CHECK(error.error->backend() == "postgres");  // an error naming its own origin keeps it
    CHECK_FALSE(error.ok());

    auto thrown = cache.get_or_compute<int>(k(6), []() -> int { throw std::runtime_error("boom"); });
    CHECK_FALSE(thrown);
    REQUIRE(thrown.error);
    CHECK(thrown.error->kind() == ErrorKind::unavailable);
    CHECK(thrown.error->what() == "[upstream] unavailable: loader threw: boom");
    CHECK(thrown.status == CacheStatus::Miss);
    CHECK(thrown.source == "upstream");
    auto odd = cache.get_or_compute<int>(k(7), []() -> int { throw 42; });
    REQUIRE(odd.error);
    CHECK(odd.error->message() == "loader threw an exception that is not a std::exception");
    CHECK(cache.stats().load_errors == 3);
    // Nothing was cached for the failures.
    CHECK_FALSE(f.l2.contains(k(5)));
    CHECK_FALSE(f.l2.contains(k(6)));
}

TEST_CASE("The cache's default policy applies to calls without one") {
    Fixture f;
    hitbox::CacheOptions options{.policy = {.ttl = 10s, .stale = 5s}};
    hitbox::Cache cache{f.tiers, f.offload, hitbox::NoMetrics{}, f.clock, options};
    Versions v;
    CHECK(*cache.get_or_compute<std::string>(key, v.loader()) == "v1");
    f.clock.advance(6s);
    CHECK(cache.get_or_compute<std::string>(key, v.loader()).status == CacheStatus::Stale);
    f.clock.advance(4s);
    CHECK(*cache.get_or_compute<std::string>(key, v.loader()) == "v2");
}

TEST_CASE("Sources are label paths: an L2 hit names cache.redis and refills L1") {
    Fixture f;
    hitbox::Cache cache{f.tiers, f.offload, hitbox::NoMetrics{}, f.clock};
    CHECK(cache.tier_paths() == std::vector<std::string>{"cache.memory", "cache.redis"});
    const auto now = f.clock.now();
    REQUIRE(f.l2.set(key, hitbox::CacheValue<std::string>{"remote", now + 60s, now + 45s, now}));
    Versions v;
    auto from_l2 = cache.get_or_compute<std::string>(key, v.loader(), fresh_stale_ttl);
    CHECK(from_l2.status == CacheStatus::Hit);
    CHECK(from_l2.source == "cache.redis");
    CHECK(*from_l2 == "remote");
    CHECK(f.l1.stats().misses == 1);  // L1 was read once, not again by the traced read that went on to L2
    CHECK(f.l2.counts().gets == 1);
    auto from_l1 = cache.get_or_compute<std::string>(key, v.loader(), fresh_stale_ttl);
    CHECK(from_l1.source == "cache.memory");
    f.clock.advance(46s);  // the refill kept Redis' times: stale in L1 too
    auto stale = cache.get_or_compute<std::string>(key, v.loader(), fresh_stale_ttl);
    CHECK(stale.status == CacheStatus::Stale);
    CHECK(stale.source == "cache.memory");
    CHECK(v.calls == 0);
}

TEST_CASE("Other compositions: a Race read goes through the traced lookup; a three-tier fold names each tier") {
    hitbox::ManualClock clock;
    hitbox::InlineOffload offload;
    Remote a{"a", clock}, b{"b", clock}, c{"c", clock};
    const auto now = clock.now();
    REQUIRE(c.set(key, hitbox::CacheValue<std::string>{"deep", now + 60s, std::nullopt, now}));

    auto fold = hitbox::compose(a, b, c, offload);
    hitbox::Cache folded{fold, offload, hitbox::NoMetrics{}, clock};
    CHECK(folded.tier_paths() == std::vector<std::string>{"cache.a", "cache.b", "cache.c"});
    auto deep = folded.get_or_compute<std::string>(key, [] { return std::string("never"); });
    CHECK(deep.source == "cache.c");
    CHECK(*deep == "deep");
    CHECK(folded.get_or_compute<std::string>(key, [] { return std::string("never"); }).source == "cache.a");

    Remote x{"x", clock}, y{"y", clock};
    auto raced = hitbox::compose(x, y, offload).with_read(hitbox::RaceRead{}).with_label("race");
    hitbox::CountingMetrics metrics;
    hitbox::Cache cache{raced, offload, metrics, clock};
    REQUIRE(y.set(key, hitbox::CacheValue<std::string>{"from y", now + 60s, std::nullopt, now}));
    auto r = cache.get_or_compute<std::string>(key, [] { return std::string("never"); });
    CHECK(r.status == CacheStatus::Hit);
    CHECK(r.source == "race.y");
    CHECK(cache.get_or_compute<std::string>(key, [] { return std::string("never"); }).source == "race.x");
    auto snap = metrics.snapshot();
    REQUIRE(snap.find("race.y"));
    CHECK(snap.find("race.y")->hits == 1);
    CHECK(snap.find("race.x")->hits == 1);
}

TEST_CASE("A cache can hold its backend by value or through std::ref; put and remove reach every tier") {
    hitbox::ManualClock clock;
    hitbox::InlineOffload offload;
    hitbox::Cache by_value{hitbox_test::manual_memory(clock), offload, hitbox::NoMetrics{}, clock};
    STATIC_REQUIRE(std::is_same_v<decltype(by_value)::backend_type, Memory>);
    CHECK(by_value.tier_paths() == std::vector<std::string>{"memory"});
    auto r = by_value.get_or_compute<int>(key, [] { return 1; }, {.ttl = 5s});
    CHECK(r.source == "upstream");
    CHECK(by_value.get_or_compute<int>(key, [] { return 2; }, {.ttl = 5s}).source == "memory");

    Fixture f;
    hitbox::Cache by_ref{std::ref(f.tiers), offload, hitbox::NoMetrics{}, f.clock};
    REQUIRE(by_ref.put(key, 99, {.ttl = 60s}));
    CHECK(f.l2.peek<int>(key)->data == 99);
    CHECK(by_ref.get_or_compute<int>(key, [] { return 0; }).status == CacheStatus::Hit);
    auto removed = by_ref.remove(key);
    REQUIRE(removed);
    CHECK(*removed);
    CHECK_FALSE(f.l2.contains(key));
    CHECK(*by_ref.get_or_compute<int>(key, [] { return 5; }) == 5);
}

// ---- metrics ------------------------------------------------------------------------------------------

TEST_CASE("CountingMetrics counts hits, misses and stale per source; prometheus_text covers tiers and offload") {
    Fixture f;
    hitbox::CountingMetrics metrics;
    hitbox::Cache cache{f.tiers, f.offload, metrics, f.clock};
    Versions v;
    (void)cache.get_or_compute<std::string>(key, v.loader(), fresh_stale_ttl);  // miss
    (void)cache.get_or_compute<std::string>(key, v.loader(), fresh_stale_ttl);  // hit memory
    (void)cache.get_or_compute<std::string>(key, v.loader(), fresh_stale_ttl);  // hit memory
    (void)f.l1.remove(key);
    (void)cache.get_or_compute<std::string>(key, v.loader(), fresh_stale_ttl);  // hit redis (refill)
    f.clock.advance(50s);
    (void)cache.get_or_compute<std::string>(key, v.loader(), fresh_stale_ttl);  // stale memory

    auto snap = metrics.snapshot();
    REQUIRE(snap.find("upstream"));
    CHECK(snap.find("upstream")->misses == 1);
    CHECK(snap.find("cache.memory")->hits == 2);
    CHECK(snap.find("cache.memory")->stale == 1);
    CHECK(snap.find("cache.redis")->hits == 1);
    CHECK(snap.duration(CacheStatus::Hit).count == 3);
    CHECK(snap.loads() == 1);

    const std::string text = hitbox::prometheus_text(cache);
    INFO(text);
    auto p = hitbox_test::parse_prometheus(text);
    for (const auto& problem : p.problems) FAIL_CHECK(problem);
    CHECK(p.value("hitbox_cache_hit_total", {{"backend", "cache.memory"}}) == 2.0);
    CHECK(p.value("hitbox_cache_hit_total", {{"backend", "cache.redis"}}) == 1.0);
    CHECK(p.value("hitbox_cache_stale_total", {{"backend", "cache.memory"}}) == 1.0);
    CHECK(p.value("hitbox_cache_miss_total", {{"backend", "upstream"}}) == 1.0);
    CHECK(p.value("hitbox_upstream_requests_total", {{"backend", "cache"}}) == 1.0);
    CHECK(p.value("hitbox_backend_read_total", {{"backend", "cache.memory"}}).has_value());  // MemoryStats
    CHECK(p.value("hitbox_compose_refills_total", {{"backend", "cache"}}) == 1.0);
    CHECK(p.value("hitbox_offload_tasks_spawned_total", {{"backend", "cache"}}).has_value());
    CHECK(p.value("hitbox_request_duration_seconds_count", {{"status", "stale"}, {"backend", "cache.memory"}}) == 1.0);
}

TEST_CASE("With NoMetrics prometheus_text still renders the cache's own counters and the tiers'") {
    Fixture f;
    f.l2.fail(Op::get, ErrorKind::connection, "refused");
    ErrorLog log;
    hitbox::Cache cache{f.tiers, f.offload, hitbox::NoMetrics{}, f.clock, log.options()};
    (void)cache.get_or_compute<std::string>(key, [] { return std::string("x"); }, {.ttl = 60s});
    auto p = hitbox_test::parse_prometheus(hitbox::prometheus_text(cache));
    for (const auto& problem : p.problems) FAIL_CHECK(problem);
    CHECK_FALSE(p.value("hitbox_cache_hit_total").has_value());
    CHECK(p.value("hitbox_backend_read_errors_total", {{"backend", "cache.redis"}}) == 1.0);
    CHECK(p.value("hitbox_backend_write_errors_total", {{"backend", "cache.redis"}}) == 0.0);
    CHECK(p.value("hitbox_upstream_requests_total") == 1.0);
}

// ---- lifetime ------------------------------------------------------------------------------------------

TEST_CASE("A refresh still queued when the cache goes away never runs its loader") {
    Fixture f;
    hitbox::OffloadManager manager{{.workers = 1}};
    Signal unblock;
    std::atomic<int> calls{0};
    {
        hitbox::Cache cache{f.tiers, manager, hitbox::NoMetrics{}, f.clock};
        const CachePolicy policy{.ttl = 60s, .stale = 45s, .stale_policy = StalePolicy::OffloadRevalidate};
        REQUIRE(*cache.get_or_compute<std::string>(
                    key, [] { return std::string("old"); }, policy) == "old");
        f.clock.advance(50s);
        REQUIRE(manager.spawn(hitbox::OffloadKind::custom, "", [&] { unblock.wait(); }));
        auto stale = cache.get_or_compute<std::string>(
            key,
            [&] {
                ++calls;
                return std::string("new");
            },
            policy);
        CHECK(stale.status == CacheStatus::Stale);
        CHECK(cache.stats().revalidations == 1);
    }
    unblock.open();
    REQUIRE(manager.wait_all(20s));
    CHECK(calls == 0);
}

// ---- memoize -------------------------------------------------------------------------------------------

namespace {

struct UserQuery {
    BOOST_HANA_DEFINE_STRUCT(UserQuery, (std::uint64_t, id), (std::string, lang));
};

enum class Region : int { eu = 1, us = 2 };

int square_fn(int x) { return x * x; }

}  // namespace

TEST_CASE("key_of_args: one part per argument; a lone Hana struct keys like key_of") {
    CHECK(hitbox::key_of_args("price", 1, std::string("EUR"), 42) == CacheKey{"price", 1, {{"0", "EUR"}, {"1", "42"}}});
    CHECK(hitbox::key_of_args("q", 0, UserQuery{42, "en"}) == hitbox::key_of(UserQuery{42, "en"}, "q", 0));
    CHECK(hitbox::key_of_args("q", 0, UserQuery{42, "en"}, Region::us) ==
          CacheKey{"q", 0, {{"0.id", "42"}, {"0.lang", "en"}, {"1", "2"}}});
    CHECK(hitbox::key_of_args("o", 0, std::optional<int>{}, std::optional<int>(3), true, 2.5) ==
          CacheKey{"o", 0, {{"0", std::nullopt}, {"1", "3"}, {"2", "true"}, {"3", "2.5"}}});
    CHECK(hitbox::key_of_args("none", 0) == CacheKey{"none", 0, {}});
    // An absent optional and an empty string are different keys.
    CHECK_FALSE(hitbox::key_of_args("o", 0, std::optional<std::string>{}) ==
                hitbox::key_of_args("o", 0, std::optional<std::string>("")));
}

TEST_CASE("memoize keys each argument as the function's parameter receives it") {
    Fixture f;
    hitbox::Cache cache{f.tiers, f.offload, hitbox::NoMetrics{}, f.clock};
    auto ident = hitbox::memoize(
        cache, [](double x) { return x; }, {.ttl = 60s}, "ident");
    auto as_float = ident(0.1f);  // the function gets 0.10000000149011612
    REQUIRE(as_float.value);
    CHECK(*as_float.value == static_cast<double>(0.1f));
    auto as_double = ident(0.1);  // another argument for the function: not the float's entry
    REQUIRE(as_double.value);
    CHECK(*as_double.value == 0.1);  // 0.10000000149011612 (a Hit) before
    CHECK(as_double.status == CacheStatus::Miss);
    // Conversions that do not change the value keep one entry: a const char* for a std::string, an int
    // for a long.
    std::atomic<int> calls{0};
    auto len = hitbox::memoize(
        cache,
        [&](const std::string& s, long n) {
            ++calls;
            return static_cast<long>(s.size()) + n;
        },
        {.ttl = 60s}, "len");
    CHECK(*len("abc", 1).value == 4);
    CHECK(len(std::string("abc"), 1L).status == CacheStatus::Hit);
    CHECK(calls == 1);
    // A parameter type that cannot key (a path) given one that can (text): keyed by the argument.
    auto size_of = hitbox::memoize(
        cache, [](const std::filesystem::path& p) { return p.string().size(); }, {.ttl = 60s}, "path");
    CHECK(*size_of(std::string("/tmp/x")).value == 6u);
}

TEST_CASE("memoize calls the function once per distinct arguments") {
    Fixture f;
    hitbox::Cache cache{f.tiers, f.offload, hitbox::NoMetrics{}, f.clock};
    std::atomic<int> calls{0};
    auto slow_square = hitbox::memoize(cache,
                                       [&](int x) {
                                           ++calls;
                                           return x * x;
                                       },
                                       {.ttl = 60s});
    auto a = slow_square(7);
    STATIC_REQUIRE(std::is_same_v<decltype(a), hitbox::CacheResult<int>>);
    CHECK(*a == 49);
    CHECK(a.status == CacheStatus::Miss);
    auto b = slow_square(7);
    CHECK(*b == 49);
    CHECK(b.status == CacheStatus::Hit);
    CHECK(*slow_square(8) == 64);
    CHECK(calls == 2);

    // Two memoized functions never share entries: distinct default prefixes, or the prefixes given.
    auto cube = hitbox::memoize(cache, [](int x) { return x * x * x; }, {.ttl = 60s});
    CHECK(cube.prefix() != slow_square.prefix());
    CHECK(*cube(7) == 343);
    auto by_pointer = hitbox::memoize(cache, &square_fn, {.ttl = 60s}, "square", 2);
    CHECK(by_pointer.prefix() == "square");
    CHECK(*by_pointer(3) == 9);
    CHECK(f.l2.contains(CacheKey{"square", 2, {{"0", "3"}}}));

    // Structs and strings as arguments; std::optional results are "not found".
    std::atomic<int> lookups{0};
    auto find_user = hitbox::memoize(
        cache,
        [&](const UserQuery& q, const std::string& tenant) -> std::optional<std::string> {
            ++lookups;
            if (q.id == 0) return std::nullopt;
            return tenant + "/" + std::to_string(q.id) + "/" + q.lang;
        },
        {.ttl = 60s, .negative_ttl = 5s}, "user");
    CHECK(*find_user(UserQuery{42, "en"}, std::string("acme")) == "acme/42/en");
    CHECK(find_user(UserQuery{42, "en"}, std::string("acme")).status == CacheStatus::Hit);
    CHECK(*find_user(UserQuery{42, "fr"}, std::string("acme")) == "acme/42/fr");
    CHECK_FALSE(find_user(UserQuery{0, "en"}, std::string("acme")));
    CHECK(find_user(UserQuery{0, "en"}, std::string("acme")).status == CacheStatus::Hit);
    CHECK(lookups == 3);
    CHECK(f.l2.contains(CacheKey{"user", 0, {{"0.id", "42"}, {"0.lang", "en"}, {"1", "acme"}}}));
}

TEST_CASE("memoize with OffloadRevalidate keeps copies of the arguments for the background refresh") {
    Fixture f;
    hitbox::OffloadManager manager{{.workers = 1}};
    hitbox::Cache cache{f.tiers, manager, hitbox::NoMetrics{}, f.clock};
    std::atomic<int> calls{0};
    auto greet = hitbox::memoize(
        cache,
        [&](const std::string& name) {
            ++calls;
            return "hello " + name + " #" + std::to_string(calls.load());
        },
        {.ttl = 60s, .stale = 10s, .stale_policy = StalePolicy::OffloadRevalidate}, "greet");
    {
        std::string name = "ada";
        CHECK(*greet(name) == "hello ada #1");
    }
    f.clock.advance(11s);
    {
        std::string name = "ada";
        auto stale = greet(name);
        CHECK(stale.status == CacheStatus::Stale);
        name = "overwritten";  // the refresh must not see this
    }
    REQUIRE(manager.wait_all(20s));
    auto fresh = greet(std::string("ada"));
    CHECK(fresh.status == CacheStatus::Hit);
    CHECK(*fresh == "hello ada #2");
}

TEST_CASE("memoize keeps its own copy of text passed as const char*, char*, string_view or optional of one") {
    Fixture f;
    hitbox::OffloadManager manager{{.workers = 1}};
    hitbox::Cache cache{f.tiers, manager, hitbox::NoMetrics{}, f.clock};
    std::atomic<int> calls{0};
    const hitbox::CachePolicy policy{.ttl = 60s, .stale = 10s, .stale_policy = StalePolicy::OffloadRevalidate};
    auto quote = hitbox::memoize(
        cache,
        [&](std::string_view product, const char* unit, std::optional<std::string_view> note) {
            ++calls;
            return std::string(product) + " per " + unit + (note ? " (" + std::string(*note) + ")" : "");
        },
        policy, "quote");
    char product[16] = "widget";
    std::string unit = "box";
    std::string note = "bulk";
    REQUIRE(*quote(std::string_view(product), unit.c_str(), std::optional<std::string_view>(note)) ==
            "widget per box (bulk)");
    f.clock.advance(11s);
    // The worker is busy, so the refresh the next call queues runs after the caller has reused its buffers.
    std::atomic<bool> release{false};
    REQUIRE(manager.spawn(hitbox::OffloadKind::revalidate, "", [&] {
        for (int i = 0; i < 5000 && !release; ++i) std::this_thread::sleep_for(1ms);
    }));
    auto stale = quote(std::string_view(product), unit.c_str(), std::optional<std::string_view>(note));
    CHECK(stale.status == CacheStatus::Stale);
    std::strcpy(product, "gadget");
    unit.assign(200, 'x');  // reallocates: the old pointer dangles
    note = "none";
    release = true;
    REQUIRE(manager.wait_all(20s));
    CHECK(calls == 2);
    // The refresh loaded the arguments of its own call, under that call's key.
    auto again = quote(std::string_view("widget"), "box", std::optional<std::string_view>("bulk"));
    CHECK(again.status == CacheStatus::Hit);
    CHECK(*again == "widget per box (bulk)");

    // char* reaches the function as a pointer into the load's own copy.
    auto shout = hitbox::memoize(
        cache,
        [](char* text) {
            for (char* c = text; *c; ++c) *c = static_cast<char>(*c - ('a' <= *c && *c <= 'z' ? 32 : 0));
            return std::string(text);
        },
        {.ttl = 60s}, "shout");
    char word[] = "abc";
    CHECK(*shout(word) == "ABC");
    CHECK(std::string(word) == "abc");  // the caller's buffer is untouched
}

// ---- callbacks that throw, durations at the edges -----------------------------------------------------

namespace {

/// A metrics policy whose record_upstream throws while `throws_left` > 0: an exception that leaves the
/// load itself, after the loader, before anything is published.
struct ThrowingMetrics {
    static constexpr bool enabled = true;
    std::shared_ptr<std::atomic<int>> throws_left = std::make_shared<std::atomic<int>>(0);
    std::size_t source_id(std::string_view) { return 0; }
    void record(CacheStatus, std::size_t, std::chrono::nanoseconds) {}
    void record_upstream(hitbox::LoadResult, std::chrono::nanoseconds) {
        if (throws_left->fetch_sub(1) > 0) throw std::runtime_error("metrics sink down");
    }
};

const CachePolicy patient{.ttl = 60s, .waiter_timeout = 30s};

}  // namespace

TEST_CASE("A tier whose set throws: value served, write error, no flight left") {
    hitbox::ManualClock clock;
    hitbox::InlineOffload offload;
    Remote tier{"redis", clock};
    tier.on(Op::set, [](const CacheKey&) { throw std::runtime_error("disk on fire"); });
    ErrorLog log;
    hitbox::Cache cache{tier, offload, hitbox::NoMetrics{}, clock, log.options()};
    Versions v;

    hitbox::CacheResult<std::string> first;
    REQUIRE_NOTHROW(first = cache.get_or_compute<std::string>(key, v.loader(), patient));
    CHECK(first.value == std::optional<std::string>("v1"));
    CHECK(first.ok());
    REQUIRE(first.backend_errors.size() == 1);
    CHECK(first.backend_errors[0].kind() == ErrorKind::unavailable);
    CHECK(first.backend_errors[0].what() == "[redis] unavailable: write threw: disk on fire");
    CHECK(cache.stats().write_errors == 1);
    CHECK(log.count(hitbox::CacheOp::write) == 1);
    CHECK(cache.loads_in_flight() == 0);

    // The next caller of the key loads at once: no flight was left behind for it to wait 30 s on.
    const auto started = std::chrono::steady_clock::now();
    auto second = cache.get_or_compute<std::string>(key, v.loader(), patient);
    CHECK(std::chrono::steady_clock::now() - started < 5s);
    CHECK(second.value == std::optional<std::string>("v2"));
    CHECK(cache.stats().waiter_timeouts == 0);

    // A waiter of a leader whose write throws gets the leader's value when the leader is done.
    Signal in_load, release;
    tier.on(Op::set, [&](const CacheKey&) {
        in_load.open();
        release.wait();
        throw std::runtime_error("disk on fire");
    });
    const CacheKey other{"user", 1, {{"id", "43"}}};
    hitbox::CacheResult<std::string> leader_result;
    std::atomic<bool> escaped{false};
    std::thread leader([&] {
        try {
            leader_result = cache.get_or_compute<std::string>(other, v.loader(), patient);
        } catch (...) {
            escaped = true;
        }
    });
    REQUIRE(in_load.wait());
    std::thread opener([&] {
        eventually([&] { return cache.stats().waiting == 1; });
        release.open();
    });
    const auto waited_from = std::chrono::steady_clock::now();
    auto waiter = cache.get_or_compute<std::string>(other, v.loader(), patient);
    CHECK(std::chrono::steady_clock::now() - waited_from < 5s);
    opener.join();
    leader.join();
    CHECK_FALSE(escaped);
    CHECK(leader_result.value == std::optional<std::string>("v3"));
    CHECK(waiter.value == std::optional<std::string>("v3"));
    CHECK(cache.stats().coalesced == 1);
    CHECK(cache.loads_in_flight() == 0);
}

TEST_CASE("A composed tier whose set or get throws is a failing tier") {
    Fixture f;
    f.l2.on(Op::set, [](const CacheKey&) { throw std::runtime_error("disk on fire"); });
    hitbox::Cache cache{f.tiers, f.offload, hitbox::NoMetrics{}, f.clock};
    auto r = cache.get_or_compute<std::string>(
        key, [] { return std::string("value"); }, patient);
    CHECK(r.value == std::optional<std::string>("value"));
    REQUIRE(r.backend_errors.size() == 1);
    CHECK(r.backend_errors[0].what() == "[cache.redis] unavailable: write threw: disk on fire");
    CHECK(f.tiers.stats().l2_write_errors == 1);
    CHECK(cache.loads_in_flight() == 0);

    // L1 lost the entry; L2's get throws: a read error, then a load.
    f.l1.clear();
    f.l2.on(Op::get, [](const CacheKey&) { throw std::runtime_error("socket on fire"); });
    auto again = cache.get_or_compute<std::string>(
        key, [] { return std::string("reloaded"); }, patient);
    CHECK(again.value == std::optional<std::string>("reloaded"));
    CHECK(again.status == CacheStatus::Miss);
    REQUIRE(again.backend_errors.size() >= 1);
    CHECK(again.backend_errors[0].what() == "[cache.redis] unavailable: read threw: socket on fire");
    CHECK(cache.loads_in_flight() == 0);
}

TEST_CASE("A loader that asks for its own key gets an error instead of waiting for itself") {
    hitbox::ManualClock clock;
    hitbox::InlineOffload offload;
    Memory memory = hitbox_test::manual_memory(clock);
    hitbox::Cache cache{memory, offload, hitbox::NoMetrics{}, clock};
    const CacheKey other{"user", 2, {{"id", "7"}}};
    // waiter_timeout max(): joining the flight would wait for ever. With hard_timeout the loader runs on a
    // thread of its own, which must be recognised as the same load.
    for (const CachePolicy& policy :
         {CachePolicy{.ttl = 60s, .waiter_timeout = std::chrono::milliseconds::max()},
          CachePolicy{.ttl = 60s, .waiter_timeout = std::chrono::milliseconds::max(), .hard_timeout = 10s}}) {
        memory.clear();
        std::optional<hitbox::Error> inner_error;
        std::optional<std::string> other_value;
        const auto started = std::chrono::steady_clock::now();
        auto r = cache.get_or_compute<std::string>(
            key,
            [&]() -> std::string {
                auto inner = cache.get_or_compute<std::string>(
                    key, [] { return std::string("inner"); }, policy);
                inner_error = inner.error;
                // Another key from inside a loader is an ordinary load.
                other_value = cache
                                  .get_or_compute<std::string>(
                                      other, [] { return std::string("other"); }, policy)
                                  .value;
                return "outer";
            },
            policy);
        CHECK(std::chrono::steady_clock::now() - started < 5s);
        CHECK(r.value == std::optional<std::string>("outer"));
        REQUIRE(inner_error);
        CHECK(inner_error->kind() == ErrorKind::unavailable);
        CHECK(inner_error->message() ==
              "get_or_compute: the loader of this key asked for the same key (a load cannot wait for itself)");
        CHECK(other_value == std::optional<std::string>("other"));
        CHECK(cache.loads_in_flight() == 0);
        // The key is usable afterwards: a hit.
        auto again = cache.get_or_compute<std::string>(
            key, [] { return std::string("unused"); }, policy);
        CHECK(again.value == std::optional<std::string>("outer"));
        CHECK(again.status == CacheStatus::Hit);
    }
}

TEST_CASE("A value whose copy throws: an error result, no flight left") {
    using hitbox_test::ThrowingCopy;
    hitbox::ManualClock clock;
    hitbox::InlineOffload offload;
    Memory memory = hitbox_test::manual_memory(clock);
    hitbox::Cache cache{memory, offload, hitbox::NoMetrics{}, clock};
    std::atomic<int> calls{0};
    auto loader = [&] { return ThrowingCopy(++calls); };

    {
        ThrowingCopy::Refusing refusing;
        hitbox::CacheResult<ThrowingCopy> r;
        REQUIRE_NOTHROW(r = cache.get_or_compute<ThrowingCopy>(key, loader, patient));
        CHECK_FALSE(r.found());
        REQUIRE(r.error);
        CHECK(r.error->kind() == ErrorKind::unavailable);
        CHECK(r.error->message() == "get_or_compute: handing the value over threw: copy refused");
        // Storing a copy threw too: a write error of the tier, nothing stored.
        // The answer that would list it is the one that could not be built: the error handler and the
        // counters have it.
        CHECK(r.backend_errors.empty());
        CHECK(cache.stats().write_errors == 1);
        CHECK(memory.stats().entries == 0);
        CHECK(cache.loads_in_flight() == 0);
    }
    // Copies work again: the next caller is not held up and gets a value.
    const auto started = std::chrono::steady_clock::now();
    auto ok = cache.get_or_compute<ThrowingCopy>(key, loader, patient);
    CHECK(std::chrono::steady_clock::now() - started < 5s);
    REQUIRE(ok.found());
    CHECK(ok->n == 2);
    CHECK(ok.status == CacheStatus::Miss);

    // A hit whose copy out of the tier throws is a read error; the reload's answer fails the same way.
    {
        ThrowingCopy::Refusing refusing;
        auto hit = cache.get_or_compute<ThrowingCopy>(key, loader, patient);
        CHECK_FALSE(hit.found());
        REQUIRE(hit.error);
        CHECK(hit.error->kind() == ErrorKind::unavailable);
        CHECK(cache.loads_in_flight() == 0);
    }
    auto hit = cache.get_or_compute<ThrowingCopy>(key, loader, patient);
    REQUIRE(hit.found());
    CHECK(hit.status == CacheStatus::Hit);
}

TEST_CASE("An exception leaving a load finishes the flight; a waiter retries") {
    hitbox::ManualClock clock;
    hitbox::InlineOffload offload;
    Memory memory = hitbox_test::manual_memory(clock);
    ThrowingMetrics metrics;
    hitbox::Cache cache{memory, offload, metrics, clock};
    *metrics.throws_left = 1;
    std::atomic<int> calls{0};
    Signal release;
    auto loader = [&] {
        const int n = ++calls;
        if (n == 1) release.wait();
        return "load " + std::to_string(n);
    };
    hitbox::CacheResult<std::string> leader_result;
    std::atomic<bool> escaped{false};
    std::thread leader([&] {
        try {
            leader_result = cache.get_or_compute<std::string>(key, loader, patient);
        } catch (...) {
            escaped = true;
        }
    });
    REQUIRE(eventually([&] { return calls == 1; }));
    std::thread opener([&] {
        eventually([&] { return cache.stats().waiting == 1; });
        release.open();
    });
    const auto started = std::chrono::steady_clock::now();
    auto waiter = cache.get_or_compute<std::string>(key, loader, patient);
    const auto waited = std::chrono::steady_clock::now() - started;
    opener.join();
    leader.join();

    CHECK_FALSE(escaped);
    REQUIRE(leader_result.error);
    CHECK(leader_result.error->kind() == ErrorKind::unavailable);
    CHECK(leader_result.error->message() == "get_or_compute: handing the value over threw: metrics sink down");
    CHECK(waited < 5s);  // the waiter took the retry instead of waiting out its 30 s
    CHECK(waiter.value == std::optional<std::string>("load 2"));
    CHECK(cache.stats().retries == 1);
    CHECK(cache.loads_in_flight() == 0);
}

TEST_CASE("milliseconds::max() for ttl, stale, negative_ttl, waiter_timeout") {
    constexpr auto forever = std::chrono::milliseconds::max();
    Fixture f;
    hitbox::Cache cache{f.tiers, f.offload, hitbox::NoMetrics{}, f.clock};
    const CacheKey k1{"forever", 1, {{"k", "ttl"}}};
    const CacheKey k2{"forever", 1, {{"k", "stale"}}};
    const CacheKey k3{"forever", 1, {{"k", "negative"}}};
    Versions v;

    // ttl: the entry never expires (no expiry time at all, as with no ttl).
    auto r = cache.get_or_compute<std::string>(k1, v.loader(), {.ttl = forever});
    CHECK(r.value == std::optional<std::string>("v1"));
    REQUIRE(f.l2.peek<std::string>(k1));
    CHECK(f.l2.peek<std::string>(k1)->expire == std::nullopt);
    // stale just under an endless ttl: never stale either.
    CHECK(cache.get_or_compute<std::string>(k2, v.loader(), {.ttl = forever, .stale = forever - 1ms}).value ==
          std::optional<std::string>("v2"));
    REQUIRE(f.l2.peek<std::string>(k2));
    CHECK(f.l2.peek<std::string>(k2)->stale == std::nullopt);
    CHECK(f.l2.peek<std::string>(k2)->expire == std::nullopt);
    // A ttl short of max() whose expiry still passes TimePoint::max(): saturated to "never" as well.
    CHECK(cache.put(k2, std::string("put"), {.ttl = forever - 1000ms}));
    CHECK(f.l2.peek<std::string>(k2)->expire == std::nullopt);
    // negative_ttl: the cached "not found" never expires.
    auto none = cache.get_or_compute<std::string>(k3, [] { return std::optional<std::string>(); },
                                                  {.ttl = 60s, .negative_ttl = forever});
    CHECK_FALSE(none.found());
    CHECK(none.ok());

    f.clock.advance(std::chrono::hours(24 * 365 * 100));
    auto later = cache.get_or_compute<std::string>(k1, v.loader(), {.ttl = forever});
    CHECK(later.status == CacheStatus::Hit);
    CHECK(later.value == std::optional<std::string>("v1"));
    auto still_none = cache.get_or_compute<std::string>(k3, v.loader(), {.ttl = 60s, .negative_ttl = forever});
    CHECK(still_none.status == CacheStatus::Hit);
    CHECK_FALSE(still_none.found());
    CHECK(v.calls == 2);

    // waiter_timeout: the waiter waits for the leader however long it takes, then takes its value.
    std::atomic<int> calls{0};
    Signal release;
    auto slow = [&] {
        ++calls;
        release.wait();
        return std::string("slow");
    };
    const CachePolicy waits_forever{.ttl = 60s, .waiter_timeout = forever};
    const CacheKey k4{"forever", 1, {{"k", "waiter"}}};
    hitbox::CacheResult<std::string> leader_result;
    std::thread leader([&] { leader_result = cache.get_or_compute<std::string>(k4, slow, waits_forever); });
    REQUIRE(eventually([&] { return calls == 1; }));
    std::thread opener([&] {
        eventually([&] { return cache.stats().waiting == 1; });
        std::this_thread::sleep_for(50ms);
        release.open();
    });
    auto waiter = cache.get_or_compute<std::string>(k4, slow, waits_forever);
    opener.join();
    leader.join();
    CHECK(waiter.value == std::optional<std::string>("slow"));
    CHECK(calls == 1);
    CHECK(cache.stats().waiter_timeouts == 0);
    CHECK(cache.stats().coalesced == 1);
}
