// RedisBackend over the Cluster connection policy: GET from 1, 8 and 32 threads on a 3-master cluster
// (BM_ClusterGet) and a batch of 100 GETs fanned out to the masters (BM_ClusterGetMany), to compare with
// BM_RedisGet / BM_RedisGetMany on one node (bench_redis.cpp; same machine, so similar or lower numbers are
// expected: the point is that slot routing adds little). 100-byte values, BinaryFormat, passthrough.
// Cluster from HITBOX_REDIS_CLUSTER_URLS (comma-separated redis:// seeds); otherwise the benchmark starts
// 3 masters + 3 replicas itself (test/support/redis_cluster.hpp).
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <exception>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <hitbox/backend/redis.hpp>

#include "bench_redis_env.hpp"

#include "support/redis_cluster.hpp"

namespace {

constexpr int cluster_key_count = 1000;
constexpr std::size_t cluster_value_size = 100;

struct ClusterBenchEnv {
    std::unique_ptr<hitbox_test::RedisCluster> cluster;  // when HITBOX_REDIS_CLUSTER_URLS is not set
    std::optional<
        hitbox::RedisBackend<hitbox::Bitcode, hitbox::BinaryFormat, hitbox::PassthroughCompressor, hitbox::Cluster>>
        backend;
    std::vector<hitbox::CacheKey> keys;
    std::string error;
};

ClusterBenchEnv& cluster_env() {
    static ClusterBenchEnv e;
    return e;
}

void setup_cluster(const benchmark::State&) {
    auto& e = cluster_env();
    if (e.backend || !e.error.empty()) return;
    std::vector<std::string> seeds;
    try {
        if (const char* urls = std::getenv("HITBOX_REDIS_CLUSTER_URLS"); urls && *urls) {
            std::stringstream in(urls);
            for (std::string u; std::getline(in, u, ',');)
                if (!u.empty()) seeds.push_back(u);
        } else {
            if (!hitbox_test::find_executable("redis-server") || !hitbox_test::find_executable("redis-cli"))
                throw std::runtime_error("redis-server / redis-cli not found");
            e.cluster = std::make_unique<hitbox_test::RedisCluster>();
            seeds = e.cluster->urls();
        }
    } catch (const std::exception& ex) {
        e.error = ex.what();
        return;
    }
    auto b = hitbox::RedisBackend<>::builder()
                 .connection(hitbox::ConnectionMode::cluster(seeds))
                 .key_prefix("bench:")
                 .build();
    if (!b) {
        e.error = b.error().what();
        return;
    }
    e.backend.emplace(std::move(*b));
    if (auto failed = bench_redis::write_keys(*e.backend, e.keys, cluster_key_count, cluster_value_size);
        !failed.empty()) {
        e.error = failed;
        e.backend.reset();
    }
}

bool cluster_ready(benchmark::State& state) {
    if (cluster_env().backend) return true;
    state.SkipWithError(("no Redis Cluster: " + cluster_env().error).c_str());
    return false;
}

void BM_ClusterGet(benchmark::State& state) {
    if (!cluster_ready(state)) return;
    bench_redis::get_loop(state, *cluster_env().backend, cluster_env().keys, cluster_value_size);
}
BENCHMARK(BM_ClusterGet)->Setup(setup_cluster)->Threads(1)->Threads(8)->Threads(32)->UseRealTime();

void BM_ClusterGetMany(benchmark::State& state) {
    if (!cluster_ready(state)) return;
    auto& backend = *cluster_env().backend;
    const auto& all = cluster_env().keys;
    const std::vector<hitbox::CacheKey> batch(all.begin(), all.begin() + 100);
    for (auto _ : state) {
        auto rs = backend.get_many<std::string>(batch);
        if (rs.size() != batch.size() || !rs.back() || !*rs.back()) {
            state.SkipWithError("Cluster get_many failed");
            break;
        }
    }
    state.SetItemsProcessed(state.iterations() * 100);
}
BENCHMARK(BM_ClusterGetMany)->Setup(setup_cluster)->UseRealTime();

}  // namespace
