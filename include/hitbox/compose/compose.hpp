#pragma once
/// \file
/// hitbox::Compose<L1, L2, Offload, Read, Write, Refill>: two tiers folded into one statically dispatched
/// Backend, and hitbox::compose(tiers..., offload), which folds any number of tiers into nested Composes.
/// Policies: compose/policies.hpp; traced calls (which tier answered): compose/lookup.hpp.

#include <array>
#include <atomic>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <hitbox/compose/detail/fork.hpp>
#include <hitbox/compose/lookup.hpp>
#include <hitbox/compose/policies.hpp>
#include <hitbox/compose/stats.hpp>
#include <hitbox/core/clock.hpp>
#include <hitbox/core/concepts.hpp>
#include <hitbox/core/error.hpp>
#include <hitbox/core/key.hpp>
#include <hitbox/core/linkage.hpp>
#include <hitbox/core/stats.hpp>
#include <hitbox/core/value.hpp>
#include <hitbox/key_format/bitcode.hpp>

/// Marks a function as the unlikely path, kept out of line (GCC and Clang).
#ifndef HITBOX_COLD
#if defined(__GNUC__)
#define HITBOX_COLD __attribute__((noinline, cold))
#else
#define HITBOX_COLD
#endif
#endif

namespace hitbox {

template <class L1, class L2, class O, class Read = SequentialRead, class Write = OptimisticParallelWrite,
          class Refill = RefillAlways>
class Compose;

namespace detail {

/// How a composition reaches a tier it holds: by value, through std::reference_wrapper, a raw pointer, a
/// shared_ptr or a unique_ptr.
template <class T>
struct tier_traits {
    using type = T;
    static T& get(T& t) noexcept { return t; }
    static const T& get(const T& t) noexcept { return t; }
};
template <class T>
struct tier_traits<std::reference_wrapper<T>> {
    using type = T;
    static T& get(const std::reference_wrapper<T>& t) noexcept { return t.get(); }
};
template <class T>
struct tier_traits<T*> {
    using type = T;
    static T& get(T* t) noexcept { return *t; }
};
template <class T>
struct tier_traits<std::shared_ptr<T>> {
    using type = T;
    static T& get(const std::shared_ptr<T>& t) noexcept { return *t; }
};
template <class T, class D>
struct tier_traits<std::unique_ptr<T, D>> {
    using type = T;
    static T& get(const std::unique_ptr<T, D>& t) noexcept { return *t; }
};
template <class T>
using tier_t = typename tier_traits<T>::type;

template <class T>
inline constexpr bool is_compose = false;
template <class L1, class L2, class O, class R, class W, class F>
inline constexpr bool is_compose<Compose<L1, L2, O, R, W, F>> = true;

/// The leaf tiers under a tier: 1 for a leaf, the sum of both sides for a composition.
template <class T>
inline constexpr std::size_t leaf_tiers = 1;
template <class L1, class L2, class O, class R, class W, class F>
inline constexpr std::size_t leaf_tiers<Compose<L1, L2, O, R, W, F>> = leaf_tiers<tier_t<L1>> + leaf_tiers<tier_t<L2>>;

/// One level's view of a read: the value, where it came from (traced reads only), and the errors of the
/// tiers below, each attributed to its label path relative to this level.
template <class T>
struct ReadOutcome {
    std::optional<CacheValue<T>> value;
    std::string source;
    std::vector<Error> errors;
    bool failed = false;  ///< every tier failed
};

struct WriteOutcome {
    std::vector<std::string> written;
    std::vector<Error> errors;
    bool failed = false;  ///< the write failed as the policy defines it
};

struct RemoveOutcome {
    bool existed = false;
    std::vector<Error> errors;
    bool failed = false;  ///< at least one tier failed
};

/// Both halves of a Parallel/Race call and their results, shared by the caller and the worker.
template <class A, class B>
struct ForkPair {
    Fork fork;
    A a{};
    B b{};
};

/// The live counters behind ComposeStats: one relaxed cell per member of ComposeStats, where they are
/// declared (AtomicStats walks them for snapshot and restore). Tier helpers take one cell as an atomic_ref.
struct ComposeCounters : AtomicStats<ComposeStats> {
    static void bump(std::atomic_ref<std::uint64_t> c) noexcept { c.fetch_add(1, std::memory_order_relaxed); }
};

/// Which writes of a key a composition has seen, so that a refill or a Race write's slower half never
/// lands after a later `set` or `remove` of the key (it would bring back a deleted or older value). One
/// word per slot (keys hashed into `slots`): the low 16 bits count writes in progress, the rest counts
/// writes begun and ended. A write adds to it when it begins and again when it ends. A refill takes a
/// snapshot before it reads L2 and writes L1 only while the word still equals it with no write in
/// progress, and takes its write back (removes the key from L1) when the word moved meanwhile. Keys that
/// share a slot only cost each other a refill now and then (a miss later), never a wrong value.
class KeyEpochs {
public:
    static constexpr std::size_t slots = 1024;
    static constexpr std::uint64_t none = ~std::uint64_t{0};  ///< no snapshot: never matches

    /// The slot's word now, or `none` while a write of a key of this slot is in progress.
    std::uint64_t snapshot(const CacheKey& key) const noexcept {
        const std::uint64_t v = slot_(key).load(std::memory_order_seq_cst);
        return (v & writing_mask) != 0 ? none : v;
    }
    /// True when no write of the slot began since `seen` (a snapshot) was taken.
    bool unchanged(const CacheKey& key, std::uint64_t seen) const noexcept {
        return seen != none && slot_(key).load(std::memory_order_seq_cst) == seen;
    }
    /// The slot's word as it is (writes in progress included).
    std::uint64_t current(const CacheKey& key) const noexcept { return slot_(key).load(std::memory_order_seq_cst); }
    void begin(const CacheKey& key) noexcept { slot_(key).fetch_add(one_write + 1, std::memory_order_seq_cst); }
    void end(const CacheKey& key) noexcept {
        slot_(key).fetch_add(one_write - 1, std::memory_order_seq_cst);  // one more ended, one fewer in progress
    }

private:
    static constexpr std::uint64_t writing_mask = 0xffff;
    static constexpr std::uint64_t one_write = std::uint64_t{1} << 16;

    std::atomic<std::uint64_t>& slot_(const CacheKey& key) const noexcept {
        const std::uint64_t h = static_cast<std::uint64_t>(key.hash()) * 0x9e3779b97f4a7c15ull;
        return words_[h >> 54];  // the top 10 bits: 1024 slots
    }

