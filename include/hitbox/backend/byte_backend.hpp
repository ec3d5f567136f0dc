#pragma once
/// \file
/// hitbox::ByteBackend<KeyFmt, ValueFmt, Compressor, Store>: the one host of every byte-storing tier. It
/// owns key building, the TTL rule, framing (EntryCodec) and the counters; the Store policy (a
/// hitbox::ByteStore) only moves bytes under a key. RedisBackend is this host over a Redis Connection; a new
/// byte store (a file, Memcached, an in-process map of bytes) is one policy type. Needs no hiredis.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <hitbox/backend/byte_stats.hpp>
#include <hitbox/codec/entry_codec.hpp>
#include <hitbox/codec/envelope.hpp>
#include <hitbox/core/clock.hpp>
#include <hitbox/core/concepts.hpp>
#include <hitbox/core/durations.hpp>
#include <hitbox/core/error.hpp>
#include <hitbox/core/key.hpp>
#include <hitbox/core/value.hpp>

namespace hitbox {

/// A cache tier that keeps each entry as bytes in a Store: one envelope (format and compressor ids,
/// created / stale / expire in ms) followed by the payload, under `key_prefix + KeyFmt::encode(key)`, written
/// in one `set_px` with the entry's remaining time to live (store_ttl) and read in one `get`.
///
/// Copies share the store (as far as the store's copies do), the counters and the duration histograms
/// (built with DurationHistograms::on: each store round trip, serialization, compression and their
/// reverses timed; `durations()`). No operation throws. Models Backend, and the raw layer (`read`, `write`,
/// `codec()`) that AnyBackend uses to erase a byte tier.
///
/// \code
/// struct MapStore { /* get, set_px, del: see hitbox::ByteStore */ };
/// hitbox::ByteBackend<hitbox::Bitcode, hitbox::BinaryFormat, hitbox::PassthroughCompressor, MapStore>
///     tier(MapStore{}, {}, "map");
/// auto ok  = tier.set(key, hitbox::CacheValue<User>{user, hitbox::Clock::now() + 60s});
/// auto hit = tier.get<User>(key);   // Result<std::optional<CacheValue<User>>>
/// \endcode
template <class KeyFmt, class ValueFmt, class Comp, class Store>
class ByteBackend {
    static_assert(detail::holds<KeyFormat<KeyFmt>>,
                  "hitbox: ByteBackend<KeyFmt, ValueFmt, Compressor, Store>: KeyFmt must model hitbox::KeyFormat");
    static_assert(detail::holds<ValueFormat<ValueFmt>>,
                  "hitbox: ByteBackend<KeyFmt, ValueFmt, Compressor, Store>: ValueFmt must model hitbox::ValueFormat");
    static_assert(detail::holds<Compressor<Comp>>,
                  "hitbox: ByteBackend<KeyFmt, ValueFmt, Compressor, Store>: Compressor must model hitbox::Compressor");
    static_assert(detail::holds<ByteStore<Store>>,
                  "hitbox: ByteBackend<KeyFmt, ValueFmt, Compressor, Store>: Store must model hitbox::ByteStore: it "
                  "needs get(key), set_px(key, value, px_ms) and del(key) (see hitbox/core/concepts.hpp)");

public:
    /// The policies and the codec built from them.
    using key_format = KeyFmt;
    using value_format = ValueFmt;
    using compressor_type = Comp;
    using store_type = Store;
    using codec_type = EntryCodec<KeyFmt, ValueFmt, Comp>;

    /// A tier over `store`, encoding with `codec`, named `label` in errors and label paths; `durations`
    /// turns its duration histograms on.
    ByteBackend(Store store, codec_type codec, std::string label,
                DurationHistograms durations = DurationHistograms::off)
        : store_(std::move(store)),
          codec_(std::move(codec)),
          label_(std::move(label)),
          counters_(std::make_shared<detail::ByteCounters>()),
          timers_(detail::make_stage_timers(durations)) {}

    /// Copies share the store, the counters and the histograms (the tier is a handle).
    ByteBackend(const ByteBackend&) = default;
    ByteBackend& operator=(const ByteBackend&) = default;
    /// Moving copies: a handle moved from is still a working handle on the same store, never an empty one
    /// that a later call would trip over.
    ByteBackend(ByteBackend&& other) : ByteBackend(static_cast<const ByteBackend&>(other)) {}
    ByteBackend& operator=(ByteBackend&& other) { return *this = static_cast<const ByteBackend&>(other); }
    ~ByteBackend() = default;

