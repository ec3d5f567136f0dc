// A value type whose move may throw (a user-declared copy constructor hides the implicit move): hitbox
// moves values inside Result (tl::expected), where a throwing move would end the process.
// expect: hitbox: a cached value type needs a move constructor and a move assignment that do not throw
#include <hitbox/backend/memory/memory_backend.hpp>
#include <stdexcept>
#include <string>

struct Legacy {
    std::string name;
    Legacy() = default;
    Legacy(const Legacy& o) : name(o.name) {
        if (name.empty()) throw std::runtime_error("empty");
    }
    Legacy& operator=(const Legacy&) = default;
#ifndef HITBOX_COMPILE_FAIL
    Legacy(Legacy&&) noexcept = default;
    Legacy& operator=(Legacy&&) noexcept = default;
#endif
};

hitbox::Result<void> store(hitbox::MemoryBackend& m, const hitbox::CacheKey& k) {
    return m.set(k, hitbox::CacheValue<Legacy>{Legacy{}});
}