    mutable std::array<std::atomic<std::uint64_t>, slots> words_{};
};

/// One write of a key in the key epochs: begun when built, ended at the end of the scope unless released.
class EpochWrite {
public:
    EpochWrite(KeyEpochs& epochs, const CacheKey& key) noexcept : epochs_(epochs), key_(key) { epochs.begin(key); }
    EpochWrite(const EpochWrite&) = delete;
    EpochWrite& operator=(const EpochWrite&) = delete;
    ~EpochWrite() {
        if (!released_) epochs_.end(key_);
    }

    /// Hands the end of the write to someone else (a Race write's slower half ends it when it lands).
    void release() noexcept { released_ = true; }

private:
    KeyEpochs& epochs_;
    const CacheKey& key_;
    bool released_ = false;
};

/// What a composition shares with its background tasks: the lifetime gate, the counters, the key epochs
/// and an id that keeps its refill dedup keys apart from other compositions on the same offload.
struct ComposeShared {
    Gate gate;
    ComposeCounters counters;
    KeyEpochs epochs;
    std::uint64_t id;

    ComposeShared() : id(next_id()) {}

    static std::uint64_t next_id() noexcept {
        static std::atomic<std::uint64_t> counter{0};
        return counter.fetch_add(1, std::memory_order_relaxed) + 1;
    }
};

/// The background task that runs slot i of `fork` (owned by `keep`) unless the composition is gone; dropped
/// unrun (refused now, or discarded by the offload's shutdown later), it hands the slot back to the waiting
/// caller (SlotTask).
HITBOX_LIB_INLINE std::function<void()> fork_slot_task(std::shared_ptr<void> keep, Fork& fork, int i,
                                                       std::shared_ptr<ComposeShared> shared);

/// The background task that finishes the losing slot of a Race unless the composition is gone.
HITBOX_LIB_INLINE std::function<void()> fork_loser_task(std::shared_ptr<void> keep, Fork& fork, int loser,
                                                        std::shared_ptr<ComposeShared> shared);

HITBOX_LIB_INLINE std::string join_path(std::string_view outer, std::string_view inner);

/// A leaf tier's error, attributed to the tier's label unless the tier already named itself.
inline Error attribute(const Error& e, std::string_view label) { return e.backend().empty() ? e.in(label) : e; }

HITBOX_LIB_INLINE void prefix_errors(std::vector<Error>& errors, std::string_view label);

inline void append_errors(std::vector<Error>& to, std::vector<Error>&& from) {
    for (auto& e : from) to.push_back(std::move(e));
}

/// The error a failed composition call returns: the one tier error when a single tier failed, otherwise
/// `unavailable` naming every tier's error ("every tier failed to read: [cache.memory] connection: ...;
/// [cache.redis] timeout: ..."; "2 tiers failed to remove: ..." when `every` is false: a remove or a
/// sequential write fails when any tier does).
HITBOX_LIB_INLINE Error composed_failure(std::string_view label, std::string_view what,
                                         const std::vector<Error>& errors, bool every);

/// Calls a leaf tier (`call()` returns an R); an exception it throws (the tier, a weigher, a value's
/// copy) becomes that tier's `unavailable` error ("<what> threw: ..."), so a throwing tier is a failing
/// tier like any other.
template <class R, class Tier, class Call>
R call_tier(const Tier& tier, std::string_view what, Call&& call) {
    try {
        return std::forward<Call>(call)();
    } catch (...) {
        return fail(exception_error(what, std::string(tier.label())));
    }
}

/// Calls `f` with the read policy's mode as a std::integral_constant: at compile time for a static policy
/// (nothing at run time), through one switch for DynamicRead. Either way a mode runs the same template.
template <class P, class F>
decltype(auto) with_read_mode(const P& policy, F&& f) {
    if constexpr (fixed_read_mode<P>) {
        (void)policy;
        return f(std::integral_constant<ReadMode, P::mode>{});
    } else {
        switch (policy.mode) {
            case ReadMode::race: return f(std::integral_constant<ReadMode, ReadMode::race>{});
            case ReadMode::parallel: return f(std::integral_constant<ReadMode, ReadMode::parallel>{});
            case ReadMode::sequential: break;
        }
        return f(std::integral_constant<ReadMode, ReadMode::sequential>{});
    }
}

/// with_read_mode for write policies.
template <class P, class F>
decltype(auto) with_write_mode(const P& policy, F&& f) {
    if constexpr (fixed_write_mode<P>) {
        (void)policy;
        return f(std::integral_constant<WriteMode, P::mode>{});
    } else {
        switch (policy.mode) {
            case WriteMode::sequential: return f(std::integral_constant<WriteMode, WriteMode::sequential>{});
            case WriteMode::race: return f(std::integral_constant<WriteMode, WriteMode::race>{});
            case WriteMode::optimistic_parallel: break;
        }
        return f(std::integral_constant<WriteMode, WriteMode::optimistic_parallel>{});
    }
}

/// True for a refill policy that is off by its type (RefillNever): no refill code at all.
template <class P>
constexpr bool never_refills() noexcept {
    if constexpr (fixed_refill<P>)
        return !P::enabled;
    else
        return false;
}

/// True when `a` stays alive longer than `b` (no expiry is the longest life).
template <class T>
bool lives_longer(const CacheValue<T>& a, const CacheValue<T>& b) noexcept {
    if (!a.expire) return b.expire.has_value();
    if (!b.expire) return false;
    return *a.expire > *b.expire;
}

}  // namespace detail

/// Two tiers folded into one Backend, dispatched statically: a `get` with the default SequentialRead on an
/// L1 hit is exactly the L1 call. Compositions nest (a Compose is a Backend), labels compose into paths
/// ("cache.memory", "outer.inner.redis") and `lookup()` / `store()` say which tier answered or took a
/// write. Each tier keeps its own representation: a refill hands L1 the decoded object L2 returned, and a
/// write serializes only in tiers that store bytes.
///
/// Tiers are held by value (moved in), or by reference through std::reference_wrapper, a pointer,
/// shared_ptr or unique_ptr. The Offload is held by reference and must outlive the composition. Rules:
/// a failing tier (a throwing one too: its exception is an `unavailable` error, "read threw: ...") counts
/// as a miss (counted, listed in `Lookup::errors`); a read fails only when every tier failed, with an
/// error naming each (writes as their policy says). Deletes go to every tier (L2 first, then L1);
/// `remove` fails if any tier failed. A refill, or a Race write's slower half, never lands after a `set`
/// or `remove` of its key (detail::KeyEpochs).
///
/// The destructor (and a move) waits for background work of this composition that is running, and turns
/// queued work into no-ops. Not copyable; move only while no call is in progress.
///
/// \code
/// hitbox::OffloadManager offload;
/// auto tiers = hitbox::compose(std::move(memory), std::move(redis), offload);   // label "cache"
/// tiers.set(key, hitbox::CacheValue<User>{user, hitbox::Clock::now() + 60s});
/// auto found = tiers.lookup<User>(key);       // found->source == "cache.memory"
/// \endcode
template <class L1, class L2, class O, class Read, class Write, class Refill>
class Compose {
    static_assert(detail::holds<Backend<detail::tier_t<L1>>>,
                  "hitbox::Compose<L1, L2, Offload>: L1 must model hitbox::Backend: it needs get<T>, set<T>, "
                  "remove, label()");
    static_assert(detail::holds<Backend<detail::tier_t<L2>>>,
                  "hitbox::Compose<L1, L2, Offload>: L2 must model hitbox::Backend: it needs get<T>, set<T>, "
                  "remove, label()");
    static_assert(detail::holds<Offload<O>>,
                  "hitbox::Compose<L1, L2, Offload>: Offload must model hitbox::Offload: it needs "
                  "bool spawn(OffloadKind, std::string dedup_key, std::function<void()>) "
                  "(use OffloadManager, InlineOffload or NoOffload)");
    static_assert(detail::holds<ReadPolicy<Read>>,
                  "hitbox::Compose<L1, L2, Offload, Read>: Read must model hitbox::ReadPolicy "
                  "(SequentialRead, RaceRead, ParallelRead or DynamicRead)");
    static_assert(detail::holds<WritePolicy<Write>>,
                  "hitbox::Compose<L1, L2, Offload, Read, Write>: Write must model hitbox::WritePolicy "
                  "(SequentialWrite, OptimisticParallelWrite, RaceWrite or DynamicWrite)");
    static_assert(detail::holds<RefillPolicy<Refill>>,
                  "hitbox::Compose<L1, L2, Offload, Read, Write, Refill>: Refill must model hitbox::RefillPolicy "
                  "(RefillAlways, RefillNever or DynamicRefill)");

