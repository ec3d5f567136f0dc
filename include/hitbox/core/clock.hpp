#pragma once
/// \file
/// Time for the cache: millisecond time points and the clock policies (system and manual).

#include <atomic>
#include <chrono>
#include <concepts>
#include <cstdint>
#include <memory>
#include <ratio>
#include <type_traits>

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

namespace detail {

/// `d` in the finer-or-equal duration `To`, clamped to To's range instead of overflowing (a
/// `milliseconds::max()` in nanoseconds is `nanoseconds::max()`).
template <class To, class Rep, class Period>
constexpr To saturating_duration_cast(std::chrono::duration<Rep, Period> d) noexcept {
    using From = std::chrono::duration<Rep, Period>;
    static_assert(std::is_same_v<std::common_type_t<To, From>, To>,
                  "saturating_duration_cast: To must be at least as fine as the source duration");
    // To's bounds in the source unit: a division, which cannot overflow.
    constexpr From hi = std::chrono::duration_cast<From>(To::max());
    constexpr From lo = std::chrono::duration_cast<From>(To::min());
    if (d > hi) return To::max();
    if (d < lo) return To::min();
    return To(d);
}

/// Any duration rounded up to whole milliseconds, clamped at milliseconds::max() (so `hours::max()` or
/// `seconds::max()` means "no limit" like milliseconds::max(), instead of overflowing in the conversion).
/// A floating-point count is clamped before it is converted (max() of any period, infinity and NaN give
/// milliseconds::max(), a huge negative one milliseconds::min()): converting it as is would be undefined.
template <class Rep, class Period>
constexpr std::chrono::milliseconds saturating_ms(std::chrono::duration<Rep, Period> d) noexcept {
    using ms = std::chrono::milliseconds;
    using D = std::chrono::duration<Rep, Period>;
    if constexpr (std::chrono::treat_as_floating_point_v<Rep>) {
        const long double v = std::chrono::duration<long double, std::milli>(d).count();
        if (!(v < static_cast<long double>(ms::max().count()))) return ms::max();  // NaN too
        if (!(v > static_cast<long double>(ms::min().count()))) return ms::min();
        const auto whole = static_cast<ms::rep>(v);  // toward zero, in range
        return ms(static_cast<long double>(whole) < v ? whole + 1 : whole);
    } else if constexpr (std::ratio_greater<Period, std::milli>::value) {
        // Coarser than ms: the largest d that fits, converted the safe way (ms -> D divides).
        if (d >= std::chrono::duration_cast<D>(ms::max())) return ms::max();
        if constexpr (std::is_signed_v<Rep>)
            if (d <= std::chrono::duration_cast<D>(ms::min())) return ms::min();
    }
    return std::chrono::ceil<ms>(d);
}

/// `t + d` clamped to the time point's range: where the sum would overflow, the time point's max() (or
/// min() for a negative `d`). Deadlines and expiry times built with it never wrap; a result equal to
/// max() means "never".
template <class Clock, class Dur, class Rep, class Period>
constexpr auto saturating_add(std::chrono::time_point<Clock, Dur> t, std::chrono::duration<Rep, Period> d) noexcept {
    using Common = std::common_type_t<Dur, std::chrono::duration<Rep, Period>>;
    using Point = std::chrono::time_point<Clock, Common>;
    const Common base = saturating_duration_cast<Common>(t.time_since_epoch());
    const Common step = saturating_duration_cast<Common>(d);
    if (step > Common::zero() && base > Common::max() - step) return Point(Common::max());
    if (step < Common::zero() && base < Common::min() - step) return Point(Common::min());
    return Point(base + step);
}

/// `a - b` clamped to the duration's range (two far-apart time points, e.g. a decoded expiry against now).
template <class Clock, class Dur>
constexpr Dur saturating_sub(std::chrono::time_point<Clock, Dur> a, std::chrono::time_point<Clock, Dur> b) noexcept {
    const Dur x = a.time_since_epoch(), y = b.time_since_epoch();
    if (y < Dur::zero() && x > Dur::max() + y) return Dur::max();
    if (y > Dur::zero() && x < Dur::min() + y) return Dur::min();
    return x - y;
}

/// The steady-clock deadline `d` from now, saturated: `steady_clock::time_point::max()` (wait without
/// limit) when `d` reaches past the clock's range, as `milliseconds::max()` does.
template <class Rep, class Period>
inline std::chrono::steady_clock::time_point deadline_after(std::chrono::duration<Rep, Period> d) noexcept {
    return std::chrono::time_point_cast<std::chrono::steady_clock::duration>(saturating_add(
        std::chrono::steady_clock::now(), saturating_duration_cast<std::chrono::steady_clock::duration>(d)));
}

/// `from + d` (d >= 0) as a steady-clock deadline, clamped at the clock's last time point: a deadline
/// that never comes for milliseconds::max().
inline std::chrono::steady_clock::time_point deadline_after(std::chrono::steady_clock::time_point from,
                                                            std::chrono::milliseconds d) noexcept {
    return std::chrono::time_point_cast<std::chrono::steady_clock::duration>(saturating_add(from, d));
}

/// `cv.wait_until(lock, deadline, pred)`, or `cv.wait(lock, pred)` for the saturated deadline
/// `steady_clock::time_point::max()` (no limit). True when `pred` holds.
template <class Cv, class Lock, class Pred>
bool wait_until_deadline(Cv& cv, Lock& lock, std::chrono::steady_clock::time_point deadline, Pred pred) {
    if (deadline == std::chrono::steady_clock::time_point::max()) {
        cv.wait(lock, pred);
        return true;
    }
    return cv.wait_until(lock, deadline, pred);
}

}  // namespace detail

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
