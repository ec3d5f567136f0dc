// OffloadManager (bounded pool, dedup, timeouts, drain), InlineOffload and NoOffload.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include <hitbox/offload/inline_offload.hpp>
#include <hitbox/offload/offload_manager.hpp>

using namespace std::chrono_literals;
using hitbox::OffloadKind;
using hitbox::OffloadManager;

namespace {

/// A one-shot signal: wait() blocks until open(); bounded by a generous timeout so a bug fails, not hangs.
class Signal {
public:
    void open() {
        {
            std::lock_guard lock(m_);
            open_ = true;
        }
        cv_.notify_all();
    }
    bool wait(std::chrono::milliseconds limit = 10s) {
        std::unique_lock lock(m_);
        return cv_.wait_for(lock, limit, [&] { return open_; });
    }
    bool is_open() {
        std::lock_guard lock(m_);
        return open_;
    }

private:
    std::mutex m_;
    std::condition_variable cv_;
    bool open_ = false;
};

/// Opens a Signal when the scope ends, also when a failed REQUIRE leaves it early.
struct OpenOnExit {
    Signal& signal;
    ~OpenOnExit() { signal.open(); }
};

/// Polls `pred` until it holds or 10 s pass (for counters changed by worker threads).
template <class Pred>
bool eventually(Pred pred) {
    const auto until = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < until) {
        if (pred()) return true;
        std::this_thread::sleep_for(1ms);
    }
    return pred();
}

}  // namespace

TEST_CASE("OffloadManager runs accepted tasks on its workers and counts them") {
    OffloadManager offload{{.workers = 2}};
    std::atomic<int> ran{0};
    std::atomic<bool> on_caller{false};
    const auto caller = std::this_thread::get_id();
    for (int i = 0; i < 20; ++i)
        REQUIRE(offload.spawn(OffloadKind::custom, "", [&] {
            if (std::this_thread::get_id() == caller) on_caller = true;
            ++ran;
        }));
    REQUIRE(offload.wait_all(10s));
    CHECK(ran == 20);
    CHECK_FALSE(on_caller);
    auto c = offload.counters();
    CHECK(c.spawned == 20);
    CHECK(c.completed == 20);
    CHECK(c.active == 0);
    CHECK(c.queued == 0);
    CHECK(c.running == 0);
    CHECK(c.rejected == 0);
    CHECK(c.deduplicated == 0);
    CHECK_FALSE(offload.spawn(OffloadKind::custom, "", std::function<void()>{}));  // nothing to run
    CHECK(offload.counters().rejected == 1);
}

TEST_CASE("OffloadManager deduplicates by (kind, key) while work is pending") {
    // What the tasks use is declared before the manager, and `release` opens when the scope ends: a failed
    // REQUIRE below then lets the blocked task finish before the manager joins it, on live objects.
    Signal started, release;
    std::atomic<int> revalidations{0};
    OffloadManager offload{{.workers = 1}};
    const OpenOnExit release_on_exit{release};
    REQUIRE(offload.spawn(OffloadKind::revalidate, "user:42", [&] {
        started.open();
        release.wait();
        ++revalidations;
    }));
    REQUIRE(started.wait());
    // The same key and kind while the first runs: dropped and counted.
    CHECK_FALSE(offload.spawn(OffloadKind::revalidate, "user:42", [&] { ++revalidations; }));
    // Queued (not yet running) work is pending too.
    REQUIRE(offload.spawn(OffloadKind::revalidate, "user:7", [&] { ++revalidations; }));
    CHECK_FALSE(offload.spawn(OffloadKind::revalidate, "user:7", [&] { ++revalidations; }));
    // Another kind for the same key, and keyless work, are different identities.
    CHECK(offload.spawn(OffloadKind::refill, "user:42", [] {}));
    CHECK(offload.spawn(OffloadKind::revalidate, "", [] {}));
    CHECK(offload.spawn(OffloadKind::revalidate, "", [] {}));
    CHECK(offload.counters().deduplicated == 2);

    release.open();
    REQUIRE(offload.wait_all(10s));
    CHECK(revalidations == 2);
    // Once finished, the key is free again.
    CHECK(offload.spawn(OffloadKind::revalidate, "user:42", [&] { ++revalidations; }));
    REQUIRE(offload.wait_all(10s));
    CHECK(revalidations == 3);
    auto c = offload.counters();
    CHECK(c.spawned == 6);
    CHECK(c.completed == 6);
    CHECK(c.deduplicated == 2);
}

