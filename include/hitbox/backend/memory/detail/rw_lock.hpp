#pragma once
/// \file
/// A reader-writer lock for the memory tier's shards: one atomic add to enter and one to leave as a
/// reader, writers preferred so a steady stream of readers cannot starve a writer (glibc's
/// pthread_rwlock, behind std::shared_mutex, prefers readers). Blocking uses C++20 atomic wait (futex).

#include <atomic>
#include <cstdint>
#include <mutex>

namespace hitbox::detail {

class RwLock {
public:
    RwLock() = default;
    RwLock(const RwLock&) = delete;
    RwLock& operator=(const RwLock&) = delete;

    void lock_shared() noexcept {
        for (;;) {
            std::uint32_t prev = state_.fetch_add(1, std::memory_order_acquire);
            if ((prev & writer_bit) == 0) return;
            // A writer holds or waits for the lock: back out and wait until it is done.
            leave_reader();
            wait_for_writer();
        }
    }

    void unlock_shared() noexcept { leave_reader(); }

    void lock() noexcept {
        writers_.lock();  // one writer at a time; the others sleep on this mutex
        std::uint32_t s = state_.fetch_or(writer_bit, std::memory_order_acq_rel) | writer_bit;
        for (int spin = 0; (s & reader_mask) != 0; ++spin) {
            if (spin < 64) {
                s = state_.load(std::memory_order_acquire);
            } else {
                state_.wait(s, std::memory_order_acquire);
                s = state_.load(std::memory_order_acquire);
            }
        }
    }

    bool try_lock() noexcept {
        if (!writers_.try_lock()) return false;
        std::uint32_t expected = 0;
        if (state_.compare_exchange_strong(expected, writer_bit, std::memory_order_acquire)) return true;
        writers_.unlock();
        return false;
    }

    void unlock() noexcept {
        state_.fetch_and(~writer_bit, std::memory_order_release);
        state_.notify_all();
        writers_.unlock();
    }

private:
    static constexpr std::uint32_t writer_bit = 1u << 31;
    static constexpr std::uint32_t reader_mask = writer_bit - 1;

    void leave_reader() noexcept {
        std::uint32_t prev = state_.fetch_sub(1, std::memory_order_release);
        // The last reader out wakes a writer that is waiting for the readers to drain.
        if ((prev & writer_bit) != 0 && (prev & reader_mask) == 1) state_.notify_all();
    }

    void wait_for_writer() noexcept {
        std::uint32_t s = state_.load(std::memory_order_relaxed);
        for (int spin = 0; (s & writer_bit) != 0; ++spin) {
            if (spin >= 64) state_.wait(s, std::memory_order_relaxed);
            s = state_.load(std::memory_order_relaxed);
        }
    }

    std::atomic<std::uint32_t> state_{0};
    std::mutex writers_;
};

}  // namespace hitbox::detail
