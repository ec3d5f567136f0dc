// Run-time configuration: the tiers, formats, compressor and policies come from text (a configuration file
// in a service) with environment overrides, and hitbox::make_backend builds the backend they describe.
// Unknown names are errors that list the valid ones. The cache front sits on top as usual.
//
// Run: HITBOX_REDIS_URL=redis://127.0.0.1:6379/ ./configured   (meson test starts a server for it)
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include <hitbox/config.hpp>
#include <hitbox/hitbox.hpp>

struct User {
    BOOST_HANA_DEFINE_STRUCT(User, (std::uint64_t, id), (std::string, name), (std::vector<std::string>, roles));
};

using namespace std::chrono_literals;

int main() {
    const char* env_url = std::getenv("HITBOX_REDIS_URL");
    const std::string url = env_url && *env_url ? env_url : "redis://localhost:6379/";

    // What a service reads from its configuration file.
    const std::string text = R"(
        # L1 in process, L2 in Redis (readable JSON, zstd-compressed)
        tiers = memory, redis
        memory.max_entries = 10000
        redis.url = )" + url +
                             R"(
        redis.key_prefix = configured-example:
        redis.value_format = json
        redis.compressor = zstd
        redis.command_timeout = 500ms
        read = sequential
        cache.ttl = 60s
        cache.stale = 45s
        cache.stale_policy = offload_revalidate
        offload.workers = 2
    )";
    auto config = hitbox::parse_config(text);
    if (!config) {
        std::cerr << config.error() << '\n';
        return 1;
    }

    // A typo is reported with the valid names.
    auto typo = hitbox::parse_config("tiers = memory\nmemory.max_entries = 10\nread = fastest\n");
    if (auto checked = typo ? hitbox::validate_config(*typo) : hitbox::fail(typo.error()); !checked)
        std::cout << "a typo: " << checked.error() << '\n';  // unknown read policy "fastest"; valid: ...

    hitbox::OffloadManager offload{config->offload};
    auto backend = hitbox::make_backend(*config, offload);  // Result<hitbox::AnyBackend>
    if (!backend) {
        std::cerr << backend.error() << '\n';
        return 1;
    }
    hitbox::Cache cache{*backend, offload, hitbox::NoMetrics{}, hitbox::SystemClock{},
                        hitbox::CacheOptions{.policy = config->cache}};

    const hitbox::CacheKey key("user", 1, {{"id", "42"}});
    int loads = 0;
    auto load_user = [&] {
        ++loads;
        return User{42, "Ada", {"admin"}};
    };
    int failures = 0;
    auto expect = [&](bool ok, const std::string& what) {
        std::cout << (ok ? "  ok   " : "  FAIL ") << what << '\n';
        failures += ok ? 0 : 1;
    };
    auto first = cache.get_or_compute<User>(key, load_user);
    expect(first && first.status == hitbox::CacheStatus::Miss,
           "first call loads (source " + std::string(first.source) + ")");
    auto second = cache.get_or_compute<User>(key, load_user);
    expect(second && second->name == "Ada" && loads == 1, "second call is served by the cache");

    // The erased backend is still a Backend: typed reads, label paths, the same bytes in Redis.
    auto found = backend->lookup<User>(key);
    expect(found && found->hit() && found->source == "cache.memory", "lookup names the tier: cache.memory");
    auto wrong = backend->get<std::string>(key);
    expect(!wrong && wrong.error().kind() == hitbox::ErrorKind::type_mismatch,
           "reading it as another type is an error");
    auto removed = cache.remove(key);
    expect(removed && *removed, "removed from every tier");

    offload.wait_all(5s);
    std::cout << (failures ? "configured: FAILED\n" : "configured: all good\n");
    return failures ? 1 : 0;
}