TEST_CASE("OffloadManager bounds its queue and rejects beyond it") {
    Signal started, release;  // before the manager, opened at scope end (see the deduplication test)
    std::atomic<int> ran{0};
    OffloadManager offload{{.workers = 1, .max_queue = 2}};
    const OpenOnExit release_on_exit{release};
    REQUIRE(offload.spawn(OffloadKind::custom, "", [&] {
        started.open();
        release.wait();
    }));
    REQUIRE(started.wait());
    CHECK(offload.spawn(OffloadKind::custom, "", [&] { ++ran; }));
    CHECK(offload.spawn(OffloadKind::custom, "", [&] { ++ran; }));
    CHECK_FALSE(offload.spawn(OffloadKind::custom, "", [&] { ++ran; }));
    auto c = offload.counters();
    CHECK(c.rejected == 1);
    CHECK(c.queued == 2);
    CHECK(c.running == 1);
    CHECK(c.active == 3);
    CHECK_FALSE(offload.wait_all(20ms));  // still blocked

    release.open();
    REQUIRE(offload.wait_all(10s));
    CHECK(ran == 2);
    CHECK(offload.counters().completed == 3);
}

TEST_CASE("OffloadManager destructor drains queued work") {
    std::atomic<int> ran{0};
    {
        OffloadManager offload{{.workers = 1, .max_queue = 100, .drain_timeout = 10s}};
        for (int i = 0; i < 50; ++i)
            REQUIRE(offload.spawn(OffloadKind::custom, "k" + std::to_string(i), [&] { ++ran; }));
    }
    CHECK(ran == 50);
}

TEST_CASE("OffloadManager shutdown past its drain timeout discards queued work and stops running work") {
    OffloadManager offload{{.workers = 1, .max_queue = 10}};
    Signal started;
    std::atomic<bool> saw_stop{false};
    REQUIRE(offload.spawn(OffloadKind::custom, "blocker", [&](std::stop_token stop) {
        started.open();
        std::mutex m;
        std::condition_variable_any cv;
        std::unique_lock lock(m);
        saw_stop = cv.wait_for(lock, stop, 10s, [] { return false; }) || stop.stop_requested();
    }));
    REQUIRE(started.wait());
    std::atomic<int> queued_ran{0};
    REQUIRE(offload.spawn(OffloadKind::custom, "", [&] { ++queued_ran; }));
    REQUIRE(offload.spawn(OffloadKind::custom, "", [&] { ++queued_ran; }));

    CHECK_FALSE(offload.shutdown(30ms));
    CHECK(saw_stop);
    CHECK(queued_ran == 0);
    auto c = offload.counters();
    CHECK(c.discarded == 2);
    CHECK(c.completed == 1);
    CHECK(c.active == 0);
    // Shut down: nothing more is accepted.
    CHECK_FALSE(offload.spawn(OffloadKind::custom, "", [] {}));
    CHECK(offload.counters().rejected == 1);
    CHECK(offload.shutdown(0ms));  // later calls return at once: nothing is active
}