    /// The entry under `key`: nullopt when there is none or it has expired. Corrupt or foreign bytes are a
    /// decode error (a composition treats it as a miss).
    template <class T>
    Result<std::optional<CacheValue<T>>> get(const CacheKey& key) {
        auto raw = fetch_(key);
        if (!raw) return fail(raw.error());
        return decode_entry<T>(*raw, SystemClock::now());
    }

    /// Writes `value` under `key` in one `set_px`, replacing any old entry and its metadata. A value that has
    /// already expired is not written: the key is removed instead (store_ttl, the one TTL rule).
    template <class T>
    Result<void> set(const CacheKey& key, const CacheValue<T>& value) {
        bump(counts().writes);
        const std::string stored_key = codec_.key(key);
        const StoreTtl ttl = store_ttl(value.held_until(), SystemClock::now());
        if (ttl.expired) return erase(stored_key);
        auto blob = codec_.encode(value, timers_.get());
        if (!blob) return fail(error(blob.error()));
        return put(stored_key, *blob, ttl);
    }

    /// Same as the const& overload (the value is only read).
    template <class T>
    Result<void> set(const CacheKey& key, CacheValue<T>&& value) {
        return set<T>(key, static_cast<const CacheValue<T>&>(value));
    }

    /// Removes `key`: true when it existed.
    Result<bool> remove(const CacheKey& key) {
        bump(counts().removes);
        auto r = store_.del(codec_.key(key));
        if (!r) return fail(error(r.error()));
        return *r;
    }

    /// The tier's label, used in errors and composed label paths.
    std::string_view label() const noexcept { return label_; }

    /// Takes the lock of `key` shared by every process on this store (the cache front's stampede lock
    /// across instances): true when this call took it, false when someone holds it. It expires by itself
    /// after `ttl` (at least 1 ms; max(): the longest the store takes), so a crashed owner holds it no
    /// longer. The lock lives beside the entry: the key prefix, a 0xFF byte, "lock:" and the key format's
    /// bytes. Only for a LockingStore (Redis).
    /// `ttl` is any duration type (rounded up to whole ms, clamped: `hours::max()` is max()).
    template <class Rep, class Period>
    Result<bool> try_lock(const CacheKey& key, std::string_view token,
                          std::chrono::duration<Rep, Period> ttl) requires LockingStore<Store> {
        const std::int64_t px = std::clamp<std::int64_t>(detail::saturating_ms(ttl).count(), 1, detail::max_px_ms);
        auto r = store_.set_nx_px(lock_key(key), token, px);
        if (!r) return fail(error(r.error()));
        return *r;
    }

    /// Releases the lock of `key` if `token` still holds it: true when released; false when it had
    /// expired (and maybe been taken by someone else, whose lock stays).
    Result<bool> unlock(const CacheKey& key, std::string_view token) requires LockingStore<Store> {
        auto r = store_.del_if_equal(lock_key(key), token);
        if (!r) return fail(error(r.error()));
        return *r;
    }

    /// Lookups with get's semantics, one result per key in key order (one round trip where the store
    /// batches: a Redis single node pipelines them).
    template <class T>
    std::vector<Result<std::optional<CacheValue<T>>>> get_many(std::span<const CacheKey> keys) {
        bump(counts().reads, keys.size());
        std::vector<std::string> stored;
        stored.reserve(keys.size());
        for (const auto& k : keys) stored.push_back(codec_.key(k));
        auto raws = timed(TierStage::read, [&] { return store_get_many(stored); });
        const auto now = SystemClock::now();
        std::vector<Result<std::optional<CacheValue<T>>>> out;
        out.reserve(raws.size());
        for (auto& raw : raws) {
            if (!raw)
                out.push_back(fail(error(raw.error())));
            else
                out.push_back(decode_entry<T>(*raw, now));
        }
        return out;
    }

    /// Writes with set's semantics, one result per entry in input order (batched where the store batches).
    template <class T>
    std::vector<Result<void>> set_many(std::span<const std::pair<CacheKey, CacheValue<T>>> entries) {
        bump(counts().writes, entries.size());
        const auto now = SystemClock::now();
        std::vector<Result<void>> out(entries.size());
        std::vector<std::string> keys(entries.size()), blobs(entries.size());
        std::vector<ConnectionWrite> ops;
        std::vector<std::size_t> index;
        ops.reserve(entries.size());
        index.reserve(entries.size());
        for (std::size_t i = 0; i < entries.size(); ++i) {
            const auto& [key, value] = entries[i];
            keys[i] = codec_.key(key);
            const StoreTtl ttl = store_ttl(value.held_until(), now);
            if (ttl.expired) {
                ops.push_back(ConnectionWrite{keys[i], {}, std::nullopt, true});
            } else {
                auto blob = codec_.encode(value, timers_.get());
                if (!blob) {
                    out[i] = fail(error(blob.error()));
                    continue;
                }
                blobs[i] = std::move(*blob);
                ops.push_back(ConnectionWrite{keys[i], blobs[i], ttl.px, false});
            }
            index.push_back(i);
        }
        auto results = timed(TierStage::write, [&] { return store_write_many(ops); });
        for (std::size_t j = 0; j < results.size(); ++j) {
            if (!results[j])
                out[index[j]] = fail(error(results[j].error()));
            else
                bump(counts().bytes_out, blobs[index[j]].size());
        }
        return out;
    }

