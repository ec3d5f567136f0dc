#pragma once
// The Redis benchmarks' shared setup: a redis-server (or HITBOX_REDIS_URL), one RedisBackend, 1000 keys
// with 100-byte values written once, and a blocking hiredis connection as a user would open one.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <hiredis/hiredis.h>

#include <hitbox/backend/redis.hpp>

#include "support/redis_server.hpp"

namespace bench_redis {

constexpr int key_count = 1000;
constexpr std::size_t value_size = 100;

struct RedisBenchEnv {
    std::unique_ptr<hitbox_test::RedisServer> server;  // when HITBOX_REDIS_URL is not set
    std::string url;
    hitbox::detail::RedisEndpoint endpoint;
    std::optional<hitbox::RedisBackend<>> backend;
    std::optional<hitbox::RedisBackend<>> plain_backend;     // ConnectionTuning::plain(): callers never spin
    std::optional<hitbox::RedisBackend<>> adaptive_backend;  // ConnectionDrive::adaptive: measured at run time
    std::optional<hitbox::RedisBackend<>> io_backend;        // ConnectionDrive::io_thread: always the I/O thread
    std::vector<hitbox::CacheKey> keys;
    std::vector<std::string> stored_keys;  // the bytes the backend stores under, for the hiredis baselines
    std::string error;
};

inline RedisBenchEnv& env() {
    static RedisBenchEnv e;
    return e;
}

/// Writes `count` keys ("item", version 1, id=<i>) with a `size`-byte value into `keys` and the backend:
/// empty, or what failed.
template <class Backend>
std::string write_keys(Backend& backend, std::vector<hitbox::CacheKey>& keys, int count, std::size_t size) {
    const std::string value(size, 'v');
    for (int i = 0; i < count; ++i) {
        keys.push_back(hitbox::CacheKey{"item", 1, {{"id", std::to_string(i)}}});
        if (auto r = backend.set(keys.back(), hitbox::CacheValue<std::string>{value}); !r) return r.error().what();
    }
    return {};
}

/// The GET loop of the Redis benchmarks: each thread reads `keys` round robin (from its own offset) and
/// checks the value's size.
template <class Backend>
void get_loop(benchmark::State& state, Backend& backend, const std::vector<hitbox::CacheKey>& keys, std::size_t size) {
    int i = state.thread_index() * 31;
    const int n = static_cast<int>(keys.size());
    for (auto _ : state) {
        auto r = backend.template get<std::string>(keys[static_cast<std::size_t>(i++ % n)]);
        if (!r || !*r || (*r)->data.size() != size) {
            state.SkipWithError("GET failed");
            break;
        }
    }
    state.SetItemsProcessed(state.iterations());
}

/// Benchmark Setup hook (runs on the main thread before each benchmark run): starts or finds the server,
/// builds the shared backend and writes the keys once.
inline void setup_env(const benchmark::State&) {
    auto& e = env();
    if (e.backend || !e.error.empty()) return;
    try {
        if (const char* url = std::getenv("HITBOX_REDIS_URL"); url && *url) {
            e.url = url;
        } else {
            if (!hitbox_test::find_executable("redis-server")) throw std::runtime_error("redis-server not found");
            e.server = std::make_unique<hitbox_test::RedisServer>();
            e.url = e.server->url();
        }
    } catch (const std::exception& ex) {
        e.error = ex.what();
        return;
    }
    auto ep = hitbox::detail::parse_redis_url(e.url);
    if (!ep) {
        e.error = ep.error().what();
        return;
    }
    e.endpoint = *ep;
    auto b = hitbox::RedisBackend<>::builder()
                 .connection(hitbox::ConnectionMode::single(e.url))
                 .key_prefix("bench:")
                 .build();
    if (!b) {
        e.error = b.error().what();
        return;
    }
    e.backend.emplace(std::move(*b));
    auto with_tuning = [&](std::optional<hitbox::RedisBackend<>>& into, hitbox::ConnectionTuning tuning) {
        auto built = hitbox::RedisBackend<>::builder()
                         .connection(hitbox::ConnectionMode::single(e.url))
                         .key_prefix("bench:")
                         .tuning(tuning)
                         .build();
        if (!built) {
            e.error = built.error().what();
            return false;
        }
        into.emplace(std::move(*built));
        return true;
    };
    hitbox::ConnectionTuning adaptive, io;
    adaptive.drive = hitbox::ConnectionDrive::adaptive;
    io.drive = hitbox::ConnectionDrive::io_thread;
    if (!with_tuning(e.plain_backend, hitbox::ConnectionTuning::plain()) ||
        !with_tuning(e.adaptive_backend, adaptive) || !with_tuning(e.io_backend, io)) {
        e.backend.reset();
        return;
    }
    if (auto failed = write_keys(*e.backend, e.keys, key_count, value_size); !failed.empty()) {
        e.error = failed;
        e.backend.reset();
        return;
    }
    for (const auto& k : e.keys) e.stored_keys.push_back(e.backend->codec().key(k));
}

inline bool ready(benchmark::State& state) {
    if (env().backend) return true;
    state.SkipWithError(("no Redis: " + env().error).c_str());
    return false;
}

/// A blocking hiredis connection, as a user would open one per thread.
inline redisContext* connect_hiredis() {
    const auto& ep = env().endpoint;
    timeval tv{2, 0};
    redisContext* c = ep.transport == hitbox::detail::RedisEndpoint::Transport::unix_socket
                          ? redisConnectUnixWithTimeout(ep.path.c_str(), tv)
                          : redisConnectWithTimeout(ep.host.c_str(), ep.port, tv);
    if (c == nullptr || c->err) {
        if (c) redisFree(c);
        return nullptr;
    }
    if (ep.password) {
        auto* r = static_cast<redisReply*>(
            ep.username ? redisCommand(c, "AUTH %s %s", ep.username->c_str(), ep.password->c_str())
                        : redisCommand(c, "AUTH %s", ep.password->c_str()));
        if (r) freeReplyObject(r);
    }
    if (ep.db != 0) {
        auto* r = static_cast<redisReply*>(redisCommand(c, "SELECT %lld", static_cast<long long>(ep.db)));
        if (r) freeReplyObject(r);
    }
    return c;
}

}  // namespace bench_redis