    template <class, class, class, class, class, class>
    friend class Compose;

public:
    /// The tiers (looked through reference wrappers and pointers), the offload and the policies.
    using l1_type = detail::tier_t<L1>;
    using l2_type = detail::tier_t<L2>;
    using offload_type = O;
    using read_policy = Read;
    using write_policy = Write;
    using refill_policy = Refill;

    /// Takes both tiers (moved in, or wrappers that refer to them), the offload (by reference) and the
    /// policies. An empty label makes this level transparent in label paths (compose() uses it for the
    /// inner levels of a fold).
    Compose(L1 l1, L2 l2, O& offload, Read read = {}, Write write = {}, Refill refill = {}, std::string label = "cache")
        : shared_(std::make_shared<detail::ComposeShared>()),
          l1_(std::move(l1)),
          l2_(std::move(l2)),
          offload_(&offload),
          read_policy_(std::move(read)),
          write_policy_(std::move(write)),
          refill_policy_(std::move(refill)),
          label_(std::move(label)) {}

    Compose(const Compose&) = delete;
    Compose& operator=(const Compose&) = delete;

    /// Waits for the source's running background work, then takes its tiers and counters.
    Compose(Compose&& other)
        : shared_(other.renew_()),
          l1_(std::move(other.l1_)),
          l2_(std::move(other.l2_)),
          offload_(other.offload_),
          read_policy_(std::move(other.read_policy_)),
          write_policy_(std::move(other.write_policy_)),
          refill_policy_(std::move(other.refill_policy_)),
          label_(std::move(other.label_)) {}

    Compose& operator=(Compose&&) = delete;

    /// Waits for this composition's running background work; queued work becomes a no-op.
    ~Compose() { shared_->gate.close_and_wait(); }

    /// This level's label ("cache" unless changed); empty for the inner levels of a fold.
    std::string_view label() const noexcept { return label_; }

    /// The time by L1's clock when L1 tells it (TellsTime: a memory tier on a ManualClock), else the system
    /// clock: what an L1 entry's expiry is judged by.
    TimePoint now() const {
        if constexpr (TellsTime<l1_type>)
            return l1().now();
        else
            return SystemClock::now();
    }

    /// Reads through the tiers as the read policy says; an L2 hit refills L1 as the refill policy says.
    /// Fails (kind unavailable, naming each tier's error) only when every tier failed.
    template <class T>
    Result<std::optional<CacheValue<T>>> get(const CacheKey& key) {
        return detail::with_read_mode(read_policy_, [&](auto mode) { return get_<decltype(mode)::value, T>(key); });
    }

    /// get<T> that also says which tier answered (label path) and which tiers failed on the way.
    template <class T>
    Result<Lookup<T>> lookup(const CacheKey& key) {
        auto out = read_impl_<T, true>(key);
        if (out.failed) return fail(failure_("read", out.errors));
        Lookup<T> found;
        found.value = std::move(out.value);
        found.source = std::move(out.source);
        found.errors = std::move(out.errors);
        return found;
    }

    /// lookup<T> for a caller that has read L1 itself (SequentialRead over a leaf L1) and got `first`:
    /// continues with L2 and the refill exactly as lookup() would, without reading L1 again. The cache
    /// front uses it so that its L1 hit path is a plain L1 get.
    template <class T>
        requires(detail::fixed_read_mode<Read>&& Read::mode == ReadMode::sequential && !detail::is_compose<l1_type>)
    Result<Lookup<T>> lookup_after_l1(const CacheKey& key, Result<std::optional<CacheValue<T>>> first) {
        auto a = leaf_outcome_<T, true>(l1(), std::move(first));
        if (a.failed) detail::ComposeCounters::bump(counters_().ref(&ComposeStats::l1_read_errors));
        auto out = sequential_after_l1_<T, true>(key, std::move(a));
        if (out.value && !label_.empty()) out.source = detail::join_path(label_, out.source);
        detail::prefix_errors(out.errors, label_);
        if (out.failed) return fail(failure_("read", out.errors));
        Lookup<T> found;
        found.value = std::move(out.value);
        found.source = std::move(out.source);
        found.errors = std::move(out.errors);
        return found;
    }

    /// Writes through the tiers as the write policy says. The value keeps its created / stale / expire
    /// times in every tier.
    template <class T>
    Result<void> set(const CacheKey& key, const CacheValue<T>& value) {
        auto out = write_impl_<T, false>(key, value);
        if (out.failed) return fail(failure_("write", out.errors));
        return {};
    }

