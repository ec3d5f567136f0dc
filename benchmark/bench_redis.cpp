// RedisBackend against the code a user writes by hand with hiredis: GET and SET from 1, 8 and 32 threads
// (one shared multiplexed connection vs one blocking hiredis connection per thread) and a batch of 100
// GETs (get_many vs hiredis's own pipelining). 100-byte values, BinaryFormat, passthrough. Redis address
// from HITBOX_REDIS_URL (redis://host:port/); otherwise the benchmark starts its own redis-server.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <hiredis/hiredis.h>

#include <hitbox/backend/redis.hpp>

#include "support/redis_server.hpp"

namespace {

constexpr int key_count = 1000;
constexpr std::size_t value_size = 100;

struct RedisBenchEnv {
    std::unique_ptr<hitbox_test::RedisServer> server;  // when HITBOX_REDIS_URL is not set
    std::string url;
    hitbox::detail::RedisEndpoint endpoint;
    std::optional<hitbox::RedisBackend<>> backend;
    std::vector<hitbox::CacheKey> keys;
    std::vector<std::string> stored_keys;  // the bytes the backend stores under, for the hiredis baselines
    std::string error;
};

RedisBenchEnv& env() {
    static RedisBenchEnv e;
    return e;
}

/// Benchmark Setup hook (runs on the main thread before each benchmark run): starts or finds the server,
/// builds the shared backend and writes the keys once.
void setup_env(const benchmark::State&) {
    auto& e = env();
    if (e.backend || !e.error.empty()) return;
    try {
        if (const char* url = std::getenv("HITBOX_REDIS_URL"); url && *url) {
            e.url = url;
        } else {
            if (!hitbox_test::find_executable("redis-server"))
                throw std::runtime_error("redis-server not found");
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
    const std::string value(value_size, 'v');
    for (int i = 0; i < key_count; ++i) {
        e.keys.push_back(hitbox::CacheKey{"item", 1, {{"id", std::to_string(i)}}});
        e.stored_keys.push_back(e.backend->codec().key(e.keys.back()));
        if (auto r = e.backend->set(e.keys.back(), hitbox::CacheValue<std::string>{value}); !r) {
            e.error = r.error().what();
            e.backend.reset();
            return;
        }
    }
}

/// Thread 0 reports how many commands went out per socket write (the automatic pipelining at work).
struct PipelineMeter {
    explicit PipelineMeter(const benchmark::State& state)
        : on(state.thread_index() == 0),
          start(on ? env().backend->connection().counters() : hitbox::ConnectionCounters{}) {}
    void report(benchmark::State& state) const {
        if (!on) return;
        auto end = env().backend->connection().counters();
        if (end.writes > start.writes)
            state.counters["cmds_per_write"] = static_cast<double>(end.commands - start.commands) /
                                               static_cast<double>(end.writes - start.writes);
    }
    bool on;
    hitbox::ConnectionCounters start;
};

bool ready(benchmark::State& state) {
    if (env().backend) return true;
    state.SkipWithError(("no Redis: " + env().error).c_str());
    return false;
}

/// A blocking hiredis connection, as a user would open one per thread.
redisContext* connect_hiredis() {
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

void BM_RedisGet(benchmark::State& state) {
    if (!ready(state)) return;
    auto& backend = *env().backend;
    const auto& keys = env().keys;
    PipelineMeter meter(state);
    int i = state.thread_index() * 31;
    for (auto _ : state) {
        auto r = backend.get<std::string>(keys[static_cast<std::size_t>(i++ % key_count)]);
        if (!r || !*r || (*r)->data.size() != value_size) {
            state.SkipWithError("RedisBackend GET failed");
            break;
        }
    }
    meter.report(state);
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RedisGet)->Setup(setup_env)->Threads(1)->Threads(8)->Threads(32)->UseRealTime();

void BM_HiredisConnPerThreadGet(benchmark::State& state) {
    if (!ready(state)) return;
    redisContext* c = connect_hiredis();
    if (c == nullptr) {
        state.SkipWithError("hiredis connect failed");
        return;
    }
    const auto& keys = env().stored_keys;
    int i = state.thread_index() * 31;
    for (auto _ : state) {
        const auto& k = keys[static_cast<std::size_t>(i++ % key_count)];
        auto* r = static_cast<redisReply*>(redisCommand(c, "GET %b", k.data(), k.size()));
        if (r == nullptr || r->type != REDIS_REPLY_STRING) {
            if (r) freeReplyObject(r);
            state.SkipWithError("hiredis GET failed");
            break;
        }
        benchmark::DoNotOptimize(r->str);
        freeReplyObject(r);
    }
    redisFree(c);
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_HiredisConnPerThreadGet)->Setup(setup_env)->Threads(1)->Threads(8)->Threads(32)->UseRealTime();

void BM_RedisSet(benchmark::State& state) {
    if (!ready(state)) return;
    auto& backend = *env().backend;
    const auto& keys = env().keys;
    const std::string value(value_size, 's');
    PipelineMeter meter(state);
    int i = state.thread_index() * 31;
    for (auto _ : state) {
        hitbox::CacheValue<std::string> v{value, hitbox::Clock::now() + std::chrono::minutes(10)};
        if (!backend.set(keys[static_cast<std::size_t>(i++ % key_count)], v)) {
            state.SkipWithError("RedisBackend SET failed");
            break;
        }
    }
    meter.report(state);
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RedisSet)->Setup(setup_env)->Threads(1)->Threads(8)->Threads(32)->UseRealTime();

void BM_HiredisConnPerThreadSet(benchmark::State& state) {
    if (!ready(state)) return;
    redisContext* c = connect_hiredis();
    if (c == nullptr) {
        state.SkipWithError("hiredis connect failed");
        return;
    }
    // The same bytes the backend writes: an envelope around the 100-byte value.
    hitbox::EntryCodec<> codec;
    const auto& keys = env().stored_keys;
    int i = state.thread_index() * 31;
    for (auto _ : state) {
        auto blob = codec.encode(hitbox::CacheValue<std::string>{
            std::string(value_size, 's'), hitbox::Clock::now() + std::chrono::minutes(10)});
        const auto& k = keys[static_cast<std::size_t>(i++ % key_count)];
        auto* r = static_cast<redisReply*>(
            redisCommand(c, "SET %b %b PX %d", k.data(), k.size(), blob->data(), blob->size(), 600000));
        if (r == nullptr || r->type != REDIS_REPLY_STATUS) {
            if (r) freeReplyObject(r);
            state.SkipWithError("hiredis SET failed");
            break;
        }
        freeReplyObject(r);
    }
    redisFree(c);
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_HiredisConnPerThreadSet)->Setup(setup_env)->Threads(1)->Threads(8)->Threads(32)->UseRealTime();

void BM_RedisGetMany(benchmark::State& state) {
    if (!ready(state)) return;
    auto& backend = *env().backend;
    const auto n = static_cast<std::size_t>(state.range(0));
    std::vector<hitbox::CacheKey> batch(env().keys.begin(),
                                        env().keys.begin() + static_cast<std::ptrdiff_t>(n));
    for (auto _ : state) {
        auto rs = backend.get_many<std::string>(batch);
        if (rs.size() != n || !rs.back() || !*rs.back()) {
            state.SkipWithError("get_many failed");
            break;
        }
        benchmark::DoNotOptimize(rs);
    }
    state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(n));
}
BENCHMARK(BM_RedisGetMany)->Setup(setup_env)->Arg(100)->UseRealTime();

void BM_HiredisPipelineGet(benchmark::State& state) {
    if (!ready(state)) return;
    redisContext* c = connect_hiredis();
    if (c == nullptr) {
        state.SkipWithError("hiredis connect failed");
        return;
    }
    const auto n = static_cast<std::size_t>(state.range(0));
    const auto& keys = env().stored_keys;
    for (auto _ : state) {
        for (std::size_t i = 0; i < n; ++i) redisAppendCommand(c, "GET %b", keys[i].data(), keys[i].size());
        bool ok = true;
        for (std::size_t i = 0; i < n; ++i) {
            void* reply = nullptr;
            if (redisGetReply(c, &reply) != REDIS_OK || reply == nullptr) {
                ok = false;
                break;
            }
            benchmark::DoNotOptimize(static_cast<redisReply*>(reply)->str);
            freeReplyObject(reply);
        }
        if (!ok) {
            state.SkipWithError("hiredis pipeline failed");
            break;
        }
    }
    redisFree(c);
    state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(n));
}
BENCHMARK(BM_HiredisPipelineGet)->Setup(setup_env)->Arg(100)->UseRealTime();

}  // namespace
