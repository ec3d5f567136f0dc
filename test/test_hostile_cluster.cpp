// The Cluster connection policy against hostile topologies (issue 15, items 7 and 8), served by scripted RESP
// peers on 127.0.0.1 (support/hostile_server.hpp): protocol peers that lie about the topology, not stand-ins
// for Redis behaviour (test_cluster.cpp runs a real 6-node cluster).
//
// - Node cap: a CLUSTER SLOTS reply naming more than ClusterMode::max_nodes nodes, or a redirection to one
//   node too many, is a `capacity` error that names the option.
// - A MOVED storm (every GET redirected to yet another port, 16 hops a command) leaves a bounded number of
//   nodes, threads (/proc/self/task) and descriptors (/proc/self/fd); the nodes it passed through are
//   dropped once idle.
// - 16 384 owners on distinct ports in CLUSTER SLOTS: bounded peak memory (measured in a forked child) and
//   threads, with the default cap and with a cap raised above 16 384 (a node costs nothing before use).
// - Deadlines: with two seeds that accept and never answer listed first, the first operation returns
//   within connect + command timeout, and so do threads waiting for that refresh.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <hitbox/backend/redis.hpp>

#include "support/hostile_server.hpp"

using namespace std::chrono_literals;
using namespace hitbox_test;
using SteadyClock = std::chrono::steady_clock;
using hitbox::ErrorKind;

namespace {

constexpr bool tsan = under_tsan;
constexpr bool asan = under_asan;
/// Slack over a deadline for a loaded 2-core machine (sanitizers run several times slower).
constexpr auto slack = tsan || asan ? 1000ms : 300ms;

long count_entries(const char* dir) {
    long n = 0;
    for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir)) ++n;
    return n;
}
long threads_now() { return count_entries("/proc/self/task"); }
long fds_now() { return count_entries("/proc/self/fd"); }

/// `*N` CLUSTER SLOTS ranges: range i covers `slots[i]` and is owned by 127.0.0.1:ports[i].
std::string slots_reply(const std::vector<std::pair<std::uint16_t, std::uint16_t>>& ranges,
                        const std::vector<int>& ports) {
    std::string out = resp_array_header(static_cast<long long>(ranges.size()));
    for (std::size_t i = 0; i < ranges.size(); ++i) {
        out += resp_array_header(3) + resp_int(ranges[i].first) + resp_int(ranges[i].second);
        out += resp_array_header(3) + resp_bulk("127.0.0.1") + resp_int(ports[i]) + resp_bulk("n" + std::to_string(i));
    }
    return out;
}

/// Every slot owned by 127.0.0.1:port.
std::string all_slots_to(int port) { return slots_reply({{0, 16383}}, {port}); }

auto make_backend(hitbox::ClusterMode mode, std::chrono::milliseconds connect = 500ms,
                  std::chrono::milliseconds command = 500ms) {
    auto b = hitbox::RedisBackend<>::builder()
                 .connection(std::move(mode))
                 .connect_timeout(connect)
                 .command_timeout(command)
                 .reconnect_backoff(20ms, 100ms)
                 .build();
    REQUIRE(b);
    return std::move(*b);
}

hitbox::CacheKey key(int i) { return hitbox::CacheKey{"k", 0, {{"i", std::to_string(i)}}}; }

/// A server whose own port its handler knows (set once it listens; handlers run only after that).
struct SelfAware {
    std::shared_ptr<std::atomic<int>> port = std::make_shared<std::atomic<int>>(0);
    std::unique_ptr<HostileServer> server;
    template <class F>
    explicit SelfAware(F make_handler, int max_connections = 64) {
        server = std::make_unique<HostileServer>(make_handler(port), max_connections);
        port->store(server->port());
    }
};

/// A seed that accepts and never answers.
std::unique_ptr<HostileServer> mute_server() {
    return std::make_unique<HostileServer>([](HostileConn& c) { c.hold(); });
}

/// A one-node "cluster": CLUSTER SLOTS names itself for every slot; other commands go to a TinyStore.
SelfAware good_node() {
    return SelfAware([](std::shared_ptr<std::atomic<int>> port) {
        return store_except(std::make_shared<TinyStore>(), [port](HostileConn& c, const std::vector<std::string>& cmd) {
            if (command_name(cmd) != "CLUSTER") return false;
            c.send(all_slots_to(port->load()));
            return true;
        });
    });
}

}  // namespace