    /// set<T> that also lists the tiers that took the write and those that failed.
    template <class T>
    Result<StoreReport> store(const CacheKey& key, const CacheValue<T>& value) {
        auto out = write_impl_<T, true>(key, value);
        if (out.failed) return fail(failure_("write", out.errors));
        return StoreReport{std::move(out.written), std::move(out.errors)};
    }

    /// Removes the key from every tier (L2 first, then L1). True when any tier had it; fails when any tier
    /// failed (with that tier's error, or `unavailable` naming each when several failed).
    Result<bool> remove(const CacheKey& key) {
        auto out = remove_impl_(key);
        if (out.failed) return fail(failure_("remove", out.errors));
        return out.existed;
    }

    /// The stampede lock across instances of the first tier that has one (hitbox::LockingBackend: a Redis
    /// tier), L2 before L1 when both do: the tier every instance shares.
    template <class Rep, class Period>
    Result<bool> try_lock(const CacheKey& key, std::string_view token,
                          std::chrono::duration<Rep, Period> ttl) requires(LockingBackend<l1_type> ||
                                                                           LockingBackend<l2_type>) {
        const std::chrono::milliseconds ms = detail::saturating_ms(ttl);
        return lock_call_([&](auto& tier) { return tier.try_lock(key, token, ms); });
    }
    Result<bool> unlock(const CacheKey& key,
                        std::string_view token) requires(LockingBackend<l1_type> || LockingBackend<l2_type>) {
        return lock_call_([&](auto& tier) { return tier.unlock(key, token); });
    }

    /// The tiers themselves and the offload.
    l1_type& l1() noexcept { return detail::tier_traits<L1>::get(l1_); }
    const l1_type& l1() const noexcept { return detail::tier_traits<L1>::get(l1_); }
    l2_type& l2() noexcept { return detail::tier_traits<L2>::get(l2_); }
    const l2_type& l2() const noexcept { return detail::tier_traits<L2>::get(l2_); }
    O& offload() const noexcept { return *offload_; }

    /// This level's counters.
    ComposeStats stats() const noexcept { return shared_->counters.snapshot(); }

    /// The policies in use.
    ComposePolicies<Read, Write, Refill> policies() const { return {read_policy_, write_policy_, refill_policy_}; }

    /// The same composition under another label ("" makes this level transparent in paths).
    Compose with_label(std::string label) && {
        Compose out(std::move(*this));
        out.label_ = std::move(label);
        return out;
    }

    /// The same tiers under another read policy: `std::move(c).with_read(hitbox::RaceRead{})`.
    template <class R>
    Compose<L1, L2, O, R, Write, Refill> with_read(R read) && {
        renew_();
        return {std::move(l1_), std::move(l2_), *offload_,        std::move(read),
                write_policy_,  refill_policy_, std::move(label_)};
    }

    /// The same tiers under another write policy.
    template <class W>
    Compose<L1, L2, O, Read, W, Refill> with_write(W write) && {
        renew_();
        return {std::move(l1_),   std::move(l2_), *offload_,        read_policy_,
                std::move(write), refill_policy_, std::move(label_)};
    }

    /// The same tiers under another refill policy.
    template <class F>
    Compose<L1, L2, O, Read, Write, F> with_refill(F refill) && {
        renew_();
        return {std::move(l1_), std::move(l2_),    *offload_,        read_policy_,
                write_policy_,  std::move(refill), std::move(label_)};
    }

    /// The same tiers under a policy bundle.
    template <class R, class W, class F>
    Compose<L1, L2, O, R, W, F> with_policies(ComposePolicies<R, W, F> p) && {
        renew_();
        return {std::move(l1_),     std::move(l2_),      *offload_,        std::move(p.read),
                std::move(p.write), std::move(p.refill), std::move(label_)};
    }

private:
    using Counter = std::atomic_ref<std::uint64_t>;

    /// Closes this object's gate (waiting for its running tasks) and returns a fresh shared state carrying
    /// the counters, for the object that takes over the tiers.
    std::shared_ptr<detail::ComposeShared> renew_() {
        shared_->gate.close_and_wait();
        auto fresh = std::make_shared<detail::ComposeShared>();
        fresh->counters.restore(shared_->counters.snapshot());
        return fresh;
    }

    /// The error of a failed call. Counted as `unavailable` only when every leaf tier failed (each failed
    /// leaf leaves one error): a remove or a sequential write also fails when only some did.
    Error failure_(std::string_view what, const std::vector<Error>& errors) const {
        const bool every = errors.size() >= detail::leaf_tiers<Compose>;
        if (every) detail::ComposeCounters::bump(shared_->counters.ref(&ComposeStats::unavailable));
        return detail::composed_failure(label_, what, errors, every);
    }

    /// `call` (a lock call) on the tier that holds the lock: L2 when it has one, else L1. Erased tiers
    /// (AnyBackend) all have the calls, and one that holds no lock answers config: then L1 is asked. A
    /// failure carries this composition's label path, as its reads and writes do.
    template <class Call>
    Result<bool> lock_call_(Call&& call) {
        auto in_path = [this](Result<bool> r, const auto& tier) -> Result<bool> {
            if (r) return r;
            const Error e = detail::attribute(r.error(), tier.label());
            return fail(label_.empty() ? e : e.in(label_));
        };
        if constexpr (LockingBackend<l2_type>) {
            auto r = call(l2());
            if constexpr (LockingBackend<l1_type>)
                if (!r && r.error().kind() == ErrorKind::config) return in_path(call(l1()), l1());
            return in_path(std::move(r), l2());
        } else {
            return in_path(call(l1()), l1());
        }
    }

    // ---- reads ---------------------------------------------------------------------------------------

    /// get<T> under read mode M.
    template <ReadMode M, class T>
    Result<std::optional<CacheValue<T>>> get_(const CacheKey& key) {
        if constexpr (M == ReadMode::sequential && !detail::is_compose<l1_type>) {
            // The hit path: L1's answer is the result object itself (one named return, so no move).
            Result<std::optional<CacheValue<T>>> result = detail::call_tier<Result<std::optional<CacheValue<T>>>>(
                l1(), "read", [&] { return l1().template get<T>(key); });
            if (!result || !*result || (*result)->retain) [[unlikely]]  // retain: see sequential_after_l1_
                result = after_l1_miss_<T>(key, std::move(result));
            return result;
        } else {
            auto out = read_mode_<M, T, false>(key);
            if (out.failed) return fail(failure_("read", out.errors));
            return std::move(out.value);
        }
    }

