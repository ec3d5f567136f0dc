#pragma once
/// \file
/// hitbox::MemoryBackend: the in-process tier. Bounded (entries or bytes), per-entry expiry, W-TinyLFU
/// eviction, typed values (a hit copies the stored CacheValue<T> out, no decoding), sharded so concurrent
/// hits never wait on one global lock.

#include <algorithm>
#include <bit>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <typeinfo>
#include <utility>

#include <hitbox/backend/memory/detail/coarse_clock.hpp>
#include <hitbox/backend/memory/detail/frequency_sketch.hpp>
#include <hitbox/backend/memory/detail/node.hpp>
#include <hitbox/backend/memory/detail/store.hpp>
#include <hitbox/backend/memory/stats.hpp>
#include <hitbox/backend/memory/weigher.hpp>
#include <hitbox/core/clock.hpp>
#include <hitbox/core/concepts.hpp>
#include <hitbox/core/durations.hpp>
#include <hitbox/core/error.hpp>
#include <hitbox/core/key.hpp>
#include <hitbox/core/linkage.hpp>
#include <hitbox/core/value.hpp>

namespace hitbox {

template <class Clock, class Weigher>
class BasicMemoryBackend;

namespace detail {

/// Default shard count: four per hardware thread (a power of two, at most 64), fewer when that would
/// leave a shard a nominal share under 64 entries or 1 MiB, so small caches keep a precise policy.
inline std::size_t default_shard_count(std::uint64_t bound, bool weighted) {
    const std::size_t threads = std::max(1u, std::thread::hardware_concurrency());
    std::size_t n = std::min<std::size_t>(64, std::bit_ceil(threads * 4));
    const std::uint64_t min_share = weighted ? (std::uint64_t{1} << 20) : 64;
    while (n > 1 && bound / n < min_share) n /= 2;
    return n;
}

/// Whether an entry expiring at `expire_ms` has expired on `clock`; with the system clock, entries not
/// close to expiry are answered from the coarse clock (see coarse_clock.hpp).
template <class Clock>
bool expired(const Clock& clock, std::int64_t expire_ms) {
    if constexpr (std::is_same_v<Clock, SystemClock>) {
        if (certainly_before_expiry(expire_ms)) return false;
    }
    return expire_ms <= to_unix_ms(clock.now());
}

}  // namespace detail

/// Builds a BasicMemoryBackend. One bound is required: `max_entries(n)` or `max_bytes(n)`; `build()`
/// reports a missing, zero or double bound as a `config` error. `clock(c)` and `weigher(w)` change the
/// backend's type (they are policies); everything else is a run-time setting.
///
/// \code
/// auto memory = hitbox::MemoryBackend::builder().max_entries(10'000).build();   // Result<MemoryBackend>
/// \endcode
template <class Clock, class Weigher>
class MemoryBackendBuilder {
public:
    MemoryBackendBuilder() = default;