// ---- node cap ----

TEST_CASE("Node cap: CLUSTER SLOTS naming more nodes than max_nodes is a capacity error naming the option",
          "[hostile_cluster]") {
    // 16 384 one-slot ranges, each owned by its own port (nothing listens there).
    std::vector<std::pair<std::uint16_t, std::uint16_t>> ranges;
    std::vector<int> ports;
    for (int s = 0; s < 16384; ++s) {
        ranges.emplace_back(static_cast<std::uint16_t>(s), static_cast<std::uint16_t>(s));
        ports.push_back(30000 + s);
    }
    const std::string bogus = slots_reply(ranges, ports);
    HostileServer seed([&bogus](HostileConn& c) {
        while (auto cmd = c.read_command()) {
            const bool slots = command_name(*cmd) == "CLUSTER";
            if (!c.send(slots ? bogus : resp_error("ERR no"))) return;
        }
    });
    const long threads_before = threads_now();
    auto backend = make_backend(hitbox::ConnectionMode::cluster({seed.url()}));
    auto r = backend.get<std::string>(key(1));
    REQUIRE_FALSE(r);
    CHECK(r.error().kind() == ErrorKind::capacity);
    CHECK(r.error().message().find("max_nodes (1000)") != std::string::npos);
    CHECK(r.error().message().find(seed.address()) != std::string::npos);
    INFO(r.error().message());
    const auto c = backend.connection().counters();
    CHECK(c.nodes <= 1);  // the seed; none of the 16 384
    CHECK(threads_now() - threads_before <= 4);

    // Five owners with max_nodes = 4.
    const std::string five = slots_reply({{0, 3000}, {3001, 6000}, {6001, 9000}, {9001, 12000}, {12001, 16383}},
                                         {31001, 31002, 31003, 31004, 31005});
    HostileServer seed5([&five](HostileConn& c) {
        while (auto cmd = c.read_command())
            if (!c.send(command_name(*cmd) == "CLUSTER" ? five : resp_error("ERR no"))) return;
    });
    auto mode = hitbox::ConnectionMode::cluster({seed5.url()});
    mode.max_nodes = 4;
    auto small = make_backend(mode);
    auto r5 = small.get<std::string>(key(1));
    REQUIRE_FALSE(r5);
    CHECK(r5.error().kind() == ErrorKind::capacity);
    CHECK(r5.error().message().find("max_nodes (4)") != std::string::npos);

    mode.max_nodes = 0;
    auto zero = hitbox::RedisBackend<>::builder().connection(mode).build();
    REQUIRE_FALSE(zero);
    CHECK(zero.error().kind() == ErrorKind::config);
}

TEST_CASE("Node cap: a redirection to one node more than max_nodes is a capacity error", "[hostile_cluster]") {
    // Four masters (all referenced by the map) that redirect every GET to a fifth server.
    auto fifth = good_node();
    std::vector<std::unique_ptr<HostileServer>> masters;
    auto ports = std::make_shared<std::vector<int>>();
    const int fifth_port = fifth.port->load();
    for (int i = 0; i < 4; ++i)
        masters.push_back(std::make_unique<HostileServer>([ports, fifth_port](HostileConn& c) {
            while (auto cmd = c.read_command()) {
                std::string out;
                if (command_name(*cmd) == "CLUSTER")
                    out = slots_reply({{0, 4095}, {4096, 8191}, {8192, 12287}, {12288, 16383}}, *ports);
                else if (command_name(*cmd) == "GET" && cmd->size() == 2)
                    out = resp_error("MOVED " + std::to_string(hitbox::detail::key_slot((*cmd)[1])) +
                                     " 127.0.0.1:" + std::to_string(fifth_port));
                else
                    out = resp_error("ERR no");
                if (!c.send(out)) return;
            }
        }));
    for (const auto& m : masters) ports->push_back(m->port());
    auto mode = hitbox::ConnectionMode::cluster({masters[0]->url()});
    mode.max_nodes = 4;
    auto backend = make_backend(mode);
    auto r = backend.get<std::string>(key(7));
    REQUIRE_FALSE(r);
    CHECK(r.error().kind() == ErrorKind::capacity);
    CHECK(r.error().message().find("max_nodes (4)") != std::string::npos);
    CHECK(r.error().message().find("127.0.0.1:" + std::to_string(fifth_port)) != std::string::npos);
    CHECK(backend.connection().counters().nodes == 4);
    CHECK(fifth.server->accepted() == 0);
}

