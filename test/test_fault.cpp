// Suite 'fault': bounded load scenarios on loopback against real redis-server processes the test starts,
// with faults injected while 16 threads work: the server killed and restarted, paused with SIGSTOP, and
// every client connection killed every 100 ms. Every value encodes its key and a version, so a value
// delivered to the wrong caller or for the wrong key is detected, not just counted. Each scenario prints
// its figures (operations, errors by kind, latency, recovery) to stdout, which lands in meson's test log.
#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <hitbox/backend/memory/memory_backend.hpp>
#include <hitbox/backend/redis.hpp>
#include <hitbox/cache.hpp>
#include <hitbox/compose/compose.hpp>
#include <hitbox/offload/offload_manager.hpp>

#include "support/redis_server.hpp"

using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;
using hitbox::CacheKey;
using hitbox::CacheValue;
using hitbox::ErrorKind;

namespace {

const bool redis_available = hitbox_test::require_redis_server();

constexpr int threads = 16;
constexpr auto command_timeout = 250ms;
constexpr auto connect_timeout = 250ms;
constexpr std::size_t kind_count = hitbox::error_kind_count;

hitbox::RedisBackend<> redis_at(const std::string& url, const std::string& prefix) {
    auto r = hitbox::RedisBackend<>::builder()
                 .connection(hitbox::ConnectionMode::single(url))
                 .key_prefix(prefix)
                 .connect_timeout(connect_timeout)
                 .command_timeout(command_timeout)
                 .reconnect_backoff(25ms, 200ms)
                 .build();
    REQUIRE(r);
    return std::move(*r);
}

/// "k=<key>;v=<version>;" and padding: the value names what it belongs to.
std::string make_value(std::uint64_t key, std::uint64_t version) {
    std::string v = "k=" + std::to_string(key) + ";v=" + std::to_string(version) + ";";
    v.resize(v.size() + 48, '.');
    return v;
}

/// The version in `value` if it is a well-formed value of `key`, else nullopt.
std::optional<std::uint64_t> version_of(const std::string& value, std::uint64_t key) {
    const std::string head = "k=" + std::to_string(key) + ";v=";
    if (value.compare(0, head.size(), head) != 0) return std::nullopt;
    const auto end = value.find(';', head.size());
    if (end == std::string::npos || end == head.size() || value.size() != end + 1 + 48) return std::nullopt;
    std::uint64_t v = 0;
    for (std::size_t i = head.size(); i < end; ++i) {
        if (value[i] < '0' || value[i] > '9') return std::nullopt;
        v = v * 10 + static_cast<std::uint64_t>(value[i] - '0');
    }
    return v;
}

std::int64_t ms_between(SteadyClock::time_point a, SteadyClock::time_point b) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(b - a).count();
}

/// What a scenario measured. Threads update it with relaxed atomics.
struct Figures {
    std::atomic<std::uint64_t> ops{0}, ok{0}, wrong{0}, crashes{0}, loader_while_down{0}, late_errors{0};
    std::array<std::atomic<std::uint64_t>, kind_count> errors{};
    std::atomic<std::int64_t> max_latency_us{0};
    std::int64_t recovery_first_ms = -1;  // fault lifted -> first success on any thread
    std::int64_t recovery_all_ms = -1;    // fault lifted -> every thread has succeeded again

    std::mutex slow_mutex;
    std::vector<std::string> slow_ops;  // the first few operations over command timeout + 100 ms

    /// Notes an operation that took `ms`, started at `at_ms` into the scenario.
    void slow(std::int64_t ms, std::int64_t at_ms, const std::string& what) {
        std::lock_guard lock(slow_mutex);
        if (slow_ops.size() < 8)
            slow_ops.push_back(std::to_string(ms) + " ms, started at " + std::to_string(at_ms) + " ms: " + what);
    }

    void error(ErrorKind k) { errors[static_cast<std::size_t>(k)].fetch_add(1, std::memory_order_relaxed); }
    void latency(SteadyClock::duration d) {
        const auto us = std::chrono::duration_cast<std::chrono::microseconds>(d).count();
        auto seen = max_latency_us.load(std::memory_order_relaxed);
        while (us > seen && !max_latency_us.compare_exchange_weak(seen, us, std::memory_order_relaxed)) {
        }
    }
    std::uint64_t error_total() const {
        std::uint64_t n = 0;
        for (const auto& e : errors) n += e.load();
        return n;
    }

