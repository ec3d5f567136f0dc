#pragma once
/// \file
/// The definitions of hitbox::InlineOffload (offload/inline_offload.hpp): included by that header in a
/// header-only build, compiled once into the hitbox library with HITBOX_COMPILED_LIB=1
/// (hitbox/core/linkage.hpp).

#include <hitbox/offload/inline_offload.hpp>

namespace hitbox {

HITBOX_LIB_INLINE bool InlineOffload::spawn(OffloadKind kind, std::string dedup_key, std::function<void()> task) {
    const bool keyed = !dedup_key.empty();
    {
        std::lock_guard lock(mutex_);
        if (keyed && !pending_.emplace(kind, dedup_key).second) {
            ++counters_.deduplicated;
            return false;
        }
        ++counters_.spawned;
        ++counters_.active;
        ++counters_.running;
    }
    bool threw = false;
    try {
        if (task) task();
    } catch (...) {
        threw = true;
    }
    std::lock_guard lock(mutex_);
    if (keyed) pending_.erase({kind, dedup_key});
    ++counters_.completed;
    if (threw) ++counters_.failed;
    --counters_.active;
    --counters_.running;
    if (counters_.active == 0) idle_.notify_all();
    return true;
}

HITBOX_LIB_INLINE bool InlineOffload::wait_all(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    return detail::wait_until_deadline(idle_, lock, detail::deadline_after(timeout),
                                       [&] { return counters_.active == 0; });
}

}  // namespace hitbox
