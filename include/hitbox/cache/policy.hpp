#pragma once
/// \file
/// How the cache front caches: hitbox::CachePolicy (per call: ttl, stale, StalePolicy, single-flight limits,
/// negative caching), hitbox::CacheOptions (per cache: the default policy and the error handler) and the
/// checks every call runs on its policy.
#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <string_view>

#include <sys/types.h>
#include <unistd.h>

#include <hitbox/cache/errors.hpp>
#include <hitbox/core/clock.hpp>

namespace hitbox {

/// What a call does with an entry past its stale time (and not yet expired).
enum class StalePolicy : std::uint8_t {
    Return,             ///< serve it as it is (status Stale); nothing is refreshed (default)
    Revalidate,         ///< treat it as a miss: load now (coalesced); if the load fails, serve the stale value
    OffloadRevalidate,  ///< serve it now (status Stale) and refresh it once in the background, per key
};

/// Stable lower-case name ("return", "revalidate", "offload_revalidate").
constexpr std::string_view to_string(StalePolicy p) noexcept {
    switch (p) {
        case StalePolicy::Return: return "return";
        case StalePolicy::Revalidate: return "revalidate";
        case StalePolicy::OffloadRevalidate: return "offload_revalidate";
    }
    return "unknown";
}

/// How one get_or_compute call caches. Fill it with designated initializers:
///
/// \code
/// {.ttl = 60s, .stale = 45s, .stale_policy = hitbox::StalePolicy::OffloadRevalidate}
/// \endcode
///
/// Checked on every call (a `config` error, the loader is not called): ttl > 0; 0 <= stale < ttl;
/// concurrency >= 1; waiter_timeout >= 0; negative_ttl > 0; 0 <= jitter < 1; fail_safe_max,
/// fail_safe_throttle, soft_timeout, hard_timeout, lock_ttl and lock_poll > 0; soft_timeout < hard_timeout;
/// lock_ttl only over a backend with a lock.
///
/// Durations saturate: `std::chrono::milliseconds::max()` means "no limit" for each of them, and so does
/// any duration that reaches past the range of hitbox::TimePoint (ttl, stale, negative_ttl) or of the
/// steady clock (waiter_timeout). Nothing overflows.
struct CachePolicy {
    /// Life of a written entry; nullopt: it never expires. A ttl whose expiry time lies past
    /// TimePoint::max() (milliseconds::max()) is the same as nullopt.
    std::optional<std::chrono::milliseconds> ttl{};
    /// Offset from the write after which the entry is stale; nullopt: never stale. Must be below ttl. One
    /// past TimePoint::max() (milliseconds::max() without a ttl) is the same as nullopt.
    std::optional<std::chrono::milliseconds> stale{};
    /// What to do with a stale entry.
    StalePolicy stale_policy = StalePolicy::Return;
    /// Loader calls allowed at once for one key in this process; further callers wait for one of them.
    std::size_t concurrency = 1;
    /// How long a caller waits for another caller's load before it loads itself; milliseconds::max():
    /// as long as the load takes.
    std::chrono::milliseconds waiter_timeout{5000};
    /// After a failed load, how many times the next attempt is handed to one waiting caller (the others
    /// keep waiting for its outcome); when they are used up the waiters get the last error.
    std::size_t retries = 1;
    /// Cache "not found" (a loader returning std::nullopt) for this long; nullopt: do not.
    /// milliseconds::max(): cached "not found" entries never expire.
    std::optional<std::chrono::milliseconds> negative_ttl{};
    /// Write cached "not found" entries to the first tier of a composition only (keep them out of L2).
    bool negative_l1_only = false;
    /// Spreads expiries: each written entry lives a random fraction up to `jitter` shorter than `ttl` (its
    /// stale time shortened in the same proportion), so keys written together do not expire, and reload,
    /// together. 0 (default): exactly ttl; 0.1: between 0.9 and 1.0 x ttl. Must be in [0, 1).
    double jitter = 0.0;