// ---- MOVED storm ----

TEST_CASE("MOVED storm: nodes, threads and descriptors stay bounded; the nodes passed through are dropped",
          "[hostile_cluster]") {
    // A seed that owns every slot, and `farm` servers on their own ports; every GET anywhere is answered
    // MOVED to the next farm port (96 distinct ports, then round again), so each command hops 16 times.
    constexpr int farm_size = 96;
    auto farm_ports = std::make_shared<std::vector<int>>();
    auto seed_port = std::make_shared<std::atomic<int>>(0);
    auto next = std::make_shared<std::atomic<std::uint64_t>>(0);
    auto moved_handler = [farm_ports, seed_port, next](HostileConn& c) {
        while (auto cmd = c.read_command()) {
            std::string out;
            const auto name = command_name(*cmd);
            if (name == "CLUSTER") {
                out = all_slots_to(seed_port->load());
            } else if (name == "GET" && cmd->size() == 2) {
                const int port = (*farm_ports)[next->fetch_add(1) % farm_ports->size()];
                out = resp_error("MOVED " + std::to_string(hitbox::detail::key_slot((*cmd)[1])) +
                                 " 127.0.0.1:" + std::to_string(port));
            } else {
                out = resp_error("ERR no");
            }
            if (!c.send(out)) return;
        }
    };
    std::vector<std::unique_ptr<HostileServer>> farm;
    for (int i = 0; i < farm_size; ++i) farm.push_back(std::make_unique<HostileServer>(moved_handler));
    for (const auto& f : farm) farm_ports->push_back(f->port());
    HostileServer seed(moved_handler);
    seed_port->store(seed.port());

    const long threads_before = threads_now();
    const long fds_before = fds_now();
    auto backend = make_backend(hitbox::ConnectionMode::cluster({seed.url()}));
    std::uint64_t max_nodes = 0;
    long max_threads = 0, max_fds = 0;
    auto sample = [&] {
        max_nodes = std::max(max_nodes, backend.connection().counters().nodes);
        max_threads = std::max(max_threads, threads_now() - threads_before);
        max_fds = std::max(max_fds, fds_now() - fds_before);
    };
    // One thread: 40 commands x 16 hops = 640 redirections over 96 ports.
    for (int i = 0; i < 40; ++i) {
        auto r = backend.get<std::string>(key(i));
        REQUIRE_FALSE(r);
        CHECK(r.error().message().find("redirections") != std::string::npos);
        sample();
    }
    const auto single = max_nodes;
    // Four threads at once (routing reads nodes while others drop them).
    std::vector<std::thread> threads;
    std::atomic<int> wrong{0};
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&, t] {
            for (int i = 0; i < 15; ++i)
                if (backend.get<std::string>(key(1000 * t + i))) ++wrong;
        });
    for (int i = 0; i < 30; ++i) {
        std::this_thread::sleep_for(5ms);
        sample();
    }
    for (auto& t : threads) t.join();
    sample();
    CHECK(wrong == 0);
    const auto c = backend.connection().counters();
    INFO("max nodes " << max_nodes << " (one thread: " << single << "), max threads +" << max_threads << ", max fds +"
                      << max_fds << ", moved " << c.moved << ", dropped " << c.nodes_dropped);
    std::printf(
        "| MOVED storm, %llu redirections over %d ports | nodes <= %llu (1 thread: %llu) | threads <= +%ld | "
        "fds <= +%ld | dropped %llu |\n",
        static_cast<unsigned long long>(c.moved), farm_size, static_cast<unsigned long long>(max_nodes),
        static_cast<unsigned long long>(single), max_threads, max_fds,
        static_cast<unsigned long long>(c.nodes_dropped));
    CHECK(c.moved >= 900);
    // Before the fix every port became a node with a connection, a thread and three descriptors for good
    // (97 nodes, +190 threads counting the farm's handler threads, +380 descriptors).
    // Now: 7-17 nodes for one thread, 15-40 for four (each failed command leaves its slot patched to the
    // last node it reached until the next refresh, at most one per 100 ms; a faster machine fails more
    // commands in between), each node with a client and a server thread.
    CHECK(single <= 40);
    CHECK(max_nodes <= 60);
    CHECK(max_threads <= 150);
    CHECK(max_fds <= 300);

    // Once idle, a refresh leaves the topology's one node; everything the storm passed through is freed.
    const auto refreshed = backend.connection().refresh_topology();
    INFO("refresh: " << (refreshed ? std::string("ok") : refreshed.error().message()));
    REQUIRE(refreshed);
    const auto after = backend.connection().counters();
    CHECK(after.nodes == 1);
    CHECK(backend.connection().nodes() == std::vector<std::string>{seed.address()});
    CHECK(after.nodes_dropped >= 90);
    CHECK(after.connections.connects >= 96);  // dropped nodes' counters stay in the sums
    // The seed's connection (its I/O thread and the farm handler serving it) is all that is left.
    std::this_thread::sleep_for(100ms);  // server handlers notice their peers closing within 20 ms
    INFO("threads +" << threads_now() - threads_before << ", fds +" << fds_now() - fds_before);
    CHECK(threads_now() - threads_before <= 4);
    CHECK(fds_now() - fds_before <= 8);
}

