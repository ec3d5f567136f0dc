#pragma once
/// \file
/// hitbox::Cache: the get_or_compute front. "Give me this value, computing it at most once when it is
/// missing": TTL, stale-while-revalidate, in-process stampede protection (single-flight with a waiter
/// timeout, a per-key concurrency limit and bounded retries after a failed load), fail-open on backend
/// errors, negative caching and metrics. Also hitbox::memoize (hitbox/cache/memoize.hpp) and the
/// Prometheus rendering of a cache with its tiers and offload.

#include <atomic>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

#include <hitbox/cache/detail/flight.hpp>
#include <hitbox/compose/compose.hpp>
#include <hitbox/compose/detail/fork.hpp>
#include <hitbox/compose/lookup.hpp>
#include <hitbox/core/clock.hpp>
#include <hitbox/core/concepts.hpp>
#include <hitbox/core/error.hpp>
#include <hitbox/core/key.hpp>
#include <hitbox/core/metrics.hpp>
#include <hitbox/core/stats.hpp>
#include <hitbox/core/value.hpp>
#include <hitbox/key_format/bitcode.hpp>
#include <hitbox/key_format/url_encoded.hpp>

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
/// concurrency >= 1; waiter_timeout >= 0; negative_ttl > 0.
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
};

/// The answer of get_or_compute. Result-like: `if (r) use(*r);` tests for a value.
///
/// | outcome | value | status | source | error |
/// |---|---|---|---|---|
/// | fresh entry | the value | Hit | tier label path ("cache.memory") | nullopt |
/// | cached "not found" | nullopt | Hit | tier label path | nullopt |
/// | stale entry served | the value | Stale | tier label path | nullopt |
/// | loaded | the value | Miss | "upstream" | nullopt |
/// | loader said not found | nullopt | Miss | "upstream" | nullopt |
/// | load failed | nullopt | Miss | "upstream" | the loader's error (an exception: kind unavailable, backend "upstream") |
/// | load failed, stale entry held (Revalidate) | the stale value | Stale | tier label path | the loader's error |
/// | invalid policy | nullopt | Miss | "" | kind config |
/// | a value's copy threw (handing it to this caller) | nullopt | Miss | "" | kind unavailable, message "... threw: ..." |
///
/// Backend errors never make a call fail (fail-open): they are listed in `backend_errors`, counted and
/// reported to the cache's error handler. A tier (or its weigher, or the value's copy into it) that
/// throws is such an error too: kind unavailable, message "read threw: ..." or "write threw: ...",
/// attributed to the backend.
template <class T>
struct CacheResult {
    /// The value; nullopt when not found, or when the load failed and nothing stale was held.
    std::optional<T> value;
    CacheStatus status = CacheStatus::Miss;
    /// Label path of the tier that answered ("cache.memory"), or "upstream" when the loader did (or
    /// failed). A view of a string the cache owns: valid while the cache exists.
    std::string_view source;
    /// Why no value could be produced (the loader's error), or a config error for an invalid policy.
    std::optional<Error> error;
    /// Backend read and write errors this call survived, each attributed to its tier's label path.
    std::vector<Error> backend_errors;

    /// No error: a value, or a clean "not found".
    bool ok() const noexcept { return !error.has_value(); }
    /// A value is present.
    bool found() const noexcept { return value.has_value(); }
    explicit operator bool() const noexcept { return value.has_value(); }
    T& operator*() & { return *value; }
    const T& operator*() const& { return *value; }
    T&& operator*() && { return std::move(*value); }
    T* operator->() { return &*value; }
    const T* operator->() const { return &*value; }
};

/// The operation a backend or loader error happened in.
enum class CacheOp : std::uint8_t {
    read,        ///< reading a tier (treated as a miss)
    write,       ///< writing a loaded value or a "not found" (the value is still served)
    revalidate,  ///< a background refresh whose loader failed (the stale entry stays)
};

/// Stable lower-case name ("read", "write", "revalidate").
constexpr std::string_view to_string(CacheOp op) noexcept {
    switch (op) {
        case CacheOp::read: return "read";
        case CacheOp::write: return "write";
        case CacheOp::revalidate: return "revalidate";
    }
    return "unknown";
}

/// What the error handler is told. The references are valid during the call only.
struct CacheErrorEvent {
    CacheOp op;
    const CacheKey& key;
    const Error& error;
};

/// Cache-wide settings.
struct CacheOptions {
    /// The policy of get_or_compute calls that do not pass one.
    CachePolicy policy{};
    /// Called (on the calling or background thread) for every backend read / write error and every failed
    /// background refresh. Empty: one line to std::clog, at most one per second (the rest are counted in
    /// the line that follows). It must not throw; an exception it throws is swallowed.
    std::function<void(const CacheErrorEvent&)> on_error{};
};

/// Errors of one tier, as the cache front saw them.
struct TierErrors {
    std::string backend;  ///< label path
    std::uint64_t read_errors = 0;
    std::uint64_t write_errors = 0;

    friend bool operator==(const TierErrors&, const TierErrors&) = default;
};

/// A snapshot of a cache front's own counters: rare events, counted whatever the metrics policy.
struct CacheStats {
    std::uint64_t loads = 0;                  ///< loader calls, foreground and background
    std::uint64_t load_errors = 0;            ///< loader calls that returned an error or threw
    std::uint64_t coalesced = 0;              ///< callers that took the outcome of another caller's load
    std::uint64_t waiter_timeouts = 0;        ///< waiters that stopped waiting and loaded themselves
    std::uint64_t retries = 0;                ///< failed loads handed to one waiter to retry
    std::uint64_t read_errors = 0;            ///< backend read errors survived (each a miss)
    std::uint64_t write_errors = 0;           ///< backend write errors (each reported to the error handler)
    std::uint64_t negative_hits = 0;          ///< calls answered by a cached "not found"
    std::uint64_t stale_if_error = 0;         ///< stale values served because their reload failed
    std::uint64_t revalidations = 0;          ///< background refreshes the offload accepted
    std::uint64_t revalidations_dropped = 0;  ///< background refreshes the offload refused (duplicate, full, off)
    std::uint64_t revalidations_skipped = 0;  ///< accepted refreshes that found the entry fresh or a load running
    std::uint64_t revalidations_done = 0;     ///< accepted refreshes whose load finished (ok or not)
    std::uint64_t waiting = 0;                ///< gauge: callers waiting for another caller's load now
    std::vector<TierErrors> tiers;            ///< read / write errors per tier label path
};

