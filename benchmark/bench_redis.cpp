// RedisBackend against the code a user writes by hand with hiredis: GET and SET from 1, 8 and 32 threads
// (one shared multiplexed connection vs one blocking hiredis connection per thread) and a batch of 100
// GETs (get_many vs hiredis's own pipelining). 100-byte values, BinaryFormat, passthrough. Redis address
// from HITBOX_REDIS_URL (redis://host:port/); otherwise the benchmark starts its own redis-server.
#include <benchmark/benchmark.h>
#include <algorithm>

#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <hiredis/hiredis.h>

#include <hitbox/backend/redis.hpp>

#include "bench_redis_env.hpp"

namespace {

using bench_redis::connect_hiredis;
using bench_redis::env;
using bench_redis::key_count;
using bench_redis::ready;
using bench_redis::setup_env;
using bench_redis::value_size;

/// Thread 0 reports how many commands went out per socket write (the automatic pipelining at work), and
/// for a connection whose I/O thread drove it, its rounds per command and the changes of driver.
struct PipelineMeter {
    explicit PipelineMeter(const benchmark::State& state, hitbox::RedisBackend<>& backend = *env().backend)
        : backend(&backend),
          on(state.thread_index() == 0),
          start(on ? backend.connection().counters() : hitbox::ConnectionCounters{}) {}
    void report(benchmark::State& state) const {
        if (!on) return;
        auto end = backend->connection().counters();
        if (end.writes > start.writes)
            state.counters["cmds_per_write"] =
                static_cast<double>(end.commands - start.commands) / static_cast<double>(end.writes - start.writes);
        if (end.io_thread_rounds > start.io_thread_rounds || end.drive_switches > start.drive_switches) {
            state.counters["drive_switches"] = static_cast<double>(end.drive_switches - start.drive_switches);
            state.counters["io_thread_rounds_per_cmd"] =
                static_cast<double>(end.io_thread_rounds - start.io_thread_rounds) /
                static_cast<double>(std::max<std::uint64_t>(1, end.commands - start.commands));
        }
    }
    hitbox::RedisBackend<>* backend;
    bool on;
    hitbox::ConnectionCounters start;
};

/// The GET loop over one of the environment's backends, with the pipeline meter on thread 0.
void metered_get(benchmark::State& state, std::optional<hitbox::RedisBackend<>> bench_redis::RedisBenchEnv::*which) {
    if (!ready(state)) return;
    auto& backend = *(env().*which);
    PipelineMeter meter(state, backend);
    bench_redis::get_loop(state, backend, env().keys, value_size);
    meter.report(state);
}

void BM_RedisGet(benchmark::State& state) { metered_get(state, &bench_redis::RedisBenchEnv::backend); }
BENCHMARK(BM_RedisGet)->Setup(setup_env)->Threads(1)->Threads(8)->Threads(32)->UseRealTime();

/// BM_RedisGet with ConnectionTuning::plain(): callers sleep at once and are woken by whoever reads.
void BM_RedisGetPlainTuning(benchmark::State& state) { metered_get(state, &bench_redis::RedisBenchEnv::plain_backend); }
BENCHMARK(BM_RedisGetPlainTuning)->Setup(setup_env)->Threads(1)->Threads(8)->Threads(32)->UseRealTime();

/// BM_RedisGet (the callers drive, the default) with the other ways to drive a busy connection: the I/O
/// thread alone (ConnectionDrive::io_thread), and the run-time choice between the two (adaptive).
void BM_RedisGetAdaptiveDrive(benchmark::State& state) {
    metered_get(state, &bench_redis::RedisBenchEnv::adaptive_backend);
}
BENCHMARK(BM_RedisGetAdaptiveDrive)->Setup(setup_env)->Threads(1)->Threads(8)->Threads(32)->UseRealTime();
void BM_RedisGetIoThreadDrive(benchmark::State& state) { metered_get(state, &bench_redis::RedisBenchEnv::io_backend); }
BENCHMARK(BM_RedisGetIoThreadDrive)->Setup(setup_env)->Threads(1)->Threads(8)->Threads(32)->UseRealTime();

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
        auto blob = codec.encode(hitbox::CacheValue<std::string>{std::string(value_size, 's'),
                                                                 hitbox::Clock::now() + std::chrono::minutes(10)});
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
    std::vector<hitbox::CacheKey> batch(env().keys.begin(), env().keys.begin() + static_cast<std::ptrdiff_t>(n));
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
