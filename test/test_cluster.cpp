// The Cluster connection policy against a real 6-node Redis Cluster (3 masters, 3 replicas) that this
// binary starts once (support/redis_cluster.hpp): slot hashing checked against CLUSTER KEYSLOT, routing of
// thousands of keys, hash tags, get_many across nodes, ASK / MOVED during a hand-made migration,
// resharding and failover under load, and topology refresh after a node joins. The test cases share the
// cluster and run in file order (failover last).
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include <hitbox/backend/redis.hpp>
#include <hitbox/backend/redis/detail/node_connection.hpp>
#include <hitbox/key_format/url_encoded.hpp>

#include "support/redis_cluster.hpp"

using namespace std::chrono_literals;
using namespace hitbox_test;
using SteadyClock = std::chrono::steady_clock;

namespace {

const bool redis_available = require_redis_server();

RedisCluster& cluster() {
    static auto c = std::make_unique<RedisCluster>();
    return *c;
}

using Readable =
    hitbox::RedisBackend<hitbox::UrlEncoded, hitbox::BinaryFormat, hitbox::PassthroughCompressor, hitbox::Cluster>;

template <class B = Readable>
B make_backend(std::string prefix, std::chrono::milliseconds command_timeout = 2000ms) {
    auto b = typename B::builder_type{}
                 .connection(hitbox::ConnectionMode::cluster(cluster().urls()))
                 .key_prefix(std::move(prefix))
                 .connect_timeout(1000ms)
                 .command_timeout(command_timeout)
                 .reconnect_backoff(50ms, 400ms)
                 .build();
    REQUIRE(b);
    return std::move(*b);
}

hitbox::CacheKey key_n(const std::string& name, int i) { return hitbox::CacheKey{name, 0, {{"i", std::to_string(i)}}}; }

void flush_masters() {
    for (auto i : cluster().masters()) cluster().node(i).cli({"FLUSHALL"});
}

/// The value a writer stores under key i: it names the key, so a reader can tell a wrong value.
std::string value_for(int i, std::uint64_t version) { return "k" + std::to_string(i) + ":" + std::to_string(version); }
bool belongs_to(const std::string& value, int i) { return value.rfind("k" + std::to_string(i) + ":", 0) == 0; }

/// Readers and writers over keys 0..count-1 of `backend` until stop; counts wrong values and errors.
struct Load {
    std::atomic<bool> stop{false};
    std::atomic<std::uint64_t> ops{0}, wrong{0}, errors{0};
    std::mutex mu;
    std::vector<std::string> error_samples;

    template <class B>
    void run(B& backend, const std::string& name, int count, int threads) {
        for (int t = 0; t < threads; ++t)
            workers.emplace_back([this, &backend, name, count, t] {
                std::mt19937 rng(static_cast<unsigned>(t) * 7919u + 1u);
                std::uint64_t version = 0;
                const auto give_up = SteadyClock::now() + 60s;  // bound even if the main thread never stops us
                while (!stop.load() && SteadyClock::now() < give_up) {
                    const int i = static_cast<int>(rng() % static_cast<unsigned>(count));
                    const auto key = key_n(name, i);
                    if (rng() % 4 == 0) {
                        auto r = backend.set(key, hitbox::CacheValue<std::string>{value_for(i, ++version)});
                        if (!r) note(r.error());
                    } else {
                        auto r = backend.template get<std::string>(key);
                        if (!r)
                            note(r.error());
                        else if (*r && !belongs_to((*r)->data, i))
                            wrong.fetch_add(1);
                    }
                    ops.fetch_add(1);
                }
            });
    }
    void note(const hitbox::Error& e) {
        errors.fetch_add(1);
        std::lock_guard<std::mutex> lk(mu);
        if (error_samples.size() < 5) error_samples.push_back(e.what());
    }
    void join() {
        stop = true;
        for (auto& w : workers) w.join();
        workers.clear();
    }
    std::vector<std::thread> workers;
};

template <class B>
void write_keys(B& backend, const std::string& name, int count) {
    for (int i = 0; i < count; ++i)
        REQUIRE(backend.set(key_n(name, i), hitbox::CacheValue<std::string>{value_for(i, 0)}));
}

}  // namespace

