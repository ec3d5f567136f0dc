#pragma once
/// \file
/// A cheap "certainly not expired yet" test for the system clock. Reading the precise clock costs little
/// alone, but its rdtsc is ordered after every earlier load, so on a memory-bound hit path it stalls until
/// the lookup's cache misses complete (measured: about 160 ns per hit). The kernel's coarse clock is the
/// time of the last tick, read without rdtsc; it lags the precise clock by at most one tick. An entry
/// whose expiry is more than (two ticks + 10 ms) after the coarse time has certainly not expired, so only
/// entries that close to expiry pay for the precise clock, and expiry stays exact to the millisecond.

#include <cstdint>
#include <ctime>

namespace hitbox::detail {

#if defined(CLOCK_REALTIME_COARSE)

/// The margin in ms, or -1 when the coarse clock is unavailable (then callers use the precise clock).
inline std::int64_t coarse_clock_margin_ms() noexcept {
    static const std::int64_t margin = [] {
        timespec res{};
        if (clock_getres(CLOCK_REALTIME_COARSE, &res) != 0) return std::int64_t{-1};
        const std::int64_t tick_ms = res.tv_sec * 1000 + res.tv_nsec / 1'000'000 + 1;
        return tick_ms > 1000 ? std::int64_t{-1} : 2 * tick_ms + 10;
    }();
    return margin;
}

/// True when an entry expiring at `expire_ms` (Unix ms) has certainly not expired on the system clock.
inline bool certainly_before_expiry(std::int64_t expire_ms) noexcept {
    const std::int64_t margin = coarse_clock_margin_ms();
    if (margin < 0) return false;
    timespec now{};
    if (clock_gettime(CLOCK_REALTIME_COARSE, &now) != 0) return false;
    const std::int64_t coarse_ms = static_cast<std::int64_t>(now.tv_sec) * 1000 + now.tv_nsec / 1'000'000;
    return expire_ms - coarse_ms > margin;
}

#else

inline bool certainly_before_expiry(std::int64_t) noexcept { return false; }

#endif

}  // namespace hitbox::detail
