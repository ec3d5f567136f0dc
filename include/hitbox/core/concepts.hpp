#pragma once
/// \file
/// One C++20 concept per policy kind. Each lists its minimal complete definition and its laws; hosts
/// (RedisBackend, MemoryBackend, Compose, Cache) check their parameters with a static_assert that names
/// the slot, so a wrong type gives one readable message.

#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <boost/hana/accessors.hpp>
#include <boost/hana/concept/struct.hpp>
#include <boost/hana/for_each.hpp>
#include <boost/hana/length.hpp>
#include <boost/hana/second.hpp>

#include <hitbox/core/error.hpp>
#include <hitbox/core/key.hpp>
#include <hitbox/core/trace.hpp>
#include <hitbox/core/value.hpp>

namespace hitbox {

namespace detail {

/// `static_assert(detail::holds<Backend<X>>, "...")`: a concept check turned into a plain bool, so a failed
/// assertion prints its message (which names the slot and what it needs) in a few lines instead of the
/// compiler's walk through the concept. test/compile_fail/ pins each message and its length.
template <bool Ok>
inline constexpr bool holds = Ok;

/// Stands in for a member whose policy failed its static_assert, so the host does not instantiate (and
/// repeat the error through) a type built from that policy.
struct InvalidPolicy {};

}  // namespace detail

/// KeyFormat: turns a CacheKey into the bytes a byte-keyed tier stores under.
///
/// Minimal complete definition: `static constexpr std::string_view name`;
/// `std::string encode(const CacheKey&) const`; `Result<CacheKey> decode(std::string_view) const`.
/// Laws: `decode(encode(k)) == k` for every key; `encode` is injective; `decode` of any byte string
/// returns a key or a decode error, never crashes.
template <class F>
concept KeyFormat = requires(const F& f, const CacheKey& key, std::string_view bytes) {
    { F::name } -> std::convertible_to<std::string_view>;
    { f.encode(key) } -> std::same_as<std::string>;
    { f.decode(bytes) } -> std::same_as<Result<CacheKey>>;
};

/// ValueFormatFor<F, T>: F can serialize values of type T.
template <class F, class T>
concept ValueFormatFor = requires(const F& f, const T& value, std::string_view bytes) {
    { f.encode(value) } -> std::same_as<Result<std::string>>;
    { f.template decode<T>(bytes) } -> std::same_as<Result<T>>;
};

/// ValueFormat: serializes typed values to bytes and back.
///
/// Minimal complete definition: `static constexpr std::uint8_t id` (stored in the envelope; 1..127 for
/// hitbox formats, 128..255 for user formats), `static constexpr std::string_view name`,
/// `template <class T> Result<std::string> encode(const T&) const` and
/// `template <class T> Result<T> decode(std::string_view) const`.
/// Laws: `decode<T>(encode(v)) == v`; decode of arbitrary bytes is a value or a decode error, and never
/// allocates more than a small multiple of its input.
template <class F>
concept ValueFormat = requires {
    { F::id } -> std::convertible_to<std::uint8_t>;
    { F::name } -> std::convertible_to<std::string_view>;
}
&&ValueFormatFor<F, std::string>;

/// Compressor: maps bytes to bytes; it knows nothing of keys, values or TTLs.
///
/// Minimal complete definition: `static constexpr std::uint8_t id`, `static constexpr std::string_view
/// name`, `Result<std::string> compress(std::string_view) const`,
/// `Result<std::string> decompress(std::string_view) const`.
/// Laws: `decompress(compress(b)) == b`; decompress refuses output beyond its configured limit with a
/// compression error instead of allocating it.
template <class C>
concept Compressor = std::copy_constructible<C> && requires(const C& c, std::string_view bytes) {
    { C::id } -> std::convertible_to<std::uint8_t>;
    { C::name } -> std::convertible_to<std::string_view>;
    { c.compress(bytes) } -> std::same_as<Result<std::string>>;
    { c.decompress(bytes) } -> std::same_as<Result<std::string>>;
};

/// BackendFor<B, T>: B stores and loads CacheValue<T>.
template <class B, class T>
concept BackendFor = requires(B& b, const CacheKey& key, const CacheValue<T>& value) {
    { b.template get<T>(key) } -> std::same_as<Result<std::optional<CacheValue<T>>>>;
    { b.template set<T>(key, value) } -> std::same_as<Result<void>>;
};

/// Backend: a cache tier (MemoryBackend, RedisBackend, a Compose of tiers, AnyBackend).
///
/// Minimal complete definition: `template <class T> Result<std::optional<CacheValue<T>>> get(const
/// CacheKey&)`, `template <class T> Result<void> set(const CacheKey&, const CacheValue<T>&)`,
/// `Result<bool> remove(const CacheKey&)` (true when the key existed), `std::string_view label() const`.
/// Laws: after `set(k, v)` succeeds, `get<T>(k)` returns v (with its times) until v expires, is evicted, or
/// is overwritten; `get` never returns an expired value; a `get<U>` of a key written as T != U is a
/// miss or a type_mismatch/decode error where the tier can tell (a tier holding objects always can; a
/// byte tier as far as its value format can: doc/limits.md, "Shape").
template <class B>
concept Backend = requires(B& b, const B& cb, const CacheKey& key) {
    { b.remove(key) } -> std::same_as<Result<bool>>;
    { cb.label() } -> std::convertible_to<std::string_view>;
}
&&BackendFor<B, std::string>;

/// One write of a Connection batch: `SET key value [PX px_ms]`, or `DEL key` when `remove` is set.
/// The views must stay valid for the duration of the call.
struct ConnectionWrite {
    std::string_view key;
    std::string_view value;
    std::optional<std::int64_t> px_ms;  ///< time to live in ms; nullopt: no expiry
    bool remove = false;                ///< DEL instead of SET (value and px_ms ignored)
};

/// ByteStore: where a ByteBackend keeps its entries' bytes (Redis through a Connection, a file, another
/// key-value service). The host (ByteBackend) owns keys, TTLs, framing and counters; a store only moves
/// bytes under a key.
///
/// Minimal complete definition:
/// - `Result<std::optional<std::string>> get(std::string_view key)`: the bytes under key; nullopt if none;
/// - `Result<void> set_px(std::string_view key, std::string_view value, std::optional<std::int64_t> px_ms)`:
///   replaces the whole entry; `px_ms` (always positive) is its time to live in ms, nullopt: none;
/// - `Result<bool> del(std::string_view key)`: removes; true when the key existed.
/// Optional: `get_many` and `write_many` with Connection's signatures, for stores that batch (the host
/// loops over get / set_px / del otherwise).
/// Laws: after `set_px(k, v, px)`, `get(k)` returns `v` until px ms have passed or `k` is written or
/// removed again (a store may drop an entry earlier, e.g. to bound memory: that is a miss, never wrong
/// bytes); keys and values are binary-safe.
template <class S>
concept ByteStore = requires(S& s, std::string_view key, std::string_view value, std::optional<std::int64_t> px) {
    { s.get(key) } -> std::same_as<Result<std::optional<std::string>>>;
    { s.set_px(key, value, px) } -> std::same_as<Result<void>>;
    { s.del(key) } -> std::same_as<Result<bool>>;
};

/// LockingStore: a ByteStore that can hold a lock across every process sharing it (Redis: SET NX PX and a
/// compare-and-delete script), the primitive of the cache front's stampede lock across instances.
///
/// Minimal complete definition:
/// - `Result<bool> set_nx_px(std::string_view key, std::string_view token, std::int64_t px_ms)`: sets `key` to
///   `token` with a time to live of px_ms only if `key` does not exist; true when this call set it;
/// - `Result<bool> del_if_equal(std::string_view key, std::string_view token)`: removes `key` only while it
///   holds `token`, atomically; true when removed.
/// Laws: at most one caller at a time holds a key (the one whose set_nx_px returned true, until px_ms pass
/// or it releases it); a release with another token leaves the lock alone.
template <class S>
concept LockingStore = ByteStore<S> && requires(S& s, std::string_view key, std::string_view token, std::int64_t px) {
    { s.set_nx_px(key, token, px) } -> std::same_as<Result<bool>>;
    { s.del_if_equal(key, token) } -> std::same_as<Result<bool>>;
};

/// LockingBackend: a tier (a ByteBackend over a LockingStore such as RedisBackend, or a composition or
/// wrapper holding one) with `try_lock(key, token, ttl)` and `unlock(key, token)`, both Result<bool>.
template <class B>
concept LockingBackend = requires(B& b, const CacheKey& key, std::string_view token, std::chrono::milliseconds ttl) {
    { b.try_lock(key, token, ttl) } -> std::same_as<Result<bool>>;
    { b.unlock(key, token) } -> std::same_as<Result<bool>>;
};

/// Connection: the Redis connection policy (SingleNode, Cluster, AnyConnection), a ByteStore that batches.
/// It owns the sockets and decides which node a command goes to; RedisBackend owns keys, TTLs and framing.
///
/// Minimal complete definition: `static constexpr std::string_view mode` ("single", "cluster", ...), and
/// - `Result<std::optional<std::string>> get(std::string_view key)`: GET; nullopt for a missing key;
/// - `Result<void> set_px(std::string_view key, std::string_view value, std::optional<std::int64_t> px_ms)`:
///   one `SET key value [PX px_ms]`;
/// - `Result<bool> del(std::string_view key)`: DEL; true when the key existed;
/// - `std::vector<Result<std::optional<std::string>>> get_many(std::span<const std::string> keys)` and
///   `std::vector<Result<bool>> write_many(std::span<const ConnectionWrite> writes)` (true: SET done / DEL
///   removed a key): the same commands pipelined, one result per input, in input order.
/// Keys and values are binary-safe (sent as arguments, never spliced into command text).
/// Builder-constructible connections also declare `using config_type = ...` (what a ConnectionMode
/// factory returns) and `static Result<C> create(const config_type&, const ConnectionOptions&)`, which
/// validates without touching the network.
/// Laws: a reply is only ever delivered to the command that caused it; every call returns within the
/// configured command timeout (plus the connect timeout when it has to connect); a call that fails with a
/// connection or timeout error may or may not have been executed by the server; copies share connections.
template <class C>
concept Connection = requires(C& c, std::string_view key, std::string_view value, std::optional<std::int64_t> px,
                              std::span<const std::string> keys, std::span<const ConnectionWrite> writes) {
    { C::mode } -> std::convertible_to<std::string_view>;
    { c.get(key) } -> std::same_as<Result<std::optional<std::string>>>;
    { c.set_px(key, value, px) } -> std::same_as<Result<void>>;
    { c.del(key) } -> std::same_as<Result<bool>>;
    { c.get_many(keys) } -> std::same_as<std::vector<Result<std::optional<std::string>>>>;
    { c.write_many(writes) } -> std::same_as<std::vector<Result<bool>>>;
};

// ---- optional capabilities ------------------------------------------------------------------------------
// What a host may use when a tier has it, and does without otherwise. The cache front (hitbox/cache/) and the
// traced calls (compose/lookup.hpp) reach tiers only through these names and the Backend concept.

/// TracedBackend<B, T>: B says which of its tiers answered a read (Compose, AnyBackend).
///
/// Minimal complete definition: `template <class T> Result<Lookup<T>> lookup(const CacheKey&)`.
/// Laws: `lookup<T>(k)` answers what `get<T>(k)` would, plus the label path of the tier that answered
/// (relative to B, starting with B's label) and the errors of tiers that failed on the way.
template <class B, class T>
concept TracedBackend = requires(B& b, const CacheKey& key) {
    { b.template lookup<T>(key) } -> std::same_as<Result<Lookup<T>>>;
};

/// TracedStore<B, T>: B says which of its tiers took a write.
///
/// Minimal complete definition: `template <class T> Result<StoreReport> store(const CacheKey&, const
/// CacheValue<T>&)`. Laws: it writes what `set<T>` would; `written` lists the label paths that took it.
template <class B, class T>
concept TracedStore = requires(B& b, const CacheKey& key, const CacheValue<T>& value) {
    { b.template store<T>(key, value) } -> std::same_as<Result<StoreReport>>;
};

/// TieredBackend: a Backend made of two tiers, L1 first (Compose). Hosts walk it to name every tier.
///
/// Minimal complete definition: `l1()` and `l2()` (const and non-const) returning the tiers, each a
/// Backend. Laws: the tiers live as long as B; label paths of answers are B's label joined with the tier's.
template <class B>
concept TieredBackend = requires(B& b, const B& cb) {
    b.l1();
    b.l2();
    cb.l1();
    cb.l2();
};

/// ResumableRead<B, T>: a TieredBackend whose read can continue after its caller read L1 itself
/// (Compose with SequentialRead over a leaf L1), so a front can make its L1 hit a plain L1 get.
///
/// Minimal complete definition: `Result<Lookup<T>> lookup_after_l1(const CacheKey&,
/// Result<std::optional<CacheValue<T>>> first)`. Laws: given L1's answer to `get<T>(k)`, it returns what
/// `lookup<T>(k)` would have returned without reading L1 again.
template <class B, class T>
concept ResumableRead = TieredBackend<B> &&
    requires(B& b, const CacheKey& key, Result<std::optional<CacheValue<T>>> first) {
    { b.template lookup_after_l1<T>(key, std::move(first)) } -> std::same_as<Result<Lookup<T>>>;
};

/// ReadsInPlace<B, T>: B can hand a stored entry to a function without copying it out (MemoryBackend).
///
/// Minimal complete definition: `template <class T, class F> Result<bool> read_with(const CacheKey&, F&& f)`
/// calling `f(const CacheValue<T>&)` on a hit. Laws: true when f was called (a live entry of type T), false
/// on a miss; f runs while the entry cannot change and must not call back into B.
template <class B, class T>
concept ReadsInPlace = requires(const B& b, const CacheKey& key, void (*f)(const CacheValue<T>&)) {
    { b.template read_with<T>(key, f) } -> std::same_as<Result<bool>>;
};

/// TellsTime: a tier whose entries expire by a clock of its own (MemoryBackend on any ClockSource), and a
/// composition whose L1 is one. A sequential Compose judges an L1 entry kept past its expiry (fail-safe)
/// by it; a tier without it is judged by the system clock.
///
/// Minimal complete definition: `now() const` returning the tier's current hitbox::TimePoint.
template <class B>
concept TellsTime = requires(const B& b) {
    { b.now() } -> std::same_as<TimePoint>;
};

/// ListsTierPaths: a Backend that names its own leaf tiers (AnyBackend over a composition), so a host that
/// cannot see its type still reports per tier.
///
/// Minimal complete definition: `tier_paths()` returning a range of label paths ("cache.memory", ...),
/// relative to the backend and in tier order.
template <class B>
concept ListsTierPaths = requires(const B& b) {
    { *std::begin(b.tier_paths()) } -> std::convertible_to<std::string_view>;
};

namespace detail {

template <class S>
constexpr bool all_counters() {
    if constexpr (!boost::hana::Struct<S>::value) {
        return false;
    } else {
        bool ok = true;
        boost::hana::for_each(boost::hana::accessors<S>(), [&](auto accessor) {
            using M = std::remove_cvref_t<decltype(boost::hana::second(accessor)(std::declval<S&>()))>;
            ok = ok && std::is_same_v<M, std::uint64_t>;
        });
        // A member left out of the adaptation would be neither exported nor snapshotted: refuse it.
        constexpr std::size_t n = decltype(boost::hana::length(boost::hana::accessors<S>()))::value;
        return ok && sizeof(S) == n * sizeof(std::uint64_t);
    }
}

}  // namespace detail

/// CounterStruct: a stats snapshot whose members are all counters, declared once (core/stats.hpp walks
/// them to snapshot, restore, sum and export).
///
/// Minimal complete definition: an aggregate whose members are all `std::uint64_t`, adapted with
/// Boost.Hana (`BOOST_HANA_ADAPT_STRUCT(S, member...)` at global scope, or `BOOST_HANA_DEFINE_STRUCT`),
/// naming every member. Laws: a value-initialized S is all zeros; member names are stable (they become
/// metric names when S has no export hook of its own, see ExportableStats).
template <class S>
concept CounterStruct = std::is_aggregate_v<S> && detail::all_counters<S>();

class PrometheusWriter;

/// ExportableStats: a stats snapshot that `prometheus_text` / `write_backend_stats` can render: the
/// customization point `hitbox_write_stats`, found by argument-dependent lookup next to the struct (as
/// `hitbox_heap_bytes` is for the memory tier's weigher).
///
/// Minimal complete definition: `void hitbox_write_stats(hitbox::PrometheusWriter& out, std::string_view
/// backend, const S& s)` in S's namespace, adding S's series labelled `backend` (MemoryStats, RedisStats
/// and ComposeStats have one next to them). A CounterStruct needs none: core/prometheus.hpp exports each
/// member `m` as the counter `hitbox_backend_<m>_total{backend}`.
/// Laws: it only adds samples to `out`; the same S always gives the same metric names, types and HELP.
template <class S>
concept ExportableStats = requires(PrometheusWriter& out, std::string_view backend, const S& s) {
    hitbox_write_stats(out, backend, s);
};

/// ReportsStats: a tier with a stats snapshot to export (MemoryBackend, RedisBackend, Compose, or a
/// tier of your own).
///
/// Minimal complete definition: `stats() const` returning an ExportableStats snapshot.
template <class B>
concept ReportsStats = requires(const B& b) {
    { b.stats() } -> ExportableStats;
};

/// ReportsDurations: a tier with duration histograms (MemoryBackend, ByteBackend so RedisBackend, a
/// CircuitBreaker over one of them), exported by `prometheus_text` next to its stats.
///
/// Minimal complete definition: `durations() const` returning an ExportableStats snapshot (the built-in
/// tiers return hitbox::DurationStats, hitbox/core/durations.hpp).
template <class B>
concept ReportsDurations = requires(const B& b) {
    { b.durations() } -> ExportableStats;
};

/// ExportsTierMetrics: a Backend that writes the series of the tiers it hides itself (AnyBackend: its
/// wrapped tiers' stats, durations and composition levels), since a host that sees only the erased type
/// cannot reach them. `prometheus_text` calls it once, with the label path the backend sits under.
///
/// Minimal complete definition: `write_metrics(PrometheusWriter& out, std::string_view prefix) const`,
/// adding the series of each hidden tier labelled with its path under `prefix` (the paths `tier_paths()`
/// lists, for a backend that also models ListsTierPaths).
template <class B>
concept ExportsTierMetrics = requires(const B& b, PrometheusWriter& out, std::string_view prefix) {
    b.write_metrics(out, prefix);
};

/// What a piece of background work is for; with the key it forms the deduplication identity.
enum class OffloadKind : std::uint8_t {
    refill,      ///< copy an L2 hit into L1 (Compose with RefillAlways{.offloaded = true})
    race_loser,  ///< the losing half of a Race read or write, left to finish in the background
    revalidate,  ///< refresh a stale entry from upstream (the Cache front)
    custom,      ///< anything else a user hands to the executor
    tier_call,   ///< one tier's half of a Parallel/Race composition call; the caller waits for it
};

/// Number of OffloadKind values.
inline constexpr std::size_t offload_kind_count = 5;

/// Stable lower-case name of an offload kind ("refill", "race_loser", ...), for logs and metrics.
constexpr std::string_view to_string(OffloadKind kind) noexcept {
    switch (kind) {
        case OffloadKind::refill: return "refill";
        case OffloadKind::race_loser: return "race_loser";
        case OffloadKind::revalidate: return "revalidate";
        case OffloadKind::custom: return "custom";
        case OffloadKind::tier_call: return "tier_call";
    }
    return "unknown";
}

/// Offload: runs background work (refills, race losers, revalidation) for compositions and the cache
/// front. Models: OffloadManager (bounded worker pool), InlineOffload (runs work on the caller, for
/// deterministic tests), NoOffload (refuses all work: background work is explicitly disabled).
///
/// Minimal complete definition: `bool spawn(OffloadKind, std::string dedup_key, std::function<void()>)`:
/// returns false when the work was not accepted (duplicate of pending work, queue full, shut down).
/// Optional: `static constexpr bool runs_on_caller = true` for executors that run work on the calling
/// thread (or not at all); a composition then runs its Parallel/Race tier calls in order on the caller
/// instead of handing them to the executor.
/// Laws: work accepted is run at most once; while work for (kind, key) is pending, another spawn for the
/// same pair is refused; an empty dedup_key is never deduplicated; a refused task is never run.
template <class O>
concept Offload = requires(O& o, std::string dedup_key, std::function<void()> task) {
    { o.spawn(OffloadKind::refill, std::move(dedup_key), std::move(task)) } -> std::same_as<bool>;
};

/// CountingOffload: an Offload that reports its counters (OffloadManager, InlineOffload, NoOffload), which
/// the cache front exports as `hitbox_offload_tasks_*`.
///
/// Minimal complete definition: `counters() const` returning a struct with the members of
/// OffloadCounters (offload/inline_offload.hpp).
template <class O>
concept CountingOffload = Offload<O> && requires(const O& o) {
    o.counters().spawned;
    o.counters().active;
};

/// True when the Offload O runs accepted work on the caller's thread (or runs nothing): see Offload.
template <class O>
inline constexpr bool offload_runs_on_caller = requires {
    requires O::runs_on_caller;
};

}  // namespace hitbox