    /// Bound by entry count: every entry weighs 1.
    MemoryBackendBuilder& max_entries(std::uint64_t n) {
        max_entries_ = n;
        return *this;
    }
    /// Bound by bytes as the weigher counts them (DefaultWeigher: node + key + heap_bytes(value)). Bounds
    /// and weights saturate at 2^56 (64 PiB): a larger bound (UINT64_MAX) means "no bound" in practice, and
    /// an entry the weigher says weighs more counts as 2^56, so totals never wrap.
    MemoryBackendBuilder& max_bytes(std::uint64_t n) {
        max_bytes_ = n;
        return *this;
    }
    /// Name in errors, metrics and composed label paths; default "memory".
    MemoryBackendBuilder& label(std::string name) {
        label_ = std::move(name);
        return *this;
    }
    /// Number of shards (a power of two, 1..1024); more shards, less contention between writers. Default:
    /// four per hardware thread, at most 64, fewer for small bounds.
    MemoryBackendBuilder& shards(std::size_t n) {
        shards_ = n;
        return *this;
    }
    /// Starts a background thread that reclaims expired entries every `every` (default: no thread;
    /// writes and cleanup() reclaim). The thread stops when the last handle to the backend goes away.
    /// Any duration type, rounded up to whole milliseconds; `max()` of any of them means never, so no
    /// thread is started; an interval past the steady clock's range waits without limit.
    template <class Rep, class Period>
    MemoryBackendBuilder& cleanup_interval(std::chrono::duration<Rep, Period> every) {
        cleanup_interval_ = detail::saturating_ms(every);
        return *this;
    }
    /// Records duration histograms (default off): each lookup (get, read_with, the copy out included) and
    /// each write (set), exported as `hitbox_backend_{read,write}_duration_seconds` (doc/metrics.md). Costs
    /// two clock reads per operation; off, two pointer tests.
    MemoryBackendBuilder& duration_histograms(bool on = true) {
        durations_ = on ? DurationHistograms::on : DurationHistograms::off;
        return *this;
    }
    /// Uses another clock policy (e.g. a hitbox::ManualClock in tests).
    template <class C>
    auto clock(C c) const {
        static_assert(detail::holds<ClockSource<C>>,
                      "hitbox: MemoryBackend builder: clock(c): c must model hitbox::ClockSource: a copyable type "
                      "with now() const returning hitbox::TimePoint");
        if constexpr (detail::holds<ClockSource<C>>)
            return MemoryBackendBuilder<C, Weigher>(*this, std::move(c), weigher_);
        else
            return *this;  // the assertion failed: keep this builder, so build() reports nothing more
    }
    /// Uses another weigher for `max_bytes` (see hitbox::WeigherFor).
    template <class W>
    MemoryBackendBuilder<Clock, W> weigher(W w) const {
        return MemoryBackendBuilder<Clock, W>(*this, clock_, std::move(w));
    }

    /// Validates the settings; never throws for bad settings, never blocks.
    Result<BasicMemoryBackend<Clock, Weigher>> build() const;

private:
    template <class, class>
    friend class MemoryBackendBuilder;

    template <class C, class W>
    MemoryBackendBuilder(const MemoryBackendBuilder<C, W>& other, Clock c, Weigher w)
        : max_entries_(other.max_entries_),
          max_bytes_(other.max_bytes_),
          label_(other.label_),
          shards_(other.shards_),
          cleanup_interval_(other.cleanup_interval_),
          durations_(other.durations_),
          clock_(std::move(c)),
          weigher_(std::move(w)) {}

    std::optional<std::uint64_t> max_entries_;
    std::optional<std::uint64_t> max_bytes_;
    std::string label_ = "memory";
    std::optional<std::size_t> shards_;
    std::optional<std::chrono::milliseconds> cleanup_interval_;
    DurationHistograms durations_ = DurationHistograms::off;
    Clock clock_{};
    Weigher weigher_{};
};

/// The in-process cache tier, modelling hitbox::Backend.
///
/// - **Typed**: stores the CacheValue<T> itself; `get<T>` copies it out under a shared shard lock (no
///   deserialization). Reading a key as another type than it was written with is a `type_mismatch` error.
/// - **Bounded**: by entries or by weighed bytes, one bound for the whole cache. It holds whenever no
///   write is in progress; a write in progress may exceed it by its own entry until it has evicted (so the
///   slack is at most one entry per concurrently writing thread).
/// - **Eviction**: adaptive W-TinyLFU per shard (see detail/shard.hpp): frequency-based admission over a
///   segmented LRU, with the admission window sized from ghost hits (a re-inserted recent candidate grows
///   it, a re-inserted evicted victim shrinks it, as ARC adapts), so scans do not flush hot entries and
///   recency-heavy loads still behave like LRU.
/// - **Expiry**: per entry, millisecond precision, from `CacheValue::expire` and the Clock policy. An
///   expired entry is never returned, except one written with a fail-safe retention (`CacheValue::retain`),
///   which is returned (its state() says Expired) until that time; an entry is reclaimed by writes (to its shard, plus a round-robin sweep of
///   another shard on every write), by `cleanup()`, and by an optional background thread.
/// - **Handles**: copies and moves share one store; the store lives until the last handle goes.
///
/// \code
/// auto memory = hitbox::MemoryBackend::builder().max_entries(10'000).build();
/// memory->set(key, hitbox::CacheValue<std::string>{"hello", hitbox::Clock::now() + 60s});
/// auto hit = memory->get<std::string>(key);   // Result<std::optional<CacheValue<std::string>>>
/// \endcode
template <class Clock = SystemClock, class Weigher = DefaultWeigher>
class BasicMemoryBackend {
    static_assert(detail::holds<ClockSource<Clock>>,
                  "BasicMemoryBackend<Clock, Weigher>: Clock must model hitbox::ClockSource: a copyable type with "
                  "now() const returning hitbox::TimePoint");
    static_assert(detail::holds<std::copy_constructible<Weigher>>,
                  "BasicMemoryBackend<Clock, Weigher>: Weigher must be copy constructible");

public:
    /// The clock and weigher policies this backend was built with.
    using clock_type = Clock;
    using weigher_type = Weigher;