namespace detail {

/// Tag for "deduce the value type from the loader".
struct DeduceValue {};

template <class R>
struct loader_value {
    using type = R;
};
template <class U>
struct loader_value<std::optional<U>> {
    using type = U;
};
template <class U>
struct loader_value<Result<U>> {
    using type = typename loader_value<U>::type;
};

template <class T, class F>
using cache_value_t = std::conditional_t<std::is_same_v<T, DeduceValue>,
                                         typename loader_value<std::remove_cvref_t<std::invoke_result_t<F&>>>::type, T>;

template <class R, class V>
inline constexpr bool loader_returns =
    std::is_same_v<R, Result<std::optional<V>>> || std::is_same_v<R, Result<V>> ||
    std::is_same_v<R, std::optional<V>> || std::is_convertible_v<R, V>;

/// A loader for values of type V: callable with no arguments, returning V (or something convertible),
/// std::optional<V>, Result<V> or Result<std::optional<V>>.
template <class F, class V>
concept LoaderFor = std::invocable<F&> && loader_returns<std::remove_cvref_t<std::invoke_result_t<F&>>, V>;

inline Error upstream_error(Error e) { return e.backend().empty() ? e.in("upstream") : e; }

/// A loader's answer in one shape: a value, std::nullopt (not found), or an error.
template <class V, class R>
Result<std::optional<V>> to_outcome(R&& r) {
    using D = std::remove_cvref_t<R>;
    if constexpr (std::is_same_v<D, Result<std::optional<V>>>) {
        if (!r) return fail(upstream_error(r.error()));
        return std::move(*r);
    } else if constexpr (std::is_same_v<D, Result<V>>) {
        if (!r) return fail(upstream_error(r.error()));
        return std::optional<V>(std::move(*r));
    } else if constexpr (std::is_same_v<D, std::optional<V>>) {
        return std::forward<R>(r);
    } else {
        return std::optional<V>(V(std::forward<R>(r)));
    }
}

/// Calls the loader; an exception becomes an `unavailable` error from "upstream".
template <class V, class F>
Result<std::optional<V>> call_loader(F& loader) noexcept {
    try {
        return to_outcome<V>(std::invoke(loader));
    } catch (const std::exception& e) {
        return fail(ErrorKind::unavailable, std::string("loader threw: ") + e.what(), "upstream");
    } catch (...) {
        return fail(ErrorKind::unavailable, "loader threw an exception that is not a std::exception", "upstream");
    }
}

/// `now + d` as an expiry or stale time; nullopt ("never") when it reaches TimePoint::max(), as
/// milliseconds::max() does.
inline std::optional<TimePoint> time_after(TimePoint now, std::chrono::milliseconds d) noexcept {
    const TimePoint t = saturating_add(now, d);
    if (t == TimePoint::max()) return std::nullopt;
    return t;
}

/// Finishes the flight a caller leads when an exception leaves its load before it published anything:
/// the failure is handed to a waiter or, past the retries, the waiters are told to load on their own
/// (a null outcome). So no key stays in flight and nobody waits for a load that will never finish.
class LeadGuard {
public:
    LeadGuard(FlightTable& table, const CacheKey& key, std::shared_ptr<Flight> flight, std::size_t retries) noexcept
        : table_(table), key_(key), flight_(std::move(flight)), retries_(retries) {}
    LeadGuard(const LeadGuard&) = delete;
    LeadGuard& operator=(const LeadGuard&) = delete;
    ~LeadGuard() {
        if (flight_) table_.finish(key_, flight_, nullptr, false, retries_);
    }

    /// Publishes the outcome of the load (see FlightTable::finish); the guard has nothing left to do.
    void finish(std::shared_ptr<const void> outcome, bool ok) {
        auto flight = std::move(flight_);
        table_.finish(key_, flight, std::move(outcome), ok, retries_);
    }

private:
    FlightTable& table_;
    const CacheKey& key_;
    std::shared_ptr<Flight> flight_;
    std::size_t retries_;
};

/// A load outcome as the flight publishes it to waiters.
template <class V>
struct Loaded {
    Result<std::optional<V>> result;
    CacheStatus status = CacheStatus::Miss;
    std::string_view source;  // a path the cache owns, or upstream_source
};

/// The checks of policy_problem without building a message (the hit path runs them on every call).
constexpr bool policy_ok(const CachePolicy& p) noexcept {
    return (!p.ttl || p.ttl->count() > 0) && (!p.stale || p.stale->count() >= 0) &&
           (!p.stale || !p.ttl || *p.stale < *p.ttl) && p.concurrency != 0 && p.waiter_timeout.count() >= 0 &&
           (!p.negative_ttl || p.negative_ttl->count() > 0);
}

/// Why a policy is invalid, or nullopt.
inline std::optional<std::string> policy_problem(const CachePolicy& p) {
    auto ms = [](std::chrono::milliseconds d) { return std::to_string(d.count()) + " ms"; };
    if (p.ttl && p.ttl->count() <= 0) return "CachePolicy: ttl must be positive, got " + ms(*p.ttl);
    if (p.stale && p.stale->count() < 0) return "CachePolicy: stale must not be negative, got " + ms(*p.stale);
    if (p.stale && p.ttl && *p.stale >= *p.ttl)
        return "CachePolicy: stale (" + ms(*p.stale) + ") must be shorter than ttl (" + ms(*p.ttl) + ")";
    if (p.concurrency == 0) return std::string("CachePolicy: concurrency must be at least 1");
    if (p.waiter_timeout.count() < 0) return "CachePolicy: waiter_timeout must not be negative, got " + ms(p.waiter_timeout);
    if (p.negative_ttl && p.negative_ttl->count() <= 0)
        return "CachePolicy: negative_ttl must be positive, got " + ms(*p.negative_ttl);
    if (!policy_ok(p)) return std::string("CachePolicy: invalid");
    return std::nullopt;
}

/// The source of an answer that came from the loader.
inline constexpr std::string_view upstream_source = "upstream";

/// The default error handler: one line to std::clog per second at most; the lines skipped are counted.
inline void log_cache_error(const CacheErrorEvent& e) {
    static std::atomic<std::int64_t> next_ms{0};
    static std::atomic<std::uint64_t> skipped{0};
    const std::int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                                 std::chrono::steady_clock::now().time_since_epoch())
                                 .count();
    std::int64_t next = next_ms.load(std::memory_order_relaxed);
    if (now < next || !next_ms.compare_exchange_strong(next, now + 1000, std::memory_order_relaxed)) {
        skipped.fetch_add(1, std::memory_order_relaxed);
        return;
    }
    std::string key = UrlEncoded{}.encode(e.key);
    if (key.size() > 120) key = key.substr(0, 120) + "...";
    std::string line = "hitbox cache: " + std::string(to_string(e.op)) + " failed for key " + key + ": " + e.error.what();
    if (auto n = skipped.exchange(0, std::memory_order_relaxed))
        line += " (" + std::to_string(n) + " more cache errors not shown)";
    std::clog << line << '\n';
}

