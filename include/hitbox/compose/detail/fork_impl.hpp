#pragma once
/// \file
/// The definitions of <hitbox/compose/detail/fork.hpp>: included by that header in a header-only build,
/// compiled once into the hitbox library with HITBOX_COMPILED_LIB=1 (hitbox/core/linkage.hpp).

#include <hitbox/compose/detail/fork.hpp>

namespace hitbox::detail {

HITBOX_LIB_INLINE bool Fork::run(int i) {
    Body body;
    {
        std::lock_guard lock(mutex_);
        if (state_[i] != Slot::pending) return false;
        state_[i] = Slot::running;
        body = std::move(body_[i]);
    }
    bool ok = false;
    try {
        ok = body();
    } catch (...) {
        ok = false;
    }
    body = nullptr;
    {
        std::lock_guard lock(mutex_);
        state_[i] = Slot::done;
        if (ok && winner_ < 0) winner_ = i;
    }
    cv_.notify_all();
    return true;
}

HITBOX_LIB_INLINE void Fork::wait(bool until_success, std::chrono::microseconds steal_after) {
    const auto steal_at = deadline_after(steal_after);  // saturated: max() never steals from a worker
    constexpr auto never = std::chrono::steady_clock::time_point::max();
    std::unique_lock lock(mutex_);
    for (;;) {
        if (until_success && winner_ >= 0) return;
        if (finished_(0) && finished_(1)) return;
        int pending = -1, steal = -1;
        for (int i = 0; i < 2; ++i) {
            if (state_[i] != Slot::pending) continue;
            if (pending < 0) pending = i;
            if (steal < 0 && orphaned_[i]) steal = i;
        }
        if (steal < 0 && pending >= 0 && steal_at != never && std::chrono::steady_clock::now() >= steal_at)
            steal = pending;
        if (steal >= 0) {
            lock.unlock();
            run(steal);
            lock.lock();
            continue;
        }
        if (pending >= 0 && steal_at != never)
            cv_.wait_until(lock, steal_at);
        else
            cv_.wait(lock);
    }
}

}  // namespace hitbox::detail