    /// Starts configuring a backend of this clock and weigher.
    static MemoryBackendBuilder<Clock, Weigher> builder() { return {}; }

    /// The value stored under `key`, if any and not expired; `type_mismatch` when it was stored as
    /// another type; `unavailable` when copying the value out threw.
    template <class T>
    Result<std::optional<CacheValue<T>>> get(const CacheKey& key) const {
        using R = Result<std::optional<CacheValue<T>>>;
        return find_<T, R>(
            key,
            [this](const CacheValue<T>& v, detail::RwLock::Slot& slot) -> R {
                try {
                    return std::optional<CacheValue<T>>(std::in_place, v);
                } catch (...) {
                    detail::Shard::hit_was_miss(slot);  // the get answers an error: a miss, not a hit
                    return fail(detail::exception_error("copying the value out", state_->label));
                }
            },
            [] { return R(std::optional<CacheValue<T>>{}); });
    }

    /// Calls `f(const CacheValue<T>&)` on the entry of `key`, in place, when it holds a live `T`; true
    /// when it did, false on a miss, `type_mismatch` as get<T>. Lets a caller copy only what it needs
    /// (the cache front builds its answer straight from the entry). `f` runs under the shard's read lock:
    /// keep it short, and it must not call this backend at all: a write would wait for the lock it holds,
    /// and a read of the same shard waits behind a writer that waits for `f` (readers let a waiting writer
    /// go first). An exception `f` throws reaches the caller, the lock released.
    template <class T, class F>
    Result<bool> read_with(const CacheKey& key, F&& f) const {
        return find_<T, Result<bool>>(
            key,
            [&f](const CacheValue<T>& v, detail::RwLock::Slot&) -> Result<bool> {
                std::forward<F>(f)(v);
                return true;
            },
            [] { return Result<bool>(false); });
    }

    /// Stores a copy of `value` under `key`, replacing any entry of any type (the new expiry applies).
    /// A value already expired is not stored and removes the old entry. A value heavier than `max_bytes`
    /// is a `capacity` error, and also removes the old entry. A weigher or a copy of the value that throws
    /// is an `unavailable` error ("weigher threw: ..."): nothing is stored and the old entry is removed.
    template <class T>
    Result<void> set(const CacheKey& key, const CacheValue<T>& value) {
        return put<T>(key, value);
    }

    /// Stores `value`, moved in.
    template <class T>
    Result<void> set(const CacheKey& key, CacheValue<T>&& value) {
        return put<T>(key, std::move(value));
    }

    /// Removes the entry of `key`; true when a live (unexpired) entry was there.
    Result<bool> remove(const CacheKey& key) {
        if (!state_) return moved_from();
        State& s = *state_;
        const std::uint64_t h = detail::mix_hash(key.hash());
        detail::Graveyard dead;
        return s.store.erase(s.store.shard_for(h), key, h, to_unix_ms(s.clock.now()), dead);
    }

    /// Name in errors and label paths.
    std::string_view label() const noexcept { return state_ ? std::string_view(state_->label) : std::string_view(); }

    /// The time by this tier's clock, which judges its entries' expiry (TellsTime: a composition judges an
    /// entry this tier kept past its expiry by the same clock).
    TimePoint now() const { return state_ ? state_->clock.now() : SystemClock::now(); }

    /// Reclaims every expired entry now; returns how many. Writes do this incrementally anyway.
    std::size_t cleanup() {
        if (!state_) return 0;
        return state_->store.cleanup(to_unix_ms(state_->clock.now()));
    }