TEST_CASE("OffloadManager warn timeout counts and reports a slow task but keeps waiting for it") {
    std::mutex m;
    std::vector<hitbox::OffloadTimeout> reported;
    Signal release;  // before the manager: a failed REQUIRE below must not destroy it under the waiting task
    OffloadManager offload{{.workers = 1, .timeout = hitbox::TimeoutPolicy::warn(20ms)}};
    const OpenOnExit release_on_exit{release};  // ... and lets the task end before the manager joins it
    offload.set_timeout_callback([&](const hitbox::OffloadTimeout& t) {
        std::lock_guard lock(m);
        reported.push_back(t);
    });
    REQUIRE(offload.spawn(OffloadKind::revalidate, "slow-key", [&] { release.wait(); }));
    REQUIRE(eventually([&] { return offload.counters().timed_out == 1; }));
    // The counter moves under the manager's lock; the callback runs after it, outside the lock.
    REQUIRE(eventually([&] {
        std::lock_guard lock(m);
        return !reported.empty();
    }));
    {
        std::lock_guard lock(m);
        REQUIRE(reported.size() == 1);
        CHECK(reported[0].kind == OffloadKind::revalidate);
        CHECK(reported[0].key == "slow-key");
        CHECK(reported[0].policy == hitbox::TimeoutPolicy::warn(20ms));
    }
    // warn does not release the key or stop waiting.
    CHECK_FALSE(offload.spawn(OffloadKind::revalidate, "slow-key", [] {}));
    CHECK_FALSE(offload.wait_all(10ms));
    release.open();
    REQUIRE(offload.wait_all(10s));
    auto c = offload.counters();
    CHECK(c.completed == 1);
    CHECK(c.timed_out == 1);
}

TEST_CASE("OffloadManager: a throwing timeout callback is contained and later timeouts are still reported") {
    // The supervisor thread has nobody to hand an exception to: a throw must not end the process.
    std::atomic<int> calls{0};
    Signal release;
    OffloadManager offload{
        {.workers = 2, .timeout = hitbox::TimeoutPolicy::warn(10ms), .on_timeout = [&](const hitbox::OffloadTimeout&) {
             if (++calls == 1) throw std::runtime_error("hook failed");
             throw 42;  // not a std::exception either
         }}};
    const OpenOnExit release_on_exit{release};
    REQUIRE(offload.spawn(OffloadKind::revalidate, "first", [&] { release.wait(); }));
    REQUIRE(eventually([&] { return calls.load() == 1; }));
    REQUIRE(offload.spawn(OffloadKind::revalidate, "second", [&] { release.wait(); }));
    REQUIRE(eventually([&] { return calls.load() == 2; }));
    release.open();
    REQUIRE(offload.wait_all(10s));
    CHECK(offload.counters().timed_out == 2);
    CHECK(offload.counters().completed == 2);
    // The manager still runs work after both throws.
    std::atomic<bool> ran{false};
    REQUIRE(offload.spawn(OffloadKind::custom, "after", [&] { ran = true; }));
    REQUIRE(offload.wait_all(10s));
    CHECK(ran.load());
}

TEST_CASE("OffloadManager cancel-wait timeout abandons the task: key released, waiters stop waiting") {
    std::atomic<int> reported{0};
    Signal stopped, release;  // before the manager, opened at scope end (see the deduplication test)
    std::atomic<bool> second{false};
    OffloadManager offload{{.workers = 2, .on_timeout = [&](const hitbox::OffloadTimeout& t) {
                                if (t.policy.mode() == hitbox::TimeoutPolicy::Mode::cancel_wait) ++reported;
                            }}};
    const OpenOnExit release_on_exit{release};
    REQUIRE(offload.spawn(
        OffloadKind::refill, "k",
        [&](std::stop_token stop) {
            std::mutex m;
            std::condition_variable_any cv;
            std::unique_lock lock(m);
            cv.wait_for(lock, stop, 10s, [] { return false; });
            if (stop.stop_requested()) stopped.open();
            release.wait();
        },
        hitbox::TimeoutPolicy::cancel_wait(20ms)));
    REQUIRE(stopped.wait());  // the stop_token was signalled at the deadline
    auto c = offload.counters();
    CHECK(c.timed_out == 1);
    CHECK(eventually([&] { return reported == 1; }));
    CHECK(c.active == 0);
    CHECK(c.running == 1);  // the function itself still runs
    CHECK(offload.wait_all(1s));
    // The key is free: a new refill of the same key is accepted and runs on the other worker.
    CHECK(offload.spawn(OffloadKind::refill, "k", [&] { second = true; }));
    REQUIRE(offload.wait_all(10s));
    CHECK(second);
    release.open();
    REQUIRE(eventually([&] { return offload.counters().running == 0; }));
    c = offload.counters();
    CHECK(c.completed == 2);
    CHECK(c.spawned == 2);
}