    void print(const char* scenario) {
        std::printf("\n| fault scenario: %s |\n|---|---|\n", scenario);
        std::printf("| operations | %llu |\n| succeeded | %llu |\n", static_cast<unsigned long long>(ops.load()),
                    static_cast<unsigned long long>(ok.load()));
        for (std::size_t k = 0; k < kind_count; ++k)
            if (errors[k].load() != 0)
                std::printf("| errors: %s | %llu |\n",
                            std::string(hitbox::to_string(static_cast<ErrorKind>(k))).c_str(),
                            static_cast<unsigned long long>(errors[k].load()));
        std::printf("| wrong values | %llu |\n| crashes (exceptions) | %llu |\n",
                    static_cast<unsigned long long>(wrong.load()), static_cast<unsigned long long>(crashes.load()));
        std::printf("| max latency | %.1f ms (command timeout %lld ms) |\n",
                    static_cast<double>(max_latency_us.load()) / 1000.0,
                    static_cast<long long>(command_timeout.count()));
        if (recovery_first_ms >= 0 || recovery_all_ms >= 0)
            std::printf("| recovery: first / all threads | %lld / %lld ms |\n",
                        static_cast<long long>(recovery_first_ms), static_cast<long long>(recovery_all_ms));
        if (loader_while_down.load() != 0)
            std::printf("| loader values served while Redis was down | %llu |\n",
                        static_cast<unsigned long long>(loader_while_down.load()));
        std::printf("| errors in operations started 1 s after recovery | %llu |\n\n",
                    static_cast<unsigned long long>(late_errors.load()));
        for (const auto& s : slow_ops) std::printf("slow operation: %s\n", s.c_str());
        std::fflush(stdout);
    }
};

/// Nanoseconds since the steady clock's epoch, in an atomic: a phase boundary threads read.
struct Mark {
    std::atomic<std::int64_t> ns{std::numeric_limits<std::int64_t>::max()};
    void set(SteadyClock::time_point t) { ns.store(t.time_since_epoch().count()); }
    bool passed(SteadyClock::time_point t) const { return t.time_since_epoch().count() >= ns.load(); }
    SteadyClock::time_point at() const { return SteadyClock::time_point(SteadyClock::duration(ns.load())); }
};

/// Per thread: when it first succeeded after the fault was lifted (`lifted`), for the recovery figures.
void recovery_figures(Figures& f, const std::vector<std::optional<SteadyClock::time_point>>& first_ok,
                      SteadyClock::time_point lifted) {
    std::int64_t first = -1, all = 0;
    for (const auto& t : first_ok) {
        if (!t) {
            all = -1;
            break;
        }
        const auto ms = std::max<std::int64_t>(0, ms_between(lifted, *t));
        first = first < 0 ? ms : std::min(first, ms);
        all = std::max(all, ms);
    }
    f.recovery_first_ms = first;
    f.recovery_all_ms = all;
}

std::uint64_t next_random(std::uint64_t& s) {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
}

}  // namespace