    /// Drops every entry.
    void clear() {
        if (state_) state_->store.clear();
    }

    /// Counters summed over the shards.
    MemoryStats stats() const noexcept { return state_ ? state_->store.stats() : MemoryStats{}; }

    /// The read and write duration histograms (shared with copies of this handle); `enabled` false and all
    /// empty when built without them.
    DurationStats durations() const noexcept {
        return state_ && state_->timers ? state_->timers->snapshot() : DurationStats{};
    }

    /// Number of shards the entries are spread over.
    std::size_t shard_count() const noexcept { return state_ ? state_->store.shard_count() : 0; }

private:
    friend class MemoryBackendBuilder<Clock, Weigher>;

    /// The lookup of get and read_with: `hit(entry, slot)` under the shard's read lock when `key` holds a
    /// live `T` (the reader's slot: a hit whose copy fails moves its count to the misses), `miss()` when it
    /// holds nothing live, a `type_mismatch` error otherwise. Each returns an `R`, returned as is (a named
    /// result between would cost a move of the value: NRVO does not apply with several returns).
    /// Timed here, in one piece, not in get and read_with: with the histograms off, the code inlined into
    /// callers is what it was without them, and this body only gains two pointer tests.
    template <class T, class R, class Hit, class Miss>
    R find_(const CacheKey& key, Hit&& hit, Miss&& miss) const {
        if (!state_) return moved_from();
        State& s = *state_;
        const detail::OptionalStageClock clock(s.timers.get(), TierStage::read);
        const std::uint64_t h = detail::mix_hash(key.hash());
        detail::Shard& shard = s.store.shard_for(h);
        const std::type_info* stored = nullptr;
        {
            detail::ReadGuard guard(shard.lock);
            const detail::NodeBase* n = shard.find(key, h);
            if (n == nullptr || (n->expire_ms != detail::no_expiry && detail::expired(s.clock, n->expire_ms))) {
                detail::Shard::record_miss(guard.slot());
                return miss();
            }
            if (detail::same_type(*n->type, typeid(T))) {
                detail::Shard::record_hit(n, guard.slot());
                return hit(static_cast<const detail::TypedNode<T>*>(n)->value, guard.slot());
            }
            stored = n->type;
            detail::Shard::record_miss(guard.slot());
        }
        return type_mismatch_(*stored, typeid(T));
    }

    struct State {
        State(std::size_t shards, std::uint64_t bound, bool w, std::string l, Clock c, Weigher wg)
            : store(shards, bound, w), weighted(w), label(std::move(l)), clock(std::move(c)), weigher(std::move(wg)) {}

        void start_reaper(std::chrono::milliseconds every) {
            reaper = std::jthread([this, every](std::stop_token stop) {
                std::unique_lock lock(reaper_mutex);
                while (!reaper_wake.wait_until(lock, stop, detail::deadline_after(every), [] { return false; }) &&
                       !stop.stop_requested()) {
                    lock.unlock();
                    store.cleanup(to_unix_ms(clock.now()));
                    lock.lock();
                }
            });
        }

        detail::Store store;
        std::shared_ptr<detail::StageTimers> timers;  // null: duration histograms off
        bool weighted;
        std::string label;
        Clock clock;
        Weigher weigher;
        std::mutex reaper_mutex;
        std::condition_variable_any reaper_wake;
        std::jthread reaper;  // last: stopped and joined before the rest is destroyed
    };

    BasicMemoryBackend(std::size_t shards, std::uint64_t bound, bool weighted, std::string label, Clock clock,
                       Weigher weigher, std::optional<std::chrono::milliseconds> cleanup_interval,
                       DurationHistograms durations)
        : state_(std::make_shared<State>(shards, bound, weighted, std::move(label), std::move(clock),
                                         std::move(weigher))) {
        state_->timers = detail::make_stage_timers(durations);
        if (cleanup_interval && *cleanup_interval != std::chrono::milliseconds::max())
            state_->start_reaper(*cleanup_interval);
    }

    static Unexpected moved_from() { return fail(ErrorKind::unavailable, "this MemoryBackend handle was moved from"); }

