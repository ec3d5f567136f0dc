#pragma once
/// \file
/// hitbox::Cache: the get_or_compute front. Reads the tiers (through the capabilities of cache/tiers.hpp),
/// decides what to serve (fresh, stale, negative), coalesces loads per key (cache/detail/flight.hpp, the
/// loader side in cache/loader.hpp), writes loaded values back and refreshes stale ones in the background.
#include <atomic>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

#include <hitbox/cache/detail/flight.hpp>
#include <hitbox/cache/errors.hpp>
#include <hitbox/cache/loader.hpp>
#include <hitbox/cache/policy.hpp>
#include <hitbox/cache/result.hpp>
#include <hitbox/cache/stats.hpp>
#include <hitbox/cache/tiers.hpp>
#include <hitbox/compose/detail/fork.hpp>
#include <hitbox/compose/lookup.hpp>
#include <hitbox/core/clock.hpp>
#include <hitbox/core/concepts.hpp>
#include <hitbox/core/error.hpp>
#include <hitbox/core/key.hpp>
#include <hitbox/core/metrics.hpp>
#include <hitbox/core/value.hpp>
#include <hitbox/key_format/bitcode.hpp>

namespace hitbox {

namespace detail {

/// The suffix part that marks the key of a cached "not found".
inline constexpr std::string_view negative_part = "hitbox.not_found";
/// The value stored under it.
inline constexpr std::string_view negative_marker = "hitbox:not-found";

/// What a cache shares with its background refreshes: the lifetime gate, the flights and the counters.
struct CacheShared {
    Gate gate;
    FlightTable flights;
    CacheCounters counters;
    std::mutex tier_mutex;
    std::vector<TierErrors> tier_errors;
    std::deque<std::string> interned;  // label paths that are not leaf tier paths (stable addresses)
    std::uint64_t id;
    std::atomic<std::size_t> timed_loads{0};  // loader threads of timed calls running now (max_timed_loads)

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
        CacheStats s;
        static_cast<CacheCounts&>(s) = counters.snapshot();
        std::lock_guard lock(tier_mutex);
        s.tiers = tier_errors;
        return s;
    }
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
            if constexpr (!TieredBackend<std::remove_cvref_t<decltype(tier)>>) paths_.emplace_back(path);
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
        using V = detail::cache_value_t<T, F>;
        // The overload below asserts the same; asserting here too keeps the diagnostic one step shorter.
        static_assert(detail::holds<detail::LoaderFor<F, V>>,
                      "hitbox::Cache::get_or_compute<T>(key, loader): loader must be callable with no arguments and "
                      "return T (or something convertible to it), std::optional<T>, hitbox::Result<T> or "
                      "hitbox::Result<std::optional<T>>");
        static_assert(std::is_copy_constructible_v<V>,
                      "hitbox::Cache::get_or_compute<T>: T must be copy constructible (waiters get copies)");
        if constexpr (detail::holds<detail::LoaderFor<F, V>> && std::is_copy_constructible_v<V>)
            return get_or_compute<T>(key, std::forward<F>(loader), options_.policy);
        else
            return CacheResult<V>{};  // an assertion failed: call nothing with this loader, it would only repeat it
    }

