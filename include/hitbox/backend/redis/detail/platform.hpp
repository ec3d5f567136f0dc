#pragma once
/// \file
/// The connection's platform layer: the lock, where callers sleep (WakeBoard) and how the I/O thread
/// waits for its socket and for a wake-up (IoWaiter). Two implementations behind one interface:
/// - Linux (default): a futex word with wake bitsets, and epoll + eventfd.
/// - Portable (`HITBOX_PORTABLE_PLATFORM=1`, meson `-Dplatform=portable`): a mutex + condition variable
///   and poll() + a pipe, for systems without those calls. Built and tested in CI on Linux too.
///
/// Non-generic code.

#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstdint>
#include <ctime>
#include <mutex>
#include <string>

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <unistd.h>

#ifndef HITBOX_PORTABLE_PLATFORM
#if defined(__linux__)
#define HITBOX_PORTABLE_PLATFORM 0
#else
#define HITBOX_PORTABLE_PLATFORM 1
#endif
#endif

#if !HITBOX_PORTABLE_PLATFORM
#include <linux/futex.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#endif

#include <hitbox/backend/redis/detail/socket.hpp>
#include <hitbox/core/error.hpp>

namespace hitbox::detail {

/// How many fork()s separate this process from the one that started counting: a child of fork() sees
/// one more than its parent had. A connection records it when built; in a child it refuses all work
/// (the socket, its I/O thread and its locks belong to the parent).
inline std::atomic<std::uint32_t>& fork_generation() noexcept {
    static std::atomic<std::uint32_t> generation{0};
    return generation;
}

/// Starts counting forks (once per process; the handler runs in each child).
inline std::uint32_t watch_forks() noexcept {
    static const bool registered = [] {
        return ::pthread_atfork(nullptr, nullptr, [] { fork_generation().fetch_add(1, std::memory_order_relaxed); }) ==
               0;
    }();
    (void)registered;
    return fork_generation().load(std::memory_order_relaxed);
}

/// A std::mutex that first tries a few times, with the CPU's pause hint in between, before it sleeps: the
/// connection's critical sections are shorter than a sleep and wake-up. `spin_tries` 0: a plain mutex.
class SpinMutex {
public:
    explicit SpinMutex(int spin_tries = 100) noexcept : spin_tries_(spin_tries) {}
    void lock() {
        for (int i = 0; i < spin_tries_; ++i) {
            if (mu_.try_lock()) return;
#if defined(__x86_64__) || defined(__i386__)
            __builtin_ia32_pause();
#endif
        }
        mu_.lock();
    }
    bool try_lock() { return mu_.try_lock(); }
    void unlock() { mu_.unlock(); }

private:
    int spin_tries_;
    std::mutex mu_;
};

/// What the I/O thread's wait saw of the socket.
struct IoEvents {
    bool readable = false;
    bool writable = false;
};

/// Consumes every wake-up written to a non-blocking wake-up descriptor (eventfd or pipe).
inline void drain(int wake_fd) noexcept {
    char buf[64];
    while (::read(wake_fd, buf, sizeof buf) > 0) {
    }
}

/// One poll() of a wake-up descriptor (drained when it fired) and a socket (for reading).
inline IoEvents poll_pair(int wake_fd, int fd, int timeout_ms) noexcept {
    pollfd p[2] = {{wake_fd, POLLIN, 0}, {fd, POLLIN, 0}};
    IoEvents out;
    if (::poll(p, 2, timeout_ms) <= 0) return out;
    if (p[0].revents & POLLIN) drain(wake_fd);
    out.readable = (p[1].revents & (POLLIN | POLLHUP | POLLERR)) != 0;
    return out;
}

#if !HITBOX_PORTABLE_PLATFORM

/// Where the callers of one connection sleep: one futex word for all of them, each waiter tagged with
/// one of 32 bits, so a reader that has completed many batches wakes all their callers with one system
/// call (FUTEX_WAKE_BITSET) instead of one each. A waiter woken for another caller's bit (two in flight
/// with the same bit) looks at its batch and sleeps again.
class WakeBoard {
public:
    /// The counter a waiter reads before it checks its batch one last time and sleeps.
    std::uint32_t sequence() const noexcept { return word_.load(std::memory_order_acquire); }