    template <class T, class V>
    Result<void> put(const CacheKey& key, V&& value) {
        static_assert(detail::holds<WeigherFor<Weigher, T>>,
                      "BasicMemoryBackend<Clock, Weigher>::set<T>: Weigher must be callable as "
                      "w(const hitbox::CacheKey&, const T&) returning a std::size_t");
        static_assert(std::is_copy_constructible_v<T>,
                      "MemoryBackend::set<T>: get<T> returns copies, so T must be copy constructible");
        if (!state_) return moved_from();
        State& s = *state_;
        const detail::OptionalStageClock clock(s.timers.get(), TierStage::write);
        PutPlace place;
        if (!put_place_(key, value.held_until(), place)) return {};  // already expired: the old entry went
        std::size_t bytes = 0;
        try {
            if constexpr (WeigherFor<Weigher, T>)  // guarded: a wrong weigher is reported by the static_assert alone
                bytes = static_cast<std::size_t>(s.weigher(key, std::as_const(value.data)));
        } catch (...) {
            return put_threw_(key, place, "weigher");
        }
        const auto weight = put_weight_(key, place, bytes);
        if (!weight) return fail(weight.error());
        detail::TypedNode<T>* node = nullptr;
        try {
            node = new detail::TypedNode<T>(key, place.hash, place.expire_ms, bytes, *weight, std::forward<V>(value));
        } catch (...) {
            return put_threw_(key, place, "storing a copy of the value");
        }
        put_node_(place, node);
        return {};
    }

    // The steps of put<T> that do not depend on T, compiled once (in libhitbox in compiled-library mode)
    // instead of once per value type; defined below the class.

    /// Where an entry of `key` goes, and when it expires.
    struct PutPlace {
        detail::Shard* shard = nullptr;
        std::uint64_t hash = 0;
        std::int64_t now_ms = 0;
        std::int64_t expire_ms = 0;
    };
    /// Fills `place`; false when `held` has already passed: the old entry of `key` is removed, nothing stored.
    bool put_place_(const CacheKey& key, std::optional<TimePoint> held, PutPlace& place);
    /// The weight of an entry of `bytes` (clamped), or the capacity error when it cannot fit (the old entry
    /// goes).
    Result<std::size_t> put_weight_(const CacheKey& key, const PutPlace& place, std::size_t& bytes);
    /// Inside a catch handler: the weigher or the copy of the value (`what`) threw; the old entry goes.
    Unexpected put_threw_(const CacheKey& key, const PutPlace& place, const char* what);
    /// Removes the old entry of `key`: a write that stores nothing still replaces it.
    void put_drop_old_(const CacheKey& key, const PutPlace& place);
    /// Stores `node` (owned from here on) in its place.
    void put_node_(const PutPlace& place, detail::NodeBase* node);
    /// find_'s error for an entry stored as `stored` and read as `wanted`.
    Unexpected type_mismatch_(const std::type_info& stored, const std::type_info& wanted) const;

