// MemoryBackend on its own: the embedded cache that needs no server. Typed values, per-entry expiry,
// a type mismatch reported as an error, and the counters. Built and run by `meson test` (suite examples).
#include <chrono>
#include <cstdint>
#include <iostream>
#include <string>
#include <vector>

#include <hitbox/hitbox.hpp>

struct User {
    BOOST_HANA_DEFINE_STRUCT(User, (std::uint64_t, id), (std::string, name), (std::vector<std::string>, roles));
};
struct UserQuery {
    BOOST_HANA_DEFINE_STRUCT(UserQuery, (std::uint64_t, id), (std::string, lang));
};

int main() {
    using namespace std::chrono_literals;

    auto memory = hitbox::MemoryBackend::builder().max_entries(10'000).build();  // Result<MemoryBackend>
    if (!memory) {
        std::cerr << memory.error() << '\n';
        return 1;
    }

    const hitbox::CacheKey key = hitbox::key_of(UserQuery{42, "en"}, "user", 1);
    const User ada{42, "Ada Lovelace", {"admin", "analyst"}};
    if (auto written = memory->set(key, hitbox::CacheValue<User>{ada, hitbox::Clock::now() + 60s}); !written) {
        std::cerr << written.error() << '\n';
        return 1;
    }

    // A hit copies the stored User out: no serialization anywhere in this tier.
    auto found = memory->get<User>(key);  // Result<std::optional<CacheValue<User>>>
    if (!found || !found->has_value() || (*found)->data.name != ada.name) {
        std::cerr << "expected a hit\n";
        return 1;
    }
    std::cout << "hit: " << (*found)->data.name << ", expires in "
              << std::chrono::duration_cast<std::chrono::seconds>(*(*found)->ttl(hitbox::Clock::now())).count()
              << " s\n";

    // Reading the entry as another type is an error, never a wrong value.
    auto wrong = memory->get<std::string>(key);
    if (wrong || wrong.error().kind() != hitbox::ErrorKind::type_mismatch) {
        std::cerr << "expected a type mismatch\n";
        return 1;
    }
    std::cout << "as std::string: " << wrong.error() << '\n';

    // An entry that has expired is never returned.
    (void)memory->set(hitbox::CacheKey("session", 0, {{"id", "7"}}),
                      hitbox::CacheValue<std::string>{"token", hitbox::Clock::now() - 1ms});
    auto expired = memory->get<std::string>(hitbox::CacheKey("session", 0, {{"id", "7"}}));
    if (!expired || expired->has_value()) {
        std::cerr << "expected a miss for an expired entry\n";
        return 1;
    }

    auto removed = memory->remove(key);
    const hitbox::MemoryStats s = memory->stats();
    std::cout << "removed: " << std::boolalpha << *removed << "; entries " << s.entries << ", hits " << s.hits
              << ", misses " << s.misses << ", evictions " << s.evictions << '\n';
    return (*removed && s.entries == 0 && s.hits == 1) ? 0 : 1;
}
