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