// ---- 16 384 owners: memory ----

namespace {

/// A seed answering CLUSTER SLOTS with 16 384 owners on distinct ports; GETs are errors.
int bogus_topology_scenario(std::size_t max_nodes, long& thread_growth) {
    std::vector<std::pair<std::uint16_t, std::uint16_t>> ranges;
    std::vector<int> ports;
    for (int s = 0; s < 16384; ++s) {
        ranges.emplace_back(static_cast<std::uint16_t>(s), static_cast<std::uint16_t>(s));
        ports.push_back(30000 + s);
    }
    auto bogus = std::make_shared<std::string>(slots_reply(ranges, ports));
    ranges.clear();
    ranges.shrink_to_fit();
    HostileServer seed([bogus](HostileConn& c) {
        while (auto cmd = c.read_command())
            if (!c.send(command_name(*cmd) == "CLUSTER" ? *bogus : resp_error("ERR no"))) return;
    });
    const long threads_before = threads_now();
    auto mode = hitbox::ConnectionMode::cluster({seed.url()});
    mode.max_nodes = max_nodes;
    auto b = hitbox::RedisBackend<>::builder().connection(mode).connect_timeout(500ms).command_timeout(500ms).build();
    if (!b) return 10;
    int code = 0;
    for (int i = 0; i < 8; ++i) {
        auto r = b->get<std::string>(key(i));
        if (max_nodes < 16384 && (r || r.error().kind() != ErrorKind::capacity)) code = 12;
    }
    if (max_nodes >= 16384 && b->connection().counters().nodes < 16384) code = 13;
    thread_growth = threads_now() - threads_before;
    return code;
}

}  // namespace

TEST_CASE("16 384 owners in CLUSTER SLOTS: bounded memory and threads, capped or not", "[hostile_cluster]") {
    for (std::size_t cap : {hitbox::default_cluster_max_nodes, std::size_t{20000}}) {
        INFO("max_nodes " << cap);
        long threads = 0;
        if (tsan) {  // fork and ThreadSanitizer do not mix: run it here, without the memory figure
            CHECK(bogus_topology_scenario(cap, threads) == 0);
            CHECK(threads <= 32);
            continue;
        }
        auto child = run_in_child([cap] {
            long threads = 0;
            int code = bogus_topology_scenario(cap, threads);
            // 8 GETs reach at most 8 owners, and the refreshes their refused connections ask for reach
            // at most 8 more (each a connection attempt with its I/O thread); before the fix each of the
            // 16 384 nodes made its connection (a 64 KiB buffer) up front: over 1 GiB.
            if (code == 0 && threads > 32) code = 20;
            return code;
        });
        INFO("peak RSS growth " << child.rss_growth_kb << " kB");
        std::printf("| 16384 owners, max_nodes %zu | peak RSS growth %ld kB |\n", cap, child.rss_growth_kb);
        CHECK(child.exit_code == 0);
        CHECK(child.rss_growth_kb >= 0);
        CHECK(child.rss_growth_kb < (asan ? 256 : 64) * 1024);
    }
}