/// The suffix part that marks the key of a cached "not found".
inline constexpr std::string_view negative_part = "hitbox.not_found";
/// The value stored under it.
inline constexpr std::string_view negative_marker = "hitbox:not-found";

/// The live counters behind CacheStats.
struct CacheCounters {
    std::atomic<std::uint64_t> loads{0}, load_errors{0}, coalesced{0}, waiter_timeouts{0}, retries{0},
        read_errors{0}, write_errors{0}, negative_hits{0}, stale_if_error{0}, revalidations{0},
        revalidations_dropped{0}, revalidations_skipped{0}, revalidations_done{0}, waiting{0};

    static void bump(std::atomic<std::uint64_t>& c) noexcept { c.fetch_add(1, std::memory_order_relaxed); }
};

/// What a cache shares with its background refreshes: the lifetime gate, the flights and the counters.
struct CacheShared {
    Gate gate;
    FlightTable flights;
    CacheCounters counters;
    std::mutex tier_mutex;
    std::vector<TierErrors> tier_errors;
    std::deque<std::string> interned;  // label paths that are not leaf tier paths (stable addresses)
    std::uint64_t id;

    CacheShared() : id(next_id()) {}

    static std::uint64_t next_id() noexcept {
        static std::atomic<std::uint64_t> counter{0};
        return counter.fetch_add(1, std::memory_order_relaxed) + 1;
    }

    /// A view of `path` that lives as long as this state.
    std::string_view intern(std::string_view path) {
        std::lock_guard lock(tier_mutex);
        for (const auto& p : interned)
            if (p == path) return p;
        return interned.emplace_back(path);
    }

    void count_tier_error(const std::string& backend, bool write) {
        std::lock_guard lock(tier_mutex);
        for (auto& t : tier_errors)
            if (t.backend == backend) {
                ++(write ? t.write_errors : t.read_errors);
                return;
            }
        tier_errors.push_back(TierErrors{backend, write ? 0u : 1u, write ? 1u : 0u});
    }

    CacheStats snapshot() {
        auto r = [](const std::atomic<std::uint64_t>& c) { return c.load(std::memory_order_relaxed); };
        const auto& c = counters;
        CacheStats s{r(c.loads),          r(c.load_errors),         r(c.coalesced),
                     r(c.waiter_timeouts), r(c.retries),             r(c.read_errors),
                     r(c.write_errors),   r(c.negative_hits),       r(c.stale_if_error),
                     r(c.revalidations),  r(c.revalidations_dropped), r(c.revalidations_skipped),
                     r(c.revalidations_done), r(c.waiting),         {}};
        std::lock_guard lock(tier_mutex);
        s.tiers = tier_errors;
        return s;
    }
};

/// The tier can hand its entry to a function in place (MemoryBackend::read_with).
template <class B, class V>
concept reads_in_place = requires(const B& b, const CacheKey& k, void (*f)(const CacheValue<V>&)) {
    { b.template read_with<V>(k, f) } -> std::same_as<Result<bool>>;
};

/// A backend that is not a Compose but traces its own reads (an AnyBackend over a composition): the cache
/// reads it with lookup<V>, so answers name the inner tier ("cache.redis").
template <class B, class V>
concept traced_backend = requires(B& b, const CacheKey& k) {
    { b.template lookup<V>(k) } -> std::same_as<Result<Lookup<V>>>;
};

/// Calls `f(path, tier)` for every level of a backend, outermost first: each composition level and each
/// leaf tier, with the label path its answers carry ("cache", "cache.memory", ...).
template <class Tier, class F>
void visit_tiers(Tier& tier, std::string_view prefix, F& f) {
    if constexpr (requires { tier.tier_paths(); }) {  // an erased backend lists its own leaf tiers
        for (const auto& p : tier.tier_paths()) {
            const std::string leaf = join_path(prefix, p);
            f(std::string_view(leaf), tier);
        }
        return;
    }
    const std::string path = join_path(prefix, tier.label());
    f(std::string_view(path), tier);
    if constexpr (is_compose<std::remove_cv_t<Tier>>) {
        visit_tiers(tier.l1(), path, f);
        visit_tiers(tier.l2(), path, f);
    }
}

/// Stats snapshots of the levels of tiered backends, by label path: a level at a path already held, with
/// stats of the same CounterStruct type, is added to it (the unlabelled inner levels of a fold share their
/// parent's path); written in the order the paths were first seen.
class LevelStats {
public:
    template <class S>
    void add(std::string_view path, const S& stats) {
        if constexpr (CounterStruct<S>) {
            for (auto& level : levels_)
                if (level.path == path && *level.type == typeid(S)) {
                    add_counters(*static_cast<S*>(level.stats.get()), stats);
                    return;
                }
        }
        levels_.push_back(Level{std::string(path), &typeid(S), std::make_shared<S>(stats),
                                [](PrometheusWriter& out, std::string_view p, const void* s) {
                                    write_backend_stats(out, p, *static_cast<const S*>(s));
                                }});
    }

    void write(PrometheusWriter& out) const {
        for (const auto& level : levels_) level.write(out, level.path, level.stats.get());
    }

private:
    struct Level {
        std::string path;
        const std::type_info* type;
        std::shared_ptr<void> stats;
        void (*write)(PrometheusWriter&, std::string_view, const void*);
    };
    std::vector<Level> levels_;
};

template <class B>
struct cache_backend_holder {
    using type = B;
    using backend_type = tier_t<B>;
    static backend_type& get(B& b) noexcept { return tier_traits<B>::get(b); }
    static const backend_type& get(const B& b) noexcept { return tier_traits<B>::get(b); }
};
template <class B>
struct cache_backend_holder<B&> {
    using type = B*;
    using backend_type = B;
    static B& get(B* b) noexcept { return *b; }
};

}  // namespace detail

