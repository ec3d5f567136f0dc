// A consumer of hitbox (test/consumer): Memory (L1) + Redis (L2) folded into one cache, with the cache
// front on top. Built once through a meson subproject and once from pkg-config flags of an installed
// hitbox; both runs must print "consumer: ok". Redis comes from HITBOX_REDIS_URL (the test starts one).
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include <hitbox/backend/redis.hpp>
#include <hitbox/hitbox.hpp>

struct Order {
    BOOST_HANA_DEFINE_STRUCT(Order, (std::uint64_t, id), (std::string, customer), (std::vector<std::string>, items));
};

int main() {
    using namespace std::chrono_literals;
    const char* url = std::getenv("HITBOX_REDIS_URL");
    if (url == nullptr || *url == '\0') {
        std::cerr << "consumer: set HITBOX_REDIS_URL\n";
        return 2;
    }
    int failures = 0;
    auto check = [&](bool ok, const char* what) {
        std::cout << (ok ? "  ok   " : "  FAIL ") << what << '\n';
        failures += ok ? 0 : 1;
    };

    auto redis = hitbox::RedisBackend<>::builder()
                     .connection(hitbox::ConnectionMode::single(url))
                     .value_format<hitbox::JsonFormat>()
                     .key_prefix("consumer:")
                     .build();
    auto memory = hitbox::MemoryBackend::builder().max_entries(100).build();
    if (!redis || !memory) {
        std::cerr << "consumer: " << (redis ? memory.error() : redis.error()) << '\n';
        return 1;
    }
    auto l1 = *memory;  // a handle sharing the store inside the composition
    hitbox::OffloadManager offload;
    auto tiers = hitbox::compose(std::move(*memory), std::move(*redis), offload);
    hitbox::Cache cache{tiers, offload};

    const hitbox::CacheKey key("order", 1, {{"id", "7"}});
    int loads = 0;
    auto load = [&] {
        ++loads;
        return Order{7, "ada", {"tea", "scones"}};
    };
    auto first = cache.get_or_compute<Order>(key, load, {.ttl = 60s});
    check(first && first.status == hitbox::CacheStatus::Miss && first->customer == "ada", "first call loads");
    auto second = cache.get_or_compute<Order>(key, load, {.ttl = 60s});
    check(second && second.source == "cache.memory" && loads == 1, "second call is an L1 hit");
    (void)l1.remove(key);
    auto third = cache.get_or_compute<Order>(key, load, {.ttl = 60s});
    check(third && third.source == "cache.redis" && third->items.size() == 2 && loads == 1,
          "after L1 lost it, Redis answers (refilling L1)");
    auto removed = cache.remove(key);
    check(removed && *removed, "removed from both tiers");
    offload.wait_all(5s);
    std::cout << (failures ? "consumer: FAILED\n" : "consumer: ok\n");
    return failures ? 1 : 0;
}