// ---- deadlines during a refresh ----

TEST_CASE(
    "Deadlines: two unresponsive seeds listed first; the first operation and its waiters stay within "
    "connect + command timeout",
    "[hostile_cluster]") {
    auto mute1 = mute_server();
    auto mute2 = mute_server();
    auto good = good_node();
    const auto bound = 300ms + 300ms + slack;
    auto mode = hitbox::ConnectionMode::cluster({mute1->url(), mute2->url(), good.server->url()});

    SECTION("one caller") {
        auto backend = make_backend(mode, 300ms, 300ms);
        const auto t0 = SteadyClock::now();
        auto r = backend.get<std::string>(key(1));
        const auto took = SteadyClock::now() - t0;
        const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(took).count();
        INFO("first GET took " << ms << " ms");
        std::printf("| 2 mute seeds first, 1 caller | first GET %lld ms (bound 600 ms) |\n",
                    static_cast<long long>(ms));
        REQUIRE(r);  // the third seed answered
        CHECK(took < bound);
        REQUIRE(backend.set(key(2), hitbox::CacheValue<std::string>{"v"}));
        auto v = backend.get<std::string>(key(2));
        REQUIRE(v);
        REQUIRE(*v);
        CHECK((*v)->data == "v");
    }
    SECTION("eight callers at once") {
        auto backend = make_backend(mode, 300ms, 300ms);
        std::vector<std::thread> threads;
        std::vector<std::int64_t> took(8, 0);
        std::vector<int> ok(8, 0);
        std::atomic<int> ready{0};
        for (int t = 0; t < 8; ++t)
            threads.emplace_back([&, t] {
                ++ready;
                while (ready.load() < 8) std::this_thread::yield();
                const auto t0 = SteadyClock::now();
                ok[t] = backend.get<std::string>(key(t)).has_value() ? 1 : 0;
                took[t] = std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - t0).count();
            });
        for (auto& t : threads) t.join();
        std::printf("| 2 mute seeds first, 8 callers | slowest %lld ms (bound 600 ms) |\n",
                    static_cast<long long>(*std::max_element(took.begin(), took.end())));
        for (int t = 0; t < 8; ++t) {
            INFO("caller " << t << " took " << took[t] << " ms");
            CHECK(ok[t] == 1);
            CHECK(std::chrono::milliseconds(took[t]) < bound);
        }
    }
}

TEST_CASE("Deadlines: every seed unresponsive; a caller waiting for another's refresh returns by its own deadline",
          "[hostile_cluster]") {
    auto mute1 = mute_server();
    auto mute2 = mute_server();
    auto mute3 = mute_server();
    auto backend =
        make_backend(hitbox::ConnectionMode::cluster({mute1->url(), mute2->url(), mute3->url()}), 300ms, 300ms);
    const auto bound = 300ms + 300ms + slack;
    std::int64_t took_a = 0, took_b = 0;
    std::optional<hitbox::Error> error_a, error_b;
    std::thread a([&] {
        const auto t0 = SteadyClock::now();
        auto r = backend.get<std::string>(key(1));
        took_a = std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - t0).count();
        if (!r) error_a = r.error();
    });
    std::this_thread::sleep_for(150ms);  // b arrives while a's refresh runs
    std::thread b([&] {
        const auto t0 = SteadyClock::now();
        auto r = backend.get<std::string>(key(2));
        took_b = std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - t0).count();
        if (!r) error_b = r.error();
    });
    a.join();
    b.join();
    INFO("a took " << took_a << " ms, b took " << took_b << " ms");
    std::printf("| 3 mute seeds, waiter 150 ms later | refresher %lld ms, waiter %lld ms (bound 600 ms each) |\n",
                static_cast<long long>(took_a), static_cast<long long>(took_b));
    REQUIRE(error_a);
    REQUIRE(error_b);
    INFO(error_a->message() << " / " << error_b->message());
    CHECK(error_a->kind() == ErrorKind::timeout);
    CHECK(error_a->message().find("topology") != std::string::npos);
    CHECK(error_b->kind() == ErrorKind::timeout);
    CHECK(std::chrono::milliseconds(took_a) < bound);
    CHECK(std::chrono::milliseconds(took_b) < bound);
}