TEST_CASE("Fault: Cache(Memory + Redis) under 16 threads, server killed at 3 s and restarted at 5 s") {
    hitbox_test::RedisServer server;
    hitbox::OffloadManager offload;
    auto l1 = hitbox::MemoryBackend::builder().max_entries(1000).build();
    REQUIRE(l1);
    auto l2 = redis_at(server.url(), "fault-kill:");
    auto tiers = hitbox::compose(*l1, l2, offload);
    hitbox::Cache cache{tiers, offload, hitbox::NoMetrics{}, hitbox::SystemClock{},
                        hitbox::CacheOptions{{}, [](const hitbox::CacheErrorEvent&) {}}};
    const hitbox::CachePolicy policy{.ttl = 60s};

    constexpr std::uint64_t keys = 20'000;  // 20x L1: most calls reach Redis
    std::vector<std::atomic<std::uint64_t>> loads(keys);
    Figures f;
    Mark killed, restarted, stop;
    std::vector<std::optional<SteadyClock::time_point>> first_ok(threads);

    const auto t0g = SteadyClock::now();
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
        pool.emplace_back([&, t] {
            std::uint64_t rng = 0x9e3779b97f4a7c15ULL * static_cast<std::uint64_t>(t + 1);
            while (!stop.passed(SteadyClock::now())) {
                const std::uint64_t k = next_random(rng) % keys;
                const auto started = SteadyClock::now();
                try {
                    auto r = cache.get_or_compute<std::string>(
                        CacheKey{"fault", 1, {{"k", std::to_string(k)}}},
                        [&] { return make_value(k, loads[k].fetch_add(1) + 1); }, policy);
                    const auto ended = SteadyClock::now();
                    f.latency(ended - started);
                    if (ended - started > command_timeout + 100ms) {
                        std::string what;
                        for (const auto& e : r.backend_errors) what += e.what() + "; ";
                        f.slow(ms_between(started, ended), ms_between(t0g, started),
                               what + "source " + std::string(r.source));
                    }
                    ++f.ops;
                    for (const auto& e : r.backend_errors) f.error(e.kind());
                    if (r.error) f.error(r.error->kind());
                    const auto v = r.value ? version_of(*r.value, k) : std::nullopt;
                    if (!v || *v == 0 || *v > loads[k].load()) ++f.wrong;
                    const bool touched_redis = r.source != "cache.memory";
                    const bool clean = r.backend_errors.empty() && !r.error;
                    if (clean) ++f.ok;
                    if (killed.passed(started) && !restarted.passed(started) && r.source == "upstream" && v &&
                        !r.backend_errors.empty())
                        ++f.loader_while_down;
                    if (restarted.passed(started)) {
                        if (touched_redis && clean && !first_ok[static_cast<std::size_t>(t)])
                            first_ok[static_cast<std::size_t>(t)] = ended;
                        if (!clean && restarted.passed(started - 1s)) ++f.late_errors;
                    }
                } catch (...) {
                    ++f.crashes;
                }
            }
        });

    const auto t0 = SteadyClock::now();
    std::this_thread::sleep_until(t0 + 3s);
    const auto ops_before_kill = f.ops.load();
    const auto errors_before_kill = f.error_total();
    server.kill();
    killed.set(SteadyClock::now());
    std::this_thread::sleep_until(t0 + 5s);
    server.start();  // returns once the server answers PING
    const auto back = SteadyClock::now();
    restarted.set(back);
    std::this_thread::sleep_until(back + 2s);
    stop.set(SteadyClock::now());
    for (auto& th : pool) th.join();
    recovery_figures(f, first_ok, back);
    f.print("Cache(Memory + Redis), 16 threads, kill at 3 s, restart at 5 s");

    CHECK(f.crashes == 0);
    CHECK(f.wrong == 0);
    CHECK(ops_before_kill > 1000);
    CHECK(errors_before_kill == 0);
    CHECK(f.error_total() > 0);  // the kill was seen
    CHECK(f.max_latency_us.load() <= std::chrono::microseconds(command_timeout + 100ms).count());
    CHECK(f.loader_while_down > 0);
    CHECK(f.recovery_all_ms >= 0);
    CHECK(f.recovery_all_ms <= 1000);
    CHECK(f.late_errors == 0);
    CHECK(l2.connection().counters().connects >= 2);
}

