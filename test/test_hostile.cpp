// Suite 'hostile': the Redis connection against a misbehaving RESP server on loopback
// (support/hostile_server.hpp): huge and endless arrays, frozen and trickling replies, error texts that
// echo the credentials, durations at their maximum. Each case asserts a time bound, an error kind and,
// where memory is the point, the peak resident-set growth of the scenario run in a child process.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <hitbox/backend/redis.hpp>

#include "support/hostile_server.hpp"

using namespace std::chrono_literals;
using namespace hitbox_test;
using SteadyClock = std::chrono::steady_clock;
using hitbox::CacheKey;
using hitbox::ErrorKind;

namespace {

using Backend = hitbox::RedisBackend<>;

struct Timeouts {
    std::chrono::milliseconds connect = 1000ms;
    std::chrono::milliseconds command = 1000ms;
    std::size_t max_reply = hitbox::default_max_reply_bytes;
};

Backend backend_for(const std::string& url, Timeouts t = {}) {
    auto b = Backend::builder()
                 .connection(hitbox::ConnectionMode::single(url))
                 .connect_timeout(t.connect)
                 .command_timeout(t.command)
                 .reconnect_backoff(10ms, 20ms)
                 .max_reply_bytes(t.max_reply)
                 .build();
    REQUIRE(b);
    return std::move(*b);
}

std::chrono::milliseconds since(SteadyClock::time_point t) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - t);
}

template <class Pred>
bool eventually(Pred p, std::chrono::milliseconds budget) {
    const auto deadline = SteadyClock::now() + budget;
    while (SteadyClock::now() < deadline) {
        if (p()) return true;
        std::this_thread::sleep_for(5ms);
    }
    return p();
}

bool is_get(const std::vector<std::string>& cmd) { return command_name(cmd) == "GET"; }

// The sanitizers' allocators and shadow memory change the figure.
constexpr bool rss_meaningful = !hitbox_test::under_asan && !hitbox_test::under_tsan;

}  // namespace

// ---- 1. reply memory ----

