// MemoryBackend given a clock policy without now() -> hitbox::TimePoint.
// expect: MemoryBackend builder: clock(c): c must model hitbox::ClockSource
#include <hitbox/backend/memory/memory_backend.hpp>

struct NotAClock {
    long now() const { return 0; }
};

#ifdef HITBOX_COMPILE_FAIL
auto built = hitbox::MemoryBackend::builder().max_entries(10).clock(NotAClock{}).build();
#else
auto built = hitbox::MemoryBackend::builder().max_entries(10).clock(hitbox::ManualClock{}).build();
#endif
