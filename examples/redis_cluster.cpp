// RedisBackend on a Redis Cluster: the same builder as on one node with `ConnectionMode::cluster(seeds)`,
// which selects the Cluster connection policy at compile time. Keys spread over the masters by hash slot;
// a {hash tag} in the key prefix keeps related keys on one slot; get_many fans out to every node at once.
//
// Run: HITBOX_REDIS_CLUSTER_URLS=redis://127.0.0.1:7000,redis://127.0.0.1:7001 ./redis_cluster
// (meson test runs it through `with_redis --cluster`, which starts a 3-master cluster for it)
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <set>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include <hitbox/backend/redis.hpp>
#include <hitbox/hitbox.hpp>

struct Session {
    BOOST_HANA_DEFINE_STRUCT(Session, (std::uint64_t, user), (std::string, token));
};

using namespace std::chrono_literals;

namespace {

int failures = 0;

void expect(bool ok, const std::string& what) {
    std::cout << (ok ? "  ok   " : "  FAIL ") << what << '\n';
    if (!ok) ++failures;
}

std::vector<std::string> seeds_from_env() {
    const char* env = std::getenv("HITBOX_REDIS_CLUSTER_URLS");
    std::vector<std::string> out;
    std::stringstream in(env && *env ? env : "redis://127.0.0.1:7000");
    for (std::string url; std::getline(in, url, ',');)
        if (!url.empty()) out.push_back(url);
    return out;
}

}  // namespace

int main() {
    // Any reachable seed is enough: the slot map is read from it on first use.
    auto redis = hitbox::RedisBackend<>::builder()
                     .connection(hitbox::ConnectionMode::cluster(seeds_from_env()))
                     .key_prefix("example:")
                     .command_timeout(500ms)
                     .build();
    if (!redis) {
        std::cerr << redis.error() << '\n';
        return 1;
    }
    static_assert(std::is_same_v<std::remove_cvref_t<decltype(*redis)>,
                                 hitbox::RedisBackend<hitbox::Bitcode, hitbox::BinaryFormat,
                                                      hitbox::PassthroughCompressor, hitbox::Cluster>>);

    // Typed values with a TTL, exactly as on a single node.
    std::vector<hitbox::CacheKey> keys;
    for (std::uint64_t id = 0; id < 300; ++id) {
        keys.push_back(hitbox::CacheKey{"session", 1, {{"user", std::to_string(id)}}});
        auto ok = redis->set(keys.back(), hitbox::CacheValue<Session>{Session{id, "t" + std::to_string(id)},
                                                                      hitbox::Clock::now() + 60s});
        if (!ok) {
            std::cerr << ok.error() << '\n';
            return 1;
        }
    }
    auto one = redis->get<Session>(keys[42]);
    expect(one && *one && (*one)->data.token == "t42", "get returns the value written");

    // The keys are spread over the masters.
    std::set<std::string> owners;
    for (const auto& k : keys)
        owners.insert(redis->connection().owner_of(hitbox::Cluster::slot_of(redis->codec().key(k))));
    std::cout << "  300 keys live on " << owners.size() << " masters\n";
    expect(owners.size() >= 2, "keys are spread over several masters");

    // get_many: one pipeline per node, all in flight at once; results in the caller's order.
    auto many = redis->get_many<Session>(keys);
    bool in_order = many.size() == keys.size();
    for (std::size_t i = 0; in_order && i < many.size(); ++i)
        in_order = many[i] && *many[i] && (*many[i])->data.user == i;
    expect(in_order, "get_many returns every value in key order");

    // A {hash tag} in the prefix keeps a tenant's keys on one slot (one node): multi-key locality.
    auto tenant = hitbox::RedisBackend<>::builder()
                      .connection(hitbox::ConnectionMode::cluster(seeds_from_env()))
                      .key_prefix("{tenant:7}:")
                      .build();
    std::set<std::uint16_t> slots;
    for (const auto& k : keys) slots.insert(hitbox::Cluster::slot_of(tenant->codec().key(k)));
    expect(slots.size() == 1, "a {hash tag} prefix maps every key to one slot");

    auto c = redis->connection().counters();
    std::cout << "  nodes " << c.nodes << ", commands " << c.connections.commands << ", socket writes "
              << c.connections.writes << ", MOVED " << c.moved << ", ASK " << c.ask << '\n';
    return failures == 0 ? 0 : 1;
}