    /// The value of `key`: from the backend when it holds a usable entry, otherwise from `loader` (called
    /// at most once per key at a time in this process, up to `policy.concurrency`), written back with the
    /// policy's ttl and stale times. `T` may be left out when the loader's return type says it. See
    /// CacheResult for every outcome. Nothing is thrown and an exception leaves no state behind: a
    /// throwing loader is an error result; a throwing tier, weigher or value copy is a backend error (or,
    /// when the value cannot be handed to this caller, an error result); the key's load is finished
    /// either way, so the next caller does not wait for it.
    template <class T = detail::DeduceValue, class F>
    CacheResult<detail::cache_value_t<T, F>> get_or_compute(const CacheKey& key, F&& loader,
                                                            const CachePolicy& policy) {
        using V = detail::cache_value_t<T, F>;
        static_assert(detail::holds<detail::LoaderFor<F, V>>,
                      "hitbox::Cache::get_or_compute<T>(key, loader): loader must be callable with no arguments and "
                      "return T (or something convertible to it), std::optional<T>, hitbox::Result<T> or "
                      "hitbox::Result<std::optional<T>>");
        static_assert(std::is_copy_constructible_v<V>,
                      "hitbox::Cache::get_or_compute<T>: T must be copy constructible (waiters get copies)");
        if constexpr (!detail::holds<detail::LoaderFor<F, V>> || !std::is_copy_constructible_v<V>) {
            return CacheResult<V>{};  // an assertion failed: call nothing with this loader, it would only repeat it
        } else {
            try {
                if constexpr (Metrics::enabled) {
                    const auto started = std::chrono::steady_clock::now();
                    auto out = run_<V>(key, std::forward<F>(loader), policy);
                    // A call refused before any lookup (an invalid policy) is no hit, miss or stale.
                    if (!out.error || out.error->kind() != ErrorKind::config || !out.source.empty()) [[likely]]
                        metrics_.record(out.status, source_id_(out), std::chrono::steady_clock::now() - started);
                    return out;
                } else {
                    return run_<V>(key, std::forward<F>(loader), policy);
                }
            } catch (...) {
                return thrown_<V>();
            }
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
        forget_negative_(key, policy, errors);
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
    /// tier call and the loader are guarded on their own, and the flight was finished on the way out. The
    /// tier errors the call met went to the error handler and the counters, not into this answer: keeping
    /// them would need the answer built outside run_, which cost the hit path 5-15% in interleaved runs
    /// (BM_CacheGetOrComputeHit, design-notes.md).
    template <class V>
    HITBOX_COLD CacheResult<V> thrown_() noexcept {
        CacheResult<V> out;
        try {
            out.error = detail::exception_error("get_or_compute: handing the value over", label_());
        } catch (...) {
            out.error = Error(ErrorKind::unavailable, std::string());
        }
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

    /// A tier write (or remove: R = Result<bool>) that throws (the tier, its weigher, the value's copy) is a
    /// failed write of `label`.
    template <class R = Result<StoreReport>, class Write>
    R guarded_write_(Write&& write, std::string_view label) {
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
    static constexpr bool plain_l1_hit =
        (!TieredBackend<backend_type> && !TracedBackend<backend_type, V>) || ResumableRead<backend_type, V>;

    template <class V, class F>
    CacheResult<V> run_(const CacheKey& key, F&& loader, const CachePolicy& policy) {
        CacheResult<V> out;
        if (!detail::policy_ok(policy)) [[unlikely]] {
            out.error = Error(ErrorKind::config, *detail::policy_problem(policy), label_());
            return out;
        }
        if constexpr (!LockingBackend<backend_type>) {
            if (policy.lock_ttl) [[unlikely]] {
                out.error = Error(ErrorKind::config,
                                  "CachePolicy: lock_ttl needs a backend that holds a lock across instances "
                                  "(hitbox::LockingBackend: a Redis tier, or a composition with one)",
                                  label_());
                return out;
            }
        }
        const std::uint64_t epoch = shared_->flights.epoch(key);
        if constexpr (plain_l1_hit<V>) {
            // A fresh L1 value goes straight into the answer (copied from the entry in place when the tier
            // can read in place, moved out of its get's answer otherwise); a stale entry is kept for serve_.
            std::optional<CacheValue<V>> held;
            auto found = guarded_read_<Result<bool>>([&] {
                return l1_read_<V>(key, [&]<class E>(E&& v) {
                    if ((!v.stale && !v.retain) || v.state(clock_.now()) == EntryState::Fresh)
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
            after_l1_miss_<V>(key, detail::LoaderRef<V>::of(std::forward<F>(loader)), policy, epoch, std::move(found),
                              std::move(held), out);
        } else {
            serve_(key, detail::LoaderRef<V>::of(std::forward<F>(loader)), policy, epoch, read_<V>(key, out), out);
        }
        return out;
    }

    /// The rest of a call whose plain L1 read found no fresh value (a miss, an error, or a stale or
    /// expired entry `held`): out of line, so the hit path stays small.
    template <class V, class F>
    HITBOX_COLD void after_l1_miss_(const CacheKey& key, F&& loader, const CachePolicy& policy, std::uint64_t epoch,
                                    Result<bool>&& found, std::optional<CacheValue<V>>&& held, CacheResult<V>& out) {
        Result<std::optional<CacheValue<V>>> first = std::move(held);
        if (!found) first = fail(std::move(found).error());
        serve_(key, std::forward<F>(loader), policy, epoch, after_l1_<V>(key, std::move(first), out), out);
    }

    /// A value a call may serve when its load fails or runs past a timeout: a stale entry (Revalidate) or
    /// an expired one kept by fail-safe.
    template <class V>
    struct Fallback {
        CacheValue<V> entry;
        std::string_view source;
        bool expired = false;  // past its logical expiry: served as fail-safe
    };

    /// What to do with what the read found (`cached`, named in out.source): serve it, serve it stale and
    /// refresh, or load (keeping a stale or fail-safe value in case the load fails).
    template <class V, class F>
    void serve_(const CacheKey& key, F&& loader, const CachePolicy& policy, std::uint64_t epoch,
                std::optional<CacheValue<V>>&& cached, CacheResult<V>& out) {
        std::optional<Fallback<V>> fallback;
        if (cached) {
            const EntryState state =
                (cached->stale || cached->retain) ? cached->state(clock_.now()) : EntryState::Fresh;
            if (state == EntryState::Fresh) {
                out.value.emplace(std::move(cached->data));
                out.status = CacheStatus::Hit;
                return;
            }
            if (state == EntryState::Stale) {
                if (policy.stale_policy == StalePolicy::Revalidate) {
                    fallback.emplace(Fallback<V>{std::move(*cached), out.source, false});
                } else {
                    if (policy.stale_policy == StalePolicy::OffloadRevalidate)
                        spawn_revalidate_<V>(key, loader, policy);
                    out.value.emplace(std::move(cached->data));
                    out.status = CacheStatus::Stale;
                    return;
                }
            } else if (policy.fail_safe_max) {  // expired, kept by fail-safe: served only if the load fails
                fallback.emplace(Fallback<V>{std::move(*cached), out.source, true});
            }
        }
        out.source = {};
        if (policy.negative_ttl && !fallback && read_negative_(key, out)) return;
        load_<V>(key, loader, policy, epoch, fallback ? &*fallback : nullptr, out);
        if (out.error && !out.value && fallback) {  // stale-if-error, or fail-safe, on this call's own entry
            if (!fallback->expired) shared_->counters.bump(&CacheCounts::stale_if_error);
            out.value.emplace(std::move(fallback->entry.data));
            out.status = CacheStatus::Stale;
            out.source = fallback->source;
            out.fail_safe = fallback->expired;
        }
        if (out.fail_safe) shared_->counters.bump(&CacheCounts::fail_safe);
    }

    /// The first tier: the backend itself, or the L1 of a TieredBackend.
    auto& l1_() { return detail::first_tier(backend()); }
    using l1_type_ = detail::first_tier_t<backend_type>;

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
        if constexpr (ReadsInPlace<l1_type_, V>) {
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
        // An L1 entry past its expiry (kept by fail-safe) lets the composition look at L2 for a newer one.
        bool resume = false;
        if constexpr (ResumableRead<backend_type, V>)
            resume = first && *first && (*first)->kept_past_expiry(clock_.now());
        if (first && *first && !resume) {
            out.source = paths_.front();
            return std::move(*first);
        }
        if constexpr (ResumableRead<backend_type, V>) {
            return traced_(key, guarded_read_<Result<Lookup<V>>>([&] {
                               return backend().template lookup_after_l1<V>(key, std::move(first));
                           }),
                           out);
        } else {
            if (!first)
                note_error_(CacheOp::read, key, detail::attribute(first.error(), backend().label()),
                            &out.backend_errors);
            return std::nullopt;
        }
    }

    /// The read, naming the tier that answered in `out.source`; a failing read is a miss whose error is
    /// noted.
    template <class V>
    std::optional<CacheValue<V>> read_(const CacheKey& key, CacheResult<V>& out) {
        if constexpr (plain_l1_hit<V>)
            return after_l1_<V>(
                key, guarded_read_<Result<std::optional<CacheValue<V>>>>([&] { return l1_get_<V>(key); }), out);
        else
            return traced_(key, guarded_read_<Result<Lookup<V>>>([&] { return hitbox::lookup<V>(backend(), key); }),
                           out);
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
        shared_->counters.bump(&CacheCounts::negative_hits);
        out.status = CacheStatus::Hit;
        out.source = intern_(found->source);
        return true;
    }

    /// True when the policy bounds how long a call waits for its loader.
    static bool timed_(const CachePolicy& policy) noexcept {
        using ms = std::chrono::milliseconds;
        return policy.soft_timeout != ms::max() || policy.hard_timeout != ms::max();
    }

    /// The coalesced load: lead, wait, or load alone; fills `out` (status Miss, or Hit when a re-read
    /// found the entry written by a load that finished meanwhile, or Stale for a fallback served instead).
    template <class V, class F>
    void load_(const CacheKey& key, F& loader, const CachePolicy& policy, std::uint64_t epoch,
               const Fallback<V>* fallback, CacheResult<V>& out) {
        auto& flights = shared_->flights;
        auto& c = shared_->counters;
        const auto started = (timed_(policy) || policy.lock_ttl) ? std::chrono::steady_clock::now()
                                                                 : std::chrono::steady_clock::time_point{};
        if (detail::LoadingHere::active(flights, key)) [[unlikely]] {
            // Joining the flight would wait for this very load (for ever with waiter_timeout max()).
            out.error = Error(ErrorKind::unavailable,
                              "get_or_compute: the loader of this key asked for the same key (a load cannot wait "
                              "for itself)",
                              label_());
            return;
        }
        auto ticket = flights.enter(key, typeid(V), policy.concurrency, epoch);
        if (ticket.role == detail::FlightTicket::Role::solo) {
            take_(out, *run_load_<V>(key, loader, policy, fallback, nullptr, started, out.backend_errors));
            return;
        }
        if (ticket.role == detail::FlightTicket::Role::wait) {
            // A waiter stops at waiter_timeout and loads itself, or stops at its soft / hard timeout (when
            // that comes first) and answers without calling the loader.
            const auto [limit, gives_up] = waiter_limit_(policy, fallback != nullptr);
            // The call's own soft / hard timeout bounds every wait (also one that waits with a leader that
            // waits for another instance's lock).
            const auto give_up = give_up_after_(policy, fallback != nullptr);
            const auto give_up_at = give_up == std::chrono::milliseconds::max()
                                        ? std::chrono::steady_clock::time_point::max()
                                        : detail::deadline_after(started, give_up);
            c.bump(&CacheCounts::waiting);
            auto w = flights.wait(key, ticket, limit, !gives_up, give_up_at);
            c.drop(&CacheCounts::waiting);
            if (w.kind == detail::FlightWait::Kind::outcome) {
                if (!w.outcome) {  // the leader's load ended in an exception and published nothing
                    auto loaded = load_and_write_<V>(key, loader, policy, out.backend_errors);
                    take_(out, *loaded);
                    return;
                }
                c.bump(&CacheCounts::coalesced);
                const auto& got = *std::static_pointer_cast<const detail::Loaded<V>>(w.outcome);
                if (got.fail_safe && got.cause && !policy.fail_safe_max) {
                    // The leader's policy served an expired value; this caller's never does: the load's error.
                    detail::Loaded<V> own;
                    own.result = fail(*got.cause);
                    own.source = detail::upstream_source;
                    take_(out, own);
                    return;
                }
                take_(out, got);
                return;
            }
            if (w.kind == detail::FlightWait::Kind::timeout && (gives_up || w.past_give_up)) {
                take_(out, *given_up_<V>(key, policy, fallback, nullptr));
                return;
            }
            c.bump(w.kind == detail::FlightWait::Kind::handoff ? &CacheCounts::retries : &CacheCounts::waiter_timeouts);
        }
        // This caller leads a load of the flight now: whatever happens, the flight is finished before the
        // answer is taken (a copy that throws there cannot leave the key in flight).
        detail::LeadGuard lead(flights, key, ticket.flight, policy.retries);
        if (ticket.role == detail::FlightTicket::Role::lead && ticket.recheck) {
            // A load of this shard finished after our read: the entry may be there now.
            if (auto again = read_<V>(key, out); again && again->state(clock_.now()) == EntryState::Fresh) {
                auto hit = hit_outcome_<V>(std::move(again->data), out.source);
                lead.finish(hit, true);
                take_(out, *hit);
                return;
            }
            out.source = {};
        }
        if constexpr (LockingBackend<backend_type>) {
            if (policy.lock_ttl) {
                take_(out, *locked_load_<V>(key, loader, policy, fallback, lead, started, out));
                return;
            }
        }
        take_(out, *run_load_<V>(key, loader, policy, fallback, &lead, started, out.backend_errors));
    }

    /// The load of a flight leader under the stampede lock across instances (CachePolicy::lock_ttl): take
    /// the backend's lock and load (re-reading first: the value may have landed just before), or, while
    /// another instance holds it, re-read the key every lock_poll until its value is there or the lock is
    /// free, up to the caller's waiter limit. A lock that cannot be reached (a backend error) is no reason
    /// to fail: the caller loads without it.
    template <class V, class F>
    std::shared_ptr<detail::Loaded<V>> locked_load_(const CacheKey& key, F& loader, const CachePolicy& policy,
                                                    const Fallback<V>* fallback, detail::LeadGuard& lead,
                                                    std::chrono::steady_clock::time_point started,
                                                    CacheResult<V>& out) {
        auto& c = shared_->counters;
        const std::string token = detail::lock_token();
        const auto [limit, gives_up] = waiter_limit_(policy, fallback != nullptr);
        const auto deadline = detail::deadline_after(started, limit);
        bool waited = false;
        // While this loader waits for another instance's lock, the flight's waiters wait with it (their
        // waiter_timeout counts this process's load, not the lock's holder's).
        struct LockWait {
            detail::FlightTable* table = nullptr;
            const CacheKey* key = nullptr;
            std::shared_ptr<detail::Flight> flight;
            void on(detail::FlightTable& t, const CacheKey& k, const std::shared_ptr<detail::Flight>& f) {
                if (table != nullptr || !f) return;
                t.lock_wait(k, f, true);
                table = &t, key = &k, flight = f;
            }
            void off() {
                if (table != nullptr) table->lock_wait(*key, flight, false);
                table = nullptr;
            }
            ~LockWait() { off(); }
        } lock_wait;
        for (;;) {
            const auto got = try_lock_once_(key, token, policy, &out.backend_errors);
            if (!got) break;  // no lock to be had: load without it
            if (*got) {
                lock_wait.off();
                if (auto hit = landed_<V>(key, policy, out)) {  // loaded elsewhere just before we locked
                    unlock_(key, token, out.backend_errors);
                    if (waited) c.bump(&CacheCounts::lock_waits);
                    lead.finish(hit, true);
                    return hit;
                }
                std::shared_ptr<detail::Loaded<V>> loaded;
                try {
                    loaded = run_load_<V>(key, loader, policy, fallback, &lead, started, out.backend_errors);
                } catch (...) {
                    unlock_(key, token, out.backend_errors);
                    throw;
                }
                // A load that goes on past a timeout keeps the lock until it expires.
                if (!loaded->late) unlock_(key, token, out.backend_errors);
                return loaded;
            }
            waited = true;
            const auto now = std::chrono::steady_clock::now();
            if (now >= deadline) break;
            lock_wait.on(shared_->flights, key, lead.flight());
            // lock_poll may be milliseconds::max(): clamp it in the clock's unit before comparing.
            std::this_thread::sleep_for(
                std::min(detail::saturating_duration_cast<std::chrono::steady_clock::duration>(policy.lock_poll),
                         deadline - now));
            if (auto hit = landed_<V>(key, policy, out)) {
                c.bump(&CacheCounts::lock_waits);
                lead.finish(hit, true);
                return hit;
            }
        }
        lock_wait.off();
        if (waited && std::chrono::steady_clock::now() >= deadline) {
            c.bump(&CacheCounts::lock_timeouts);
            if (gives_up) {
                auto answer = given_up_<V>(key, policy, fallback, &out.backend_errors, GiveUp::lock);
                answer->late = false;  // nothing of ours goes on: the flight ends with this answer
                lead.finish(answer, final_(*answer));
                return answer;
            }
        }
        return run_load_<V>(key, loader, policy, fallback, &lead, started, out.backend_errors);
    }

    /// The fresh entry (or cached "not found") another instance's load wrote, as a Hit outcome; null when
    /// there is none yet.
    template <class V>
    std::shared_ptr<detail::Loaded<V>> landed_(const CacheKey& key, const CachePolicy& policy, CacheResult<V>& out) {
        auto again = read_<V>(key, out);
        if (again && again->state(clock_.now()) == EntryState::Fresh)
            return hit_outcome_<V>(std::move(again->data), out.source);
        out.source = {};
        if constexpr (TieredBackend<backend_type>) {
            // A composition's read stops at an L1 entry that is stale but not expired, and the other
            // instance wrote its value to the tier they share: look there.
            if (again) {
                if (auto shared = shared_tier_fresh_<V>(key, out)) return shared;
            }
        }
        if (policy.negative_ttl && read_negative_(key, out)) {
            auto hit = hit_outcome_<V>(std::nullopt, out.source);
            out.source = {};
            return hit;
        }
        return nullptr;
    }

    /// For landed_: L2's entry of `key` when it is fresh, written into L1 (as a refill would) and returned
    /// as a Hit outcome; null otherwise.
    template <class V>
    std::shared_ptr<detail::Loaded<V>> shared_tier_fresh_(const CacheKey& key, CacheResult<V>& out) {
        auto& l2 = backend().l2();
        auto found = guarded_read_<Result<Lookup<V>>>([&] { return hitbox::lookup<V>(l2, key); });
        if (!found) {
            note_error_(CacheOp::read, key, detail::attribute(found.error(), l2.label()).in(backend().label()),
                        &out.backend_errors);
            return nullptr;
        }
        for (const auto& e : found->errors)
            note_error_(CacheOp::read, key, e.in(backend().label()), &out.backend_errors);
        if (!found->value || found->value->state(clock_.now()) != EntryState::Fresh) return nullptr;
        auto& l1 = backend().l1();
        auto put =
            guarded_write_<Result<StoreReport>>([&] { return hitbox::store(l1, key, *found->value); }, l1.label());
        if (!put) {
            note_error_(CacheOp::write, key, detail::attribute(put.error(), l1.label()).in(backend().label()),
                        &out.backend_errors);
        } else {
            for (const auto& e : put->errors)
                note_error_(CacheOp::write, key, e.in(backend().label()), &out.backend_errors);
        }
        return hit_outcome_<V>(std::move(found->value->data),
                               intern_(detail::join_path(backend().label(), found->source)));
    }

    /// One try at the stampede lock: true when taken (counted in locks_taken), false when another holder
    /// has it, nullopt when it cannot be had; that failure is noted as a write error of the tier (taking
    /// the lock is a write, SET NX, as releasing it is).
    std::optional<bool> try_lock_once_(const CacheKey& key, const std::string& token, const CachePolicy& policy,
                                       std::vector<Error>* errors) {
        auto got = guarded_read_<Result<bool>>([&] { return backend().try_lock(key, token, *policy.lock_ttl); });
        if (!got) {
            note_error_(CacheOp::write, key, detail::attribute(got.error(), backend().label()), errors);
            return std::nullopt;
        }
        if (*got) shared_->counters.bump(&CacheCounts::locks_taken);
        return *got;
    }

    /// Releases the stampede lock; a failure is noted (the lock then expires by itself).
    void unlock_(const CacheKey& key, const std::string& token, std::vector<Error>& errors) {
        if constexpr (LockingBackend<backend_type>) {
            auto done = guarded_read_<Result<bool>>([&] { return backend().unlock(key, token); });
            if (!done) note_error_(CacheOp::write, key, detail::attribute(done.error(), backend().label()), &errors);
        }
    }

    /// How long a waiter waits, and whether it then answers without loading (its soft timeout, when it
    /// holds a fallback, or its hard timeout, whichever is shorter than waiter_timeout).
    static std::pair<std::chrono::milliseconds, bool> waiter_limit_(const CachePolicy& policy, bool has_fallback) {
        const auto give_up = give_up_after_(policy, has_fallback);
        if (give_up != std::chrono::milliseconds::max() && give_up <= policy.waiter_timeout) return {give_up, true};
        return {policy.waiter_timeout, false};
    }

    /// When a call stops waiting for its loader: at its soft timeout when it holds a stale or fail-safe
    /// value to serve instead (soft < hard), else at its hard timeout; max(): never.
    static std::chrono::milliseconds give_up_after_(const CachePolicy& policy, bool has_fallback) noexcept {
        return has_fallback ? std::min(policy.soft_timeout, policy.hard_timeout) : policy.hard_timeout;
    }

    /// Why a call answers without its loader's result: the loader did not answer in time, another
    /// instance's lock was held past the call's limit, or max_timed_loads were running.
    enum class GiveUp : std::uint8_t { loader, lock, shed };

    /// The answer of a call that stopped waiting for its load at its soft or hard timeout: its fallback,
    /// or a `timeout` error. A fail-safe value served at the hard timeout is cached again for the throttle.
    /// `why` picks the error's text: the call waited for another instance's load under the stampede lock,
    /// or did not start its loader because max_timed_loads were running (then the timeout counters stay).
    template <class V>
    std::shared_ptr<detail::Loaded<V>> given_up_(const CacheKey& key, const CachePolicy& policy,
                                                 const Fallback<V>* fallback, std::vector<Error>* errors,
                                                 GiveUp why = GiveUp::loader) {
        auto& c = shared_->counters;
        auto out = std::make_shared<detail::Loaded<V>>();
        out->late = true;
        const bool soft = fallback && policy.soft_timeout != std::chrono::milliseconds::max();
        if (why != GiveUp::shed) c.bump(soft ? &CacheCounts::soft_timeouts : &CacheCounts::hard_timeouts);
        if (!fallback) {
            out->source = detail::upstream_source;
            const std::string limit = "within hard_timeout (" + std::to_string(policy.hard_timeout.count()) + " ms)";
            std::string message;
            if (why == GiveUp::lock)
                message = "another instance holds the stampede lock on this key and its value did not arrive " + limit +
                          "; the loader was not called";
            else if (why == GiveUp::shed)
                message = std::to_string(std::max<std::size_t>(options_.max_timed_loads, 1)) +
                          " loads of this cache with timeouts are running (max_timed_loads); the loader was not "
                          "called";
            else
                message = "loader did not answer " + limit + "; it goes on in the background";
            out->result = fail(ErrorKind::timeout, std::move(message), std::string(detail::upstream_source));
            return out;
        }
        fill_from_fallback_(*out, *fallback);
        if (!soft && fallback->expired && errors) write_throttled_<V>(key, fallback->entry, policy, *errors);
        return out;
    }

    /// A finished load's outcome, or the fail-safe value served instead of its error (cached again for
    /// fail_safe_throttle). A fail-safe outcome is final for the flight: nobody retries the loader.
    template <class V>
    std::shared_ptr<detail::Loaded<V>> settle_(const CacheKey& key, std::shared_ptr<detail::Loaded<V>> loaded,
                                               const CachePolicy& policy, const Fallback<V>* fallback,
                                               std::vector<Error>& errors) {
        if (loaded->result || !fallback) return loaded;
        if (!fallback->expired) {  // stale-if-error: the caller serves its stale entry
            if (policy.fail_safe_max) write_stale_throttled_<V>(key, fallback->entry, policy, errors);
            return loaded;
        }
        auto safe = std::make_shared<detail::Loaded<V>>();
        fill_from_fallback_(*safe, *fallback);
        safe->cause = loaded->result.error();
        write_throttled_<V>(key, fallback->entry, policy, errors);
        return safe;
    }

    /// An outcome that serves `fallback` (a copy of its value): status Stale, its tier, fail-safe when it
    /// has expired.
    template <class V>
    static void fill_from_fallback_(detail::Loaded<V>& out, const Fallback<V>& fallback) {
        out.result = std::optional<V>(fallback.entry.data);
        out.status = CacheStatus::Stale;
        out.source = fallback.source;
        out.fail_safe = fallback.expired;
    }

    /// A Hit outcome for a value found in the cache (named `source`) instead of loading it.
    template <class V>
    static std::shared_ptr<detail::Loaded<V>> hit_outcome_(std::optional<V> value, std::string_view source) {
        auto hit = std::make_shared<detail::Loaded<V>>();
        hit->result = std::move(value);
        hit->status = CacheStatus::Hit;
        hit->source = source;
        return hit;
    }

    template <class V>
    static bool final_(const detail::Loaded<V>& loaded) noexcept {
        return loaded.result.has_value() || loaded.fail_safe;
    }

    /// Calls the loader (on this thread, or on a thread of its own when the policy has timeouts), writes
    /// what it produced and finishes the flight `lead` (when there is one).
    template <class V, class F>
    std::shared_ptr<detail::Loaded<V>> run_load_(const CacheKey& key, F& loader, const CachePolicy& policy,
                                                 const Fallback<V>* fallback, detail::LeadGuard* lead,
                                                 std::chrono::steady_clock::time_point started,
                                                 std::vector<Error>& errors) {
        if (give_up_after_(policy, fallback != nullptr) != std::chrono::milliseconds::max()) {  // a time to stop
            bool shed = false;
            if (auto job = start_timed_<V>(key, loader, policy, shed))
                return await_timed_<V>(key, std::move(job), policy, fallback, lead, started, errors);
            if (shed) {  // max_timed_loads are running: answer as at the timeout, without calling the loader
                auto answer = given_up_<V>(key, policy, fallback, &errors, GiveUp::shed);
                answer->late = false;
                if (lead) lead->finish(answer, final_(*answer));
                return answer;
            }
        }
        auto loaded = settle_<V>(key, load_and_write_<V>(key, loader, policy, errors), policy, fallback, errors);
        if (lead) lead->finish(loaded, final_(*loaded));
        return loaded;
    }

    /// Starts the loader on a thread of its own; null when the loader cannot be copied there or no thread
    /// could be started (the caller then loads on its own thread, without timeouts), or when
    /// max_timed_loads are running (`shed` set: the caller answers as at its timeout).
    template <class V>
    std::shared_ptr<detail::TimedLoad<V>> start_timed_(const CacheKey& key, detail::LoaderRef<V>& loader,
                                                       const CachePolicy& policy, bool& shed) {
        auto& running = shared_->timed_loads;
        const std::size_t cap = std::max<std::size_t>(options_.max_timed_loads, 1);
        if (running.fetch_add(1, std::memory_order_acq_rel) >= cap) {
            running.fetch_sub(1, std::memory_order_acq_rel);
            shared_->counters.bump(&CacheCounts::loads_shed);
            shed = true;
            return nullptr;
        }
        try {
            auto held = loader.take();
            if (held) {
                auto job = std::make_shared<detail::TimedLoad<V>>();
                auto body = [self = this, job, held, shared = shared_, key, policy]() noexcept {
                    timed_body_<V>(self, *job, *held, *shared, key, policy);
                    shared->timed_loads.fetch_sub(1, std::memory_order_acq_rel);
                };
                std::thread(std::move(body)).detach();
                shared_->counters.bump(&CacheCounts::loads);
                return job;
            }
        } catch (...) {
        }
        running.fetch_sub(1, std::memory_order_acq_rel);
        return nullptr;
    }

    /// The loader's thread: calls it, hands the result to the waiting caller, or, when the caller has
    /// given up, caches the result itself (inside the cache's lifetime gate) and finishes the flight.
    template <class V, class L>
    static void timed_body_(Cache* self, detail::TimedLoad<V>& job, L& loader, detail::CacheShared& shared,
                            const CacheKey& key, const CachePolicy& policy) noexcept {
        const auto t0 = std::chrono::steady_clock::now();
        auto result = [&] {
            const detail::LoadingHere here(shared.flights, key);
            return detail::call_loader<V>(loader);
        }();
        const auto took = std::chrono::steady_clock::now() - t0;
        std::shared_ptr<detail::Flight> flight;
        {
            std::unique_lock lock(job.mutex);
            job.took = took;
            if (!job.abandoned) {
                job.result = std::move(result);
                job.done = true;
                lock.unlock();
                job.cv.notify_all();
                return;
            }
            job.cv.wait(lock, [&] { return job.handed; });  // the caller's own writes come first
            flight = std::move(job.flight);
        }
        shared.counters.bump(&CacheCounts::late_loads);
        auto loaded = std::make_shared<detail::Loaded<V>>();
        loaded->source = detail::upstream_source;
        loaded->result = std::move(result);
        {
            detail::GatePass pass(shared.gate);
            if (pass) {
                try {
                    std::vector<Error> errors;  // reported to the error handler as they happen
                    self->write_loaded_<V>(key, *loaded, policy, took, errors);
                } catch (...) {  // nobody is left to tell: the next caller loads again
                }
            }
        }
        try {
            if (flight) shared.flights.finish(key, flight, loaded, loaded->result.has_value(), policy.retries);
        } catch (...) {
        }
    }

    /// The caller's side of a timed load: waits for the result until its soft timeout (when it holds a
    /// fallback) or its hard timeout; past it, answers without the loader and leaves the flight to the
    /// loader's thread.
    template <class V>
    std::shared_ptr<detail::Loaded<V>> await_timed_(const CacheKey& key, std::shared_ptr<detail::TimedLoad<V>> job,
                                                    const CachePolicy& policy, const Fallback<V>* fallback,
                                                    detail::LeadGuard* lead,
                                                    std::chrono::steady_clock::time_point started,
                                                    std::vector<Error>& errors) {
        const auto limit = detail::deadline_after(started, give_up_after_(policy, fallback != nullptr));
        std::unique_lock lock(job->mutex);
        if (!detail::wait_until_deadline(job->cv, lock, limit, [&] { return job->done; })) {
            job->abandoned = true;  // from here the loader's thread owns the result
            lock.unlock();
            struct Handover {  // whatever happens below, the loader's thread gets the flight and goes on
                detail::TimedLoad<V>& job;
                detail::LeadGuard* lead;
                ~Handover() {
                    {
                        std::lock_guard l(job.mutex);
                        if (lead) job.flight = lead->release();
                        job.handed = true;
                    }
                    job.cv.notify_all();
                }
            } handover{*job, lead};
            // Only this caller gives up: the flight's waiters go on waiting for the load, up to their own
            // timeouts (the loader's thread finishes the flight with its outcome).
            return given_up_<V>(key, policy, fallback, &errors);
        }
        auto loaded = std::make_shared<detail::Loaded<V>>();
        loaded->source = detail::upstream_source;
        loaded->result = std::move(job->result);
        const auto took = job->took;
        lock.unlock();
        write_loaded_<V>(key, *loaded, policy, took, errors);
        loaded = settle_<V>(key, std::move(loaded), policy, fallback, errors);
        if (lead) lead->finish(loaded, final_(*loaded));
        return loaded;
    }

    /// Calls the loader and writes what it produced (a value, or a "not found" when negative caching is
    /// on). The write happens before the outcome is published to waiters.
    template <class V, class F>
    std::shared_ptr<detail::Loaded<V>> load_and_write_(const CacheKey& key, F& loader, const CachePolicy& policy,
                                                       std::vector<Error>& errors) {
        shared_->counters.bump(&CacheCounts::loads);
        auto loaded = std::make_shared<detail::Loaded<V>>();
        loaded->source = detail::upstream_source;
        std::chrono::nanoseconds took{};
        {
            const detail::LoadingHere here(shared_->flights, key);
            if constexpr (Metrics::enabled) {
                const auto started = std::chrono::steady_clock::now();
                loaded->result = detail::call_loader<V>(loader);
                took = std::chrono::steady_clock::now() - started;
            } else {
                loaded->result = detail::call_loader<V>(loader);
            }
        }
        write_loaded_<V>(key, *loaded, policy, took, errors);
        return loaded;
    }

    /// Counts and records a finished loader call and writes what it produced.
    template <class V>
    void write_loaded_(const CacheKey& key, const detail::Loaded<V>& loaded, const CachePolicy& policy,
                       std::chrono::nanoseconds took, std::vector<Error>& errors) {
        if constexpr (Metrics::enabled) {
            const auto r = !loaded.result   ? LoadResult::error
                           : *loaded.result ? LoadResult::found
                                            : LoadResult::not_found;
            metrics_.record_upstream(r, took);
        } else {
            (void)took;
        }
        if (!loaded.result) {
            shared_->counters.bump(&CacheCounts::load_errors);
        } else if (*loaded.result) {
            if (write_value_<V>(key, **loaded.result, policy, errors)) forget_negative_(key, policy, errors);
        } else {
            // "Not found": the item is gone upstream. A stale or fail-safe entry of it (only policies with
            // `stale` or `fail_safe_max` keep one) goes too, so that no later call serves the old value and
            // the marker, read only after the key itself missed, answers the next call.
            if (policy.stale || policy.fail_safe_max) remove_entry_(key, errors);
            if (policy.negative_ttl) write_negative_(key, policy, errors);
        }
    }

    /// Removes the key's own entry from every tier; a failure is a reported write error.
    void remove_entry_(const CacheKey& key, std::vector<Error>& errors) {
        auto gone = guarded_write_<Result<bool>>([&] { return backend().remove(key); }, backend().label());
        if (!gone) note_error_(CacheOp::write, key, detail::attribute(gone.error(), backend().label()), &errors);
    }

    template <class V>
    static void take_(CacheResult<V>& out, const detail::Loaded<V>& loaded) {
        out.status = loaded.status;
        out.source = loaded.source;
        out.fail_safe = loaded.fail_safe;
        if (!loaded.result)
            out.error = loaded.result.error();
        else if (*loaded.result)
            out.value.emplace(**loaded.result);
        if (loaded.cause) out.error = loaded.cause;
    }

    // ---- writes --------------------------------------------------------------------------------------

    /// Writes `value` with the policy's times (saturated: a time past TimePoint::max() is "never"); false
    /// when the backend as a whole refused it. Exceptions of the tier, its weigher or the value's copy
    /// are a failed write.
    template <class V>
    bool write_value_(const CacheKey& key, const V& value, const CachePolicy& policy, std::vector<Error>& errors) {
        const TimePoint now = clock_.now();
        std::optional<TimePoint> expire, stale;
        // milliseconds::max() means "never": jitter does not make it a (very distant) expiry.
        const bool finite = policy.ttl && *policy.ttl != std::chrono::milliseconds::max();
        const double factor = finite ? detail::jitter_factor(policy.jitter) : 1.0;
        if (policy.ttl) expire = detail::time_after(now, detail::scaled(*policy.ttl, factor));
        if (policy.stale) stale = detail::time_after(now, detail::scaled(*policy.stale, factor));
        std::optional<TimePoint> retain;  // fail-safe: kept this long past the expiry
        if (expire && policy.fail_safe_max) retain = detail::saturating_add(*expire, *policy.fail_safe_max);
        return store_made_(key, errors, [&] { return CacheValue<V>(value, expire, stale, now, retain); });
    }

    /// Writes the entry `make()` builds (inside the guard: the value's copy may throw) to the backend;
    /// false when the backend as a whole refused it.
    template <class Make>
    bool store_made_(const CacheKey& key, std::vector<Error>& errors, Make&& make) {
        return report_write_(
            key, guarded_write_([&] { return hitbox::store(backend(), key, make()); }, backend().label()), errors);
    }

    /// Caches a fail-safe value again for fail_safe_throttle (never past its retention), so the calls
    /// that follow are answered by it without calling the failing upstream.
    template <class V>
    void write_throttled_(const CacheKey& key, const CacheValue<V>& old, const CachePolicy& policy,
                          std::vector<Error>& errors) {
        const TimePoint now = clock_.now();
        TimePoint expire = detail::saturating_add(now, policy.fail_safe_throttle);
        if (old.retain && *old.retain < expire) expire = *old.retain;
        if (expire <= now) return;
        store_made_(key, errors,
                    [&] { return CacheValue<V>(old.data, expire, std::nullopt, old.created, old.retain); });
    }

    /// The item exists now: a cached "not found" of it (the marker outlives the value when negative_ttl is
    /// longer than ttl, and is read once the value is gone) is removed. Only under a policy with
    /// negative_ttl (others pay nothing), from where such a policy writes it.
    void forget_negative_(const CacheKey& key, const CachePolicy& policy, std::vector<Error>& errors) {
        if (!policy.negative_ttl) return;
        const CacheKey marker_key = key.with(std::string(detail::negative_part));
        if constexpr (TieredBackend<backend_type>) {
            if (policy.negative_l1_only) {
                auto& l1 = backend().l1();
                auto gone = guarded_write_<Result<bool>>([&] { return l1.remove(marker_key); }, l1.label());
                if (!gone)
                    note_error_(CacheOp::write, key, detail::attribute(gone.error(), l1.label()).in(backend().label()),
                                &errors);
                return;
            }
        }
        auto gone = guarded_write_<Result<bool>>([&] { return backend().remove(marker_key); }, backend().label());
        if (!gone) note_error_(CacheOp::write, key, detail::attribute(gone.error(), backend().label()), &errors);
    }

    /// A stale entry whose reload failed, under a policy with fail_safe_max: written again fresh for
    /// fail_safe_throttle (never past its expiry), so that the calls that follow, here and in the instances
    /// sharing the tier, are hits instead of one failing reload each, as for an expired fail-safe entry.
    template <class V>
    void write_stale_throttled_(const CacheKey& key, const CacheValue<V>& old, const CachePolicy& policy,
                                std::vector<Error>& errors) {
        std::optional<TimePoint> stale = detail::saturating_add(clock_.now(), policy.fail_safe_throttle);
        if (old.expire && *stale >= *old.expire) stale.reset();  // fresh until it expires, then fail-safe
        store_made_(key, errors, [&] { return CacheValue<V>(old.data, old.expire, stale, old.created, old.retain); });
    }

    void write_negative_(const CacheKey& key, const CachePolicy& policy, std::vector<Error>& errors) {
        const TimePoint now = clock_.now();
        const CacheValue<std::string> entry(std::string(detail::negative_marker),
                                            detail::time_after(now, *policy.negative_ttl), std::nullopt, now);
        const CacheKey marker_key = key.with(std::string(detail::negative_part));
        if constexpr (TieredBackend<backend_type>) {
            if (policy.negative_l1_only) {
                auto done = guarded_write_([&] { return hitbox::store(backend().l1(), marker_key, entry); },
                                           backend().l1().label());
                if (!done) done = fail(done.error().in(backend().label()));
                report_write_(key, std::move(done), errors);
                return;
            }
        }
        report_write_(key,
                      guarded_write_([&] { return hitbox::store(backend(), marker_key, entry); }, backend().label()),
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
        if (op == CacheOp::read) c.bump(&CacheCounts::read_errors);
        if (op == CacheOp::write) c.bump(&CacheCounts::write_errors);
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

    template <class V>
    void spawn_revalidate_(const CacheKey& key, detail::LoaderRef<V>& loader, const CachePolicy& policy) {
        auto& c = shared_->counters;
        bool accepted = false;
        try {  // the loader's copy, or the offload, may throw: the stale value is served anyway
            if (auto held = loader.take()) {  // null: a const move-only loader cannot be kept
                auto task = [this, shared = shared_, key, held, policy] {
                    detail::GatePass pass(shared->gate);
                    if (!pass) return;
                    revalidate_<V>(key, *held, policy);
                };
                accepted = offload_->spawn(OffloadKind::revalidate, revalidate_key_(key), std::move(task));
            }
        } catch (...) {
            accepted = false;
        }
        c.bump(accepted ? &CacheCounts::revalidations : &CacheCounts::revalidations_dropped);
    }

    /// The background refresh: lead the key's load unless one is running, re-read the entry, and load
    /// only when it is still not fresh.
    template <class V, class F>
    void revalidate_(const CacheKey& key, F& loader, const CachePolicy& policy) {
        auto& c = shared_->counters;
        auto ticket = shared_->flights.try_lead(key, typeid(V));
        if (ticket.role == detail::FlightTicket::Role::skip) {
            c.bump(&CacheCounts::revalidations_skipped);
            return;
        }
        // Finished even if an exception leaves. A failure (or a refresh left to another instance's lock
        // holder) hands the load to a caller that joined the flight meanwhile, through the usual path
        // (its stampede lock, its timeouts), rather than letting each such caller load on its own.
        detail::LeadGuard lead(shared_->flights, key, ticket.flight, std::max<std::size_t>(policy.retries, 1));
        CacheResult<V> scratch;
        auto current = read_<V>(key, scratch);
        if (current && current->state(clock_.now()) == EntryState::Fresh) {
            lead.finish(hit_outcome_<V>(std::move(current->data), scratch.source), true);
            c.bump(&CacheCounts::revalidations_skipped);
            return;
        }
        std::string token;  // the stampede lock's, when taken
        if constexpr (LockingBackend<backend_type>) {
            if (policy.lock_ttl) {
                // Across instances one refresh at a time, as for loads: take the lock once; while another
                // instance holds it, that instance refreshes and this one takes its value when it lands
                // (now, or at a later stale hit).
                token = detail::lock_token();
                const auto got = try_lock_once_(key, token, policy, nullptr);
                if (!got) {
                    token.clear();  // no lock to be had: refresh without it
                } else {
                    if (auto hit = landed_<V>(key, policy, scratch)) {
                        if (*got) unlock_(key, token, scratch.backend_errors);
                        lead.finish(hit, true);
                        c.bump(&CacheCounts::revalidations_skipped);
                        return;
                    }
                    if (!*got) {
                        c.bump(&CacheCounts::revalidations_skipped);
                        return;  // the guard hands the flight's load to a caller that joined it, if any
                    }
                }
            }
        }
        std::shared_ptr<detail::Loaded<V>> loaded;
        try {
            loaded = load_and_write_<V>(key, loader, policy, scratch.backend_errors);
        } catch (...) {
            if (!token.empty()) unlock_(key, token, scratch.backend_errors);
            throw;
        }
        if (!token.empty()) unlock_(key, token, scratch.backend_errors);
        if (!loaded->result) {
            note_error_(CacheOp::revalidate, key, loaded->result.error(), nullptr);
            // As for a foreground reload: the stale entry is served again without a refresh per hit.
            if (policy.fail_safe_max && current && current->state(clock_.now()) == EntryState::Stale)
                write_stale_throttled_<V>(key, *current, policy, scratch.backend_errors);
        }
        lead.finish(loaded, loaded->result.has_value());
        c.bump(&CacheCounts::revalidations_done);
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

}  // namespace hitbox