TEST_CASE("key_slot: CRC16 with hash tags matches the server's CLUSTER KEYSLOT, binary keys included", "[cluster]") {
    STATIC_REQUIRE(hitbox::detail::crc16("123456789") == 0x31C3);
    STATIC_REQUIRE(hitbox::detail::key_slot("{user1000}.following") ==
                   hitbox::detail::key_slot("{user1000}.followers"));
    CHECK(hitbox::detail::hash_tag("foo{}{bar}") == "foo{}{bar}");
    CHECK(hitbox::detail::hash_tag("foo{{bar}}zap") == "{bar");
    CHECK(hitbox::detail::hash_tag("foo{bar}{zap}") == "bar");

    std::vector<std::string> keys = {"",
                                     "a",
                                     "foo",
                                     "{",
                                     "}",
                                     "{}",
                                     "{}x",
                                     "x{}",
                                     "{a",
                                     "a}",
                                     "{a}",
                                     "x{a}y",
                                     "{{a}}",
                                     "a{b}c{d}",
                                     std::string("\0{\0}", 4),
                                     std::string("\xff\x00\x80", 3)};
    std::mt19937 rng(42);
    for (int i = 0; i < 2000; ++i) {
        std::string k(rng() % 40, '\0');
        for (auto& c : k) c = static_cast<char>(rng() % 8 == 0 ? "{}"[rng() % 2] : static_cast<char>(rng()));
        keys.push_back(std::move(k));
    }
    hitbox::detail::NodeSettings settings;
    settings.endpoint.host = "127.0.0.1";
    settings.endpoint.port = cluster().node(0).port();
    hitbox::detail::NodeConnection conn(settings);
    std::string commands;
    for (const auto& k : keys) REQUIRE(hitbox::detail::append_command(commands, {"CLUSTER", "KEYSLOT", k}));
    auto replies = conn.execute(commands, keys.size());
    REQUIRE(replies);
    int mismatches = 0;
    for (std::size_t i = 0; i < keys.size(); ++i) {
        REQUIRE((*replies)[i]->type == REDIS_REPLY_INTEGER);
        if ((*replies)[i]->integer != hitbox::Cluster::slot_of(keys[i])) ++mismatches;
    }
    CHECK(mismatches == 0);
}

TEST_CASE("Builder: cluster mode validates its seeds without touching the network", "[cluster]") {
    auto build = [](std::vector<std::string> urls) {
        return hitbox::RedisBackend<>::builder().connection(hitbox::ConnectionMode::cluster(std::move(urls))).build();
    };
    using Built = decltype(build({}));
    STATIC_REQUIRE(std::is_same_v<Built::value_type::connection_type, hitbox::Cluster>);
    CHECK(build({}).error().kind() == hitbox::ErrorKind::config);
    CHECK(build({"unix:///tmp/x.sock"}).error().kind() == hitbox::ErrorKind::config);
    CHECK(build({"redis://127.0.0.1:7000/2"}).error().kind() == hitbox::ErrorKind::config);
    auto bad = build({"redis://127.0.0.1:7000", "redis://u:s3cret@:1"});
    REQUIRE_FALSE(bad);
    CHECK(bad.error().what().find("s3cret") == std::string::npos);
    REQUIRE(build({"redis://127.0.0.1:1", "redis://127.0.0.1:2"}));  // lazy: nothing listens there
}

TEST_CASE("Unreachable seeds and a non-cluster seed give clear errors, never the password", "[cluster]") {
    auto dead = hitbox::RedisBackend<>::builder()
                    .connection(hitbox::ConnectionMode::cluster({"redis://u:topsecret@127.0.0.1:1"}))
                    .connect_timeout(300ms)
                    .command_timeout(300ms)
                    .build();
    REQUIRE(dead);
    auto r = dead->get<std::string>(key_n("x", 1));
    REQUIRE_FALSE(r);
    CHECK(r.error().kind() == hitbox::ErrorKind::connection);
    CHECK(r.error().what().find("topsecret") == std::string::npos);
    CHECK(r.error().what().find("topology") != std::string::npos);

    RedisServer plain;
    auto single = hitbox::RedisBackend<>::builder().connection(hitbox::ConnectionMode::cluster({plain.url()})).build();
    REQUIRE(single);
    auto s = single->get<std::string>(key_n("x", 1));
    REQUIRE_FALSE(s);
    CHECK(s.error().kind() == hitbox::ErrorKind::config);
    CHECK(s.error().message().find("not a cluster node") != std::string::npos);

    // A wrong password on the live seed and a dead seed after it: the credentials are what to fix, so the
    // error is auth (a dead seed's refused connection says nothing about the live nodes).
    RedisServer guarded({.requirepass = "right-pw-9"});
    auto wrong = hitbox::RedisBackend<>::builder()
                     .connection(hitbox::ConnectionMode::cluster({guarded.url(), "redis://127.0.0.1:1"}))
                     .password("wrong-pw-9")
                     .connect_timeout(500ms)
                     .command_timeout(500ms)
                     .build();
    REQUIRE(wrong);
    auto w = wrong->get<std::string>(key_n("x", 1));
    REQUIRE_FALSE(w);
    CHECK(w.error().kind() == hitbox::ErrorKind::auth);
    CHECK(w.error().message().find("topology") != std::string::npos);
    CHECK(w.error().what().find("wrong-pw-9") == std::string::npos);
}

