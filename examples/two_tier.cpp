// Two tiers folded into one statically dispatched cache: an in-process MemoryBackend (L1) in front of Redis
// (L2, JSON + zstd), with an OffloadManager for background work. Shows which tier answers, the refill of L1
// with the remaining TTL, a Race read policy and a delete that reaches every tier.
//
// Run: HITBOX_REDIS_URL=redis://127.0.0.1:6379/ ./two_tier   (meson test starts a server for it)
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include <boost/hana/define_struct.hpp>

// The parts this program uses (<hitbox/hitbox.hpp> would bring them all, the cache front too, for about 0.4 s
// more compile time per translation unit).
#include <hitbox/backend/memory/memory_backend.hpp>
#include <hitbox/backend/redis.hpp>
#include <hitbox/compose/compose.hpp>
#include <hitbox/compress/zstd.hpp>
#include <hitbox/format/json.hpp>
#include <hitbox/offload/offload_manager.hpp>

struct User {
    BOOST_HANA_DEFINE_STRUCT(User, (std::uint64_t, id), (std::string, name), (std::vector<std::string>, roles));
};
struct UserQuery {
    BOOST_HANA_DEFINE_STRUCT(UserQuery, (std::uint64_t, id), (std::string, lang));
};

using namespace std::chrono_literals;

namespace {

int failures = 0;

void expect(bool ok, const std::string& what) {
    std::cout << (ok ? "  ok   " : "  FAIL ") << what << '\n';
    if (!ok) ++failures;
}

}  // namespace

int main() {
    const char* env_url = std::getenv("HITBOX_REDIS_URL");
    const std::string url = env_url && *env_url ? env_url : "redis://localhost:6379/";

    // L2: Redis; the policies are part of the type.
    auto redis = hitbox::RedisBackend<>::builder()
                     .connection(hitbox::ConnectionMode::single(url))
                     .value_format<hitbox::JsonFormat>()
                     .compressor(hitbox::ZstdCompressor{3})
                     .key_prefix("two-tier-example:")
                     .build();  // Result<RedisBackend<Bitcode, JsonFormat, ZstdCompressor, SingleNode>>
    if (!redis) {
        std::cerr << redis.error() << '\n';
        return 1;
    }

    // L1: in-process, bounded.
    auto memory = hitbox::MemoryBackend::builder().max_entries(10'000).build();
    if (!memory) {
        std::cerr << memory.error() << '\n';
        return 1;
    }

    // Tiers folded into one statically dispatched cache. The backends are handles: the copies kept here
    // share their stores with the ones inside the composition.
    hitbox::OffloadManager offload;  // bounded background executor
    auto l1 = *memory;
    auto l2 = *redis;
    auto tiers = hitbox::compose(std::move(*memory), std::move(*redis), offload);

    const hitbox::CacheKey key = hitbox::key_of(UserQuery{42, "en"}, "user", 1);
    const User ada{42, "Ada", {"admin", "ops"}};
    const auto now = hitbox::Clock::now();

    std::cout << "write through both tiers\n";
    auto written = tiers.store(key, hitbox::CacheValue<User>{ada, now + 60s, now + 45s, now});
    expect(written && written->written == std::vector<std::string>{"cache.memory", "cache.redis"},
           "stored in cache.memory and cache.redis");

    std::cout << "read: L1 answers\n";
    auto found = tiers.lookup<User>(key);
    expect(found && found->hit() && found->source == "cache.memory", "served by " + (found ? found->source : "?"));
    expect(found && found->value->data.name == "Ada", "value is Ada");

    std::cout << "L1 loses the entry: Redis answers and refills L1 with the remaining TTL\n";
    (void)l1.remove(key);
    auto refilled = tiers.lookup<User>(key);
    expect(refilled && refilled->source == "cache.redis", "served by " + (refilled ? refilled->source : "?"));
    auto back_in_l1 = l1.get<User>(key);
    expect(back_in_l1 && *back_in_l1 && (*back_in_l1)->expire == now + 60s, "L1 expires when Redis does");
    auto again = tiers.lookup<User>(key);
    expect(again && again->source == "cache.memory", "next read served by " + (again ? again->source : "?"));

    std::cout << "Race read policy: both tiers at once, first hit wins\n";
    auto race = hitbox::compose(l1, l2, offload).with_read(hitbox::RaceRead{}).with_label("race");
    auto raced = race.lookup<User>(key);
    expect(raced && raced->hit() && (raced->source == "race.memory" || raced->source == "race.redis"),
           "served by " + (raced ? raced->source : "?"));

    std::cout << "delete from every tier\n";
    auto removed = tiers.remove(key);
    expect(removed && *removed, "removed");
    auto gone = tiers.get<User>(key);
    expect(gone && !gone->has_value(), "a miss in both tiers");

    offload.wait_all(5s);
    const auto stats = tiers.stats();
    std::cout << "refills " << stats.refills << ", L2 read errors " << stats.l2_read_errors << ", offload tasks "
              << offload.counters().spawned << '\n';
    std::cout << (failures ? "two_tier: FAILED\n" : "two_tier: all good\n");
    return failures ? 1 : 0;
}