    /// get<T>'s Sequential path once a leaf L1 missed or failed; kept out of line so the hit path inlines.
    template <class T>
    HITBOX_COLD Result<std::optional<CacheValue<T>>> after_l1_miss_(const CacheKey& key,
                                                                    Result<std::optional<CacheValue<T>>>&& first) {
        auto a = leaf_outcome_<T, false>(l1(), std::move(first));
        if (a.failed) detail::ComposeCounters::bump(counters_().ref(&ComposeStats::l1_read_errors));
        auto out = sequential_after_l1_<T, false>(key, std::move(a));
        detail::prefix_errors(out.errors, label_);
        if (out.failed) return fail(failure_("read", out.errors));
        return std::move(out.value);
    }

    template <class T, bool Traced, class Tier>
    static detail::ReadOutcome<T> leaf_outcome_(Tier& tier, Result<std::optional<CacheValue<T>>>&& got) {
        detail::ReadOutcome<T> out;
        if (!got) {
            out.failed = true;
            out.errors.push_back(detail::attribute(got.error(), tier.label()));
            return out;
        }
        out.value = std::move(*got);
        if constexpr (Traced)
            if (out.value) out.source = std::string(tier.label());
        return out;
    }

    template <class T, bool Traced, class Tier>
    static detail::ReadOutcome<T> read_tier_(Tier& tier, const CacheKey& key, Counter errors) {
        detail::ReadOutcome<T> out;
        if constexpr (detail::is_compose<Tier>)
            out = tier.template read_impl_<T, Traced>(key);
        else
            out = leaf_outcome_<T, Traced>(tier, detail::call_tier<Result<std::optional<CacheValue<T>>>>(
                                                     tier, "read", [&] { return tier.template get<T>(key); }));
        if (out.failed) detail::ComposeCounters::bump(errors);
        return out;
    }

    /// A read through both tiers as the read policy says, with this level's label on the source and errors.
    template <class T, bool Traced>
    detail::ReadOutcome<T> read_impl_(const CacheKey& key) {
        return detail::with_read_mode(read_policy_,
                                      [&](auto mode) { return read_mode_<decltype(mode)::value, T, Traced>(key); });
    }

    /// read_impl_ under read mode M.
    template <ReadMode M, class T, bool Traced>
    detail::ReadOutcome<T> read_mode_(const CacheKey& key) {
        auto out = [&] {
            if constexpr (M == ReadMode::sequential)
                return sequential_after_l1_<T, Traced>(
                    key, read_tier_<T, Traced>(l1(), key, counters_().ref(&ComposeStats::l1_read_errors)));
            else if constexpr (M == ReadMode::parallel)
                return read_parallel_<T, Traced>(key);
            else
                return read_race_<T, Traced>(key);
        }();
        if constexpr (Traced)
            if (out.value && !label_.empty()) out.source = detail::join_path(label_, out.source);
        detail::prefix_errors(out.errors, label_);
        return out;
    }

    /// Sequential read once L1 has answered `a`: done on a hit, otherwise L2 and a refill on an L2 hit.
    /// An L1 entry past its expiry but kept by fail-safe (CacheValue::retain) does not end a sequential
    /// read: L2 may hold a newer entry, and the one that expires later is taken.
    template <class T, bool Traced>
    detail::ReadOutcome<T> sequential_after_l1_(const CacheKey& key, detail::ReadOutcome<T>&& a) {
        if (a.value && !a.value->kept_past_expiry(now())) return std::move(a);
        const std::uint64_t seen = shared_->epochs.snapshot(key);
        auto b = read_tier_<T, Traced>(l2(), key, counters_().ref(&ComposeStats::l2_read_errors));
        const bool take_l2 = b.value && (!a.value || detail::lives_longer(*b.value, *a.value));
        return combine_reads_<T>(key, std::move(a), std::move(b), take_l2, seen);
    }

    /// Merges both tiers' answers; `take_l2` picks L2's value (and refills L1 with it, unless a write of the
    /// key began after `seen`, the key epochs' snapshot taken before L2 was read).
    template <class T>
    detail::ReadOutcome<T> combine_reads_(const CacheKey& key, detail::ReadOutcome<T>&& a, detail::ReadOutcome<T>&& b,
                                          bool take_l2, std::uint64_t seen) {
        detail::ReadOutcome<T> out;
        out.failed = a.failed && b.failed;
        out.errors = std::move(a.errors);
        detail::append_errors(out.errors, std::move(b.errors));
        if (take_l2) {
            out.value = std::move(b.value);
            out.source = std::move(b.source);
            refill_<T>(key, *out.value, out.errors, seen);
        } else if (a.value) {
            out.value = std::move(a.value);
            out.source = std::move(a.source);
        }
        return out;
    }

    template <class T, bool Traced>
    detail::ReadOutcome<T> read_parallel_(const CacheKey& key) {
        using Outcome = detail::ReadOutcome<T>;
        auto pair = std::make_shared<detail::ForkPair<Outcome, Outcome>>();
        auto* p = pair.get();
        const std::uint64_t seen = shared_->epochs.snapshot(key);
        // Both slots finish before this function returns, so they may refer to the caller's key.
        p->fork.set(0, [this, p, &key] {
            p->a = read_tier_<T, Traced>(l1(), key, counters_().ref(&ComposeStats::l1_read_errors));
            return p->a.value.has_value();
        });
        p->fork.set(1, [this, p, &key] {
            p->b = read_tier_<T, Traced>(l2(), key, counters_().ref(&ComposeStats::l2_read_errors));
            return p->b.value.has_value();
        });
        spawn_slot_(pair, p->fork, 1, OffloadKind::tier_call);
        p->fork.wait(false, std::chrono::microseconds(0));
        const bool take_l2 = p->b.value && (!p->a.value || detail::lives_longer(*p->b.value, *p->a.value));
        return combine_reads_<T>(key, std::move(p->a), std::move(p->b), take_l2, seen);
    }