/// The get_or_compute front over any Backend (a tier or a composition) and an Offload. Policies: the
/// metrics policy (NoMetrics by default: no cost; CountingMetrics) and the clock (SystemClock; the tiers
/// should use the same clock, e.g. BasicMemoryBackend<ManualClock> with a ManualClock in tests).
///
/// - **Hits** of L1 (a leaf backend, or a sequential composition over a leaf L1) cost the L1 get plus a
///   few checks; other reads use the traced `lookup` (which tier answered). Entries with a stale time
///   cost one clock read. No lock, no shared write with NoMetrics.
/// - **Misses** are coalesced per key in this process: the first caller loads, later callers wait (at most
///   `waiter_timeout`, then they load too) and get its outcome; up to `concurrency` loads run at once. A
///   failed load is retried by one waiter (`retries` times), the others wait for that retry. The loaded
///   value is written to the backend before the waiters are woken, so a caller arriving later reads it.
/// - **Fail-open**: a backend read error is a miss; a write error is counted and reported to the error
///   handler while the loaded value is served. Neither is thrown; both are listed in the result.
/// - **Stale**: see StalePolicy. OffloadRevalidate hands the refresh to the Offload as
///   `OffloadKind::revalidate`, deduplicated per key; the refresh re-reads the entry first and does nothing
///   if it has become fresh, so a key is refreshed once however many callers saw it stale.
/// - **Negative caching**: a loader's std::nullopt is cached for `negative_ttl` under the key plus a part
///   named "hitbox.not_found" (optionally in L1 only); only read after the key itself missed.
///
/// The backend is held by reference when passed as an lvalue (`Cache cache{tiers, offload}`), by value
/// when moved in (or through std::ref / a pointer / a smart pointer); the offload by reference. Both must
/// outlive the cache. Background refreshes run inside a lifetime gate: the destructor waits for running
/// ones and turns queued ones into no-ops. Not copyable, not movable. Thread-safe.
///
/// \code
/// hitbox::OffloadManager offload;
/// auto tiers = hitbox::compose(std::move(*memory), std::move(*redis), offload);
/// hitbox::Cache cache{tiers, offload};
/// auto u = cache.get_or_compute<User>(key, [&] { return db.load_user(42); },
///                                     {.ttl = 60s, .stale = 45s,
///                                      .stale_policy = hitbox::StalePolicy::OffloadRevalidate});
/// if (u) std::cout << u->name << " from " << u.source << '\n';   // "cache.memory", "cache.redis", "upstream"
/// \endcode
template <class B, class O, class Metrics = NoMetrics, class Clock = SystemClock>
class Cache {
    using holder = detail::cache_backend_holder<B>;

public:
    /// The policies: the backend (looked through a reference wrapper or pointer), offload, metrics, clock.
    using backend_type = typename holder::backend_type;
    using offload_type = O;
    using metrics_type = Metrics;
    using clock_type = Clock;

private:
    static_assert(detail::holds<Backend<backend_type>>,
                  "hitbox::Cache<Backend, Offload, Metrics, Clock>: Backend must model hitbox::Backend: it needs "
                  "get<T>, set<T>, remove, label() (a tier such as MemoryBackend, or a Compose)");
    static_assert(detail::holds<Offload<O>>,
                  "hitbox::Cache<Backend, Offload, Metrics, Clock>: Offload must model hitbox::Offload: it needs "
                  "bool spawn(OffloadKind, std::string dedup_key, std::function<void()>) "
                  "(use OffloadManager, InlineOffload or NoOffload)");
    static_assert(detail::holds<MetricsPolicy<Metrics>>,
                  "hitbox::Cache<Backend, Offload, Metrics, Clock>: Metrics must model hitbox::MetricsPolicy "
                  "(NoMetrics or CountingMetrics)");
    static_assert(detail::holds<ClockSource<Clock>>,
                  "hitbox::Cache<Backend, Offload, Metrics, Clock>: Clock must model hitbox::ClockSource: a "
                  "copyable type with now() const returning hitbox::TimePoint");

public:
    /// Takes the backend (see the class comment for how it is held), the offload, the metrics policy, the
    /// clock and the options.
    Cache(B&& backend, O& offload, Metrics metrics = {}, Clock clock = {}, CacheOptions options = {})
        : shared_(std::make_shared<detail::CacheShared>()),
          backend_(hold_(std::forward<B>(backend))),
          offload_(&offload),
          metrics_(std::move(metrics)),
          clock_(std::move(clock)),
          options_(std::move(options)) {
        auto collect = [this](std::string_view path, auto& tier) {
            if constexpr (!detail::is_compose<std::remove_cvref_t<decltype(tier)>>)
                paths_.emplace_back(path);
        };
        detail::visit_tiers(this->backend(), {}, collect);
        if constexpr (Metrics::enabled) {
            upstream_id_ = metrics_.source_id("upstream");
            for (const auto& p : paths_) source_ids_.push_back(metrics_.source_id(p));
        }
    }

    Cache(const Cache&) = delete;
    Cache& operator=(const Cache&) = delete;

    /// Waits for running background refreshes; queued ones become no-ops.
    ~Cache() { shared_->gate.close_and_wait(); }

    /// get_or_compute with the cache's default policy (CacheOptions::policy).
    template <class T = detail::DeduceValue, class F>
    CacheResult<detail::cache_value_t<T, F>> get_or_compute(const CacheKey& key, F&& loader) {
        return get_or_compute<T>(key, std::forward<F>(loader), options_.policy);
    }

    /// The value of `key`: from the backend when it holds a usable entry, otherwise from `loader` (called
    /// at most once per key at a time in this process, up to `policy.concurrency`), written back with the
    /// policy's ttl and stale times. `T` may be left out when the loader's return type says it. See
    /// CacheResult for every outcome. Nothing is thrown and an exception leaves no state behind: a
    /// throwing loader is an error result; a throwing tier, weigher or value copy is a backend error (or,
    /// when the value cannot be handed to this caller, an error result); the key's load is finished
    /// either way, so the next caller does not wait for it.
    template <class T = detail::DeduceValue, class F>
    CacheResult<detail::cache_value_t<T, F>> get_or_compute(const CacheKey& key, F&& loader, const CachePolicy& policy) {
        using V = detail::cache_value_t<T, F>;
        static_assert(detail::holds<detail::LoaderFor<F, V>>,
                      "hitbox::Cache::get_or_compute<T>(key, loader): loader must be callable with no arguments and "
                      "return T (or something convertible to it), std::optional<T>, hitbox::Result<T> or "
                      "hitbox::Result<std::optional<T>>");
        static_assert(std::is_copy_constructible_v<V>,
                      "hitbox::Cache::get_or_compute<T>: T must be copy constructible (waiters get copies)");
        try {
            if constexpr (Metrics::enabled) {
                const auto started = std::chrono::steady_clock::now();
                auto out = run_<V>(key, std::forward<F>(loader), policy);
                metrics_.record(out.status, source_id_(out), std::chrono::steady_clock::now() - started);
                return out;
            } else {
                return run_<V>(key, std::forward<F>(loader), policy);
            }
        } catch (...) {
            return thrown_<V>();
        }
    }