    /// Sleeps while the counter still reads `seen`, until a wake of `bit` or `deadline` (spurious
    /// returns are fine).
    void sleep(std::uint32_t seen, std::uint32_t bit, std::chrono::steady_clock::time_point deadline) noexcept {
        // FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC time: steady_clock's clock on Linux.
        const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline.time_since_epoch()).count();
        timespec ts{static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
        ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word_), FUTEX_WAIT_BITSET_PRIVATE, seen, &ts, nullptr,
                  bit);
    }

    /// Wakes every waiter tagged with a bit of `bits` (after their batches were completed).
    void wake(std::uint32_t bits) noexcept {
        if (bits == 0) return;
        word_.fetch_add(1, std::memory_order_acq_rel);
        ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word_), FUTEX_WAKE_BITSET_PRIVATE, INT_MAX, nullptr,
                  nullptr, bits);
    }

private:
    std::atomic<std::uint32_t> word_{0};
};

/// How the I/O thread waits: for one socket (read and / or write interest, or none while a caller reads
/// it) and for a wake-up from any thread. epoll + eventfd. watch / unwatch / wake may be called from any
/// thread while the I/O thread waits.
class IoWaiter {
public:
    IoWaiter() = default;
    IoWaiter(const IoWaiter&) = delete;
    IoWaiter& operator=(const IoWaiter&) = delete;
    ~IoWaiter() { close(); }

    bool is_open() const noexcept { return epoll_fd_ >= 0; }