    template <class T, bool Traced>
    detail::ReadOutcome<T> read_race_(const CacheKey& key) {
        using Outcome = detail::ReadOutcome<T>;
        auto pair = std::make_shared<detail::ForkPair<Outcome, Outcome>>();
        auto* p = pair.get();
        const std::uint64_t seen = shared_->epochs.snapshot(key);
        // The loser may run after this call returns: the slots own a copy of the key. An L1 entry past its
        // expiry (kept by fail-safe) is no win: L2 may hold a newer one, as for a sequential read.
        p->fork.set(0, [this, p, key] {
            p->a = read_tier_<T, Traced>(l1(), key, counters_().ref(&ComposeStats::l1_read_errors));
            return p->a.value.has_value() && !p->a.value->kept_past_expiry(now());
        });
        p->fork.set(1, [this, p, key] {
            p->b = read_tier_<T, Traced>(l2(), key, counters_().ref(&ComposeStats::l2_read_errors));
            return p->b.value.has_value() && !p->b.value->kept_past_expiry(now());
        });
        const bool spawned[2] = {spawn_slot_(pair, p->fork, 0, OffloadKind::tier_call),
                                 spawn_slot_(pair, p->fork, 1, OffloadKind::tier_call)};
        p->fork.wait(true, steal_after_(read_policy_));
        const int winner = p->fork.winner();
        if (winner < 0) {  // both done without a win: misses, failures, or entries kept past their expiry
            const bool take_l2 = p->b.value && (!p->a.value || detail::lives_longer(*p->b.value, *p->a.value));
            return combine_reads_<T>(key, std::move(p->a), std::move(p->b), take_l2, seen);
        }
        const int loser = 1 - winner;
        // A loser that already finished is read like any tier; one still running is left alone.
        const bool loser_done = p->fork.state(loser) == detail::Fork::Slot::done;
        release_loser_(pair, p->fork, loser, spawned[loser], read_policy_.loser);
        Outcome out = std::move(winner == 0 ? p->a : p->b);
        if (loser_done) detail::append_errors(out.errors, std::move(winner == 0 ? p->b.errors : p->a.errors));
        if (winner == 1) refill_<T>(key, *out.value, out.errors, seen);
        return out;
    }

    // ---- refill --------------------------------------------------------------------------------------

    /// Dedup key of a refill on the shared offload: this composition's id and the key's Bitcode bytes.
    std::string refill_key_(const CacheKey& key) const {
        std::string out = std::to_string(shared_->id);
        out.push_back(':');
        out += Bitcode{}.encode(key);
        return out;
    }

    /// Writes an L2 hit into L1 (on this thread or offloaded, as the refill policy says) unless a write or
    /// remove of the key began since `seen`: then the refill is not written, or taken back (`superseded`).
    template <class T>
    void refill_(const CacheKey& key, const CacheValue<T>& value, std::vector<Error>& errors, std::uint64_t seen) {
        if constexpr (!detail::never_refills<Refill>()) {
            if constexpr (!detail::fixed_refill<Refill>)
                if (!refill_policy_.enabled) return;
            if (superseded_(key, seen)) return;
            auto& c = counters_();
            if constexpr (std::copy_constructible<T>) {
                if (refill_policy_.offloaded) {
                    bool spawned = false;
                    try {  // the task holds a copy of the value, and that copy may throw
                        auto task = [this, shared = shared_, key, value, seen] {
                            detail::GatePass pass(shared->gate);
                            if (!pass) return;
                            if (superseded_(key, seen)) return;
                            auto w = write_tier_<T, false>(l1(), key, value,
                                                           shared->counters.ref(&ComposeStats::refill_errors));
                            if (!w.failed) take_back_if_superseded_(l1(), key, seen);
                        };
                        spawned = offload_->spawn(OffloadKind::refill, refill_key_(key), std::move(task));
                    } catch (...) {  // a refill that could not be handed over: L1's write failed
                        detail::ComposeCounters::bump(c.ref(&ComposeStats::refill_errors));
                        errors.push_back(detail::exception_error("write", std::string(l1().label())));
                        return;
                    }
                    detail::ComposeCounters::bump(
                        c.ref(spawned ? &ComposeStats::refills : &ComposeStats::refills_dropped));
                    return;
                }
            }
            detail::ComposeCounters::bump(c.ref(&ComposeStats::refills));
            auto w = write_tier_<T, false>(l1(), key, value, c.ref(&ComposeStats::refill_errors));
            if (!w.failed) take_back_if_superseded_(l1(), key, seen);
            detail::append_errors(errors, std::move(w.errors));
        } else {
            (void)key, (void)value, (void)errors, (void)seen;
        }
    }

    /// True (and counted as `superseded`) when a write of `key` began since `seen`: a refill or a Race
    /// write's slower half then does not write.
    bool superseded_(const CacheKey& key, std::uint64_t seen) {
        if (shared_->epochs.unchanged(key, seen)) return false;
        detail::ComposeCounters::bump(counters_().ref(&ComposeStats::superseded));
        return true;
    }

    /// After a refill or a Race write's slower half wrote `key` to `tier`: when a write of the key began
    /// since `seen`, the write may have landed after it (a deleted or older value back in the tier), so the
    /// key is removed from `tier` (a miss later, never a wrong value).
    template <class Tier>
    void take_back_if_superseded_(Tier& tier, const CacheKey& key, std::uint64_t seen) {
        if (superseded_(key, seen)) (void)remove_tier_(tier, key, counters_().ref(&ComposeStats::remove_errors));
    }

    // ---- writes --------------------------------------------------------------------------------------

    template <class T, bool Traced, class Tier>
    static detail::WriteOutcome write_tier_(Tier& tier, const CacheKey& key, const CacheValue<T>& value,
                                            Counter errors) {
        detail::WriteOutcome out;
        if constexpr (detail::is_compose<Tier>) {
            out = tier.template write_impl_<T, Traced>(key, value);
        } else {
            auto done =
                detail::call_tier<Result<void>>(tier, "write", [&] { return tier.template set<T>(key, value); });
            if (!done) {
                out.failed = true;
                out.errors.push_back(detail::attribute(done.error(), tier.label()));
            } else if constexpr (Traced) {
                out.written.emplace_back(tier.label());
            }
        }
        if (out.failed) detail::ComposeCounters::bump(errors);
        return out;
    }

    static detail::WriteOutcome combine_writes_(detail::WriteOutcome&& a, detail::WriteOutcome&& b, bool failed) {
        detail::WriteOutcome out;
        out.failed = failed;
        out.written = std::move(a.written);
        for (auto& w : b.written) out.written.push_back(std::move(w));
        out.errors = std::move(a.errors);
        detail::append_errors(out.errors, std::move(b.errors));
        return out;
    }

    /// A write to both tiers as the write policy says, with this level's label on the paths and the errors.
    template <class T, bool Traced>
    detail::WriteOutcome write_impl_(const CacheKey& key, const CacheValue<T>& value) {
        detail::EpochWrite in_progress(shared_->epochs, key);
        auto out = detail::with_write_mode(write_policy_, [&](auto mode) {
            return write_mode_<decltype(mode)::value, T, Traced>(key, value, in_progress);
        });
        if constexpr (Traced)
            if (!label_.empty())
                for (auto& w : out.written) w = detail::join_path(label_, w);
        detail::prefix_errors(out.errors, label_);
        return out;
    }

