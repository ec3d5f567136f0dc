#pragma once
/// \file
/// hitbox::OffloadManager: the bounded background executor behind refills, race losers and stale
/// revalidation. Fixed worker threads, a bounded FIFO queue, deduplication by (kind, key), a timeout
/// policy per task, counters, task duration histograms, `wait_all(timeout)` and a draining destructor.

#include <array>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <hitbox/core/clock.hpp>
#include <hitbox/core/concepts.hpp>
#include <hitbox/core/error.hpp>
#include <hitbox/core/histogram.hpp>
#include <hitbox/core/linkage.hpp>
#include <hitbox/offload/inline_offload.hpp>

namespace hitbox {

/// What happens when a task runs longer than its limit (measured from the moment a worker starts it).
/// A running function cannot be killed, so "cancel" means: stop waiting for it.
///
/// - `none()`: no limit. A limit of milliseconds::max() (or any past the steady clock's range) is no
///   limit too: the task never times out.
/// - `cancel_wait(d)`: after d the task is counted `timed_out`, its stop_token is signalled, its dedup key
///   is released (a new task for the same key is accepted) and `wait_all` / the destructor's drain stop
///   waiting for it. The worker stays busy until the function returns.
/// - `warn(d)`: after d the task is counted `timed_out` and reported to the timeout callback; everything
///   else waits for it as usual.
class TimeoutPolicy {
public:
    /// The three behaviours; see the class comment.
    enum class Mode : std::uint8_t { none, cancel_wait, warn };

    constexpr TimeoutPolicy() noexcept = default;
    /// The policies: no limit, cancel-wait after `after`, warn after `after`.
    /// `after` is any duration type, rounded up to whole milliseconds (`max()` of any: no limit in effect).
    static constexpr TimeoutPolicy none() noexcept { return {}; }
    template <class Rep, class Period>
    static constexpr TimeoutPolicy cancel_wait(std::chrono::duration<Rep, Period> after) noexcept {
        return {Mode::cancel_wait, detail::saturating_ms(after)};
    }
    template <class Rep, class Period>
    static constexpr TimeoutPolicy warn(std::chrono::duration<Rep, Period> after) noexcept {
        return {Mode::warn, detail::saturating_ms(after)};
    }

    /// Which behaviour.
    constexpr Mode mode() const noexcept { return mode_; }
    /// The limit; zero for none().
    constexpr std::chrono::milliseconds after() const noexcept { return after_; }

    friend constexpr bool operator==(const TimeoutPolicy&, const TimeoutPolicy&) = default;

private:
    // A negative limit counts as zero: the task is past it at once.
    constexpr TimeoutPolicy(Mode mode, std::chrono::milliseconds after) noexcept
        : mode_(mode), after_(after.count() < 0 ? std::chrono::milliseconds(0) : after) {}
    Mode mode_ = Mode::none;
    std::chrono::milliseconds after_{0};
};

/// Stable name of a timeout mode ("none", "cancel_wait", "warn").
constexpr std::string_view to_string(TimeoutPolicy::Mode mode) noexcept {
    switch (mode) {
        case TimeoutPolicy::Mode::none: return "none";
        case TimeoutPolicy::Mode::cancel_wait: return "cancel_wait";
        case TimeoutPolicy::Mode::warn: return "warn";
    }
    return "unknown";
}

/// What the timeout callback is told about a task that ran past its limit.
struct OffloadTimeout {
    OffloadKind kind;
    std::string key;  ///< the task's dedup key (may be binary; empty when it had none)
    TimeoutPolicy policy;
};

/// OffloadManager settings. The defaults suit a service: a few workers, a queue deep enough to absorb a
/// burst of refills, no task timeout and a five-second drain on shutdown.
struct OffloadConfig {
    std::size_t workers = 4;       ///< worker threads, 1..1024
    std::size_t max_queue = 1024;  ///< tasks waiting for a worker; beyond it spawn refuses
    TimeoutPolicy timeout{};       ///< default per-task limit (spawn can override)
    std::chrono::milliseconds drain_timeout{
        5000};  ///< how long the destructor waits for queued work (max(): until done)
    /// Called (on the manager's supervisor thread) for each task that passes its limit; when empty, one
    /// line goes to std::clog.
    std::function<void(const OffloadTimeout&)> on_timeout{};
};

/// A snapshot of an OffloadManager's task durations (`task_durations()`): how long each task ran, from the
/// moment a worker started it until its function returned (a task past a cancel-wait timeout is recorded
/// when it returns), by kind. Exported as `hitbox_offload_task_duration_seconds{backend,kind}`.
struct OffloadDurations {
    std::array<HistogramSnapshot, offload_kind_count> by_kind{};