TEST_CASE("Hostile: an array header claiming a billion elements is a capacity error at once, no allocation") {
    auto store = std::make_shared<TinyStore>();
    auto handler = store_except(store, [](HostileConn& c, const std::vector<std::string>& cmd) {
        if (!is_get(cmd)) return false;
        c.send(resp_array_header(1'000'000'000));  // 13 bytes that ask for 8 GB of element pointers
        c.hold();
        return true;
    });
    // The server starts in the child: a fork must not copy a process whose other threads may hold locks.
    const auto run = run_in_child([&] {
        HostileServer server(handler);
        auto redis = backend_for(server.url(), {.command = 5000ms});
        REQUIRE(redis.connection().ping());  // connected: the time below is the reply's alone
        const auto started = SteadyClock::now();
        auto r = redis.get<std::string>(CacheKey{"huge", 0});
        const auto took = since(started);
        std::printf("hostile: *1000000000: %s after %lld ms\n", r ? "a value" : r.error().what().c_str(),
                    static_cast<long long>(took.count()));
        if (r || r.error().kind() != ErrorKind::capacity) return 1;
        if (took > 200ms) return 2;  // "at once": well under the 5 s command timeout (a loaded machine's slack)
        if (redis.connection().counters().drops != 1) return 3;  // the connection was reset
        return 0;
    });
    std::printf("hostile: peak RSS growth %ld kB\n", run.rss_growth_kb);
    CHECK(run.exit_code == 0);
    INFO("peak RSS growth " << run.rss_growth_kb << " kB");
    if (rss_meaningful) CHECK(run.rss_growth_kb < 32 * 1024);
}

namespace {

/// A server that answers GET with an array of `count` integers, streamed as fast as the client takes them,
/// after `delay`.
HostileServer::Handler endless_array(long long count, std::chrono::milliseconds delay,
                                     std::shared_ptr<std::atomic<std::size_t>> sent) {
    auto store = std::make_shared<TinyStore>();
    return store_except(store, [=](HostileConn& c, const std::vector<std::string>& cmd) {
        if (!is_get(cmd)) return false;
        if (!c.pause(delay)) return true;
        if (!c.send(resp_array_header(count))) return true;
        std::string chunk;
        for (int i = 0; i < 16384; ++i) chunk += ":1\r\n";
        for (long long left = count; left > 0 && !c.stopping(); left -= 16384)
            if (!c.send(chunk)) break;
        *sent = c.bytes_sent();
        c.hold();
        return true;
    });
}

}  // namespace

TEST_CASE("Hostile: an array of small elements is cut off at max_reply_bytes of parsed objects") {
    // 2 M elements fit the budget as a header (16 MB of pointers), but as parsed objects they cost 48 B
    // each against 4 B on the wire: ~112 MB for an 8 MB stream, if nothing counted them.
    constexpr std::size_t limit = std::size_t{16} << 20;
    auto sent = std::make_shared<std::atomic<std::size_t>>(0);
    const auto run = run_in_child([&] {
        HostileServer server(endless_array(2'000'000, 0ms, sent));
        auto redis = backend_for(server.url(), {.command = 5000ms, .max_reply = limit});
        auto r = redis.get<std::string>(CacheKey{"endless", 0});
        std::printf("hostile: endless array: %s\n", r ? "a value" : r.error().what().c_str());
        if (r || r.error().kind() != ErrorKind::capacity) return 1;
        return eventually([&] { return redis.connection().counters().drops == 1; }, 2000ms) ? 0 : 2;
    });
    std::printf("hostile: peak RSS growth %ld kB\n", run.rss_growth_kb);
    CHECK(run.exit_code == 0);
    INFO("peak RSS growth " << run.rss_growth_kb << " kB");
    if (rss_meaningful) CHECK(run.rss_growth_kb < static_cast<long>(limit / 1024) + 24 * 1024);
}

TEST_CASE("Hostile: a reply streamed after its caller timed out is still bounded, and resets the connection") {
    constexpr std::size_t limit = std::size_t{16} << 20;
    auto sent = std::make_shared<std::atomic<std::size_t>>(0);
    const auto run = run_in_child([&] {
        HostileServer server(endless_array(2'000'000, 300ms, sent));
        auto redis = backend_for(server.url(), {.command = 100ms, .max_reply = limit});
        REQUIRE(redis.connection().ping());
        auto r = redis.get<std::string>(CacheKey{"late", 0});
        if (r || r.error().kind() != ErrorKind::timeout) return 1;
        // Nobody waits for the reply any more; the I/O thread reads it and must still cut it off.
        return eventually([&] { return redis.connection().counters().drops == 1; }, 3000ms) ? 0 : 2;
    });
    std::printf("hostile: peak RSS growth %ld kB\n", run.rss_growth_kb);
    CHECK(run.exit_code == 0);
    INFO("peak RSS growth " << run.rss_growth_kb << " kB");
    if (rss_meaningful) CHECK(run.rss_growth_kb < static_cast<long>(limit / 1024) + 24 * 1024);
}

TEST_CASE("Hostile: nested arrays are charged to the same budget") {
    // Seven levels of 100 000-element arrays: each level's pointers alone are 800 kB.
    auto store = std::make_shared<TinyStore>();
    HostileServer server(store_except(store, [](HostileConn& c, const std::vector<std::string>& cmd) {
        if (!is_get(cmd)) return false;
        std::string nest;
        for (int i = 0; i < 7; ++i) nest += resp_array_header(100'000);
        c.send(nest);
        c.hold();
        return true;
    }));
    auto redis = backend_for(server.url(), {.max_reply = 1 << 20});
    auto r = redis.get<std::string>(CacheKey{"nested", 0});
    REQUIRE_FALSE(r);
    CHECK(r.error().kind() == ErrorKind::capacity);
}

// ---- 2. stall reset ----

namespace {

/// Answers like TinyStore on every connection but the first, where GETs get `first_get` (a frozen or
/// trickled reply) instead.
HostileServer::Handler bad_first_connection(std::function<void(HostileConn&)> first_get) {
    auto store = std::make_shared<TinyStore>();
    auto connections = std::make_shared<std::atomic<int>>(0);
    return [=](HostileConn& c) {
        const bool first = connections->fetch_add(1) == 0;
        while (auto cmd = c.read_command()) {
            if (first && is_get(*cmd)) {
                first_get(c);
                return;
            }
            if (!c.send(store->answer(*cmd))) return;
        }
    };
}

/// Runs `threads` callers doing GETs against `url` until the connection is dropped once; returns how long
/// that took from the first GET (or nullopt when it was not dropped within `budget`), then checks that the
/// next command reconnects.
std::optional<std::chrono::milliseconds> time_to_reset(const std::string& url, std::chrono::milliseconds command,
                                                       int threads, std::chrono::milliseconds budget) {
    auto redis = backend_for(url, {.connect = 1000ms, .command = command});
    REQUIRE(redis.set(CacheKey{"k", 0}, hitbox::CacheValue<std::string>{"v"}));
    std::atomic<bool> stop{false};
    const auto started = SteadyClock::now();
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
        pool.emplace_back([&] {
            while (!stop) (void)redis.get<std::string>(CacheKey{"k", 0});  // spinning callers read the socket
        });
    const bool dropped = eventually([&] { return redis.connection().counters().drops >= 1; }, budget);
    const auto took = since(started);
    stop = true;
    for (auto& t : pool) t.join();
    if (!dropped) return std::nullopt;
    // The next command reconnects (the second connection behaves).
    CHECK(eventually([&] { return bool(redis.get<std::string>(CacheKey{"k", 0})); }, 3000ms));
    return took;
}

}  // namespace

TEST_CASE("Hostile: a frozen server gets its connection reset within twice the command timeout, under load") {
    HostileServer server(bad_first_connection([](HostileConn& c) { c.hold(); }));
    const auto took = time_to_reset(server.url(), 200ms, 8, 3000ms);
    REQUIRE(took);
    std::printf("hostile: frozen server: reset after %lld ms (command timeout 200 ms)\n",
                static_cast<long long>(took->count()));
    CHECK(*took <= 400ms + 400ms);  // 2 x command timeout + scheduling slack on a loaded 2-core machine
    CHECK(server.accepted() >= 2);
}

TEST_CASE("Hostile: a server trickling bytes of a reply it never finishes gets its connection reset") {
    HostileServer server(bad_first_connection([](HostileConn& c) {
        if (!c.send("$1000000\r\n")) return;
        while (c.send("x")) c.pause(20ms);  // a byte every 20 ms, forever
    }));
    const auto took = time_to_reset(server.url(), 200ms, 4, 3000ms);
    REQUIRE(took);
    std::printf("hostile: trickling server: reset after %lld ms (command timeout 200 ms)\n",
                static_cast<long long>(took->count()));
    CHECK(*took <= 400ms + 400ms);
}

// ---- 3. secrets in server text ----

TEST_CASE("Hostile: server error texts that echo the password or user name never reach a message") {
    const std::string user = "svc-cache-user", pass = "hunter2-very-secret";
    auto store = std::make_shared<TinyStore>();
    HostileServer server(store_except(store, [&](HostileConn& c, const std::vector<std::string>& cmd) {
        const auto name = command_name(cmd);
        if (name == "GET") c.send(resp_error("ERR no such key for " + user + " with " + pass));
        if (name == "SET") c.send(resp_simple("OK " + pass));  // a status reply echoing it
        return name == "GET" || name == "SET";
    }));
    auto redis =
        Backend::builder()
            .connection(hitbox::ConnectionMode::single("redis://" + user + ":" + pass + "@" + server.address() + "/"))
            .command_timeout(2000ms)
            .build();
    REQUIRE(redis);
    auto r = redis->get<std::string>(CacheKey{"k", 0});
    REQUIRE_FALSE(r);
    INFO(r.error().what());
    CHECK(r.error().what().find(pass) == std::string::npos);
    CHECK(r.error().what().find(user) == std::string::npos);
    CHECK(r.error().what().find("ERR no such key for ***") != std::string::npos);  // the rest is kept
    auto raw = redis->read(CacheKey{"k", 0});
    REQUIRE_FALSE(raw);
    CHECK(raw.error().what().find(pass) == std::string::npos);
}

TEST_CASE("Hostile: a handshake error echoing the credentials is an auth error without them") {
    const std::string user = "svc-cache-user", pass = "hunter2-very-secret";
    HostileServer server([&](HostileConn& c) {
        while (auto cmd = c.read_command())
            if (!c.send(resp_error("WRONGPASS user " + user + " password " + pass + " rejected"))) return;
    });
    for (const bool with_user : {true, false}) {
        // The second form is the password alone: the server's echo of a user name we never sent is not
        // ours to know, so only the password is checked there.
        const std::string url = with_user ? "redis://" + user + ":" + pass + "@" + server.address() + "/"
                                          : "redis://" + pass + "@" + server.address() + "/";
        auto redis = Backend::builder().connection(hitbox::ConnectionMode::single(url)).build();
        REQUIRE(redis);
        auto r = redis->get<std::string>(CacheKey{"k", 0});
        REQUIRE_FALSE(r);
        INFO(r.error().what());
        CHECK(r.error().kind() == ErrorKind::auth);
        CHECK(r.error().what().find(pass) == std::string::npos);
        if (with_user) CHECK(r.error().what().find(user) == std::string::npos);
    }
}

// ---- 10. durations at their maximum ----

TEST_CASE("Hostile: floating-point durations are clamped before they are converted") {
    using ms = std::chrono::milliseconds;
    using hitbox::detail::saturating_ms;
    // max() of any floating period, infinity and NaN mean no limit; the conversion of such a count to an
    // integer would be undefined (UBSan's float-cast-overflow).
    CHECK(saturating_ms(std::chrono::duration<double, std::milli>::max()) == ms::max());
    CHECK(saturating_ms(std::chrono::duration<double, std::micro>::max()) == ms::max());
    CHECK(saturating_ms(std::chrono::duration<float, std::nano>::max()) == ms::max());
    CHECK(saturating_ms(std::chrono::duration<double>(std::numeric_limits<double>::infinity())) == ms::max());
    CHECK(saturating_ms(std::chrono::duration<double>(std::numeric_limits<double>::quiet_NaN())) == ms::max());
    CHECK(saturating_ms(std::chrono::duration<double>(-std::numeric_limits<double>::infinity())) == ms::min());
    // Ordinary values are rounded up to whole milliseconds, as integer ones are.
    CHECK(saturating_ms(std::chrono::duration<double, std::milli>(1.5)) == ms(2));
    CHECK(saturating_ms(std::chrono::duration<double, std::milli>(-1.5)) == ms(-1));
    CHECK(saturating_ms(std::chrono::duration<double>(0.25)) == ms(250));
    CHECK(saturating_ms(std::chrono::duration<double, std::micro>(1)) == ms(1));
    auto built = Backend::builder()
                     .connection(hitbox::ConnectionMode::single("redis://127.0.0.1:1/"))
                     .command_timeout(std::chrono::duration<double, std::milli>::max())
                     .connect_timeout(std::chrono::duration<double, std::micro>::max())
                     .build();
    REQUIRE(built);
    CHECK(built->connection().settings().command_timeout == ms::max());
    CHECK(built->connection().settings().connect_timeout == ms::max());
}

TEST_CASE("Hostile: every connection duration at max() means no limit, without overflow") {
    auto store = std::make_shared<TinyStore>();
    HostileServer server(store_except(store, [](HostileConn&, const std::vector<std::string>&) { return false; }));
    auto redis = Backend::builder()
                     .connection(hitbox::ConnectionMode::single(server.url()))
                     .connect_timeout(std::chrono::milliseconds::max())
                     .command_timeout(std::chrono::hours::max())
                     .reconnect_backoff(std::chrono::milliseconds::max(), std::chrono::seconds::max())
                     .build();
    REQUIRE(redis);
    REQUIRE(redis->set(CacheKey{"k", 0}, hitbox::CacheValue<std::string>{"v"}));
    auto r = redis->get<std::string>(CacheKey{"k", 0});
    REQUIRE(r);
    REQUIRE(*r);
    CHECK((*r)->data == "v");
    CHECK(redis->connection().settings().command_timeout == std::chrono::milliseconds::max());

    // A dead port with a backoff of max(): the first attempt fails, the next fails at once (backoff), and
    // no deadline arithmetic overflows (UBSan checks this).
    std::string dead;
    {
        HostileServer gone([](HostileConn&) {});
        dead = gone.url();
    }
    auto down = Backend::builder()
                    .connection(hitbox::ConnectionMode::single(dead))
                    .connect_timeout(std::chrono::milliseconds::max())
                    .command_timeout(std::chrono::milliseconds::max())
                    .reconnect_backoff(std::chrono::milliseconds::max(), std::chrono::milliseconds::max())
                    .build();
    REQUIRE(down);
    CHECK_FALSE(down->get<std::string>(CacheKey{"k", 0}));
    const auto started = SteadyClock::now();
    auto again = down->get<std::string>(CacheKey{"k", 0});
    REQUIRE_FALSE(again);
    CHECK(since(started) < 500ms);
    CHECK(down->connection().counters().connect_attempts == 1);
}
