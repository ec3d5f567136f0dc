#pragma once
// A memory tier on a ManualClock, for the tests that move time by hand (the cache front's, resilience).

#include <cstddef>
#include <stdexcept>
#include <utility>

#include <hitbox/backend/memory/memory_backend.hpp>
#include <hitbox/core/clock.hpp>

namespace hitbox_test {

using ManualMemory = hitbox::BasicMemoryBackend<hitbox::ManualClock>;

/// A memory tier of `max_entries` whose entries expire by `clock` (copies of a ManualClock share its time).
inline ManualMemory manual_memory(const hitbox::ManualClock& clock, std::size_t max_entries = 1000) {
    auto m = ManualMemory::builder().max_entries(max_entries).clock(clock).build();
    if (!m) throw std::runtime_error("manual_memory: " + m.error().message());
    return std::move(*m);
}

}  // namespace hitbox_test