    /// Writes `value` under `key` with the policy's ttl and stale times (created now), as a load would.
    /// Fails only when the backend refused it; a partial failure of a composition is reported to the error
    /// handler and counted.
    template <class T>
    Result<void> put(const CacheKey& key, T value, const CachePolicy& policy) {
        if (auto problem = detail::policy_problem(policy)) return fail(ErrorKind::config, *problem, label_());
        std::vector<Error> errors;
        if (!write_value_<T>(key, std::move(value), policy, errors))
            return fail(errors.empty() ? Error(ErrorKind::unavailable, "write failed", label_()) : errors.back());
        return {};
    }

    /// Removes `key` and its cached "not found" from every tier. True when either existed; fails when a
    /// tier failed.
    Result<bool> remove(const CacheKey& key) {
        auto a = backend().remove(key);
        auto b = backend().remove(key.with(std::string(detail::negative_part)));
        if (!a) return fail(a.error());
        if (!b) return fail(b.error());
        return *a || *b;
    }

    /// The backend and the offload this cache uses.
    backend_type& backend() noexcept { return holder::get(backend_); }
    const backend_type& backend() const noexcept { return holder::get(backend_); }
    O& offload() const noexcept { return *offload_; }
    /// The metrics policy object (a handle for CountingMetrics: `metrics().snapshot()`).
    const Metrics& metrics() const noexcept { return metrics_; }
    const Clock& clock() const noexcept { return clock_; }
    const CacheOptions& options() const noexcept { return options_; }
    /// Label paths of the leaf tiers, in tier order ("cache.memory", "cache.redis").
    const std::vector<std::string>& tier_paths() const noexcept { return paths_; }

    /// The cache front's own counters (always kept; rare events only).
    CacheStats stats() const { return shared_->snapshot(); }

    /// Keys with a load in progress now.
    std::size_t loads_in_flight() const { return shared_->flights.in_flight(); }

private:
    static typename holder::type hold_(B&& b) {
        if constexpr (std::is_lvalue_reference_v<B>)
            return &b;
        else
            return std::move(b);
    }

    std::string label_() const { return std::string(backend().label()); }

    /// The answer of a call that an exception left (a value's copy into the answer, most likely): every
    /// tier call and the loader are guarded on their own, and the flight was finished on the way out.
    template <class V>
    HITBOX_COLD CacheResult<V> thrown_() {
        CacheResult<V> out;
        out.error = detail::exception_error("get_or_compute: handing the value over", label_());
        return out;
    }

    /// A tier read that throws is a failed read (a miss whose error is noted).
    template <class R, class Read>
    R guarded_read_(Read&& read) {
        try {
            return std::forward<Read>(read)();
        } catch (...) {
            return fail(detail::exception_error("read", label_()));
        }
    }

    /// A tier write that throws (the tier, its weigher, the value's copy) is a failed write of `label`.
    template <class Write>
    Result<StoreReport> guarded_write_(Write&& write, std::string_view label) {
        try {
            return std::forward<Write>(write)();
        } catch (...) {
            return fail(detail::exception_error("write", std::string(label)));
        }
    }

    template <class V>
    std::size_t source_id_(const CacheResult<V>& out) {
        if (out.status == CacheStatus::Miss) return upstream_id_;
        for (std::size_t i = 0; i < paths_.size(); ++i)
            if (paths_[i].data() == out.source.data()) return source_ids_[i];
        return metrics_.source_id(out.source);
    }

    // ---- the call ------------------------------------------------------------------------------------

    /// True when the backend's L1 hit is a plain get: a leaf backend, or a sequential composition over a
    /// leaf L1 (whose traced read can continue after that get).
    template <class V>
    static constexpr bool plain_l1_hit = (!detail::is_compose<backend_type> && !detail::traced_backend<backend_type, V>) ||
                                         requires(backend_type& b, const CacheKey& k, Result<std::optional<CacheValue<V>>> r) {
                                             b.template lookup_after_l1<V>(k, std::move(r));
                                         };

    template <class V, class F>
    CacheResult<V> run_(const CacheKey& key, F&& loader, const CachePolicy& policy) {
        CacheResult<V> out;
        if (!detail::policy_ok(policy)) [[unlikely]] {
            out.error = Error(ErrorKind::config, *detail::policy_problem(policy), label_());
            return out;
        }
        const std::uint64_t epoch = shared_->flights.epoch(key);
        if constexpr (plain_l1_hit<V>) {
            // A fresh L1 value goes straight into the answer (copied from the entry in place when the tier
            // can read in place, moved out of its get's answer otherwise); a stale entry is kept for serve_.
            std::optional<CacheValue<V>> held;
            auto found = guarded_read_<Result<bool>>([&] {
                return l1_read_<V>(key, [&]<class E>(E&& v) {
                    if (!v.stale || v.state(clock_.now()) == EntryState::Fresh)
                        out.value.emplace(std::forward<E>(v).data);
                    else
                        held.emplace(std::forward<E>(v));
                });
            });
            if (found && out.value) [[likely]] {
                out.status = CacheStatus::Hit;
                out.source = paths_.front();
                return out;
            }
            Result<std::optional<CacheValue<V>>> first = std::move(held);
            if (!found) first = fail(std::move(found).error());
            serve_(key, std::forward<F>(loader), policy, epoch, after_l1_<V>(key, std::move(first), out), out);
        } else {
            serve_(key, std::forward<F>(loader), policy, epoch, read_<V>(key, out), out);
        }
        return out;
    }