    Result<void> open() {
        if (is_open()) return {};
        wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (wake_fd_ < 0) return fail(ErrorKind::connection, "eventfd: " + errno_text(errno));
        epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
        if (epoll_fd_ < 0) {
            const int e = errno;
            close();
            return fail(ErrorKind::connection, "epoll_create1: " + errno_text(e));
        }
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.fd = wake_fd_;
        if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev) != 0) {
            const int e = errno;
            close();
            return fail(ErrorKind::connection, "epoll_ctl: " + errno_text(e));
        }
        return {};
    }

    void close() noexcept {
        if (epoll_fd_ >= 0) ::close(epoll_fd_);
        if (wake_fd_ >= 0) ::close(wake_fd_);
        epoll_fd_ = wake_fd_ = -1;
        watched_ = -1;
    }

    /// Watches `fd` for reading (always) and writing (`out`); replaces the previous interest.
    void watch(int fd, bool out) noexcept {
        if (!is_open()) return;
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLRDHUP | (out ? EPOLLOUT : 0u);
        ev.data.fd = fd;
        ::epoll_ctl(epoll_fd_, watched_ == fd ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev);
        watched_ = fd;
    }

    /// Stops watching the socket (a caller reads it now, or it is closing).
    void unwatch() noexcept {
        if (!is_open() || watched_ < 0) return;
        ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, watched_, nullptr);
        watched_ = -1;
    }

    void wake() noexcept {
        std::uint64_t one = 1;
        [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof one);
    }

    using Events = IoEvents;

    /// Waits up to `timeout_ms` (-1: no limit) for the socket or a wake-up (which it consumes).
    Events wait(int timeout_ms) noexcept {
        epoll_event events[4];
        Events out;
        const int n = ::epoll_wait(epoll_fd_, events, 4, timeout_ms);
        for (int i = 0; i < n; ++i) {
            if (events[i].data.fd == wake_fd_) {
                std::uint64_t v;
                [[maybe_unused]] auto r = ::read(wake_fd_, &v, sizeof v);
            } else {
                out.readable |= (events[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0;
                out.writable |= (events[i].events & EPOLLOUT) != 0;
            }
        }
        return out;
    }

    /// Waits up to `timeout_ms` for `fd` to be readable or for a wake-up (which it consumes), with one
    /// poll() and no change to the watched set: the I/O thread driving a busy socket waits for replies.
    Events wait_on(int fd, int timeout_ms) noexcept { return poll_pair(wake_fd_, fd, timeout_ms); }

private:
    int wake_fd_ = -1;
    int epoll_fd_ = -1;
    int watched_ = -1;  // the socket in the set (changed under the connection's lock)
};

#else  // HITBOX_PORTABLE_PLATFORM

/// Where the callers of one connection sleep (portable): a counter under a mutex with one condition
/// variable; a wake wakes every sleeper, and each looks at its own batch.
class WakeBoard {
public:
    std::uint32_t sequence() const noexcept { return word_.load(std::memory_order_acquire); }

    void sleep(std::uint32_t seen, std::uint32_t, std::chrono::steady_clock::time_point deadline) {
        std::unique_lock<std::mutex> lk(mu_);
        auto changed = [&] { return word_.load(std::memory_order_acquire) != seen; };
        if (deadline == std::chrono::steady_clock::time_point::max())
            cv_.wait(lk, changed);
        else
            cv_.wait_until(lk, deadline, changed);
    }

    void wake(std::uint32_t bits) {
        if (bits == 0) return;
        {
            std::lock_guard<std::mutex> lk(mu_);
            word_.fetch_add(1, std::memory_order_acq_rel);
        }
        cv_.notify_all();
    }

private:
    std::atomic<std::uint32_t> word_{0};
    std::mutex mu_;
    std::condition_variable cv_;
};

/// How the I/O thread waits (portable): poll() over a self-pipe and the watched socket. A change of
/// interest wakes the poller, so it never polls a socket that a caller reads meanwhile.
class IoWaiter {
public:
    IoWaiter() = default;
    IoWaiter(const IoWaiter&) = delete;
    IoWaiter& operator=(const IoWaiter&) = delete;
    ~IoWaiter() { close(); }

    bool is_open() const noexcept { return pipe_[0] >= 0; }

    Result<void> open() {
        if (is_open()) return {};
        if (::pipe(pipe_) != 0) {
            pipe_[0] = pipe_[1] = -1;
            return fail(ErrorKind::connection, "pipe: " + errno_text(errno));
        }
        for (int fd : pipe_) {
            ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
            ::fcntl(fd, F_SETFD, FD_CLOEXEC);
        }
        return {};
    }

    void close() noexcept {
        for (int& fd : pipe_) {
            if (fd >= 0) ::close(fd);
            fd = -1;
        }
        watched_.store(-1);
    }

    void watch(int fd, bool out) noexcept {
        watched_.store(fd);
        out_.store(out);
        wake();
    }

    void unwatch() noexcept {
        watched_.store(-1);
        wake();
    }

    void wake() noexcept {
        const char one = 1;
        [[maybe_unused]] auto n = ::write(pipe_[1], &one, 1);
    }

    using Events = IoEvents;

    Events wait(int timeout_ms) noexcept {
        pollfd p[2] = {{pipe_[0], POLLIN, 0}, {watched_.load(), 0, 0}};
        p[1].events = static_cast<short>(POLLIN | (out_.load() ? POLLOUT : 0));
        const nfds_t n = p[1].fd >= 0 ? 2 : 1;
        Events out;
        if (::poll(p, n, timeout_ms) <= 0) return out;
        if (p[0].revents & POLLIN) drain(pipe_[0]);
        if (n == 2) {
            out.readable = (p[1].revents & (POLLIN | POLLHUP | POLLERR)) != 0;
            out.writable = (p[1].revents & POLLOUT) != 0;
        }
        return out;
    }

    Events wait_on(int fd, int timeout_ms) noexcept { return poll_pair(pipe_[0], fd, timeout_ms); }

private:
    int pipe_[2] = {-1, -1};
    std::atomic<int> watched_{-1};
    std::atomic<bool> out_{false};
};

#endif  // HITBOX_PORTABLE_PLATFORM

}  // namespace hitbox::detail
