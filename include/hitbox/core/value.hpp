#pragma once
/// \file
/// hitbox::CacheValue<T>: a value with its created / stale / expire times.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>
#include <type_traits>
#include <utility>

#include <hitbox/core/clock.hpp>

namespace hitbox {

/// Freshness of an entry at a given time.
enum class EntryState : std::uint8_t {
    Fresh,    ///< before its stale time (or it has none) and not expired
    Stale,    ///< at or after its stale time, not yet expired: servable while it is refreshed
    Expired,  ///< at or after its expire time: never served
};

/// Stable lower-case name ("fresh", "stale", "expired").
constexpr std::string_view to_string(EntryState s) noexcept {
    switch (s) {
        case EntryState::Fresh: return "fresh";
        case EntryState::Stale: return "stale";
        case EntryState::Expired: return "expired";
    }
    return "unknown";
}

namespace detail {
/// CacheValue::held_until for bare times (tiers that read only an envelope header).
constexpr std::optional<TimePoint> held_until(std::optional<TimePoint> expire,
                                              std::optional<TimePoint> retain) noexcept {
    if (!expire) return std::nullopt;
    if (retain && *retain > *expire) return retain;
    return expire;
}
}  // namespace detail

/// A cached value with absolute, millisecond-precision times. `expire == std::nullopt` means "never
/// expires", which is a different state from an expire time in the past.
///
/// \code
/// hitbox::CacheValue<User> v{user, hitbox::Clock::now() + 60s};               // expires in 60 s
/// hitbox::CacheValue<User> w{user, now + 60s, /*stale*/ now + 45s, /*created*/ now};
/// \endcode
namespace detail {
/// What CacheValue's constructors check of T (see there).
template <class T>
inline constexpr bool nothrow_movable = std::is_nothrow_move_constructible_v<T>&& std::is_nothrow_move_assignable_v<T>;
}  // namespace detail

#define HITBOX_VALUE_MOVE_MESSAGE                                                                             \
    "hitbox: a cached value type needs a move constructor and a move assignment that do not throw; declare "  \
    "T(T&&) noexcept and T& operator=(T&&) noexcept (a user-declared copy operation or destructor hides the " \
    "implicit ones), or cache a std::shared_ptr<const T>"

template <class T>
struct CacheValue {
    T data{};
    TimePoint created{};
    std::optional<TimePoint> stale{};
    std::optional<TimePoint> expire{};
    /// Fail-safe retention: when set (and later than `expire`), tiers keep the entry and return it until
    /// this time although it has expired; state() still says Expired, so only a reader that asks for
    /// expired entries (the cache front's fail-safe) serves it. nullopt: the entry goes at `expire`.
    std::optional<TimePoint> retain{};

    // Values travel inside Result (tl::expected), whose moves are noexcept: a move of T that threw there
    // would end the process. Copies may throw; every copy hitbox makes is guarded (doc/limits.md). The check
    // is in the constructors, so that the class itself stays whole and the assertion is the only error.
    CacheValue() noexcept(std::is_nothrow_default_constructible_v<T>) {
        static_assert(detail::nothrow_movable<T>, HITBOX_VALUE_MOVE_MESSAGE);
    }
    /// `created` defaults to the system clock's now; pass it explicitly when using another clock.
    explicit CacheValue(T value, std::optional<TimePoint> expire_at = std::nullopt,
                        std::optional<TimePoint> stale_at = std::nullopt, TimePoint created_at = SystemClock::now(),
                        std::optional<TimePoint> retain_until = std::nullopt)
        : data(std::move(value)), created(created_at), stale(stale_at), expire(expire_at), retain(retain_until) {
        static_assert(detail::nothrow_movable<T>, HITBOX_VALUE_MOVE_MESSAGE);
    }

    /// Fresh, Stale or Expired at `now`. Expiry wins over staleness.
    EntryState state(TimePoint now) const noexcept {
        if (expire && *expire <= now) return EntryState::Expired;
        if (stale && *stale <= now) return EntryState::Stale;
        return EntryState::Fresh;
    }

    /// How long a tier holds the entry: `retain` when it lies past `expire`, else `expire` (nullopt: for
    /// ever). The TTL a byte tier stores and the time a memory tier drops the entry at.
    std::optional<TimePoint> held_until() const noexcept { return detail::held_until(expire, retain); }

    /// True when a tier may return this entry at `now` (not past held_until()).
    bool held_at(TimePoint now) const noexcept {
        const auto until = held_until();
        return !until || now < *until;
    }

    /// True when the entry has expired at `now` but a tier still holds it for fail-safe (`retain`).
    bool kept_past_expiry(TimePoint now) const noexcept { return retain && state(now) == EntryState::Expired; }

    /// Time left before expiry at `now`: nullopt when the value never expires, zero or negative once expired.
    /// Saturates at milliseconds::max() / min() for an expiry too far from `now` to subtract (a decoded
    /// entry may carry any time).
    std::optional<std::chrono::milliseconds> ttl(TimePoint now) const noexcept {
        if (!expire) return std::nullopt;
        return detail::saturating_sub(*expire, now);
    }

    /// The same times with other data (used when a tier converts representations).
    template <class U>
    CacheValue<U> with_data(U value) const {
        return CacheValue<U>(std::move(value), expire, stale, created, retain);
    }

    friend bool operator==(const CacheValue&, const CacheValue&) = default;
};

#undef HITBOX_VALUE_MOVE_MESSAGE

}  // namespace hitbox