    /// What to do with what the read found (`cached`, named in out.source): serve it, serve it stale and
    /// refresh, or load.
    template <class V, class F>
    void serve_(const CacheKey& key, F&& loader, const CachePolicy& policy, std::uint64_t epoch,
                std::optional<CacheValue<V>>&& cached, CacheResult<V>& out) {
        std::optional<CacheValue<V>> fallback;  // a stale entry kept in case the reload fails
        if (cached) {
            const EntryState state = cached->stale ? cached->state(clock_.now()) : EntryState::Fresh;
            if (state == EntryState::Fresh) {
                out.value.emplace(std::move(cached->data));
                out.status = CacheStatus::Hit;
                return;
            }
            if (state == EntryState::Stale) {
                if (policy.stale_policy == StalePolicy::Revalidate) {
                    fallback = std::move(cached);
                } else {
                    if (policy.stale_policy == StalePolicy::OffloadRevalidate)
                        spawn_revalidate_<V>(key, std::forward<F>(loader), policy);
                    out.value.emplace(std::move(cached->data));
                    out.status = CacheStatus::Stale;
                    return;
                }
            }
        }
        const std::string_view fallback_source = out.source;
        out.source = {};
        if (policy.negative_ttl && !fallback && read_negative_(key, out)) return;
        load_<V>(key, loader, policy, epoch, out);
        if (out.error && fallback) {  // stale-if-error
            detail::CacheCounters::bump(shared_->counters.stale_if_error);
            out.value.emplace(std::move(fallback->data));
            out.status = CacheStatus::Stale;
            out.source = fallback_source;
        }
    }

    /// The first tier: the backend itself, or a composition's L1.
    auto& l1_() {
        if constexpr (detail::is_compose<backend_type>)
            return backend().l1();
        else
            return backend();
    }
    using l1_type_ = std::remove_reference_t<decltype(std::declval<Cache&>().l1_())>;

    /// The L1 get of a plain_l1_hit backend.
    template <class V>
    Result<std::optional<CacheValue<V>>> l1_get_(const CacheKey& key) {
        return l1_().template get<V>(key);
    }

    /// Hands the L1 entry of `key`, when there is one, to `take`: as a const reference to the stored entry
    /// when the tier reads in place (MemoryBackend::read_with), else as an rvalue of its get's answer. True
    /// when it did, false on a miss, the tier's error otherwise.
    template <class V, class Take>
    Result<bool> l1_read_(const CacheKey& key, Take&& take) {
        if constexpr (detail::reads_in_place<l1_type_, V>) {
            return l1_().template read_with<V>(key, std::forward<Take>(take));
        } else {
            auto first = l1_get_<V>(key);
            if (!first) return fail(std::move(first).error());
            if (!*first) return false;
            std::forward<Take>(take)(std::move(**first));
            return true;
        }
    }

    /// The rest of a plain_l1_hit read after the L1 get answered `first` (a miss, an error, or a stale hit).
    template <class V>
    std::optional<CacheValue<V>> after_l1_(const CacheKey& key, Result<std::optional<CacheValue<V>>>&& first,
                                           CacheResult<V>& out) {
        if (first && *first) {
            out.source = paths_.front();
            return std::move(*first);
        }
        if constexpr (detail::is_compose<backend_type>) {
            return traced_(key, backend().template lookup_after_l1<V>(key, std::move(first)), out);
        } else {
            if (!first)
                note_error_(CacheOp::read, key, detail::attribute(first.error(), backend().label()), &out.backend_errors);
            return std::nullopt;
        }
    }

    /// The read, naming the tier that answered in `out.source`; a failing read is a miss whose error is
    /// noted.
    template <class V>
    std::optional<CacheValue<V>> read_(const CacheKey& key, CacheResult<V>& out) {
        if constexpr (plain_l1_hit<V>)
            return after_l1_<V>(key, guarded_read_<Result<std::optional<CacheValue<V>>>>([&] { return l1_get_<V>(key); }),
                                out);
        else
            return traced_(key, guarded_read_<Result<Lookup<V>>>([&] { return hitbox::lookup<V>(backend(), key); }), out);
    }

    template <class V>
    std::optional<CacheValue<V>> traced_(const CacheKey& key, Result<Lookup<V>>&& found, CacheResult<V>& out) {
        if (!found) {
            note_error_(CacheOp::read, key, found.error(), &out.backend_errors);
            return std::nullopt;
        }
        for (const auto& e : found->errors) note_error_(CacheOp::read, key, e, &out.backend_errors);
        if (found->value) out.source = intern_(found->source);
        return std::move(found->value);
    }

    /// A stable view of a label path: one of the tier paths computed at construction, or (for a path not
    /// among them) a copy kept for the cache's lifetime.
    std::string_view intern_(std::string_view path) {
        for (const auto& p : paths_)
            if (p == path) return p;
        return shared_->intern(path);
    }

    /// True (and `out` filled) when a cached "not found" answers the key.
    template <class V>
    bool read_negative_(const CacheKey& key, CacheResult<V>& out) {
        auto found = guarded_read_<Result<Lookup<std::string>>>(
            [&] { return hitbox::lookup<std::string>(backend(), key.with(std::string(detail::negative_part))); });
        if (!found) {
            note_error_(CacheOp::read, key, found.error(), &out.backend_errors);
            return false;
        }
        for (const auto& e : found->errors) note_error_(CacheOp::read, key, e, &out.backend_errors);
        if (!found->value || found->value->data != detail::negative_marker) return false;
        detail::CacheCounters::bump(shared_->counters.negative_hits);
        out.status = CacheStatus::Hit;
        out.source = intern_(found->source);
        return true;
    }

    /// The coalesced load: lead, wait, or load alone; fills `out` (status Miss, or Hit when a re-read
    /// found the entry written by a load that finished meanwhile).
    template <class V, class F>
    void load_(const CacheKey& key, F& loader, const CachePolicy& policy, std::uint64_t epoch, CacheResult<V>& out) {
        auto& flights = shared_->flights;
        auto& c = shared_->counters;
        auto ticket = flights.enter(key, typeid(V), policy.concurrency, epoch);
        if (ticket.role == detail::FlightTicket::Role::solo) {
            auto loaded = load_and_write_<V>(key, loader, policy, out.backend_errors);
            take_(out, *loaded);
            return;
        }
        if (ticket.role == detail::FlightTicket::Role::wait) {
            c.waiting.fetch_add(1, std::memory_order_relaxed);
            auto w = flights.wait(key, ticket, policy.waiter_timeout);
            c.waiting.fetch_sub(1, std::memory_order_relaxed);
            if (w.kind == detail::FlightWait::Kind::outcome) {
                if (!w.outcome) {  // the leader's load ended in an exception and published nothing
                    auto loaded = load_and_write_<V>(key, loader, policy, out.backend_errors);
                    take_(out, *loaded);
                    return;
                }
                detail::CacheCounters::bump(c.coalesced);
                take_(out, *std::static_pointer_cast<const detail::Loaded<V>>(w.outcome));
                return;
            }
            detail::CacheCounters::bump(w.kind == detail::FlightWait::Kind::handoff ? c.retries : c.waiter_timeouts);
        }
        // This caller leads a load of the flight now: whatever happens, the flight is finished before the
        // answer is taken (a copy that throws there cannot leave the key in flight).
        detail::LeadGuard lead(flights, key, ticket.flight, policy.retries);
        if (ticket.role == detail::FlightTicket::Role::lead && ticket.recheck) {
            // A load of this shard finished after our read: the entry may be there now.
            if (auto again = read_<V>(key, out); again && again->state(clock_.now()) == EntryState::Fresh) {
                auto hit = std::make_shared<detail::Loaded<V>>();
                hit->result = std::optional<V>(std::move(again->data));
                hit->status = CacheStatus::Hit;
                hit->source = out.source;
                lead.finish(hit, true);
                take_(out, *hit);
                return;
            }
            out.source = {};
        }
        auto loaded = load_and_write_<V>(key, loader, policy, out.backend_errors);
        lead.finish(loaded, loaded->result.has_value());
        take_(out, *loaded);
    }

