#pragma once
/// \file
/// The reader-writer lock of the memory tier's shards, built so that readers on different threads never
/// write to the same cache line: each reader counts itself in its own slot (one cache line per slot,
/// slots assigned to threads round robin), so concurrent hits do not bounce a lock word between cores.
/// A writer raises a flag and waits until every slot is empty; readers that see the flag step back and
/// wait, so writers cannot starve (glibc's pthread_rwlock, behind std::shared_mutex, prefers readers).
/// The slot line also carries the reader's hit and miss counters. Blocking uses C++20 atomic wait.

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>

namespace hitbox::detail {

/// This thread's reader slot number (assigned on first use, round robin over all threads).
inline std::size_t reader_slot_seed() noexcept {
    static std::atomic<std::size_t> next{0};
    thread_local const std::size_t mine = next.fetch_add(1, std::memory_order_relaxed);
    return mine;
}

/// Reader slots per lock: the hardware thread count rounded up to a power of two, 1 to 16.
inline std::size_t reader_slot_count() noexcept {
    static const std::size_t count = std::bit_ceil(std::clamp<std::size_t>(std::thread::hardware_concurrency(), 1, 16));
    return count;
}

class RwLock {
public:
    /// A reader's slot: its presence count and the counters it owns.
    struct alignas(64) Slot {
        std::atomic<std::uint32_t> readers{0};
        std::atomic<std::uint64_t> hits{0};
        std::atomic<std::uint64_t> misses{0};
    };

    RwLock() : slots_(std::make_unique<Slot[]>(reader_slot_count())), mask_(reader_slot_count() - 1) {}
    RwLock(const RwLock&) = delete;
    RwLock& operator=(const RwLock&) = delete;

    /// Enters as a reader; returns the slot to pass to unlock_shared (and to count in).
    Slot& lock_shared() noexcept {
        Slot& slot = slots_[reader_slot_seed() & mask_];
        for (;;) {
            slot.readers.fetch_add(1, std::memory_order_seq_cst);
            if (writer_.load(std::memory_order_seq_cst) == 0) return slot;
            leave(slot);  // a writer holds or wants the lock: step back until it is done
            for (int spin = 0; writer_.load(std::memory_order_acquire) != 0; ++spin)
                if (spin >= 64) writer_.wait(1, std::memory_order_acquire);
        }
    }

    void unlock_shared(Slot& slot) noexcept { leave(slot); }

    void lock() noexcept {
        writers_.lock();  // one writer at a time; the others sleep on this mutex
        writer_.store(1, std::memory_order_seq_cst);
        for (std::size_t i = 0; i <= mask_; ++i) {
            std::atomic<std::uint32_t>& readers = slots_[i].readers;
            std::uint32_t n = readers.load(std::memory_order_seq_cst);
            for (int spin = 0; n != 0; ++spin) {
                if (spin >= 64) readers.wait(n, std::memory_order_acquire);
                n = readers.load(std::memory_order_seq_cst);
            }
        }
    }

    bool try_lock() noexcept {
        if (!writers_.try_lock()) return false;
        writer_.store(1, std::memory_order_seq_cst);
        for (std::size_t i = 0; i <= mask_; ++i) {
            if (slots_[i].readers.load(std::memory_order_seq_cst) != 0) {
                release_writer();
                return false;
            }
        }
        return true;
    }

    void unlock() noexcept { release_writer(); }

    /// Sum of the slots' hit and miss counters.
    std::uint64_t hits() const noexcept { return sum(&Slot::hits); }
    std::uint64_t misses() const noexcept { return sum(&Slot::misses); }

private:
    void leave(Slot& slot) noexcept {
        const std::uint32_t before = slot.readers.fetch_sub(1, std::memory_order_seq_cst);
        // The last reader out of a slot wakes a writer that may be waiting for it.
        if (before == 1 && writer_.load(std::memory_order_seq_cst) != 0) slot.readers.notify_all();
    }

    void release_writer() noexcept {
        writer_.store(0, std::memory_order_release);
        writer_.notify_all();
        writers_.unlock();
    }

    std::uint64_t sum(std::atomic<std::uint64_t> Slot::*counter) const noexcept {
        std::uint64_t total = 0;
        for (std::size_t i = 0; i <= mask_; ++i) total += (slots_[i].*counter).load(std::memory_order_relaxed);
        return total;
    }

    std::unique_ptr<Slot[]> slots_;
    std::size_t mask_;
    alignas(64) std::atomic<std::uint32_t> writer_{0};  // read by every reader: rarely written
    std::mutex writers_;
};

/// Holds a shard's lock as a reader for a scope.
class ReadGuard {
public:
    explicit ReadGuard(RwLock& lock) noexcept : lock_(lock), slot_(lock.lock_shared()) {}
    ReadGuard(const ReadGuard&) = delete;
    ReadGuard& operator=(const ReadGuard&) = delete;
    ~ReadGuard() { lock_.unlock_shared(slot_); }

    RwLock::Slot& slot() const noexcept { return slot_; }

private:
    RwLock& lock_;
    RwLock::Slot& slot_;
};

}  // namespace hitbox::detail