    /// The histogram of one kind.
    const HistogramSnapshot& operator[](OffloadKind kind) const noexcept {
        return by_kind[static_cast<std::size_t>(kind)];
    }
};

namespace detail {

/// Why a configuration is invalid, or nullopt when it is fine.
HITBOX_LIB_INLINE std::optional<std::string> offload_config_problem(const OffloadConfig& c);

/// A dedup key made printable: control and non-ASCII bytes as \xNN, cut after 64 bytes.
HITBOX_LIB_INLINE std::string printable_key(std::string_view key);

/// The default timeout report: one line to std::clog.
HITBOX_LIB_INLINE void log_offload_timeout(const OffloadTimeout& t);

}  // namespace detail

/// A bounded background executor: `workers` threads take tasks from a FIFO queue of at most `max_queue`
/// entries. A task with a non-empty key is deduplicated by (kind, key) while it is queued or running: a
/// second revalidation of the same key is refused and counted. spawn never blocks and never runs the task
/// on the caller; it returns false (and counts why) when the task is refused. Thread-safe; not movable.
///
/// The destructor stops accepting work, waits up to `drain_timeout` for queued and running tasks, discards
/// what is still queued (counted `discarded`), signals the stop_token of running tasks and joins the
/// workers; a running function is always waited for, since it cannot be killed. Never destroy a manager
/// from one of its own tasks, and keep it alive longer than every composition or cache that uses it.
///
/// \code
/// hitbox::OffloadManager offload{{.workers = 2, .max_queue = 256,
///                                 .timeout = hitbox::TimeoutPolicy::warn(std::chrono::seconds(2))}};
/// offload.spawn(hitbox::OffloadKind::revalidate, "user:42", [] { /* reload */ });
/// offload.wait_all(std::chrono::seconds(1));
/// \endcode
class OffloadManager {
public:
    /// Four workers, a queue of 1024, no timeout, a 5 s drain.
    OffloadManager() : OffloadManager(OffloadConfig{}) {}

    /// Starts the workers. Throws std::invalid_argument for an invalid configuration (use create() to get
    /// a hitbox::Error instead) and std::system_error when threads cannot be started.
    explicit OffloadManager(OffloadConfig config);

    /// Validates `config` and returns a config error instead of throwing.
    static Result<std::unique_ptr<OffloadManager>> create(OffloadConfig config);

    OffloadManager(const OffloadManager&) = delete;
    OffloadManager& operator=(const OffloadManager&) = delete;

    /// Stops accepting work and drains (see shutdown()).
    ~OffloadManager();

    /// Queues `task` under (kind, dedup_key) with the configured timeout (or `timeout`). Returns false
    /// when refused: a duplicate of pending work (counted deduplicated), the queue is full, the manager is
    /// shut down or the function is empty (counted rejected). An empty key is never deduplicated.
    bool spawn(OffloadKind kind, std::string dedup_key, std::function<void()> task,
               std::optional<TimeoutPolicy> timeout = std::nullopt);

    /// As above, for a task that watches its stop_token (signalled on a cancel-wait timeout and at
    /// shutdown) and can return early.
    bool spawn(OffloadKind kind, std::string dedup_key, std::function<void(std::stop_token)> task,
               std::optional<TimeoutPolicy> timeout = std::nullopt);

    /// Waits until no accepted task is queued or running (tasks abandoned by a cancel-wait timeout do not
    /// count); true when that happened within `timeout` (milliseconds::max(): no limit). Do not call it
    /// from one of this manager's tasks.
    bool wait_all(std::chrono::milliseconds timeout);
    /// The same for any duration type (`hours::max()`: no limit, like milliseconds::max()).
    template <class Rep, class Period>
    bool wait_all(std::chrono::duration<Rep, Period> timeout) {
        return wait_all(detail::saturating_ms(timeout));
    }

    /// Stops accepting work and drains as the destructor does (the destructor calls it); true when every
    /// task finished within `drain_timeout` (milliseconds::max(): no limit). Later calls return at once.
    bool shutdown(std::chrono::milliseconds drain_timeout);
    template <class Rep, class Period>
    bool shutdown(std::chrono::duration<Rep, Period> drain_timeout) {
        return shutdown(detail::saturating_ms(drain_timeout));
    }

    /// A snapshot of the counters.
    OffloadCounters counters() const;

    /// A snapshot of the task duration histograms by kind. Always kept: a task costs two clock reads more,
    /// on its worker, not on the caller that spawned it.
    OffloadDurations task_durations() const noexcept;

    /// Replaces the timeout callback (an empty function logs to std::clog).
    void set_timeout_callback(std::function<void(const OffloadTimeout&)> callback);

    /// The configuration it runs with.
    const OffloadConfig& config() const noexcept { return config_; }

private:
    struct Task {
        OffloadKind kind;
        std::string key;
        std::function<void(std::stop_token)> fn;
        TimeoutPolicy timeout;
        std::stop_source stop{};
        std::chrono::steady_clock::time_point deadline{};
        bool timed_out = false;
        bool abandoned = false;
    };

    /// An empty function is refused like a full queue.
    bool refuse_empty_();

    bool enqueue_(OffloadKind kind, std::string key, std::function<void(std::stop_token)> fn, TimeoutPolicy timeout);

    /// The task no longer holds its key or counts as active. Called with mutex_ held.
    void finish_(Task& t);

    void work_();

    void supervise_();

    OffloadConfig config_;
    mutable std::mutex mutex_;
    std::mutex shutdown_mutex_;
    std::condition_variable work_cv_;
    std::condition_variable idle_cv_;
    std::condition_variable supervisor_cv_;
    std::deque<std::unique_ptr<Task>> queue_;
    std::vector<Task*> running_;
    std::set<std::pair<OffloadKind, std::string>> pending_;
    OffloadCounters counters_;
    std::array<LatencyHistogram, offload_kind_count> durations_{};
    std::function<void(const OffloadTimeout&)> on_timeout_;
    bool stopping_ = false;
    bool exit_ = false;
    std::vector<std::thread> workers_;
    std::thread supervisor_;
};

static_assert(Offload<OffloadManager>);

}  // namespace hitbox

// The definitions: included here in a header-only build, compiled once into the hitbox library otherwise.
#if !HITBOX_COMPILED_LIB
#include <hitbox/offload/detail/offload_manager_impl.hpp>
#endif
