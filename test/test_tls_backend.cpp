// RedisBackend over TLS, end to end, against real TLS-only redis-server processes with certificates made at
// run time (support/tls_certs.hpp): rediss:// with the CA, the certificate errors through the backend, 32
// threads sharing one TLS connection (both waiting strategies, every value checked), a server killed and
// restarted under load, and a TLS Redis Cluster (3 masters + replicas, tls-cluster) with a failover.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <hitbox/backend/redis.hpp>

#include "support/redis_cluster.hpp"
#include "support/redis_server.hpp"
#include "support/tls_certs.hpp"

using namespace std::chrono_literals;
using hitbox::CacheKey;
using hitbox::CacheValue;
using hitbox::ErrorKind;
using hitbox::TlsOptions;
using hitbox_test::RedisServer;
using hitbox_test::RedisServerOptions;
using hitbox_test::TlsCertificates;
using SteadyClock = std::chrono::steady_clock;

namespace {

const bool redis_available = hitbox_test::require_redis_server();
const bool openssl_available = hitbox_test::require_openssl();

const TlsCertificates& certs() { return hitbox_test::test_certificates(); }

TlsOptions trusting_ca() {
    TlsOptions o;
    o.ca_file = certs().ca_cert();
    return o;
}

std::unique_ptr<RedisServer> tls_server() {
    RedisServerOptions o;
    o.tls = certs().server();
    return std::make_unique<RedisServer>(std::move(o));
}

hitbox::RedisBackend<> tls_backend(const std::string& url, TlsOptions tls = trusting_ca(),
                                   hitbox::ConnectionTuning tuning = {}) {
    auto b = hitbox::RedisBackend<>::builder()
                 .connection(hitbox::ConnectionMode::single(url))
                 .tls(std::move(tls))
                 .connect_timeout(1000ms)
                 .command_timeout(1000ms)
                 .reconnect_backoff(20ms, 100ms)
                 .tuning(tuning)
                 .build();
    REQUIRE(b);
    return std::move(*b);
}

CacheKey key_n(const std::string& name, int i) { return CacheKey{name, 0, {{"i", std::to_string(i)}}}; }

template <class Pred>
bool eventually(Pred p, std::chrono::milliseconds budget) {
    const auto deadline = SteadyClock::now() + budget;
    while (SteadyClock::now() < deadline) {
        if (p()) return true;
        std::this_thread::sleep_for(20ms);
    }
    return p();
}

}  // namespace

TEST_CASE("TLS backend: rediss:// with the CA round-trips values; certificate errors are tls errors") {
    auto server = tls_server();
    const std::string url = "rediss://localhost:" + std::to_string(server->port()) + "/";
    auto redis = tls_backend(url);
    REQUIRE(redis.set(key_n("tls", 1), CacheValue<std::string>{"over tls"}));
    auto got = redis.get<std::string>(key_n("tls", 1));
    REQUIRE(got);
    REQUIRE(*got);
    CHECK((*got)->data == "over tls");

    // The system CAs do not know the test CA: verification fails, as a tls error saying why.
    auto untrusted = tls_backend(url, TlsOptions{});
    auto r = untrusted.get<std::string>(key_n("tls", 1));
    REQUIRE_FALSE(r);
    INFO(r.error().what());
    CHECK(r.error().kind() == ErrorKind::tls);

    // A plain client on the TLS port fails within its connect timeout, never hangs.
    auto plain =
        hitbox::RedisBackend<>::builder()
            .connection(hitbox::ConnectionMode::single("redis://127.0.0.1:" + std::to_string(server->port()) + "/"))
            .connect_timeout(500ms)
            .command_timeout(500ms)
            .build();
    REQUIRE(plain);
    const auto started = SteadyClock::now();
    CHECK_FALSE(plain->get<std::string>(key_n("tls", 1)));
    CHECK(SteadyClock::now() - started < 500ms + 500ms + 1500ms);
}

TEST_CASE("TLS backend: a server that requires a client certificate says so when none is configured") {
    RedisServerOptions o;
    o.tls = certs().server({}, "yes");
    RedisServer server(std::move(o));
    const std::string url = "rediss://localhost:" + std::to_string(server.port()) + "/";
    auto without = tls_backend(url);
    const auto started = SteadyClock::now();
    auto r = without.get<std::string>(key_n("mtls", 1));
    REQUIRE_FALSE(r);
    INFO(r.error().what());
    // It said "connection ... closed by the server", nothing about the certificate, through the backend.
    CHECK(r.error().message().find("client certificate") != std::string::npos);
    CHECK(SteadyClock::now() - started < 1000ms + 1000ms + 1500ms);
    TlsOptions mutual = trusting_ca();
    mutual.cert_file = certs().client_cert();
    mutual.key_file = certs().client_key();
    auto with = tls_backend(url, mutual);
    REQUIRE(with.set(key_n("mtls", 1), CacheValue<std::string>{"mutual"}));
    CHECK(with.get<std::string>(key_n("mtls", 1)).value()->data == "mutual");
}