    /// Fail-safe: keep written entries this long past their expiry (Redis PX and the memory tier's bound
    /// include it; the envelope keeps the logical expiry). When a load fails (an error, an exception, or
    /// `hard_timeout`) and such an expired entry is held, the call serves it (status Stale,
    /// CacheResult::fail_safe, the loader's error in `error`) and caches it again for `fail_safe_throttle`,
    /// so the upstream is not called on every request while it is down. nullopt (default): off.
    std::optional<std::chrono::milliseconds> fail_safe_max{};
    /// How long a value served by fail-safe is cached again (never past its fail_safe_max). Must be > 0.
    std::chrono::milliseconds fail_safe_throttle{30'000};
    /// Soft loader timeout: past it, a call that holds a stale or fail-safe value serves that value and
    /// lets the load finish in the background (its result is cached when it arrives). max() (default):
    /// none.
    std::chrono::milliseconds soft_timeout = std::chrono::milliseconds::max();
    /// Hard loader timeout: past it the call returns whatever happens: a stale or fail-safe value if it
    /// holds one, else a `timeout` error; the load goes on in the background. max() (default): none.
    ///
    /// With either timeout the loader runs on a thread of its own and may outlive the call: it must own
    /// (capture by value) what it uses. Both are measured from when the call starts to load or wait. While
    /// a load runs past its timeout, later callers of the key wait for it (up to their own timeouts)
    /// instead of calling the loader again.
    std::chrono::milliseconds hard_timeout = std::chrono::milliseconds::max();

    /// Stampede lock across instances (opt-in; the backend must hold a lock: hitbox::LockingBackend, a Redis
    /// tier or a composition with one). The caller that loads a missed key in this process first takes a
    /// lock in the backend that expires after `lock_ttl` (so a crashed owner holds it no longer) and
    /// releases it once the value is written; a caller in another instance that finds the lock taken
    /// re-reads the key every `lock_poll` until the value is there, it gets the lock, or its waiter limit
    /// (waiter_timeout, or soft / hard timeout) passes: then it loads itself. nullopt (default): off.
    std::optional<std::chrono::milliseconds> lock_ttl{};
    /// How often a caller waiting for another instance's lock re-reads the key. Must be > 0.
    std::chrono::milliseconds lock_poll{20};
};

/// Cache-wide settings.
struct CacheOptions {
    /// The policy of get_or_compute calls that do not pass one.
    CachePolicy policy{};
    /// Called (on the calling or background thread) for every backend read / write error and every failed
    /// background refresh. Empty: one line to std::clog, at most one per second (the rest are counted in
    /// the line that follows). It must not throw; an exception it throws is swallowed.
    std::function<void(const CacheErrorEvent&)> on_error{};
    /// Loader threads of calls with a soft or hard timeout that may run at once, those that outlived their
    /// callers included (a hung database would otherwise grow one thread per key and call). At the limit a
    /// further such call does not call the loader: it answers as at its timeout, with a stale or fail-safe
    /// value it holds or a `timeout` error, counted in `loads_shed`. 0 counts as 1.
    std::size_t max_timed_loads = 256;
};

namespace detail {

/// The checks of policy_problem without building a message (the hit path runs them on every call).
constexpr bool policy_ok(const CachePolicy& p) noexcept {
    return (!p.ttl || p.ttl->count() > 0) && (!p.stale || p.stale->count() >= 0) &&
           (!p.stale || !p.ttl || *p.stale < *p.ttl) && p.concurrency != 0 && p.waiter_timeout.count() >= 0 &&
           (!p.negative_ttl || p.negative_ttl->count() > 0) && p.jitter >= 0.0 && p.jitter < 1.0 &&
           (!p.fail_safe_max || p.fail_safe_max->count() > 0) && p.fail_safe_throttle.count() > 0 &&
           p.soft_timeout.count() > 0 && p.hard_timeout.count() > 0 &&
           (p.soft_timeout < p.hard_timeout || p.soft_timeout == std::chrono::milliseconds::max() ||
            p.hard_timeout == std::chrono::milliseconds::max()) &&
           (!p.lock_ttl || p.lock_ttl->count() > 0) && p.lock_poll.count() > 0;
}

/// Why a policy is invalid, or nullopt.
inline std::optional<std::string> policy_problem(const CachePolicy& p) {
    auto ms = [](std::chrono::milliseconds d) { return std::to_string(d.count()) + " ms"; };
    if (p.ttl && p.ttl->count() <= 0) return "CachePolicy: ttl must be positive, got " + ms(*p.ttl);
    if (p.stale && p.stale->count() < 0) return "CachePolicy: stale must not be negative, got " + ms(*p.stale);
    if (p.stale && p.ttl && *p.stale >= *p.ttl)
        return "CachePolicy: stale (" + ms(*p.stale) + ") must be shorter than ttl (" + ms(*p.ttl) + ")";
    if (p.concurrency == 0) return std::string("CachePolicy: concurrency must be at least 1");
    if (p.waiter_timeout.count() < 0)
        return "CachePolicy: waiter_timeout must not be negative, got " + ms(p.waiter_timeout);
    if (p.negative_ttl && p.negative_ttl->count() <= 0)
        return "CachePolicy: negative_ttl must be positive, got " + ms(*p.negative_ttl);
    if (!(p.jitter >= 0.0 && p.jitter < 1.0))  // NaN fails too
        return "CachePolicy: jitter must be in [0, 1), got " + std::to_string(p.jitter);
    if (p.fail_safe_max && p.fail_safe_max->count() <= 0)
        return "CachePolicy: fail_safe_max must be positive, got " + ms(*p.fail_safe_max);
    if (p.fail_safe_throttle.count() <= 0)
        return "CachePolicy: fail_safe_throttle must be positive, got " + ms(p.fail_safe_throttle);
    if (p.soft_timeout.count() <= 0) return "CachePolicy: soft_timeout must be positive, got " + ms(p.soft_timeout);
    if (p.hard_timeout.count() <= 0) return "CachePolicy: hard_timeout must be positive, got " + ms(p.hard_timeout);
    if (p.soft_timeout >= p.hard_timeout && p.soft_timeout != std::chrono::milliseconds::max() &&
        p.hard_timeout != std::chrono::milliseconds::max())
        return "CachePolicy: soft_timeout (" + ms(p.soft_timeout) + ") must be shorter than hard_timeout (" +
               ms(p.hard_timeout) + ")";
    if (p.lock_ttl && p.lock_ttl->count() <= 0) return "CachePolicy: lock_ttl must be positive, got " + ms(*p.lock_ttl);
    if (p.lock_poll.count() <= 0) return "CachePolicy: lock_poll must be positive, got " + ms(p.lock_poll);
    if (!policy_ok(p)) return std::string("CachePolicy: invalid");
    return std::nullopt;
}

/// `now + d` as an expiry or stale time; nullopt ("never") when it reaches TimePoint::max(), as
/// milliseconds::max() does.
inline std::optional<TimePoint> time_after(TimePoint now, std::chrono::milliseconds d) noexcept {
    const TimePoint t = saturating_add(now, d);
    if (t == TimePoint::max()) return std::nullopt;
    return t;
}

/// The factor a jittered entry's life is multiplied by: uniform in (1 - jitter, 1]. Each thread draws from
/// its own generator, seeded once from std::random_device.
inline double jitter_factor(double jitter) noexcept {
    if (!(jitter > 0.0)) return 1.0;
    thread_local std::uint64_t state = [] {
        std::uint64_t seed = 0x9e3779b97f4a7c15ull;
        try {
            std::random_device rd;
            seed ^= (std::uint64_t{rd()} << 32) | rd();
        } catch (...) {  // no entropy source: the thread's address still tells threads apart
            seed ^= reinterpret_cast<std::uintptr_t>(&seed);
        }
        return seed | 1;
    }();
    state ^= state << 13;  // xorshift64
    state ^= state >> 7;
    state ^= state << 17;
    const double u = static_cast<double>(state >> 11) * (1.0 / 9007199254740992.0);  // [0, 1)
    return 1.0 - jitter * u;
}

/// A token that tells one lock owner from every other (this process's callers and other processes'): 32
/// hex digits from a per-thread generator seeded from std::random_device, the time, the thread and the
/// process. A child of fork() reseeds (the generator's state is copied into it, and siblings forked from
/// one parent would otherwise draw the same tokens as each other and as the parent).
inline std::string lock_token() {
    thread_local std::uint64_t state = 0;
    thread_local ::pid_t seeded_for = 0;
    if (const ::pid_t pid = ::getpid(); pid != seeded_for) {
        std::uint64_t seed = static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()) ^
                             (static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(&seed)) << 1) ^
                             (static_cast<std::uint64_t>(pid) * 0x9e3779b97f4a7c15ull);
        try {
            std::random_device rd;
            seed ^= (std::uint64_t{rd()} << 32) | rd();
        } catch (...) {
        }
        state ^= seed;
        seeded_for = pid;
    }
    auto next = [] {  // splitmix64
        std::uint64_t z = (state += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    };
    static constexpr char hex[] = "0123456789abcdef";
    std::string out(32, '0');
    for (int half = 0; half < 2; ++half) {
        std::uint64_t v = next();
        for (int i = 0; i < 16; ++i, v >>= 4) out[static_cast<std::size_t>(half * 16 + i)] = hex[v & 0xf];
    }
    return out;
}

/// `d` scaled by a factor in (0, 1], rounded down, at least 1 ms for a positive d.
inline std::chrono::milliseconds scaled(std::chrono::milliseconds d, double factor) noexcept {
    if (factor >= 1.0 || d.count() <= 0) return d;
    const auto ms = static_cast<std::int64_t>(static_cast<double>(d.count()) * factor);
    return std::chrono::milliseconds(std::max<std::int64_t>(ms, 1));
}

}  // namespace detail

}  // namespace hitbox
