// RedisBackend over TLS beside the same backend in plain text (BM_RedisGet, bench_redis.cpp): GET of a
// 100-byte value from 1, 8 and 32 threads on one shared TLS connection, and the cost of opening a
// connection (TCP connect + TLS handshake + AUTH) against a plain one. The server is a TLS-only
// redis-server with certificates made at run time (test/support/tls_certs.hpp).
#include <benchmark/benchmark.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <hitbox/backend/redis.hpp>

#include "bench_redis_env.hpp"
#include "support/tls_certs.hpp"

namespace {

constexpr int key_count = 1000;
constexpr std::size_t value_size = 100;
const std::string password = "bench-password";

struct TlsBenchEnv {
    std::unique_ptr<hitbox_test::TlsCertificates> certs;
    std::unique_ptr<hitbox_test::RedisServer> tls_server, plain_server;
    std::optional<hitbox::RedisBackend<>> backend;
    std::vector<hitbox::CacheKey> keys;
    std::string error;
};

TlsBenchEnv& tls_env() {
    static TlsBenchEnv e;
    return e;
}

hitbox::TlsOptions trusting() {
    hitbox::TlsOptions o;
    o.ca_file = tls_env().certs->ca_cert();
    return o;
}

void setup_tls_env(const benchmark::State&) {
    auto& e = tls_env();
    if (e.backend || !e.error.empty()) return;
    try {
        if (!hitbox_test::find_executable("redis-server") || !hitbox_test::openssl_cli_available())
            throw std::runtime_error("redis-server or openssl not found");
        e.certs = std::make_unique<hitbox_test::TlsCertificates>();
        hitbox_test::RedisServerOptions o;
        o.tls = e.certs->server();
        o.requirepass = password;
        e.tls_server = std::make_unique<hitbox_test::RedisServer>(std::move(o));
        hitbox_test::RedisServerOptions p;
        p.requirepass = password;
        e.plain_server = std::make_unique<hitbox_test::RedisServer>(std::move(p));
    } catch (const std::exception& ex) {
        e.error = ex.what();
        return;
    }
    auto b = hitbox::RedisBackend<>::builder()
                 .connection(hitbox::ConnectionMode::single(e.tls_server->url()))
                 .password(password)
                 .tls(trusting())
                 .key_prefix("bench:")
                 .build();
    if (!b) {
        e.error = b.error().what();
        return;
    }
    e.backend.emplace(std::move(*b));
    if (auto failed = bench_redis::write_keys(*e.backend, e.keys, key_count, value_size); !failed.empty()) {
        e.error = failed;
        e.backend.reset();
    }
}

bool tls_ready(benchmark::State& state) {
    if (tls_env().backend) return true;
    state.SkipWithError(("no TLS Redis: " + tls_env().error).c_str());
    return false;
}

void BM_RedisGetTls(benchmark::State& state) {
    if (!tls_ready(state)) return;
    bench_redis::get_loop(state, *tls_env().backend, tls_env().keys, value_size);
}
BENCHMARK(BM_RedisGetTls)->Setup(setup_tls_env)->Threads(1)->Threads(8)->Threads(32)->UseRealTime();

/// One new connection per iteration: TCP connect (+ TLS handshake with certificate check) + AUTH + PING.
void connect_once(benchmark::State& state, bool tls) {
    if (!tls_ready(state)) return;
    auto& e = tls_env();
    for (auto _ : state) {
        auto builder =
            hitbox::RedisBackend<>::builder()
                .connection(hitbox::ConnectionMode::single(tls ? e.tls_server->url() : e.plain_server->url()))
                .password(password);
        if (tls) builder.tls(trusting());
        auto b = builder.build();
        if (!b || !b->connection().ping()) {
            state.SkipWithError("connect failed");
            break;
        }
    }
    state.SetItemsProcessed(state.iterations());
}

void BM_RedisConnectTls(benchmark::State& state) { connect_once(state, true); }
void BM_RedisConnectPlain(benchmark::State& state) { connect_once(state, false); }
BENCHMARK(BM_RedisConnectTls)->Setup(setup_tls_env)->UseRealTime();
BENCHMARK(BM_RedisConnectPlain)->Setup(setup_tls_env)->UseRealTime();

}  // namespace
