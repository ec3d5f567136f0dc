#pragma once
/// \file
/// Saturating time arithmetic for the Redis connection: any configured duration may be
/// `std::chrono::milliseconds::max()`, which means "no limit", so sums, doublings and deadlines clamp at
/// the largest representable value instead of overflowing.

#include <chrono>
#include <climits>
#include <ratio>

#include <hitbox/core/clock.hpp>

namespace hitbox::detail {

/// `a + b` for non-negative durations, clamped at milliseconds::max().
constexpr std::chrono::milliseconds saturating_sum(std::chrono::milliseconds a, std::chrono::milliseconds b) noexcept {
    using ms = std::chrono::milliseconds;
    return b > ms::max() - a ? ms::max() : a + b;
}

/// `2 * d` for a non-negative duration, clamped at milliseconds::max().
constexpr std::chrono::milliseconds saturating_twice(std::chrono::milliseconds d) noexcept {
    return saturating_sum(d, d);
}

/// Milliseconds from `now` to `deadline` for poll / epoll_wait: 0 when it passed, at most INT_MAX.
inline int clamp_ms(std::chrono::steady_clock::time_point now,
                    std::chrono::steady_clock::time_point deadline) noexcept {
    if (deadline <= now) return 0;
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - now).count();
    return left > INT_MAX ? INT_MAX : static_cast<int>(left);
}

/// A duration as an int count of milliseconds for poll / epoll_wait, at most INT_MAX.
constexpr int clamp_ms(std::chrono::milliseconds d) noexcept {
    return d.count() > INT_MAX ? INT_MAX : d.count() < 0 ? 0 : static_cast<int>(d.count());
}

}  // namespace hitbox::detail

namespace hitbox::detail {

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
    }
    return std::chrono::ceil<ms>(d);
}

}  // namespace hitbox::detail