namespace {

/// What the pause scenario found besides its Figures.
struct PauseOutcome {
    std::uint64_t errors_before = 0;         // errors before the pause (must be none)
    std::uint64_t during_pause = 0;          // operations started while the server was stopped
    std::uint64_t over_command_timeout = 0;  // operations longer than command timeout + 100 ms
    long long first_reset_ms = -1;           // from the pause to the first connection reset (stall), -1: none
};

/// 16 threads write and read back their own keys on RedisBackend; the server is stopped (SIGSTOP) at 1 s
/// for `pause_for`, then runs 2 s more.
PauseOutcome pause_scenario(Figures& f, std::chrono::milliseconds pause_for, const char* title) {
    hitbox_test::RedisServer server;
    auto redis = redis_at(server.url(), "fault-pause:");
    PauseOutcome out;
    std::atomic<std::uint64_t> over{0};
    Mark paused, resumed, stop;
    std::vector<std::optional<SteadyClock::time_point>> first_ok(threads);
    std::atomic<std::uint64_t> during_pause{0};
    const auto t0 = SteadyClock::now();

    auto op = [&](int t, auto&& body) {
        const auto started = SteadyClock::now();
        try {
            std::optional<hitbox::Error> e = body();
            const auto ended = SteadyClock::now();
            f.latency(ended - started);
            if (ended - started > command_timeout + 100ms) ++over;
            if (ended - started > command_timeout + 100ms)
                f.slow(ms_between(started, ended), ms_between(t0, started), e ? e->what() : std::string("ok"));
            ++f.ops;
            if (paused.passed(started) && !resumed.passed(started)) ++during_pause;
            if (e) {
                f.error(e->kind());
                if (resumed.passed(started - 1s)) ++f.late_errors;
            } else {
                ++f.ok;
                if (resumed.passed(started) && !first_ok[static_cast<std::size_t>(t)])
                    first_ok[static_cast<std::size_t>(t)] = ended;
            }
        } catch (...) {
            ++f.crashes;
        }
    };

    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
        pool.emplace_back([&, t] {
            for (std::uint64_t i = 0; !stop.passed(SteadyClock::now()); ++i) {
                // Key (thread, i) is written once with its own value, then read back.
                const std::uint64_t k = static_cast<std::uint64_t>(t) * 1'000'000'000ULL + i;
                const CacheKey key{"pause", 0, {{"k", std::to_string(k)}}};
                bool written = false;
                op(t, [&]() -> std::optional<hitbox::Error> {
                    auto w = redis.set(key, CacheValue<std::string>{make_value(k, 1)});
                    if (!w) return w.error();
                    written = true;
                    return std::nullopt;
                });
                op(t, [&]() -> std::optional<hitbox::Error> {
                    auto r = redis.get<std::string>(key);
                    if (!r) return r.error();
                    if (*r ? version_of((*r)->data, k) != std::optional<std::uint64_t>(1) : written) ++f.wrong;
                    return std::nullopt;
                });
            }
        });

    std::this_thread::sleep_until(t0 + 1s);
    out.errors_before = f.error_total();
    const auto drops_before = redis.connection().counters().drops;
    server.pause();
    const auto pause_at = SteadyClock::now();
    paused.set(pause_at);
    // Watch for the stall reset: spinning callers read the socket all the time, which must not count as
    // progress while no reply comes.
    while (SteadyClock::now() < t0 + 1s + pause_for) {
        if (out.first_reset_ms < 0 && redis.connection().counters().drops > drops_before)
            out.first_reset_ms = ms_between(pause_at, SteadyClock::now());
        std::this_thread::sleep_for(5ms);
    }
    server.resume();
    const auto back = SteadyClock::now();
    resumed.set(back);
    std::this_thread::sleep_until(back + 2s);
    stop.set(SteadyClock::now());
    for (auto& th : pool) th.join();
    recovery_figures(f, first_ok, back);
    f.print(title);
    out.during_pause = during_pause.load();
    out.over_command_timeout = over.load();
    std::printf(
        "| operations over command timeout + 100 ms | %llu |\n| first stall reset after the pause | %lld ms |\n\n",
        static_cast<unsigned long long>(out.over_command_timeout), out.first_reset_ms);
    return out;
}

}  // namespace

TEST_CASE("Fault: server paused with SIGSTOP for 3 s under 16 threads; every operation returns in its budget") {
    Figures f;
    const auto o = pause_scenario(f, 3000ms, "RedisBackend, 16 threads, SIGSTOP for 3 s at 1 s");
    CHECK(f.crashes == 0);
    CHECK(f.wrong == 0);
    CHECK(o.errors_before == 0);
    CHECK(o.during_pause > 0);
    CHECK(f.errors[static_cast<std::size_t>(ErrorKind::timeout)].load() > 0);
    // An operation's documented budget: the command timeout, plus the connect timeout when the operation
    // had to (re)connect: after the stall reset, reconnecting to the stopped server succeeds at TCP level
    // and the commands then wait out that longer budget. The stricter bound is the next test case.
    CHECK(f.max_latency_us.load() <= std::chrono::microseconds(command_timeout + connect_timeout + 100ms).count());
    CHECK(f.recovery_all_ms >= 0);
    CHECK(f.recovery_all_ms <= 1000);
    CHECK(f.late_errors == 0);
    // The stall reset: within twice the command timeout of the last reply (+ a loaded machine's slack).
    CHECK(o.first_reset_ms >= 0);
    CHECK(o.first_reset_ms <= (2 * command_timeout + 300ms).count());
}