TEST_CASE("OffloadManager counts a throwing task as failed and keeps working") {
    OffloadManager offload{{.workers = 1}};
    REQUIRE(offload.spawn(OffloadKind::custom, "", [] { throw std::runtime_error("boom"); }));
    std::atomic<bool> after{false};
    REQUIRE(offload.spawn(OffloadKind::custom, "", [&] { after = true; }));
    REQUIRE(offload.wait_all(10s));
    CHECK(after);
    auto c = offload.counters();
    CHECK(c.failed == 1);
    CHECK(c.completed == 2);
}

TEST_CASE("OffloadManager rejects an invalid configuration with a config error") {
    auto bad = OffloadManager::create({.workers = 0});
    REQUIRE_FALSE(bad);
    CHECK(bad.error().kind() == hitbox::ErrorKind::config);
    CHECK(bad.error().message().find("workers") != std::string::npos);
    CHECK_FALSE(OffloadManager::create({.max_queue = 0}));
    CHECK_FALSE(OffloadManager::create({.timeout = hitbox::TimeoutPolicy::warn(0ms)}));
    CHECK_THROWS_AS(OffloadManager({.workers = 0}), std::invalid_argument);
    auto good = OffloadManager::create({.workers = 1});
    REQUIRE(good);
    CHECK((*good)->config().workers == 1);
}

TEST_CASE("OffloadManager stays consistent under concurrent spawners") {
    OffloadManager offload{{.workers = 3, .max_queue = 64}};
    std::atomic<int> ran{0};
    std::atomic<int> accepted{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&, t] {
            for (int i = 0; i < 500; ++i) {
                auto kind = (i % 2) ? OffloadKind::refill : OffloadKind::revalidate;
                if (offload.spawn(kind, "key" + std::to_string((i * 7 + t) % 40), [&] { ++ran; })) ++accepted;
            }
        });
    for (auto& t : threads) t.join();
    REQUIRE(offload.wait_all(30s));
    auto c = offload.counters();
    CHECK(c.spawned == static_cast<std::uint64_t>(accepted.load()));
    CHECK(c.spawned + c.deduplicated + c.rejected == 2000);
    CHECK(c.completed == c.spawned);
    CHECK(ran == accepted);
    CHECK(c.active == 0);
}

TEST_CASE("InlineOffload runs work on the caller and deduplicates while it runs") {
    hitbox::InlineOffload offload;
    const auto caller = std::this_thread::get_id();
    std::thread::id ran_on;
    int nested_dup = -1, nested_other = -1, nested_keyless = -1;
    REQUIRE(offload.spawn(OffloadKind::refill, "k", [&] {
        ran_on = std::this_thread::get_id();
        nested_dup = offload.spawn(OffloadKind::refill, "k", [] {});
        nested_other = offload.spawn(OffloadKind::refill, "other", [] {});
        nested_keyless = offload.spawn(OffloadKind::refill, "", [] {});
    }));
    CHECK(ran_on == caller);
    CHECK(nested_dup == 0);
    CHECK(nested_other == 1);
    CHECK(nested_keyless == 1);
    CHECK(offload.spawn(OffloadKind::refill, "k", [] {}));  // finished: free again
    auto c = offload.counters();
    CHECK(c.spawned == 4);
    CHECK(c.completed == 4);
    CHECK(c.deduplicated == 1);
    CHECK(c.active == 0);
    CHECK(offload.wait_all(0ms));
}

TEST_CASE("NoOffload refuses everything and counts it") {
    hitbox::NoOffload offload;
    bool ran = false;
    CHECK_FALSE(offload.spawn(OffloadKind::refill, "k", [&] { ran = true; }));
    CHECK_FALSE(offload.spawn(OffloadKind::race_loser, "", [&] { ran = true; }));
    CHECK_FALSE(ran);
    CHECK(offload.counters().rejected == 2);
    CHECK(offload.counters().spawned == 0);
}