    /// `set_many` for a vector of (key, value) pairs, deducing T.
    template <class T>
    std::vector<Result<void>> set_many(const std::vector<std::pair<CacheKey, CacheValue<T>>>& entries) {
        return set_many<T>(std::span<const std::pair<CacheKey, CacheValue<T>>>(entries));
    }

    /// The stored bytes (envelope + payload) under `key`, undecoded; nullopt when absent.
    Result<std::optional<std::string>> read(const CacheKey& key) {
        auto raw = fetch_(key);
        if (!raw) return fail(raw.error());
        if (!*raw) {
            bump(counts().misses);
        } else {
            bump(counts().hits);
            bump(counts().bytes_in, (*raw)->size());
        }
        return std::move(*raw);
    }

    /// The entry under `key` opened and decompressed but not decoded (open_payload), for a reader that
    /// decodes the payload itself (AnyBackend over a configured tier, whose format and compressor are
    /// chosen at run time): `expect` names the value format and compressor the envelope must carry,
    /// `decompress(view)` undoes the compressor (the reader's: not timed as this tier's). Counted as get<T>
    /// counts: a miss when absent or past its time, a decode or compression error when the envelope or the
    /// decompression fails, else a hit (a payload the reader then fails to decode is reported with
    /// error_counter()).
    template <class Decompress>
    Result<std::optional<OpenedEntry>> read_payload(const CacheKey& key, const EntryPolicies& expect,
                                                    Decompress&& decompress) {
        auto raw = fetch_(key);
        if (!raw) return fail(raw.error());
        if (!*raw) {
            bump(counts().misses);
            return std::optional<OpenedEntry>{};
        }
        bump(counts().bytes_in, (*raw)->size());
        auto opened = open_payload(**raw, expect, SystemClock::now(), std::forward<Decompress>(decompress));
        if (!opened) return fail(error(opened.error()));
        bump(*opened ? counts().hits : counts().misses);
        return opened;
    }

    /// Counts errors against this tier as its own reads count them; shares the tier's counters and holds
    /// nothing else. For a reader that decodes this tier's payloads after read_payload returned.
    class ErrorCounter {
    public:
        void operator()(const Error& e) const noexcept {
            detail::ByteCounters::bump(counters_->local().errors[static_cast<std::size_t>(e.kind())]);
        }

    private:
        friend class ByteBackend;
        explicit ErrorCounter(std::shared_ptr<detail::ByteCounters> c) noexcept : counters_(std::move(c)) {}
        std::shared_ptr<detail::ByteCounters> counters_;
    };
    ErrorCounter error_counter() const noexcept { return ErrorCounter(counters_); }

    /// Stores `envelope` under `key` as is, with `ttl` as its time to live (none when nullopt; zero or less
    /// removes the key: store_ttl). Bytes that do not parse as an envelope are refused with an encode error;
    /// the format and compressor ids are not checked, so tools can copy entries of any policy.
    Result<void> write(const CacheKey& key, std::string_view envelope, std::optional<std::chrono::milliseconds> ttl) {
        bump(counts().writes);
        if (auto parsed = parse_envelope(envelope); !parsed)
            return fail(error(Error(ErrorKind::encode, "write: " + parsed.error().message())));
        const std::string stored_key = codec_.key(key);
        const StoreTtl rule = store_ttl(ttl);
        if (rule.expired) return erase(stored_key);
        return put(stored_key, envelope, rule);
    }

    /// A snapshot of the counters (shared with copies of this tier).
    ByteStats stats() const noexcept { return counters_->snapshot(); }

    /// A snapshot of the duration histograms (shared with copies of this tier), labelled with the value
    /// format's and the compressor's names; `enabled` false and all empty when built without them.
    DurationStats durations() const noexcept {
        if (!timers_) return {};
        return timers_->snapshot(ValueFmt::name, Comp::name);
    }

