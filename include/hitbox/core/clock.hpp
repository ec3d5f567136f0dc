#pragma once
/// \file
/// Time for the cache: millisecond time points and the clock policies (system and manual).

#include <atomic>
#include <chrono>
#include <concepts>
#include <cstdint>
#include <memory>

namespace hitbox {

/// Millisecond-precision wall-clock time point: the unit of every created/stale/expire time in hitbox.
using TimePoint = std::chrono::time_point<std::chrono::system_clock, std::chrono::milliseconds>;

/// Truncates any system_clock time point to millisecond precision.
template <class Duration>
constexpr TimePoint to_time_point(std::chrono::time_point<std::chrono::system_clock, Duration> t) {
    return std::chrono::floor<std::chrono::milliseconds>(t);
}

/// Milliseconds since the Unix epoch, as stored in the Redis envelope.
constexpr std::int64_t to_unix_ms(TimePoint t) noexcept { return t.time_since_epoch().count(); }
constexpr TimePoint from_unix_ms(std::int64_t ms) noexcept { return TimePoint(std::chrono::milliseconds(ms)); }

/// A clock policy: anything with `now()` returning a TimePoint. Copies of a clock must observe the same
/// time (a ManualClock shares its state).
template <class C>
concept ClockSource = std::copy_constructible<C> && requires(const C& c) {
    { c.now() } -> std::same_as<TimePoint>;
};

/// The default clock: the system wall clock, truncated to milliseconds.
struct SystemClock {
    static TimePoint now() noexcept { return to_time_point(std::chrono::system_clock::now()); }
};

/// Alias used in user code: `hitbox::Clock::now() + 60s`.
using Clock = SystemClock;

/// A clock that only moves when told to: tests advance time instead of sleeping. Copies share one time.
///
/// \code
/// hitbox::ManualClock clock;           // starts at 2024-01-01T00:00:00Z
/// clock.advance(std::chrono::seconds(61));
/// \endcode
class ManualClock {
public:
    /// Starts at 2024-01-01T00:00:00Z, or at `start`.
    ManualClock() : ManualClock(from_unix_ms(1'704'067'200'000)) {}
    explicit ManualClock(TimePoint start) : now_ms_(std::make_shared<std::atomic<std::int64_t>>(to_unix_ms(start))) {}

    /// The current time; set() jumps to `t`, advance() moves forward by `d` (seen by every copy).
    TimePoint now() const noexcept { return from_unix_ms(now_ms_->load(std::memory_order_acquire)); }
    void set(TimePoint t) noexcept { now_ms_->store(to_unix_ms(t), std::memory_order_release); }
    void advance(std::chrono::milliseconds d) noexcept { now_ms_->fetch_add(d.count(), std::memory_order_acq_rel); }

private:
    std::shared_ptr<std::atomic<std::int64_t>> now_ms_;
};

static_assert(ClockSource<SystemClock>);
static_assert(ClockSource<ManualClock>);

}  // namespace hitbox