TEST_CASE("OffloadKind and timeout names are stable") {
    CHECK(hitbox::to_string(OffloadKind::refill) == "refill");
    CHECK(hitbox::to_string(OffloadKind::race_loser) == "race_loser");
    CHECK(hitbox::to_string(OffloadKind::revalidate) == "revalidate");
    CHECK(hitbox::to_string(OffloadKind::tier_call) == "tier_call");
    CHECK(hitbox::to_string(hitbox::TimeoutPolicy::Mode::cancel_wait) == "cancel_wait");
    CHECK(hitbox::detail::printable_key(std::string("a\x01\xff", 3)) == "a\\x01\\xff");
}

TEST_CASE("A negative per-task timeout counts as zero (the report says 0 ms, not a negative number)") {
    CHECK(hitbox::TimeoutPolicy::warn(-5ms).after() == 0ms);
    CHECK(hitbox::TimeoutPolicy::cancel_wait(std::chrono::milliseconds::min()).after() == 0ms);
    CHECK(hitbox::TimeoutPolicy::cancel_wait(7ms).after() == 7ms);
}

TEST_CASE("Offload: milliseconds::max() timeouts, wait_all and drain: no limit") {
    constexpr auto forever = std::chrono::milliseconds::max();
    const auto started = std::chrono::steady_clock::now();
    for (auto policy : {hitbox::TimeoutPolicy::cancel_wait(forever), hitbox::TimeoutPolicy::warn(forever)}) {
        std::atomic<int> timeouts{0};
        hitbox::OffloadCounters counters;
        {
            OffloadManager offload{{.workers = 1,
                                    .timeout = policy,
                                    .drain_timeout = forever,
                                    .on_timeout = [&](const hitbox::OffloadTimeout&) { ++timeouts; }}};
            REQUIRE(offload.spawn(OffloadKind::refill, "a", [] { std::this_thread::sleep_for(30ms); }));
            CHECK(offload.wait_all(forever));
            // The destructor's endless drain waits for the queued task instead of discarding it.
            REQUIRE(offload.spawn(OffloadKind::refill, "b", [] { std::this_thread::sleep_for(30ms); }));
            REQUIRE(offload.spawn(OffloadKind::refill, "c", [] {}));
            CHECK(offload.shutdown(forever));
            counters = offload.counters();
        }
        CHECK(counters.completed == 3);
        CHECK(counters.discarded == 0);
        CHECK(counters.timed_out == 0);
        CHECK(timeouts == 0);
    }
    hitbox::InlineOffload inline_offload;
    CHECK(inline_offload.spawn(OffloadKind::refill, "a", [] {}));
    CHECK(inline_offload.wait_all(forever));
    CHECK(hitbox::NoOffload{}.wait_all(forever));
    CHECK(std::chrono::steady_clock::now() - started < 10s);
}

TEST_CASE("Offload: max() of a coarser duration type is no limit too, not an overflow") {
    using std::chrono::hours;
    using std::chrono::milliseconds;
    CHECK(hitbox::TimeoutPolicy::cancel_wait(hours::max()).after() == milliseconds::max());
    CHECK(hitbox::TimeoutPolicy::warn(std::chrono::seconds::max()).after() == milliseconds::max());
    CHECK(hitbox::TimeoutPolicy::warn(std::chrono::duration<double>::max()).after() == milliseconds::max());
    CHECK(hitbox::TimeoutPolicy::cancel_wait(hours::min()).after() == milliseconds(0));
    CHECK(hitbox::TimeoutPolicy::warn(std::chrono::microseconds(1500)).after() == milliseconds(2));
    OffloadManager offload{{.workers = 1}};
    REQUIRE(offload.spawn(OffloadKind::refill, "a", [] { std::this_thread::sleep_for(30ms); }));
    CHECK(offload.wait_all(hours::max()));
    CHECK(offload.counters().completed == 1);
    REQUIRE(offload.spawn(OffloadKind::refill, "b", [] { std::this_thread::sleep_for(30ms); }));
    CHECK(offload.shutdown(hours::max()));
    CHECK(offload.counters().completed == 2);
    hitbox::InlineOffload inline_offload;
    CHECK(inline_offload.wait_all(hours::max()));
    CHECK(hitbox::NoOffload{}.wait_all(hours::max()));
}