    /// The write algorithm of mode M.
    template <WriteMode M, class T, bool Traced>
    detail::WriteOutcome write_mode_(const CacheKey& key, const CacheValue<T>& value, detail::EpochWrite& in_progress) {
        (void)in_progress;  // a Race write hands its end to its slower half
        if constexpr (M == WriteMode::sequential) {
            auto out = write_tier_<T, Traced>(l1(), key, value, counters_().ref(&ComposeStats::l1_write_errors));
            if (!out.failed) {
                auto b = write_tier_<T, Traced>(l2(), key, value, counters_().ref(&ComposeStats::l2_write_errors));
                const bool failed = b.failed;
                out = combine_writes_(std::move(out), std::move(b), failed);
            }
            return out;
        } else if constexpr (M == WriteMode::optimistic_parallel) {
            return write_parallel_<T, Traced>(key, value);
        } else {
            return write_race_<T, Traced>(key, value, in_progress);
        }
    }

    template <class T, bool Traced>
    detail::WriteOutcome write_parallel_(const CacheKey& key, const CacheValue<T>& value) {
        using Outcome = detail::WriteOutcome;
        auto pair = std::make_shared<detail::ForkPair<Outcome, Outcome>>();
        auto* p = pair.get();
        // Both slots finish before this function returns: they may refer to the caller's key and value.
        p->fork.set(0, [this, p, &key, &value] {
            p->a = write_tier_<T, Traced>(l1(), key, value, counters_().ref(&ComposeStats::l1_write_errors));
            return !p->a.failed;
        });
        p->fork.set(1, [this, p, &key, &value] {
            p->b = write_tier_<T, Traced>(l2(), key, value, counters_().ref(&ComposeStats::l2_write_errors));
            return !p->b.failed;
        });
        spawn_slot_(pair, p->fork, 1, OffloadKind::tier_call);
        p->fork.wait(false, std::chrono::microseconds(0));
        const bool failed = p->a.failed && p->b.failed;
        return combine_writes_(std::move(p->a), std::move(p->b), failed);
    }

    template <class T, bool Traced>
    detail::WriteOutcome write_race_(const CacheKey& key, const CacheValue<T>& value, detail::EpochWrite& in_progress) {
        using Outcome = detail::WriteOutcome;
        auto pair = std::make_shared<detail::ForkPair<Outcome, Outcome>>();
        auto* p = pair.get();
        // The loser may run after this call returns: the slots share one copy of the key and value. This
        // write stays in progress in the key epochs until the loser has landed (or was dropped): refills
        // of the key wait for it, and `mark` (the slot's word once the winner answered) tells the loser
        // whether a later write or remove of the key began; then it does not write, or takes its write back.
        struct Held {
            Held(const CacheKey& k, const CacheValue<T>& v) : key(k), value(v) {}
            Held(const Held&) = delete;
            Held& operator=(const Held&) = delete;
            ~Held() {
                if (owner) owner->epochs.end(key);  // the write this loser carried is over
            }
            CacheKey key;
            CacheValue<T> value;
            std::atomic<std::uint64_t> mark{detail::KeyEpochs::none};
            std::shared_ptr<detail::ComposeShared> owner;  // set when the loser ends this write
        };
        auto held = std::make_shared<Held>(key, value);
        auto slot = [this, held](auto& tier, Outcome& out, Counter errors) {
            const std::uint64_t before = held->mark.load(std::memory_order_acquire);
            if (before != detail::KeyEpochs::none && superseded_(held->key, before)) return false;
            out = write_tier_<T, Traced>(tier, held->key, held->value, errors);
            const std::uint64_t after = held->mark.load(std::memory_order_acquire);
            if (!out.failed && after != detail::KeyEpochs::none) take_back_if_superseded_(tier, held->key, after);
            return !out.failed;
        };
        p->fork.set(0, [slot, this, p] { return slot(l1(), p->a, counters_().ref(&ComposeStats::l1_write_errors)); });
        p->fork.set(1, [slot, this, p] { return slot(l2(), p->b, counters_().ref(&ComposeStats::l2_write_errors)); });
        const bool spawned[2] = {spawn_slot_(pair, p->fork, 0, OffloadKind::tier_call),
                                 spawn_slot_(pair, p->fork, 1, OffloadKind::tier_call)};
        p->fork.wait(true, steal_after_(write_policy_));
        const int winner = p->fork.winner();
        if (winner < 0) return combine_writes_(std::move(p->a), std::move(p->b), true);
        const int loser = 1 - winner;
        if (p->fork.state(loser) != detail::Fork::Slot::done) {
            held->owner = shared_;  // before the loser can finish: Held ends the write when the last slot goes
            in_progress.release();
            held->mark.store(shared_->epochs.current(held->key), std::memory_order_release);
        }
        release_loser_(pair, p->fork, loser, spawned[loser], write_policy_.loser);
        // A loser that has finished by now (it failed before the winner succeeded, or an offload on the
        // caller ran it) is reported like any tier: its error, or its tier among those written.
        if (p->fork.state(loser) == detail::Fork::Slot::done)
            return combine_writes_(std::move(p->a), std::move(p->b), false);
        return std::move(winner == 0 ? p->a : p->b);
    }

    // ---- removes -------------------------------------------------------------------------------------

    template <class Tier>
    static detail::RemoveOutcome remove_tier_(Tier& tier, const CacheKey& key, Counter errors) {
        detail::RemoveOutcome out;
        if constexpr (detail::is_compose<Tier>) {
            out = tier.remove_impl_(key);
        } else {
            auto gone = detail::call_tier<Result<bool>>(tier, "remove", [&] { return tier.remove(key); });
            if (gone) {
                out.existed = *gone;
            } else {
                out.failed = true;
                out.errors.push_back(detail::attribute(gone.error(), tier.label()));
            }
        }
        if (out.failed) detail::ComposeCounters::bump(errors);
        return out;
    }

    detail::RemoveOutcome remove_impl_(const CacheKey& key) {
        const detail::EpochWrite in_progress(shared_->epochs, key);
        auto b = remove_tier_(l2(), key, counters_().ref(&ComposeStats::remove_errors));
        auto a = remove_tier_(l1(), key, counters_().ref(&ComposeStats::remove_errors));
        detail::RemoveOutcome out;
        out.existed = a.existed || b.existed;
        out.failed = a.failed || b.failed;
        out.errors = std::move(a.errors);
        detail::append_errors(out.errors, std::move(b.errors));
        detail::prefix_errors(out.errors, label_);
        return out;
    }

