// The seed's quick start in C++: a RedisBackend on one Redis server, assembled at compile time from
// policies, with the lazy connection, typed values with millisecond TTLs, pipelined batches and counters.
//
// Run: HITBOX_REDIS_URL=redis://127.0.0.1:6379/ ./redis_single   (meson test starts a server for it)
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <hitbox/backend/redis.hpp>
#include <hitbox/compress/zstd.hpp>
#include <hitbox/hitbox.hpp>

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

    // Single node, every default: Bitcode keys, BinaryFormat values, no compression, label "redis".
    auto backend = hitbox::RedisBackend<>::builder().connection(hitbox::ConnectionMode::single(url)).build();
    if (!backend) {
        std::cerr << backend.error() << '\n';
        return 1;
    }
    static_assert(std::is_same_v<std::remove_cvref_t<decltype(*backend)>,
                                 hitbox::RedisBackend<hitbox::Bitcode, hitbox::BinaryFormat,
                                                      hitbox::PassthroughCompressor, hitbox::SingleNode>>);
    // build() did not connect: the first operation does.
    expect(backend->connection().counters().connect_attempts == 0, "build() did not touch the network");

    // With every option: the policies change the type; the rest is run-time configuration.
    auto configured = hitbox::RedisBackend<>::builder()
                          .connection(hitbox::ConnectionMode::single(url))
                          .label("user-sessions")
                          .key_format<hitbox::UrlEncoded>()  // readable keys in redis-cli
                          .value_format<hitbox::JsonFormat>()
                          .compressor(hitbox::ZstdCompressor{3})
                          .key_prefix("example:")
                          .connect_timeout(2s)
                          .command_timeout(500ms)
                          .build();  // Result<RedisBackend<UrlEncoded, JsonFormat, ZstdCompressor, SingleNode>>
    if (!configured) {
        std::cerr << configured.error() << '\n';
        return 1;
    }

    const hitbox::CacheKey key = hitbox::key_of(UserQuery{42, "en"}, "user", 1);
    const User ada{42, "Ada", {"admin", "ops"}};
    const auto now = hitbox::Clock::now();

    std::cout << "set and get a User (expires in 60 s, stale after 45 s)\n";
    auto written = backend->set(key, hitbox::CacheValue<User>{ada, now + 60s, now + 45s, now});
    expect(bool(written), written ? "SET ... PX 60000" : written.error().what());
    auto found = backend->get<User>(key);  // Result<std::optional<CacheValue<User>>>
    expect(found && *found && (*found)->data.name == "Ada", "read back Ada");
    expect(found && *found && (*found)->expire == now + 60s && (*found)->stale == now + 45s,
           "expire and stale times came back to the millisecond");

    std::cout << "the configured backend: JSON + zstd under example:user:v1:id=42&lang=en\n";
    expect(configured->codec().key(key) == "example:user:v1:id=42&lang=en", "stored key is readable");
    expect(bool(configured->set(key, hitbox::CacheValue<User>{ada, now + 60s})), "written");
    auto json_hit = configured->get<User>(key);
    expect(json_hit && *json_hit && (*json_hit)->data.roles.size() == 2, "read back through JSON + zstd");

    std::cout << "pipelined batches: one round trip for many keys\n";
    std::vector<std::pair<hitbox::CacheKey, hitbox::CacheValue<std::string>>> entries;
    std::vector<hitbox::CacheKey> keys;
    for (int i = 0; i < 10; ++i) {
        keys.push_back(hitbox::CacheKey{"greeting", 1, {{"n", std::to_string(i)}}});
        entries.emplace_back(keys.back(), hitbox::CacheValue<std::string>{"hello #" + std::to_string(i), now + 30s});
    }
    auto stored = backend->set_many(entries);
    auto loaded = backend->get_many<std::string>(keys);
    bool all = stored.size() == 10 && loaded.size() == 10;
    for (std::size_t i = 0; all && i < loaded.size(); ++i)
        all = stored[i] && loaded[i] && *loaded[i] && (*loaded[i])->data == "hello #" + std::to_string(i);
    expect(all, "10 SETs and 10 GETs, each answered in order");

    std::cout << "an already expired value is not written; remove reports whether the key existed\n";
    expect(bool(backend->set(key, hitbox::CacheValue<User>{ada, now - 1s})), "expired write accepted (deletes)");
    auto gone = backend->get<User>(key);
    expect(gone && !*gone, "nothing under the key now");
    expect(backend->remove(keys[0]).value_or(false), "remove: the key existed");
    expect(!backend->remove(keys[0]).value_or(true), "remove again: it did not");

    auto s = backend->stats();
    std::cout << "stats: reads " << s.reads << ", writes " << s.writes << ", hits " << s.hits << ", misses " << s.misses
              << ", bytes in " << s.bytes_in << ", out " << s.bytes_out << ", errors " << s.error_total() << '\n';
    auto c = backend->connection().counters();
    std::cout << "connection " << backend->connection().address() << ": " << c.connects << " connect, " << c.commands
              << " commands\n";
    expect(c.connects == 1 && s.error_total() == 0, "one lazy connection, no errors");

    std::cout << (failures == 0 ? "all good\n" : "FAILURES\n");
    return failures == 0 ? 0 : 1;
}