    /// Calls the loader and writes what it produced (a value, or a "not found" when negative caching is
    /// on). The write happens before the outcome is published to waiters.
    template <class V, class F>
    std::shared_ptr<detail::Loaded<V>> load_and_write_(const CacheKey& key, F& loader, const CachePolicy& policy,
                                                       std::vector<Error>& errors) {
        auto& c = shared_->counters;
        detail::CacheCounters::bump(c.loads);
        auto loaded = std::make_shared<detail::Loaded<V>>();
        loaded->source = detail::upstream_source;
        if constexpr (Metrics::enabled) {
            const auto started = std::chrono::steady_clock::now();
            loaded->result = detail::call_loader<V>(loader);
            const auto r = !loaded->result ? LoadResult::error : *loaded->result ? LoadResult::found : LoadResult::not_found;
            metrics_.record_upstream(r, std::chrono::steady_clock::now() - started);
        } else {
            loaded->result = detail::call_loader<V>(loader);
        }
        if (!loaded->result) {
            detail::CacheCounters::bump(c.load_errors);
        } else if (*loaded->result) {
            write_value_<V>(key, **loaded->result, policy, errors);
        } else if (policy.negative_ttl) {
            write_negative_(key, policy, errors);
        }
        return loaded;
    }

    template <class V>
    static void take_(CacheResult<V>& out, const detail::Loaded<V>& loaded) {
        out.status = loaded.status;
        out.source = loaded.source;
        if (!loaded.result)
            out.error = loaded.result.error();
        else if (*loaded.result)
            out.value.emplace(**loaded.result);
    }

    // ---- writes --------------------------------------------------------------------------------------

    /// Writes `value` with the policy's times (saturated: a time past TimePoint::max() is "never"); false
    /// when the backend as a whole refused it. Exceptions of the tier, its weigher or the value's copy
    /// are a failed write.
    template <class V>
    bool write_value_(const CacheKey& key, const V& value, const CachePolicy& policy, std::vector<Error>& errors) {
        const TimePoint now = clock_.now();
        std::optional<TimePoint> expire, stale;
        if (policy.ttl) expire = detail::time_after(now, *policy.ttl);
        if (policy.stale) stale = detail::time_after(now, *policy.stale);
        return report_write_(key, guarded_write_([&] {
                                 const CacheValue<V> entry(value, expire, stale, now);
                                 return hitbox::store(backend(), key, entry);
                             },
                                            backend().label()),
                             errors);
    }

    void write_negative_(const CacheKey& key, const CachePolicy& policy, std::vector<Error>& errors) {
        const TimePoint now = clock_.now();
        const CacheValue<std::string> entry(std::string(detail::negative_marker),
                                            detail::time_after(now, *policy.negative_ttl), std::nullopt, now);
        const CacheKey marker_key = key.with(std::string(detail::negative_part));
        if constexpr (detail::is_compose<backend_type>) {
            if (policy.negative_l1_only) {
                auto done = guarded_write_([&] { return hitbox::store(backend().l1(), marker_key, entry); },
                                           backend().l1().label());
                if (!done) done = fail(done.error().in(backend().label()));
                report_write_(key, std::move(done), errors);
                return;
            }
        }
        report_write_(key, guarded_write_([&] { return hitbox::store(backend(), marker_key, entry); }, backend().label()),
                      errors);
    }

    bool report_write_(const CacheKey& key, Result<StoreReport>&& done, std::vector<Error>& errors) {
        if (!done) {
            note_error_(CacheOp::write, key, done.error(), &errors);
            return false;
        }
        for (const auto& e : done->errors) note_error_(CacheOp::write, key, e, &errors);
        return true;
    }

    /// Counts an error, hands it to the error handler and lists it in the caller's result.
    void note_error_(CacheOp op, const CacheKey& key, const Error& error, std::vector<Error>* errors) {
        auto& c = shared_->counters;
        if (op == CacheOp::read) detail::CacheCounters::bump(c.read_errors);
        if (op == CacheOp::write) detail::CacheCounters::bump(c.write_errors);
        if (op != CacheOp::revalidate) shared_->count_tier_error(error.backend(), op == CacheOp::write);
        try {
            const CacheErrorEvent event{op, key, error};
            if (options_.on_error)
                options_.on_error(event);
            else
                detail::log_cache_error(event);
        } catch (...) {  // a handler must not turn a served value into an exception
        }
        if (errors) errors->push_back(error);
    }

    // ---- background refresh --------------------------------------------------------------------------

    /// Dedup key of a refresh on the shared offload: this cache's id and the key's Bitcode bytes.
    std::string revalidate_key_(const CacheKey& key) const {
        std::string out = "cache" + std::to_string(shared_->id) + ":";
        out += Bitcode{}.encode(key);
        return out;
    }

    template <class V, class F>
    void spawn_revalidate_(const CacheKey& key, F&& loader, const CachePolicy& policy) {
        auto& c = shared_->counters;
        using L = std::decay_t<F>;
        if constexpr (std::is_constructible_v<L, F&&>) {
            bool accepted = false;
            try {  // the loader's copy, or the offload, may throw: the stale value is served anyway
                auto held = std::make_shared<L>(std::forward<F>(loader));
                auto task = [this, shared = shared_, key, held, policy] {
                    detail::GatePass pass(shared->gate);
                    if (!pass) return;
                    revalidate_<V>(key, *held, policy);
                };
                accepted = offload_->spawn(OffloadKind::revalidate, revalidate_key_(key), std::move(task));
            } catch (...) {
                accepted = false;
            }
            detail::CacheCounters::bump(accepted ? c.revalidations : c.revalidations_dropped);
        } else {
            (void)key, (void)loader, (void)policy;
            detail::CacheCounters::bump(c.revalidations_dropped);  // a const move-only loader cannot be kept
        }
    }