TEST_CASE("Fault: CLIENT KILL TYPE normal every 100 ms under 16 threads; no caller gets a wrong reply") {
    hitbox_test::RedisServer server;
    auto redis = redis_at(server.url(), "fault-clientkill:");
    constexpr std::uint64_t shared = 256;  // pre-seeded keys every thread reads, singly and in batches
    for (std::uint64_t k = 0; k < shared; ++k)
        REQUIRE(
            redis.set(CacheKey{"shared", 0, {{"k", std::to_string(k)}}}, CacheValue<std::string>{make_value(k, 7)}));
    Figures f;
    std::atomic<bool> stop{false};
    std::atomic<std::uint64_t> batches_checked{0};

    auto record = [&](SteadyClock::time_point started, const hitbox::Error* e) {
        f.latency(SteadyClock::now() - started);
        ++f.ops;
        if (e)
            f.error(e->kind());
        else
            ++f.ok;
    };
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
        pool.emplace_back([&, t] {
            std::uint64_t rng = 0x2545f4914f6cdd1dULL * static_cast<std::uint64_t>(t + 1);
            try {
                for (std::uint64_t i = 0; !stop; ++i) {
                    const std::uint64_t own = (static_cast<std::uint64_t>(t) + 1) * 1'000'000'000ULL + i;
                    const CacheKey own_key{"own", 0, {{"k", std::to_string(own)}}};
                    auto started = SteadyClock::now();
                    auto w = redis.set(own_key, CacheValue<std::string>{make_value(own, i + 1)});
                    record(started, w ? nullptr : &w.error());
                    started = SteadyClock::now();
                    auto r = redis.get<std::string>(own_key);
                    record(started, r ? nullptr : &r.error());
                    if (r && (*r ? version_of((*r)->data, own) != std::optional<std::uint64_t>(i + 1) : bool(w)))
                        ++f.wrong;
                    // A batch of shared keys: each slot must hold its own key's value.
                    std::vector<CacheKey> batch;
                    std::vector<std::uint64_t> ids;
                    for (int j = 0; j < 8; ++j) {
                        ids.push_back(next_random(rng) % shared);
                        batch.push_back(CacheKey{"shared", 0, {{"k", std::to_string(ids.back())}}});
                    }
                    started = SteadyClock::now();
                    auto many = redis.get_many<std::string>(batch);
                    const hitbox::Error* first_error = nullptr;
                    for (std::size_t j = 0; j < many.size(); ++j) {
                        if (!many[j]) {
                            if (!first_error) first_error = &many[j].error();
                            continue;
                        }
                        if (!*many[j] || version_of((*many[j])->data, ids[j]) != std::optional<std::uint64_t>(7))
                            ++f.wrong;
                    }
                    if (many.size() != batch.size()) ++f.wrong;
                    record(started, first_error);
                    ++batches_checked;
                }
            } catch (...) {
                ++f.crashes;
            }
        });

    int kills = 0;
    const auto t0 = SteadyClock::now();
    for (auto next = t0 + 100ms; next <= t0 + 3s; next += 100ms) {
        std::this_thread::sleep_until(next);
        server.cli({"CLIENT", "KILL", "TYPE", "normal"});
        ++kills;
    }
    std::this_thread::sleep_for(300ms);
    stop = true;
    for (auto& th : pool) th.join();
    const auto c = redis.connection().counters();
    f.print("RedisBackend, 16 threads, CLIENT KILL TYPE normal every 100 ms for 3 s");
    std::printf("| kills sent | %d |\n| connection drops / connects | %llu / %llu |\n\n", kills,
                static_cast<unsigned long long>(c.drops), static_cast<unsigned long long>(c.connects));

    CHECK(f.crashes == 0);
    CHECK(f.wrong == 0);
    CHECK(batches_checked > 100);
    CHECK(c.drops >= 5);  // the kills landed
    // A killed connection that had been answering is not a flapping server: the next command reconnects
    // at once, so only the commands in flight at a kill fail (no backoff period of failing fast).
    INFO("succeeded " << f.ok.load() << " of " << f.ops.load());
    CHECK(f.ok.load() * 5 >= f.ops.load() * 4);
    for (std::size_t k = 0; k < kind_count; ++k) {
        const auto kind = static_cast<ErrorKind>(k);
        if (kind != ErrorKind::connection && kind != ErrorKind::timeout) {
            INFO("error kind " << hitbox::to_string(kind));
            CHECK(f.errors[k].load() == 0);
        }
    }
    CHECK(f.max_latency_us.load() <= std::chrono::microseconds(command_timeout + 100ms).count());
    // Still healthy afterwards.
    CHECK(redis.set(CacheKey{"after", 0}, CacheValue<std::string>{"ok"}));
}
