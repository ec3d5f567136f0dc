#pragma once
/// \file
/// The offloads that need no thread: InlineOffload runs work on the caller (deterministic tests, tools),
/// NoOffload refuses all work (background work explicitly disabled). Also OffloadCounters, the plain
/// counter struct every hitbox offload reports.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <utility>

#include <hitbox/core/clock.hpp>
#include <hitbox/core/concepts.hpp>
#include <hitbox/core/linkage.hpp>

namespace hitbox {

/// A snapshot of an offload's counters. `active` is what `wait_all` waits for: accepted work that has not
/// finished (for OffloadManager: queued plus running, minus tasks abandoned by a cancel-wait timeout).
struct OffloadCounters {
    std::uint64_t spawned = 0;       ///< work accepted
    std::uint64_t completed = 0;     ///< work that returned (including work that timed out first)
    std::uint64_t failed = 0;        ///< work that threw (the exception is swallowed and counted)
    std::uint64_t deduplicated = 0;  ///< refused: the same (kind, key) was pending
    std::uint64_t rejected = 0;      ///< refused: queue full, shut down, or offload disabled
    std::uint64_t timed_out = 0;     ///< ran past its timeout (warn or cancel-wait)
    std::uint64_t discarded = 0;     ///< accepted but dropped unrun at shutdown (drain timeout passed)
    std::uint64_t active = 0;        ///< accepted, not finished, not abandoned
    std::uint64_t queued = 0;        ///< waiting for a worker
    std::uint64_t running = 0;       ///< on a worker now (abandoned tasks included until they return)

    friend bool operator==(const OffloadCounters&, const OffloadCounters&) = default;
};

/// Runs every accepted task immediately on the calling thread, so compositions and the cache front behave
/// deterministically in tests: a refill or race loser has happened when the call returns. Deduplication
/// still applies while a task runs (a task for (kind, key) spawned from another thread, or recursively, is
/// refused). Thread-safe. No timeouts: the caller runs the task to completion.
///
/// \code
/// hitbox::InlineOffload offload;
/// auto tiers = hitbox::compose(std::move(l1), std::move(l2), offload);   // refills happen inside get()
/// \endcode
class InlineOffload {
public:
    /// Compositions run Parallel/Race tier calls in order on the caller with this offload.
    static constexpr bool runs_on_caller = true;

    InlineOffload() = default;
    InlineOffload(const InlineOffload&) = delete;
    InlineOffload& operator=(const InlineOffload&) = delete;

    /// Runs `task` now unless (kind, dedup_key) is already running; an empty key is never deduplicated.
    bool spawn(OffloadKind kind, std::string dedup_key, std::function<void()> task);

    /// Waits until tasks running on other threads have returned; true when none is left.
    bool wait_all(std::chrono::milliseconds timeout);
    /// The same for any duration type (`hours::max()`: no limit, like milliseconds::max()).
    template <class Rep, class Period>
    bool wait_all(std::chrono::duration<Rep, Period> timeout) {
        return wait_all(detail::saturating_ms(timeout));
    }

    /// A snapshot of the counters (queued is always 0).
    OffloadCounters counters() const {
        std::lock_guard lock(mutex_);
        return counters_;
    }

private:
    mutable std::mutex mutex_;
    std::condition_variable idle_;
    std::set<std::pair<OffloadKind, std::string>> pending_;
    OffloadCounters counters_;
};

/// An offload that accepts nothing: every spawn returns false and is counted as rejected. Choose it to
/// disable background work explicitly; a composition then drops offloaded refills and race losers (and
/// counts them) and runs its Parallel/Race tier calls in order on the caller.
class NoOffload {
public:
    /// Compositions run Parallel/Race tier calls in order on the caller with this offload.
    static constexpr bool runs_on_caller = true;

    NoOffload() = default;
    NoOffload(const NoOffload&) = delete;
    NoOffload& operator=(const NoOffload&) = delete;

    /// Refuses the task (it is destroyed unrun).
    bool spawn(OffloadKind, std::string, std::function<void()>) {
        std::lock_guard lock(mutex_);
        ++counters_.rejected;
        return false;
    }

    /// Nothing is ever pending (any duration type).
    template <class Rep, class Period>
    bool wait_all(std::chrono::duration<Rep, Period>) {
        return true;
    }

    /// A snapshot of the counters (every spawn is counted as rejected).
    OffloadCounters counters() const {
        std::lock_guard lock(mutex_);
        return counters_;
    }

private:
    mutable std::mutex mutex_;
    OffloadCounters counters_;
};

static_assert(Offload<InlineOffload>);
static_assert(Offload<NoOffload>);
static_assert(offload_runs_on_caller<InlineOffload> && offload_runs_on_caller<NoOffload>);

}  // namespace hitbox

// The definitions: included here in a header-only build, compiled once into the hitbox library otherwise.
#if !HITBOX_COMPILED_LIB
#include <hitbox/offload/detail/inline_offload_impl.hpp>
#endif