TEST_CASE("Round trip of thousands of keys spread over every master", "[cluster]") {
    flush_masters();
    auto backend = make_backend<
        hitbox::RedisBackend<hitbox::Bitcode, hitbox::BinaryFormat, hitbox::PassthroughCompressor, hitbox::Cluster>>(
        "rt:");
    constexpr int n = 3000;
    write_keys(backend, "rt", n);
    for (int i = 0; i < n; ++i) {
        auto r = backend.get<std::string>(key_n("rt", i));
        REQUIRE(r);
        REQUIRE(*r);
        REQUIRE((*r)->data == value_for(i, 0));
    }
    long long total = 0;
    const auto masters = cluster().masters();
    REQUIRE(masters.size() == 3);
    for (auto m : masters) {
        const auto held = cluster().dbsize(m);
        CHECK(held > n / 10);  // each of 3 masters holds about a third
        total += held;
    }
    CHECK(total == n);
    CHECK(backend.remove(key_n("rt", 7)).value());
    CHECK_FALSE(backend.remove(key_n("rt", 7)).value());
    CHECK_FALSE(backend.get<std::string>(key_n("rt", 7)).value());
    auto c = backend.connection().counters();
    CHECK(c.nodes >= 3);
    CHECK(c.moved == 0);  // the map was loaded up front: no redirection needed
    CHECK(backend.connection().ping());
}

