// AnyBackend given something that is neither a Backend nor a byte tier.
// expect: hitbox::AnyBackend(b): b must be a tier that stores any value type
#include <hitbox/any_backend.hpp>
#include <hitbox/backend/memory/memory_backend.hpp>

struct NotATier {};

auto erase() {
#ifdef HITBOX_COMPILE_FAIL
    return hitbox::AnyBackend(NotATier{});
#else
    return hitbox::AnyBackend(*hitbox::MemoryBackend::builder().max_entries(10).build());
#endif
}