    /// The store policy.
    Store& store() noexcept { return store_; }
    const Store& store() const noexcept { return store_; }
    /// The codec: stored key bytes and envelope encoding, e.g. for tools reading entries directly.
    const codec_type& codec() const noexcept { return codec_; }

private:
    /// Where the lock of `key` lives: under the prefix (ACL key patterns and cluster hash tags in the prefix
    /// cover it), then a 0xFF byte, which UrlEncoded never produces (it escapes it) and Bitcode only as the
    /// start of a prefix length over 13 000 bytes, then "lock:" and the key format's bytes.
    std::string lock_key(const CacheKey& key) const {
        std::string out = codec_.key_prefix();
        out += "\xfflock:";
        const std::string full = codec_.key(key);
        out.append(full, codec_.key_prefix().size());
        return out;
    }

    static void bump(std::atomic<std::uint64_t>& c, std::uint64_t n = 1) noexcept { detail::ByteCounters::bump(c, n); }

    /// The calling thread's stripe of the counters.
    detail::ByteCounters::Stripe& counts() const noexcept { return counters_->local(); }

    /// One key's stored bytes from the store, counted as a read (and a store error as an error).
    Result<std::optional<std::string>> fetch_(const CacheKey& key) {
        bump(counts().reads);
        const std::string stored_key = codec_.key(key);
        auto raw = timed(TierStage::read, [&] { return store_.get(stored_key); });
        if (!raw) return fail(error(raw.error()));
        return std::move(*raw);
    }

    /// Counts `e` and attributes it to this tier's label.
    Error error(const Error& e) const {
        detail::ByteCounters::bump(counts().errors[static_cast<std::size_t>(e.kind())]);
        return e.in(label_);
    }

    /// `f()`, timed as `stage` when the duration histograms are on.
    template <class F>
    auto timed(TierStage stage, F&& f) {
        return detail::timed(timers_.get(), stage, std::forward<F>(f));
    }

    /// The write half of the TTL rule: `bytes` under `stored_key` with the rule's time to live.
    Result<void> put(const std::string& stored_key, std::string_view bytes, const StoreTtl& ttl) {
        auto r = timed(TierStage::write, [&] { return store_.set_px(stored_key, bytes, ttl.px); });
        if (!r) return fail(error(r.error()));
        bump(counts().bytes_out, bytes.size());
        return {};
    }

    /// The expired half of the TTL rule: the key goes.
    Result<void> erase(const std::string& stored_key) {
        auto r = timed(TierStage::write, [&] { return store_.del(stored_key); });
        if (!r) return fail(error(r.error()));
        return {};
    }

    std::vector<Result<std::optional<std::string>>> store_get_many(std::span<const std::string> keys) {
        if constexpr (requires { store_.get_many(keys); }) {
            return store_.get_many(keys);
        } else {
            std::vector<Result<std::optional<std::string>>> out;
            out.reserve(keys.size());
            for (const auto& k : keys) out.push_back(store_.get(k));
            return out;
        }
    }

    std::vector<Result<bool>> store_write_many(std::span<const ConnectionWrite> ops) {
        if constexpr (requires { store_.write_many(ops); }) {
            return store_.write_many(ops);
        } else {
            std::vector<Result<bool>> out;
            out.reserve(ops.size());
            for (const auto& op : ops) {
                if (op.remove) {
                    out.push_back(store_.del(op.key));
                } else if (auto r = store_.set_px(op.key, op.value, op.px_ms); r) {
                    out.emplace_back(true);
                } else {
                    out.push_back(fail(r.error()));
                }
            }
            return out;
        }
    }

    template <class T>
    Result<std::optional<CacheValue<T>>> decode_entry(const std::optional<std::string>& raw, TimePoint now) {
        if (!raw) {
            bump(counts().misses);
            return std::optional<CacheValue<T>>{};
        }
        bump(counts().bytes_in, raw->size());
        auto value = codec_.template decode<T>(*raw, timers_.get());
        if (!value) return fail(error(value.error()));
        if (!value->held_at(now)) {  // the store normally drops it first; clocks may differ
            bump(counts().misses);
            return std::optional<CacheValue<T>>{};
        }
        bump(counts().hits);
        return std::optional<CacheValue<T>>(std::move(*value));
    }

    Store store_;
    // The codec, or a placeholder when a format policy is invalid: the static_asserts above said which,
    // and an EntryCodec of it would only repeat them.
    std::conditional_t<detail::holds<KeyFormat<KeyFmt> && ValueFormat<ValueFmt> && Compressor<Comp>>, codec_type,
                       detail::InvalidPolicy>
        codec_;
    std::string label_;
    std::shared_ptr<detail::ByteCounters> counters_;
    std::shared_ptr<detail::StageTimers> timers_;  // null: duration histograms off
};

}  // namespace hitbox