    /// The background refresh: lead the key's load unless one is running, re-read the entry, and load
    /// only when it is still not fresh.
    template <class V, class F>
    void revalidate_(const CacheKey& key, F& loader, const CachePolicy& policy) {
        auto& c = shared_->counters;
        auto ticket = shared_->flights.try_lead(key, typeid(V));
        if (ticket.role == detail::FlightTicket::Role::skip) {
            detail::CacheCounters::bump(c.revalidations_skipped);
            return;
        }
        detail::LeadGuard lead(shared_->flights, key, ticket.flight, 0);  // finished even if an exception leaves
        CacheResult<V> scratch;
        if (auto now = read_<V>(key, scratch); now && now->state(clock_.now()) == EntryState::Fresh) {
            auto hit = std::make_shared<detail::Loaded<V>>();
            hit->result = std::optional<V>(std::move(now->data));
            hit->status = CacheStatus::Hit;
            hit->source = scratch.source;
            lead.finish(std::move(hit), true);
            detail::CacheCounters::bump(c.revalidations_skipped);
            return;
        }
        auto loaded = load_and_write_<V>(key, loader, policy, scratch.backend_errors);
        if (!loaded->result) note_error_(CacheOp::revalidate, key, loaded->result.error(), nullptr);
        lead.finish(loaded, loaded->result.has_value());
        detail::CacheCounters::bump(c.revalidations_done);
    }

    std::shared_ptr<detail::CacheShared> shared_;
    typename holder::type backend_;
    O* offload_;
    Metrics metrics_;
    Clock clock_;
    CacheOptions options_;
    std::vector<std::string> paths_;
    std::vector<std::size_t> source_ids_;
    std::size_t upstream_id_ = 0;
};

/// `Cache cache{tiers, offload}` holds an lvalue backend by reference; `Cache cache{std::move(t), offload}`
/// holds it by value.
template <class B, class O>
Cache(B&&, O&) -> Cache<B, O>;
template <class B, class O, class M>
Cache(B&&, O&, M) -> Cache<B, O, M>;
template <class B, class O, class M, class C>
Cache(B&&, O&, M, C) -> Cache<B, O, M, C>;
template <class B, class O, class M, class C>
Cache(B&&, O&, M, C, CacheOptions) -> Cache<B, O, M, C>;

/// Adds everything a cache knows to `out`: its metrics policy's series (CountingMetrics), its own counters
/// (`hitbox_cache_*`, `hitbox_upstream_*`, `hitbox_backend_{read,write}_errors_total` per tier path,
/// `hitbox_offload_revalidation_*`), each tier's `stats()` (`hitbox_backend_*` per label path), each
/// composition level's counters (`hitbox_compose_*`) and the offload's counters (`hitbox_offload_tasks_*`,
/// labelled with the backend's label).
template <class B, class O, class M, class C>
void write_metrics(PrometheusWriter& out, const Cache<B, O, M, C>& cache) {
    if constexpr (requires { cache.metrics().snapshot(); }) write_metrics(out, cache.metrics().snapshot());
    const CacheStats s = cache.stats();
    const std::string label(cache.backend().label());
    const PrometheusWriter::Labels labels = {{"backend", label}};
    out.counter("hitbox_upstream_requests_total", "Loader calls.", labels, s.loads);
    out.counter("hitbox_upstream_errors_total", "Loader calls that returned an error or threw.", labels,
                s.load_errors);
    out.counter("hitbox_cache_coalesced_total", "Callers that took the outcome of another caller's load.", labels,
                s.coalesced);
    out.counter("hitbox_cache_waiter_timeouts_total", "Waiters that stopped waiting and loaded themselves.",
                labels, s.waiter_timeouts);
    out.counter("hitbox_cache_load_retries_total", "Failed loads handed to one waiter to retry.", labels, s.retries);
    out.counter("hitbox_cache_negative_hits_total", "Calls answered by a cached \"not found\".", labels,
                s.negative_hits);
    out.counter("hitbox_cache_stale_if_error_total", "Stale values served because their reload failed.", labels,
                s.stale_if_error);
    out.gauge("hitbox_cache_waiters", "Callers waiting for another caller's load.", labels,
              static_cast<double>(s.waiting));
    out.counter("hitbox_offload_revalidation_spawned_total", "Background refreshes the offload accepted.", labels,
                s.revalidations);
    out.counter("hitbox_offload_revalidation_dropped_total", "Background refreshes the offload refused.", labels,
                s.revalidations_dropped);
    out.counter("hitbox_offload_revalidation_skipped_total",
                "Accepted refreshes that found the entry fresh or a load running.", labels, s.revalidations_skipped);
    out.counter("hitbox_offload_revalidation_completed_total", "Background refreshes whose load finished.", labels,
                s.revalidations_done);
    for (const auto& t : s.tiers) {
        out.counter("hitbox_backend_read_errors_total", "Backend read errors the cache front survived (each a miss).",
                    {{"backend", t.backend}}, t.read_errors);
        out.counter("hitbox_backend_write_errors_total", "Backend write errors the cache front reported.",
                    {{"backend", t.backend}}, t.write_errors);
    }
    // Tier counters, each through its stats' export hook; levels of a tiered backend (a composition) are
    // written after the leaf tiers, those sharing a path (the unlabelled inner levels of a fold) summed.
    detail::LevelStats levels;
    auto visit = [&](std::string_view path, const auto& tier) {
        using Tier = std::remove_cvref_t<decltype(tier)>;
        if constexpr (ReportsStats<Tier>) {
            if constexpr (TieredBackend<Tier>)
                levels.add(path, tier.stats());
            else
                write_backend_stats(out, path, tier.stats());
        }
    };
    detail::visit_tiers(cache.backend(), {}, visit);
    levels.write(out);
    if constexpr (CountingOffload<O>)
        write_offload_counters(out, label, cache.offload().counters());
}

/// The Prometheus text exposition of a cache with its tiers and offload (see write_metrics).
///
/// \code
/// std::cout << hitbox::prometheus_text(cache);
/// \endcode
template <class B, class O, class M, class C>
std::string prometheus_text(const Cache<B, O, M, C>& cache) {
    PrometheusWriter out;
    write_metrics(out, cache);
    return out.str();
}

}  // namespace hitbox

#include <hitbox/cache/memoize.hpp>
