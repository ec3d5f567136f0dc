#pragma once
// Internal: the lifetime gate between a composition and its background tasks, and the two-slot fork the
// Parallel and Race policies wait on. Plain classes, not templates: every composition shares this code.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>

#include <hitbox/core/clock.hpp>
#include <hitbox/core/linkage.hpp>

namespace hitbox::detail {

/// Background tasks enter the gate before touching a composition; the composition's destructor closes it
/// and waits for the tasks inside. A task that finds the gate closed does nothing.
class Gate {
public:
    bool enter() {
        std::lock_guard lock(mutex_);
        if (closed_) return false;
        ++inside_;
        return true;
    }

    void leave() {
        std::lock_guard lock(mutex_);
        if (--inside_ == 0) cv_.notify_all();
    }

    void close_and_wait() {
        std::unique_lock lock(mutex_);
        closed_ = true;
        cv_.wait(lock, [&] { return inside_ == 0; });
    }

private:
    std::mutex mutex_;
    std::condition_variable cv_;
    std::uint64_t inside_ = 0;
    bool closed_ = false;
};

/// Holds a gate open for one scope; false when the gate was already closed.
class GatePass {
public:
    explicit GatePass(Gate& gate) : gate_(gate.enter() ? &gate : nullptr) {}
    GatePass(const GatePass&) = delete;
    GatePass& operator=(const GatePass&) = delete;
    ~GatePass() {
        if (gate_) gate_->leave();
    }
    explicit operator bool() const noexcept { return gate_ != nullptr; }

private:
    Gate* gate_;
};

/// Two tier calls (slot 0 = L1, slot 1 = L2) that may run on a worker or on the caller. Each slot runs at
/// most once: pending -> running -> done, or pending -> cancelled. The caller waits for both, or for the
/// first success (Race); a slot still pending after `steal_after` is run by the caller itself, so a
/// saturated executor can never leave the caller waiting for a call nobody will make. A slot whose task
/// the executor dropped unrun (refused, or discarded at shutdown: see SlotTask) is run by the caller at
/// once, whatever `steal_after` says, so `steal_after` may be as long as microseconds::max() (never
/// steal from a worker that will run it).
class Fork {
public:
    enum class Slot : std::uint8_t { pending, running, done, cancelled };
    /// A tier call; returns whether it succeeded (a hit for reads, a stored value for writes).
    using Body = std::function<bool()>;

    /// Installs slot i's call; only before the fork is shared with another thread.
    void set(int i, Body body) { body_[i] = std::move(body); }

    /// Runs slot i unless someone else has taken it; true when this call ran it.
    bool run(int i);

    /// Slot i's background task is gone without running it: the waiting caller runs the slot now.
    void orphan(int i) {
        {
            std::lock_guard lock(mutex_);
            if (state_[i] != Slot::pending) return;
            orphaned_[i] = true;
        }
        cv_.notify_all();
    }

    /// Cancels slot i if it has not started; true when it was cancelled by this call.
    bool cancel(int i) {
        Body dropped;
        {
            std::lock_guard lock(mutex_);
            if (state_[i] != Slot::pending) return false;
            state_[i] = Slot::cancelled;
            dropped = std::move(body_[i]);
        }
        cv_.notify_all();
        return true;
    }

    /// Waits until both slots have finished, or (until_success) one has succeeded. Slots still pending
    /// once `steal_after` has passed are run here, in slot order.
    void wait(bool until_success, std::chrono::microseconds steal_after);

    /// The first slot that succeeded, or -1.
    int winner() const {
        std::lock_guard lock(mutex_);
        return winner_;
    }

    Slot state(int i) const {
        std::lock_guard lock(mutex_);
        return state_[i];
    }

private:
    bool finished_(int i) const { return state_[i] == Slot::done || state_[i] == Slot::cancelled; }

    mutable std::mutex mutex_;
    std::condition_variable cv_;
    Body body_[2];
    Slot state_[2] = {Slot::pending, Slot::pending};
    bool orphaned_[2] = {false, false};
    int winner_ = -1;
};

/// What a background task of a fork slot holds (shared by the task's copies): when the last copy goes
/// without the slot having run (the executor refused the task or discarded it), the slot is handed back to
/// the waiting caller (Fork::orphan). `keep` owns the fork.
class SlotTask {
public:
    SlotTask(std::shared_ptr<void> keep, Fork& fork, int slot) noexcept
        : keep_(std::move(keep)), fork_(fork), slot_(slot) {}
    SlotTask(const SlotTask&) = delete;
    SlotTask& operator=(const SlotTask&) = delete;
    ~SlotTask() { fork_.orphan(slot_); }

private:
    std::shared_ptr<void> keep_;
    Fork& fork_;
    int slot_;
};

}  // namespace hitbox::detail

// The definitions: included here in a header-only build, compiled once into the hitbox library otherwise.
#if !HITBOX_COMPILED_LIB
#include <hitbox/compose/detail/fork_impl.hpp>
#endif