    // ---- Parallel / Race plumbing --------------------------------------------------------------------

    /// Hands slot i of the fork (owned by `keep`) to the offload; never for an offload that runs on the
    /// caller (the caller then runs both slots in order). A refused slot stays pending and the waiting
    /// caller runs it. Not a template on the fork's results: every value type shares it.
    bool spawn_slot_(std::shared_ptr<void> keep, detail::Fork& fork, int i, OffloadKind kind) {
        if constexpr (offload_runs_on_caller<O>) {
            (void)keep, (void)fork, (void)i, (void)kind;
            return false;
        } else {
            return offload_->spawn(kind, std::string{}, detail::fork_slot_task(std::move(keep), fork, i, shared_));
        }
    }

    template <class Policy>
    static std::chrono::microseconds steal_after_(const Policy& policy) {
        if constexpr (offload_runs_on_caller<O>) {
            (void)policy;
            return std::chrono::microseconds(0);
        } else {
            return policy.steal_after;
        }
    }

    /// Deals with the slower half of a Race whose other half won: offload it (it finishes in the
    /// background) or drop it (cancelled if it has not started).
    void release_loser_(std::shared_ptr<void> keep, detail::Fork& fork, int loser, bool spawned, RaceLoser policy) {
        auto& c = counters_();
        if (fork.state(loser) == detail::Fork::Slot::done) return;
        if (policy == RaceLoser::drop) {
            fork.cancel(loser);
            detail::ComposeCounters::bump(c.ref(&ComposeStats::race_losers_dropped));
            return;
        }
        if (!spawned && !offload_->spawn(OffloadKind::race_loser, std::string{},
                                         detail::fork_loser_task(std::move(keep), fork, loser, shared_))) {
            fork.cancel(loser);
            detail::ComposeCounters::bump(c.ref(&ComposeStats::race_losers_dropped));
            return;
        }
        detail::ComposeCounters::bump(c.ref(&ComposeStats::race_losers_offloaded));
    }

    detail::ComposeCounters& counters_() const noexcept { return shared_->counters; }

    std::shared_ptr<detail::ComposeShared> shared_;
    L1 l1_;
    L2 l2_;
    O* offload_;
    [[no_unique_address]] Read read_policy_;
    [[no_unique_address]] Write write_policy_;
    [[no_unique_address]] Refill refill_policy_;
    std::string label_;
};

template <class L1, class L2, class O>
Compose(L1, L2, O&) -> Compose<L1, L2, O>;
template <class L1, class L2, class O, class R>
Compose(L1, L2, O&, R) -> Compose<L1, L2, O, R>;
template <class L1, class L2, class O, class R, class W>
Compose(L1, L2, O&, R, W) -> Compose<L1, L2, O, R, W>;
template <class L1, class L2, class O, class R, class W, class F>
Compose(L1, L2, O&, R, W, F) -> Compose<L1, L2, O, R, W, F>;
template <class L1, class L2, class O, class R, class W, class F>
Compose(L1, L2, O&, R, W, F, std::string) -> Compose<L1, L2, O, R, W, F>;

namespace detail {

/// Right fold of tiers I..N-1 into nested Composes with default policies; only the outermost level
/// carries a label.
template <std::size_t I, std::size_t N, class Tuple, class O>
auto compose_from(Tuple& args, O& offload, std::string label) {
    using FirstRef = std::tuple_element_t<I, Tuple>;
    using First = std::decay_t<FirstRef>;
    if constexpr (I + 2 == N) {
        using SecondRef = std::tuple_element_t<I + 1, Tuple>;
        using Second = std::decay_t<SecondRef>;
        return Compose<First, Second, O>(std::forward<FirstRef>(std::get<I>(args)),
                                         std::forward<SecondRef>(std::get<I + 1>(args)), offload, {}, {}, {},
                                         std::move(label));
    } else {
        auto rest = compose_from<I + 1, N>(args, offload, std::string{});
        return Compose<First, decltype(rest), O>(std::forward<FirstRef>(std::get<I>(args)), std::move(rest), offload,
                                                 {}, {}, {}, std::move(label));
    }
}

}  // namespace detail

/// Folds tiers, fastest first, into one composition labelled "cache": `compose(a, b, offload)` is
/// `Compose<A, B, Offload>`, `compose(a, b, c, offload)` is `Compose<A, Compose<B, C, Offload>, Offload>`
/// with the inner level transparent in label paths ("cache.a", "cache.b", "cache.c"). Tiers are moved in
/// (pass `std::ref(t)` to keep one shared); the offload, last, is held by reference. Default policies at
/// every level; change the outer level's with `.with_read()`, `.with_write()`, `.with_refill()`,
/// `.with_policies()` and `.with_label()`, or nest Compose explicitly for per-level policies.
///
/// \code
/// hitbox::OffloadManager offload;
/// auto tiers = hitbox::compose(std::move(*memory), std::move(*redis), offload)
///                  .with_read(hitbox::RaceRead{.loser = hitbox::RaceLoser::drop});
/// \endcode
template <class... Args>
auto compose(Args&&... args) {
    static_assert(sizeof...(Args) >= 3,
                  "hitbox::compose(tiers..., offload): give at least two tiers, then the offload");
    constexpr std::size_t n = sizeof...(Args) - 1;
    using Tuple = std::tuple<Args&&...>;
    using OffloadRef = std::tuple_element_t<n, Tuple>;
    using O = std::remove_reference_t<OffloadRef>;
    static_assert(detail::holds<Offload<O>>,
                  "hitbox::compose(tiers..., offload): the last argument must model hitbox::Offload "
                  "(OffloadManager, InlineOffload or NoOffload)");
    static_assert(!Offload<O> || std::is_lvalue_reference_v<OffloadRef>,
                  "hitbox::compose(tiers..., offload): the offload is held by reference: pass a named object "
                  "that outlives the composition");
    if constexpr (Offload<O> && std::is_lvalue_reference_v<OffloadRef>) {
        Tuple refs(std::forward<Args>(args)...);
        return detail::compose_from<0, n>(refs, std::get<n>(refs), std::string("cache"));
    } else {
        return detail::InvalidPolicy{};  // the static_asserts above said why; no second error at the caller
    }
}

}  // namespace hitbox

// The definitions: included here in a header-only build, compiled once into the hitbox library otherwise.
#if !HITBOX_COMPILED_LIB
#include <hitbox/compose/detail/compose_impl.hpp>
#endif