TEST_CASE("SET NX PX and compare-and-delete go to each key's master", "[cluster]") {
    flush_masters();
    auto backend = make_backend<
        hitbox::RedisBackend<hitbox::Bitcode, hitbox::BinaryFormat, hitbox::PassthroughCompressor, hitbox::Cluster>>(
        "lk:");
    auto& conn = backend.connection();
    constexpr int n = 60;  // spread over the three masters
    for (int i = 0; i < n; ++i) {
        const std::string key = "lock:" + std::to_string(i);
        auto taken = conn.set_nx_px(key, "owner", 10'000);
        REQUIRE(taken);
        CHECK(*taken);
        auto again = conn.set_nx_px(key, "other", 10'000);
        REQUIRE(again);
        CHECK_FALSE(*again);
        auto not_mine = conn.del_if_equal(key, "other");
        REQUIRE(not_mine);
        CHECK_FALSE(*not_mine);
    }
    long long held = 0;
    for (auto m : cluster().masters()) {
        CHECK(cluster().dbsize(m) > 0);
        held += cluster().dbsize(m);
    }
    CHECK(held == n);
    for (int i = 0; i < n; ++i) {
        auto released = conn.del_if_equal("lock:" + std::to_string(i), "owner");
        REQUIRE(released);
        CHECK(*released);
    }
    for (auto m : cluster().masters()) CHECK(cluster().dbsize(m) == 0);
}

TEST_CASE("Seeds given by host name: their connections close once the topology's own nodes serve", "[cluster]") {
    // The cluster announces 127.0.0.1; seeds named "localhost" are other addresses to the client. The seed
    // that answered CLUSTER SLOTS must not stay connected (with an I/O thread) beside the node that serves.
    std::vector<std::string> seeds;
    for (auto i : cluster().masters()) seeds.push_back("redis://localhost:" + std::to_string(cluster().node(i).port()));
    auto b = Readable::builder_type{}
                 .connection(hitbox::ConnectionMode::cluster(seeds))
                 .key_prefix("seeds:")
                 .connect_timeout(1000ms)
                 .command_timeout(2000ms)
                 .build();
    REQUIRE(b);
    auto& backend = *b;
    for (int i = 0; i < 50; ++i) REQUIRE(backend.set(key_n("s", i), hitbox::CacheValue<int>{i}));
    for (int i = 0; i < 50; ++i) {
        auto r = backend.get<int>(key_n("s", i));
        REQUIRE(r);
        REQUIRE(*r);
        CHECK((*r)->data == i);
    }
    // A connection whose last command was CLUSTER SLOTS is a seed's (the serving ones ran GET / SET).
    auto seed_connections = [&] {
        int n = 0;
        for (auto i : cluster().masters()) {
            const auto list = cluster().node(i).cli({"CLIENT", "LIST"});
            for (std::size_t at = list.find("cmd=cluster"); at != std::string::npos;
                 at = list.find("cmd=cluster", at + 1))
                ++n;
        }
        return n;
    };
    CHECK(seed_connections() == 0);
    // One seed connection opened (and closed) beside the three masters', and the backend keeps working.
    CHECK(backend.connection().counters().connections.connects == 4);
    // The seed that answered is no node of the topology: dropped (its counters stay in the sums above).
    CHECK(backend.connection().counters().nodes == 3);
    CHECK(backend.connection().counters().nodes_dropped == 1);
    for (const auto& address : backend.connection().nodes()) CHECK(address.rfind("127.0.0.1:", 0) == 0);
    REQUIRE(backend.set(key_n("s", 0), hitbox::CacheValue<int>{7}));
}

TEST_CASE("A {hash tag} in the key prefix keeps every key on one slot and one master", "[cluster]") {
    flush_masters();
    auto backend = make_backend("{tenant42}:");
    write_keys(backend, "tag", 200);
    std::set<std::uint16_t> slots;
    for (int i = 0; i < 200; ++i) slots.insert(hitbox::Cluster::slot_of(backend.codec().key(key_n("tag", i))));
    REQUIRE(slots.size() == 1);
    CHECK(static_cast<int>(*slots.begin()) == cluster().keyslot("{tenant42}:anything"));
    int holding = 0;
    for (auto m : cluster().masters()) {
        const auto held = cluster().dbsize(m);
        if (held > 0) {
            ++holding;
            CHECK(held == 200);
        }
    }
    CHECK(holding == 1);
}

TEST_CASE("get_many and set_many split keys by node and return results in the caller's order", "[cluster]") {
    auto backend = make_backend("gm:");
    std::vector<std::pair<hitbox::CacheKey, hitbox::CacheValue<std::string>>> entries;
    for (int i = 0; i < 600; i += 2)
        entries.emplace_back(key_n("gm", i), hitbox::CacheValue<std::string>{value_for(i, 1)});
    for (const auto& r : backend.set_many(entries)) REQUIRE(r);
    std::vector<hitbox::CacheKey> keys;
    for (int i = 599; i >= 0; --i) keys.push_back(key_n("gm", i));  // reversed, odd ones missing
    const auto before = backend.connection().counters().connections.writes;
    auto got = backend.get_many<std::string>(keys);
    REQUIRE(got.size() == keys.size());
    for (std::size_t j = 0; j < keys.size(); ++j) {
        const int i = 599 - static_cast<int>(j);
        REQUIRE(got[j]);
        if (i % 2 == 0) {
            REQUIRE(*got[j]);
            CHECK((*got[j])->data == value_for(i, 1));
        } else {
            CHECK_FALSE(*got[j]);
        }
    }
    // One pipeline per master: a handful of socket writes for 600 GETs.
    CHECK(backend.connection().counters().connections.writes - before <= 6);
}

TEST_CASE("AnyConnection: the mode read at run time, cluster or single node behind one backend type", "[cluster]") {
    using Any = hitbox::RedisBackend<hitbox::Bitcode, hitbox::BinaryFormat, hitbox::PassthroughCompressor,
                                     hitbox::AnyConnection>;
    auto build = [](hitbox::AnyMode mode, std::string prefix) {
        auto b = hitbox::RedisBackend<>::builder()
                     .connection(std::move(mode))
                     .key_prefix(std::move(prefix))
                     .connect_timeout(1000ms)
                     .command_timeout(2000ms)
                     .build();
        static_assert(std::is_same_v<std::decay_t<decltype(*b)>, Any>);
        REQUIRE(b);
        return std::move(*b);
    };
    // The cluster, by name as a configuration file would give it.
    flush_masters();
    auto mode = hitbox::ConnectionMode::parse("cluster", cluster().urls());
    REQUIRE(mode);
    Any on_cluster = build(std::move(*mode), "any:");
    CHECK(on_cluster.connection().active_mode() == "cluster");
    REQUIRE(on_cluster.connection().cluster() != nullptr);
    CHECK(on_cluster.connection().single() == nullptr);
    constexpr int n = 600;
    write_keys(on_cluster, "any", n);
    std::vector<hitbox::CacheKey> keys;
    for (int i = 0; i < n; ++i) keys.push_back(key_n("any", i));
    auto got = on_cluster.get_many<std::string>(keys);
    REQUIRE(got.size() == keys.size());
    for (int i = 0; i < n; ++i) {
        REQUIRE(got[static_cast<std::size_t>(i)]);
        REQUIRE(*got[static_cast<std::size_t>(i)]);
        CHECK((*got[static_cast<std::size_t>(i)])->data == value_for(i, 0));
    }
    for (auto m : cluster().masters()) CHECK(cluster().dbsize(m) > n / 10);  // routed by slot, not to one node
    CHECK(on_cluster.connection().ping());
    CHECK(on_cluster.connection().counters().connects >= 3);

    // A single server, through the same type.
    RedisServer server;
    Any on_single = build(hitbox::ConnectionMode::any(hitbox::ConnectionMode::single(server.url())), "any:");
    CHECK(on_single.connection().active_mode() == "single");
    REQUIRE(on_single.connection().single() != nullptr);
    REQUIRE(on_single.set(key_n("one", 1), hitbox::CacheValue<std::string>{"v1"}));
    auto one = on_single.get<std::string>(key_n("one", 1));
    REQUIRE(one);
    REQUIRE(*one);
    CHECK((*one)->data == "v1");
    CHECK(server.cli({"DBSIZE"}).find('1') != std::string::npos);
    CHECK(on_single.remove(key_n("one", 1)).value());
    CHECK(on_single.connection().counters().connects == 1);

    // Bad names and URL counts are config errors that say what is valid; no network is touched.
    auto bad = hitbox::ConnectionMode::parse("sentinel", {"redis://127.0.0.1:1"});
    REQUIRE_FALSE(bad);
    CHECK(bad.error().kind() == hitbox::ErrorKind::config);
    CHECK(bad.error().message().find("valid: single, cluster") != std::string::npos);
    CHECK_FALSE(hitbox::ConnectionMode::parse("single", {"redis://a:1", "redis://b:2"}));
    auto bad_url = hitbox::RedisBackend<>::builder()
                       .connection(*hitbox::ConnectionMode::parse("cluster", {"redis://:s3cret@[::1"}))
                       .build();
    REQUIRE_FALSE(bad_url);
    CHECK(bad_url.error().message().find("s3cret") == std::string::npos);
}

TEST_CASE("A hand-made slot migration: ASK during it, MOVED after it, never a wrong value", "[cluster]") {
    auto backend = make_backend("{mig}:");
    write_keys(backend, "old", 20);
    const auto slot = hitbox::Cluster::slot_of(backend.codec().key(key_n("old", 0)));
    const std::size_t from = cluster().index_of(backend.connection().owner_of(slot));
    REQUIRE(from < cluster().size());
    std::size_t to = from;
    for (auto m : cluster().masters())
        if (m != from) to = m;
    REQUIRE(to != from);
    const std::string s = std::to_string(slot);
    auto& src = cluster().node(from);
    auto& dst = cluster().node(to);
    REQUIRE(dst.cli({"CLUSTER", "SETSLOT", s, "IMPORTING", cluster().node_id(from)}) == "OK");
    REQUIRE(src.cli({"CLUSTER", "SETSLOT", s, "MIGRATING", cluster().node_id(to)}) == "OK");

    // A new key of a migrating slot is not on the source: ASK sends it to the target.
    REQUIRE(backend.set(key_n("new", 1), hitbox::CacheValue<std::string>{value_for(1, 9)}));
    CHECK(dst.cli({"CLUSTER", "COUNTKEYSINSLOT", s}) == "1");  // the target holds it (no redirect for this)
    CHECK(backend.get<std::string>(key_n("new", 1)).value()->data == value_for(1, 9));
    const auto asks = backend.connection().counters().ask;
    CHECK(asks >= 2);

    // Move half the old keys: those are answered through ASK, the rest by the source.
    for (int i = 0; i < 10; ++i)
        REQUIRE(src.cli({"MIGRATE", "127.0.0.1", std::to_string(dst.port()), backend.codec().key(key_n("old", i)), "0",
                         "5000"}) == "OK");
    for (int i = 0; i < 20; ++i) REQUIRE(backend.get<std::string>(key_n("old", i)).value()->data == value_for(i, 0));
    CHECK(backend.connection().counters().ask >= asks + 10);

    for (int i = 10; i < 20; ++i)
        REQUIRE(src.cli({"MIGRATE", "127.0.0.1", std::to_string(dst.port()), backend.codec().key(key_n("old", i)), "0",
                         "5000"}) == "OK");
    for (auto m : cluster().masters()) cluster().node(m).cli({"CLUSTER", "SETSLOT", s, "NODE", cluster().node_id(to)});
    const auto moved = backend.connection().counters().moved;
    for (int i = 0; i < 20; ++i) REQUIRE(backend.get<std::string>(key_n("old", i)).value()->data == value_for(i, 0));
    CHECK(backend.connection().counters().moved >= moved + 1);
    CHECK(backend.connection().owner_of(slot) == cluster().address(to));
    auto many = backend.get_many<std::string>(std::vector<hitbox::CacheKey>{key_n("old", 3), key_n("new", 1)});
    CHECK(many[0].value()->data == value_for(3, 0));
    CHECK(many[1].value()->data == value_for(1, 9));
}

TEST_CASE("Resharding under load: 8 threads, no wrong value and no error reaches the caller", "[cluster]") {
    auto backend = make_backend("rs:");
    constexpr int n = 4000;
    write_keys(backend, "rs", n);
    const auto masters = cluster().masters();
    REQUIRE(masters.size() >= 2);
    Load load;
    load.run(backend, "rs", n, 8);
    std::this_thread::sleep_for(200ms);
    const std::string out = cluster().reshard(masters[0], masters[1], 400);
    std::this_thread::sleep_for(200ms);
    load.join();
    std::printf("| cluster resharding: 400 slots moved under 8 threads | %llu ops | %llu wrong | %llu errors |\n",
                static_cast<unsigned long long>(load.ops.load()), static_cast<unsigned long long>(load.wrong.load()),
                static_cast<unsigned long long>(load.errors.load()));
    INFO("redis-cli: " << out.substr(out.size() > 400 ? out.size() - 400 : 0));
    INFO("errors: " << (load.error_samples.empty() ? std::string() : load.error_samples.front()));
    CHECK(load.wrong == 0);
    CHECK(load.errors == 0);
    CHECK(load.ops > 1000);
    CHECK(backend.connection().counters().moved > 0);
    for (int i = 0; i < n; i += 37) {
        auto r = backend.get<std::string>(key_n("rs", i));
        REQUIRE(r);
        REQUIRE(*r);
        CHECK(belongs_to((*r)->data, i));
    }
}

TEST_CASE("Topology refresh after a node is added and given slots", "[cluster]") {
    auto backend = make_backend("add:");
    constexpr int n = 2000;
    write_keys(backend, "add", n);
    const auto before = backend.connection().slot_map();
    const std::size_t added = cluster().add_master();
    const auto masters = cluster().masters();
    cluster().reshard(masters[0], added, 300);
    for (int i = 0; i < n; ++i) {
        auto r = backend.get<std::string>(key_n("add", i));
        REQUIRE(r);
        REQUIRE(*r);
        REQUIRE((*r)->data == value_for(i, 0));
    }
    bool routes_to_new = false;
    for (const auto& [range, address] : backend.connection().slot_map())
        if (address == cluster().address(added)) routes_to_new = true;
    CHECK(routes_to_new);
    CHECK(cluster().dbsize(added) > 0);
    // A fresh client discovers the new node from the seeds alone.
    auto fresh = make_backend("add:");
    REQUIRE(fresh.connection().refresh_topology());
    bool fresh_knows = false;
    for (const auto& [range, address] : fresh.connection().slot_map())
        if (address == cluster().address(added)) fresh_knows = true;
    CHECK(fresh_knows);
    CHECK(before != backend.connection().slot_map());
}

TEST_CASE("Replica reads: GETs go to replicas with READONLY, writes to masters", "[cluster]") {
    auto writer = make_backend("rr:");
    write_keys(writer, "rr", 300);
    for (auto m : cluster().masters()) cluster().node(m).cli({"WAIT", "1", "2000"});  // replicas caught up
    std::vector<long long> replica_gets_before;
    auto replica_gets = [](std::size_t i) {
        const std::string stats = cluster().node(i).cli({"INFO", "commandstats"});
        const auto at = stats.find("cmdstat_get:calls=");
        return at == std::string::npos ? 0LL : std::stoll(stats.substr(at + 18));
    };
    std::vector<std::size_t> replicas;
    for (std::size_t i = 0; i < cluster().size(); ++i)
        if (cluster().node(i).running() && !cluster().is_master(i)) replicas.push_back(i);
    REQUIRE_FALSE(replicas.empty());
    long long before = 0;
    for (auto i : replicas) before += replica_gets(i);
    auto b = Readable::builder()
                 .connection(hitbox::ConnectionMode::cluster(cluster().urls(), true))
                 .key_prefix("rr:")
                 .build();
    REQUIRE(b);
    for (int i = 0; i < 300; ++i) {
        auto r = b->get<std::string>(key_n("rr", i));
        REQUIRE(r);
        REQUIRE(*r);
        CHECK((*r)->data == value_for(i, 0));
    }
    std::vector<hitbox::CacheKey> keys;
    for (int i = 0; i < 300; ++i) keys.push_back(key_n("rr", i));
    for (const auto& r : b->get_many<std::string>(keys)) CHECK((r && *r));
    long long after = 0;
    for (auto i : replicas) after += replica_gets(i);
    CHECK(after - before >= 540);  // GETs are served by replicas (the added master has none: ~2% of slots)
    REQUIRE(b->set(key_n("rr", 1), hitbox::CacheValue<std::string>{value_for(1, 5)}));  // writes: masters
}

TEST_CASE("Replica reads: a replica that stops answering leaves its reads to its master", "[cluster]") {
    auto writer = make_backend("rk:");
    write_keys(writer, "rk", 300);
    for (auto m : cluster().masters()) cluster().node(m).cli({"WAIT", "1", "2000"});  // replicas caught up
    auto b = Readable::builder()
                 .connection(hitbox::ConnectionMode::cluster(cluster().urls(), true))
                 .key_prefix("rk:")
                 .build();
    REQUIRE(b);
    for (int i = 0; i < 300; ++i) REQUIRE(b->get<std::string>(key_n("rk", i)));  // every replica connected
    std::size_t victim = cluster().size();
    for (std::size_t i = 0; i < cluster().size(); ++i)
        if (cluster().node(i).running() && !cluster().is_master(i)) victim = i;
    REQUIRE(victim < cluster().size());
    cluster().node(victim).kill();
    // Until the cluster marks it failed (node timeout 2 s) the map still names the replica: its slots' reads
    // failed with "connection refused" before; now its master answers them.
    int failed = 0, wrong = 0;
    const auto started = std::chrono::steady_clock::now();
    for (int i = 0; i < 300; ++i) {
        auto r = b->get<std::string>(key_n("rk", i));
        if (!r || !*r)
            ++failed;
        else if ((*r)->data != value_for(i, 0))
            ++wrong;
    }
    const auto took = std::chrono::steady_clock::now() - started;
    CHECK(failed == 0);
    CHECK(wrong == 0);
    CHECK(took < 1500ms);  // well inside the node timeout: the replica was still in the map
    // Once the cluster has marked it failed, a re-read of the map (after a failed read or a MOVED) drops it.
    const std::string victim_id_prefix = cluster().address(victim);
    bool marked = false;
    for (const auto until = std::chrono::steady_clock::now() + 15s;
         !marked && std::chrono::steady_clock::now() < until;) {
        const std::string nodes = cluster().cli({"CLUSTER", "NODES"});
        const auto at = nodes.find(victim_id_prefix);
        marked = at != std::string::npos && nodes.find("fail", at) < nodes.find('\n', at);
        if (!marked) std::this_thread::sleep_for(100ms);
    }
    REQUIRE(marked);
    REQUIRE(b->connection().refresh_topology());
    for (int i = 0; i < 300; ++i) CHECK(b->get<std::string>(key_n("rk", i)));
    cluster().node(victim).start();
    cluster().wait_ready(std::chrono::seconds(30));
    // Once the cluster lists the replica again, it serves reads again: the client reads the map again at
    // most every 5 s while a slot has no replica in it (it never did before, without a MOVED or a failure).
    auto victim_gets = [&] {
        const std::string stats = cluster().node(victim).cli({"INFO", "commandstats"});
        const auto at = stats.find("cmdstat_get:calls=");
        return at == std::string::npos ? 0LL : std::stoll(stats.substr(at + 18));
    };
    bool served = false;
    for (const auto until = std::chrono::steady_clock::now() + 20s;
         !served && std::chrono::steady_clock::now() < until;) {
        for (int i = 0; i < 300; ++i) REQUIRE(b->get<std::string>(key_n("rk", i)));
        served = victim_gets() > 0;
        std::this_thread::sleep_for(100ms);
    }
    CHECK(served);
}

TEST_CASE("Failover under load: a killed master's slots work again within node timeout + 2 s", "[cluster]") {
    auto backend = make_backend("fo:", 1000ms);
    constexpr int n = 2000;
    write_keys(backend, "fo", n);
    // A probe key on the master we kill.
    int probe = 0;
    const std::string victim =
        backend.connection().owner_of(hitbox::Cluster::slot_of(backend.codec().key(key_n("fo", probe))));
    const std::size_t victim_index = cluster().index_of(victim);
    REQUIRE(victim_index < cluster().size());
    // The victim's replica, whose promotion the cluster itself decides (node timeout + election delay).
    std::size_t replica = cluster().size();
    {
        const std::string victim_id = cluster().node_id(victim_index);
        for (std::size_t i = 0; i < cluster().size(); ++i)
            if (i != victim_index && cluster().node(i).running() &&
                cluster().node(i).cli({"CLUSTER", "NODES"}).find("myself,slave " + victim_id) != std::string::npos)
                replica = i;
    }
    REQUIRE(replica < cluster().size());
    Load load;
    load.run(backend, "fo", n, 8);
    std::this_thread::sleep_for(300ms);
    const auto killed_at = SteadyClock::now();
    cluster().node(victim_index).kill();
    std::optional<std::chrono::milliseconds> recovered, promoted;
    auto since_kill = [&] {
        return std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - killed_at);
    };
    while (SteadyClock::now() < killed_at + 15s) {
        if (!promoted && cluster().is_master(replica)) promoted = since_kill();
        auto w = backend.set(key_n("fo", probe), hitbox::CacheValue<std::string>{value_for(probe, 1000)});
        auto r =
            w ? backend.get<std::string>(key_n("fo", probe)) : decltype(backend.get<std::string>(key_n("fo", probe))){};
        if (w && r && *r && (*r)->data == value_for(probe, 1000)) {
            recovered = since_kill();
            break;
        }
        std::this_thread::sleep_for(20ms);
    }
    REQUIRE(recovered);
    while (!promoted && since_kill() < 15s) {
        if (cluster().is_master(replica)) promoted = since_kill();
        std::this_thread::sleep_for(10ms);
    }
    REQUIRE(promoted);
    INFO("client recovered after " << recovered->count() << " ms; replica promoted after " << promoted->count()
                                   << " ms");
    std::printf(
        "| cluster failover: master killed under 8 threads | replica promoted after %lld ms | client "
        "recovered after %lld ms |\n",
        static_cast<long long>(promoted->count()), static_cast<long long>(recovered->count()));
    // Redis 7.0 itself promotes the replica 3-4.6 s after the kill with cluster-node-timeout 2000 (failure
    // detection after the node timeout, then an election delay of 500-1000 ms): the bound of node
    // timeout + 2 s is checked with that election delay added; the client's own share is checked tightly.
    CHECK(*recovered <= 2000ms + 2000ms + 1000ms);
    CHECK(*recovered <= *promoted + 500ms);
    // Once recovered, operations on every slot keep succeeding (calls already under way may still fail).
    std::this_thread::sleep_for(300ms);
    const auto errors_before = load.errors.load();
    std::this_thread::sleep_for(1000ms);
    load.join();
    std::printf(
        "| cluster failover: load after recovery | %llu ops | %llu wrong | %llu errors (all before "
        "recovery) |\n",
        static_cast<unsigned long long>(load.ops.load()), static_cast<unsigned long long>(load.wrong.load()),
        static_cast<unsigned long long>(load.errors.load()));
    CHECK(load.wrong == 0);
    CHECK(load.errors == errors_before);
    CHECK(backend.connection().owner_of(hitbox::Cluster::slot_of(backend.codec().key(key_n("fo", probe)))) != victim);
}