TEST_CASE("TLS backend: 32 threads share one TLS connection and each gets its own values") {
    // The default tuning, plain sleeping callers, and the I/O thread alone driving the TLS socket.
    const int variant = GENERATE(0, 1, 2);
    const char* names[] = {"default tuning", "plain tuning", "the I/O thread drives"};
    INFO(names[variant]);
    hitbox::ConnectionTuning io_driven;
    io_driven.drive = hitbox::ConnectionDrive::io_thread;
    const hitbox::ConnectionTuning tunings[] = {{}, hitbox::ConnectionTuning::plain(), io_driven};
    auto server = tls_server();
    auto redis = tls_backend(server->url(), trusting_ca(), tunings[variant]);
    constexpr int threads = 32, rounds = 120;
    std::atomic<int> wrong{0}, failed{0};
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
        pool.emplace_back([&, t] {
            for (int i = 0; i < rounds; ++i) {
                const auto key = key_n("t" + std::to_string(t), i % 4);
                const std::string v = std::to_string(t) + ":" + std::to_string(i) +
                                      std::string(static_cast<std::size_t>(i % 7) * 300, 'x');
                if (!redis.set(key, CacheValue<std::string>{v})) {
                    ++failed;
                    continue;
                }
                auto got = redis.get<std::string>(key);
                if (!got)
                    ++failed;
                else if (!*got || (*got)->data != v)
                    ++wrong;
            }
        });
    for (auto& th : pool) th.join();
    CHECK(wrong == 0);
    CHECK(failed == 0);
    CHECK(redis.connection().counters().connects == 1);
}

TEST_CASE("TLS backend: a server killed and restarted under load; operations recover over TLS") {
    auto server = tls_server();
    auto redis = tls_backend(server->url());
    std::atomic<bool> stop{false};
    std::atomic<int> ok_after{0}, wrong{0};
    std::atomic<bool> restarted{false};
    std::vector<std::thread> pool;
    for (int t = 0; t < 8; ++t)
        pool.emplace_back([&, t] {
            for (int i = 0; !stop; ++i) {
                const auto key = key_n("k" + std::to_string(t), i % 8);
                const std::string v = std::to_string(t) + "/" + std::to_string(i);
                const bool after = restarted.load();
                if (!redis.set(key, CacheValue<std::string>{v})) continue;
                auto got = redis.get<std::string>(key);
                if (!got) continue;
                if (*got && (*got)->data != v) ++wrong;
                if (after && *got) ++ok_after;
            }
        });
    std::this_thread::sleep_for(300ms);
    server->kill();
    std::this_thread::sleep_for(500ms);
    server->start();
    restarted = true;
    const bool recovered = eventually([&] { return ok_after.load() > 50; }, 5000ms);
    stop = true;
    for (auto& th : pool) th.join();
    CHECK(recovered);
    CHECK(wrong == 0);
    CHECK(redis.connection().counters().connects >= 2);
}

TEST_CASE("TLS backend: a TLS Redis Cluster (tls-cluster) serves every slot and survives a failover") {
    hitbox_test::RedisClusterOptions options;
    options.tls = certs().server();
    options.tls->client_cert_file = certs().client_cert();  // the nodes' own certificate on the cluster bus
    options.tls->client_key_file = certs().client_key();
    hitbox_test::RedisCluster cluster(options);
    auto b = hitbox::RedisBackend<>::builder()
                 .connection(hitbox::ConnectionMode::cluster(cluster.urls()))
                 .tls(trusting_ca())
                 .connect_timeout(1000ms)
                 .command_timeout(1000ms)
                 .build();
    REQUIRE(b);
    auto& redis = *b;
    constexpr int n = 600;
    for (int i = 0; i < n; ++i) REQUIRE(redis.set(key_n("c", i), CacheValue<int>{i}));
    for (int i = 0; i < n; ++i) {
        auto got = redis.get<int>(key_n("c", i));
        REQUIRE(got);
        REQUIRE(*got);
        CHECK((*got)->data == i);
    }
    CHECK(redis.connection().counters().nodes >= 3);  // every master reached over TLS

    // Kill the master of a probe key; its replica is promoted and the client follows, still over TLS.
    const std::string victim = redis.connection().owner_of(hitbox::Cluster::slot_of(redis.codec().key(key_n("c", 0))));
    const std::size_t victim_index = cluster.index_of(victim);
    REQUIRE(victim_index < cluster.size());
    // Replication is asynchronous: wait until the victim's replica has acknowledged everything written, or
    // the keys written last may be lost with it (that is Redis, not the client under test).
    auto offset_of = [](const std::string& info, const std::string& field) -> long long {
        const auto at = info.find(field);
        return at == std::string::npos ? -1 : std::atoll(info.c_str() + at + field.size());
    };
    const bool synced = eventually(
        [&] {
            const std::string info = cluster.node(victim_index).cli({"INFO", "replication"});
            const long long master = offset_of(info, "master_repl_offset:");
            const long long replica = offset_of(info, ",offset=");  // slave0:ip=...,port=...,state=online,offset=N
            return master > 0 && replica >= master;
        },
        10000ms);
    CHECK(synced);
    cluster.node(victim_index).kill();
    const auto killed_at = SteadyClock::now();
    const bool recovered = eventually(
        [&] {
            auto w = redis.set(key_n("c", 0), CacheValue<int>{-1});
            auto r = w ? redis.get<int>(key_n("c", 0)) : decltype(redis.get<int>(key_n("c", 0))){};
            return w && r && *r && (*r)->data == -1;
        },
        15000ms);
    REQUIRE(recovered);
    const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - killed_at);
    std::printf("| TLS cluster failover: client recovered after %lld ms |\n", static_cast<long long>(took.count()));
    CHECK(took <= 2000ms + 2000ms + 2000ms);  // node timeout + election + the client's refresh, loaded machine
    // Every other key is still there.
    int present = 0;
    for (int i = 1; i < n; ++i) {
        auto got = redis.get<int>(key_n("c", i));
        if (got && *got && (*got)->data == i) ++present;
    }
    CHECK(present == n - 1);
}