    std::shared_ptr<State> state_;
};

template <class Clock, class Weigher>
bool BasicMemoryBackend<Clock, Weigher>::put_place_(const CacheKey& key, std::optional<TimePoint> held,
                                                    PutPlace& place) {
    State& s = *state_;
    place.now_ms = to_unix_ms(s.clock.now());
    place.hash = detail::mix_hash(key.hash());
    place.shard = &s.store.shard_for(place.hash);
    place.expire_ms = held ? to_unix_ms(*held) : detail::no_expiry;  // a fail-safe entry is kept past its expiry
    if (place.expire_ms > place.now_ms) return true;
    put_drop_old_(key, place);
    return false;
}

template <class Clock, class Weigher>
Result<std::size_t> BasicMemoryBackend<Clock, Weigher>::put_weight_(const CacheKey& key, const PutPlace& place,
                                                                    std::size_t& bytes) {
    State& s = *state_;
    bytes = static_cast<std::size_t>(std::min<std::uint64_t>(bytes, detail::max_weight));
    const std::size_t weight = s.weighted ? std::max<std::size_t>(bytes, 1) : 1;
    if (weight <= s.store.capacity()) return weight;
    put_drop_old_(key, place);
    return fail(ErrorKind::capacity,
                "entry weighs " + std::to_string(bytes) + " bytes, more than max_bytes (" +
                    std::to_string(s.store.capacity()) + ")",
                s.label);
}

template <class Clock, class Weigher>
Unexpected BasicMemoryBackend<Clock, Weigher>::put_threw_(const CacheKey& key, const PutPlace& place,
                                                          const char* what) {
    put_drop_old_(key, place);
    return fail(detail::exception_error(what, state_->label));
}

template <class Clock, class Weigher>
void BasicMemoryBackend<Clock, Weigher>::put_drop_old_(const CacheKey& key, const PutPlace& place) {
    detail::Graveyard dead;
    state_->store.erase(*place.shard, key, place.hash, place.now_ms, dead);
}

template <class Clock, class Weigher>
void BasicMemoryBackend<Clock, Weigher>::put_node_(const PutPlace& place, detail::NodeBase* node) {
    detail::Graveyard dead;
    state_->store.put(*place.shard, node, place.now_ms, dead);
}

template <class Clock, class Weigher>
Unexpected BasicMemoryBackend<Clock, Weigher>::type_mismatch_(const std::type_info& stored,
                                                              const std::type_info& wanted) const {
    return fail(ErrorKind::type_mismatch,
                "entry stored as " + detail::type_name(stored) + ", read as " + detail::type_name(wanted),
                state_->label);
}

// Out of the class so that the compiled library's `extern template` below keeps it out of programs.
template <class Clock, class Weigher>
Result<BasicMemoryBackend<Clock, Weigher>> MemoryBackendBuilder<Clock, Weigher>::build() const {
    auto error = [&](std::string message) { return fail(ErrorKind::config, std::move(message), label_); };
    if (!max_entries_ && !max_bytes_)
        return error("MemoryBackend needs a bound: call max_entries(n) or max_bytes(n) before build()");
    if (max_entries_ && max_bytes_)
        return error("MemoryBackend takes one bound, max_entries(n) or max_bytes(n), not both");
    const bool weighted = max_bytes_.has_value();
    const std::uint64_t bound = weighted ? std::min(*max_bytes_, detail::max_weight) : *max_entries_;
    if (bound == 0) return error(weighted ? "max_bytes must be at least 1" : "max_entries must be at least 1");
    if (label_.empty()) return error("label must not be empty");
    std::size_t shards = shards_.value_or(detail::default_shard_count(bound, weighted));
    if (shards == 0 || shards > 1024 || !std::has_single_bit(shards))
        return error("shards(n) must be a power of two from 1 to 1024, got " + std::to_string(shards));
    if (shards > bound)
        return error("shards(" + std::to_string(shards) + ") exceeds the bound of " + std::to_string(bound));
    if (cleanup_interval_ && cleanup_interval_->count() <= 0) return error("cleanup_interval must be positive");
    try {
        return BasicMemoryBackend<Clock, Weigher>(shards, bound, weighted, label_, clock_, weigher_, cleanup_interval_,
                                                  durations_);
    } catch (const std::bad_alloc&) {
        return fail(ErrorKind::capacity,
                    "MemoryBackend: out of memory for " + std::to_string(shards) + " shards' tables", label_);
    } catch (const std::exception& e) {  // the cleanup thread could not start, or the weigher's copy threw
        return fail(ErrorKind::unavailable, std::string("MemoryBackend: build failed: ") + e.what(), label_);
    } catch (...) {
        return fail(ErrorKind::unavailable, "MemoryBackend: build failed: an exception of unknown type", label_);
    }
}

/// The in-process tier with the system clock and the default weigher.
using MemoryBackend = BasicMemoryBackend<SystemClock, DefaultWeigher>;

#if HITBOX_COMPILED_LIB
// The compiled library (src/core.cpp) instantiates the default tier's members that do not depend on the
// value type (construction, the builder, remove, clear, stats, the reaper); programs only instantiate
// get / set / put for their own types.
extern template class BasicMemoryBackend<SystemClock, DefaultWeigher>;
extern template class MemoryBackendBuilder<SystemClock, DefaultWeigher>;
#endif

}  // namespace hitbox
