#pragma once
/// \file
/// hitbox::RedisBackend<KeyFmt, ValueFmt, Compressor, Connection>: a cache tier stored in Redis, assembled
/// at compile time from policies, and its builder. The backend owns keys, TTLs and framing (EntryCodec);
/// the Connection policy owns sockets and routing.

#include <array>
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

#include <hitbox/backend/redis/connection_mode.hpp>
#include <hitbox/backend/redis/detail/deadline.hpp>
#include <hitbox/codec/entry_codec.hpp>
#include <hitbox/backend/redis/single_node.hpp>
#include <hitbox/backend/redis/tls.hpp>
#include <hitbox/compress/passthrough.hpp>
#include <hitbox/core/clock.hpp>
#include <hitbox/core/concepts.hpp>
#include <hitbox/core/error.hpp>
#include <hitbox/core/key.hpp>
#include <hitbox/core/value.hpp>
#include <hitbox/format/binary.hpp>
#include <hitbox/key_format/bitcode.hpp>

namespace hitbox {

/// A snapshot of a RedisBackend's counters (shared by its copies). Plain values: copy, diff, export.
struct RedisStats {
    std::uint64_t reads = 0;  ///< keys looked up (get, each key of get_many, read)
    std::uint64_t writes =
        0;  ///< entries written (set, each entry of set_many, write), expired ones included
    std::uint64_t removes = 0;  ///< remove calls
    std::uint64_t hits = 0;     ///< lookups that returned a value
    std::uint64_t misses = 0;   ///< lookups of a missing (or expired) key
    std::uint64_t bytes_in =
        0;  ///< stored bytes received (envelope + payload; keys and RESP framing excluded)
    std::uint64_t bytes_out = 0;                           ///< stored bytes sent (envelope + payload)
    std::array<std::uint64_t, error_kind_count> errors{};  ///< failed operations, indexed by ErrorKind

    /// Failures of one kind.
    std::uint64_t errors_of(ErrorKind kind) const noexcept { return errors[static_cast<std::size_t>(kind)]; }
    /// Failures of every kind.
    std::uint64_t error_total() const noexcept {
        std::uint64_t n = 0;
        for (auto e : errors) n += e;
        return n;
    }
};

namespace detail {

/// The live counters behind RedisStats, striped: each thread counts into one of `stripe_count` cache-line
/// aligned copies (threads are dealt out in the order they first count), so threads on different cores do
/// not fight over one cache line for every operation; a snapshot adds the stripes up.
struct RedisCounters {
    struct alignas(64) Stripe {
        std::atomic<std::uint64_t> reads{0}, writes{0}, removes{0}, hits{0}, misses{0}, bytes_in{0}, bytes_out{0};
        std::array<std::atomic<std::uint64_t>, error_kind_count> errors{};
    };
    static constexpr std::size_t stripe_count = 16;
    std::array<Stripe, stripe_count> stripes;

    /// The calling thread's stripe.
    Stripe& local() noexcept {
        static std::atomic<std::size_t> next{0};
        thread_local const std::size_t index = next.fetch_add(1, std::memory_order_relaxed) % stripe_count;
        return stripes[index];
    }

    static void bump(std::atomic<std::uint64_t>& c, std::uint64_t n = 1) noexcept {
        c.fetch_add(n, std::memory_order_relaxed);
    }

    RedisStats snapshot() const noexcept {
        RedisStats s;
        auto sum = [&](const std::atomic<std::uint64_t> Stripe::*field) {
            std::uint64_t n = 0;
            for (const auto& stripe : stripes) n += (stripe.*field).load(std::memory_order_relaxed);
            return n;
        };
        s.reads = sum(&Stripe::reads);
        s.writes = sum(&Stripe::writes);
        s.removes = sum(&Stripe::removes);
        s.hits = sum(&Stripe::hits);
        s.misses = sum(&Stripe::misses);
        s.bytes_in = sum(&Stripe::bytes_in);
        s.bytes_out = sum(&Stripe::bytes_out);
        for (const auto& stripe : stripes)
            for (std::size_t i = 0; i < error_kind_count; ++i)
                s.errors[i] += stripe.errors[i].load(std::memory_order_relaxed);
        return s;
    }
};

}  // namespace detail

template <class KeyFmt, class ValueFmt, class Comp, class Conn>
class RedisBackendBuilder;

/// A cache tier in Redis. Each entry is one Redis string holding a versioned envelope (format and
/// compressor ids, created/stale/expire in ms) followed by the payload, written with one
/// `SET key blob [PX ms]` and read with one `GET`. The stored key is `key_prefix + KeyFmt::encode(key)`.
///
/// Policies: KeyFmt (Bitcode), ValueFmt (BinaryFormat), Comp (PassthroughCompressor) and Conn (SingleNode).
/// Copies share the connection and the counters. Thread-safe; no operation throws.
///
/// \code
/// auto redis = hitbox::RedisBackend<>::builder()
///                  .connection(hitbox::ConnectionMode::single("redis://localhost:6379/"))
///                  .value_format<hitbox::JsonFormat>()
///                  .build();                       // Result<RedisBackend<Bitcode, JsonFormat, ...>>
/// auto ok  = redis->set(key, hitbox::CacheValue<User>{user, hitbox::Clock::now() + 60s});
/// auto hit = redis->get<User>(key);                // Result<std::optional<CacheValue<User>>>
/// \endcode
template <class KeyFmt = Bitcode, class ValueFmt = BinaryFormat, class Comp = PassthroughCompressor,
          class Conn = SingleNode>
class RedisBackend {
    static_assert(
        detail::holds<KeyFormat<KeyFmt>>,
        "hitbox: RedisBackend<KeyFmt, ValueFmt, Compressor, Connection>: KeyFmt must model "
        "hitbox::KeyFormat: "
        "it needs `static constexpr std::string_view name`, `std::string encode(const CacheKey&) const` and "
        "`Result<CacheKey> decode(std::string_view) const`");
    static_assert(detail::holds<ValueFormat<ValueFmt>>,
                  "hitbox: RedisBackend<KeyFmt, ValueFmt, Compressor, Connection>: ValueFmt must model "
                  "hitbox::ValueFormat: it needs `static constexpr std::uint8_t id`, `name`, "
                  "`template <class T> Result<std::string> encode(const T&) const` and "
                  "`template <class T> Result<T> decode(std::string_view) const`");
    static_assert(detail::holds<Compressor<Comp>>,
                  "hitbox: RedisBackend<KeyFmt, ValueFmt, Compressor, Connection>: Compressor must model "
                  "hitbox::Compressor: it needs `static constexpr std::uint8_t id`, `name`, "
                  "`Result<std::string> compress(std::string_view) const` and `decompress`");
    static_assert(detail::holds<Connection<Conn>>,
                  "hitbox: RedisBackend<KeyFmt, ValueFmt, Compressor, Connection>: Connection must model "
                  "hitbox::Connection: it needs `static constexpr std::string_view mode`, get, set_px, del, "
                  "get_many and write_many (see hitbox/core/concepts.hpp)");

  public:
    /// The policies, the codec built from them and the builder of this type.
    using key_format = KeyFmt;
    using value_format = ValueFmt;
    using compressor_type = Comp;
    using connection_type = Conn;
    using codec_type = EntryCodec<KeyFmt, ValueFmt, Comp>;
    using builder_type = RedisBackendBuilder<KeyFmt, ValueFmt, Comp, Conn>;

    /// Starts configuring a backend: `.connection(...)` is required, everything else has a default.
    static builder_type builder() { return builder_type{}; }

    /// Assembles a backend from parts; the builder is the usual way.
    RedisBackend(Conn connection, codec_type codec, std::string label)
        : conn_(std::move(connection)),
          codec_(std::move(codec)),
          label_(std::move(label)),
          counters_(std::make_shared<detail::RedisCounters>()) {}

    /// The entry under `key`: nullopt when there is none or it has expired. Corrupt or foreign bytes are a
    /// decode error (a composition treats it as a miss).
    template <class T>
    Result<std::optional<CacheValue<T>>> get(const CacheKey& key) {
        bump(counts().reads);
        auto raw = conn_.get(codec_.key(key));
        if (!raw) return fail(error(raw.error()));
        return decode_entry<T>(*raw, SystemClock::now());
    }

    /// Writes `value` under `key` with one `SET key blob [PX ms]`, replacing any old entry and its
    /// metadata. A value that has already expired is not written: the key is deleted instead, since the
    /// caller's intent is that it holds nothing fresher.
    template <class T>
    Result<void> set(const CacheKey& key, const CacheValue<T>& value) {
        bump(counts().writes);
        const std::string stored_key = codec_.key(key);
        const StoreTtl ttl = store_ttl(value.expire, SystemClock::now());
        if (ttl.expired) {
            auto r = conn_.del(stored_key);
            if (!r) return fail(error(r.error()));
            return {};
        }
        auto blob = codec_.encode(value);
        if (!blob) return fail(error(blob.error()));
        auto r = conn_.set_px(stored_key, *blob, ttl.px);
        if (!r) return fail(error(r.error()));
        bump(counts().bytes_out, blob->size());
        return {};
    }

    /// Same as the const& overload (the value is only read).
    template <class T>
    Result<void> set(const CacheKey& key, CacheValue<T>&& value) {
        return set<T>(key, static_cast<const CacheValue<T>&>(value));
    }

    /// DEL: true when the key existed.
    Result<bool> remove(const CacheKey& key) {
        bump(counts().removes);
        auto r = conn_.del(codec_.key(key));
        if (!r) return fail(error(r.error()));
        return *r;
    }

    /// The backend's label ("redis" unless configured), used in errors and composed label paths.
    std::string_view label() const noexcept { return label_; }

    /// Pipelined lookups: one result per key, in key order (one round trip on a single node).
    template <class T>
    std::vector<Result<std::optional<CacheValue<T>>>> get_many(std::span<const CacheKey> keys) {
        bump(counts().reads, keys.size());
        std::vector<std::string> stored;
        stored.reserve(keys.size());
        for (const auto& k : keys) stored.push_back(codec_.key(k));
        auto raws = conn_.get_many(stored);
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

    /// Pipelined writes with set's semantics: one result per entry, in input order.
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
            const StoreTtl ttl = store_ttl(value.expire, now);
            if (ttl.expired) {
                ops.push_back(ConnectionWrite{keys[i], {}, std::nullopt, true});
            } else {
                auto blob = codec_.encode(value);
                if (!blob) {
                    out[i] = fail(error(blob.error()));
                    continue;
                }
                blobs[i] = std::move(*blob);
                ops.push_back(ConnectionWrite{keys[i], blobs[i], ttl.px, false});
            }
            index.push_back(i);
        }
        auto results = conn_.write_many(ops);
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
        bump(counts().reads);
        auto raw = conn_.get(codec_.key(key));
        if (!raw) return fail(error(raw.error()));
        if (!*raw) {
            bump(counts().misses);
        } else {
            bump(counts().hits);
            bump(counts().bytes_in, (*raw)->size());
        }
        return std::move(*raw);
    }

    /// Stores `envelope` under `key` as is, with `SET ... PX ttl` (no expiry when ttl is nullopt; a ttl
    /// of zero or less deletes the key). Bytes that do not parse as an envelope are refused with an encode
    /// error; the format and compressor ids are not checked, so tools can copy entries of any policy.
    Result<void> write(const CacheKey& key, std::string_view envelope,
                       std::optional<std::chrono::milliseconds> ttl) {
        bump(counts().writes);
        if (auto parsed = parse_envelope(envelope); !parsed)
            return fail(error(Error(ErrorKind::encode, "write: " + parsed.error().message())));
        const std::string stored_key = codec_.key(key);
        const StoreTtl rule = store_ttl(ttl);
        if (rule.expired) {
            auto r = conn_.del(stored_key);
            if (!r) return fail(error(r.error()));
            return {};
        }
        auto r = conn_.set_px(stored_key, envelope, rule.px);
        if (!r) return fail(error(r.error()));
        bump(counts().bytes_out, envelope.size());
        return {};
    }

    /// A snapshot of the counters (shared with copies of this backend).
    RedisStats stats() const noexcept { return counters_->snapshot(); }

    /// The connection policy (e.g. SingleNode::ping(), SingleNode::counters()).
    Conn& connection() noexcept { return conn_; }
    const Conn& connection() const noexcept { return conn_; }
    /// The codec: stored key bytes and envelope encoding, e.g. for tools reading entries directly.
    const codec_type& codec() const noexcept { return codec_; }

  private:
    static void bump(std::atomic<std::uint64_t>& c, std::uint64_t n = 1) noexcept {
        detail::RedisCounters::bump(c, n);
    }

    /// The calling thread's stripe of the counters.
    detail::RedisCounters::Stripe& counts() const noexcept { return counters_->local(); }

    /// Counts `e` and attributes it to this backend's label.
    Error error(const Error& e) const {
        detail::RedisCounters::bump(counts().errors[static_cast<std::size_t>(e.kind())]);
        return e.in(label_);
    }

    template <class T>
    Result<std::optional<CacheValue<T>>> decode_entry(const std::optional<std::string>& raw, TimePoint now) {
        if (!raw) {
            bump(counts().misses);
            return std::optional<CacheValue<T>>{};
        }
        bump(counts().bytes_in, raw->size());
        auto value = codec_.template decode<T>(*raw);
        if (!value) return fail(error(value.error()));
        if (value->state(now) == EntryState::Expired) {  // PX normally removes it first; clocks may differ
            bump(counts().misses);
            return std::optional<CacheValue<T>>{};
        }
        bump(counts().hits);
        return std::optional<CacheValue<T>>(std::move(*value));
    }

    Conn conn_;
    // The codec, or a placeholder when a format policy is invalid: the static_asserts above said which,
    // and an EntryCodec of it would only repeat them.
    std::conditional_t<detail::holds<KeyFormat<KeyFmt> && ValueFormat<ValueFmt> && Compressor<Comp>>, codec_type,
                       detail::InvalidPolicy>
        codec_;
    std::string label_;
    std::shared_ptr<detail::RedisCounters> counters_;
};

/// Configures a RedisBackend. Options that choose a policy (`connection`, `key_format`, `value_format`,
/// `compressor`) return a builder of another type; the rest return the same builder. `build()` validates
/// everything and never touches the network.
///
/// | option | default | meaning |
/// |---|---|---|
/// | connection | (required) | `ConnectionMode::single(url)` or `ConnectionMode::cluster({urls})` |
/// | username / password | none (URL's) | Redis 6+ ACL / requirepass credentials; override the URL's |
/// | tls | off (on for `rediss://`) | TlsOptions: CA, client certificate, server name, verification |
/// | key_format<F>() | Bitcode | how a CacheKey becomes key bytes |
/// | value_format<F>() | BinaryFormat | how values are serialized |
/// | compressor(c) | PassthroughCompressor | payload compression |
/// | label | "redis" | name in errors and label paths |
/// | key_prefix | "" | prepended to every stored key |
/// | connect_timeout | 2 s | host name lookup + connect + AUTH + SELECT |
/// | command_timeout | 1 s | wait for a reply |
/// | reconnect_backoff | 100 ms .. 5 s | delay after a failed connect, doubling with jitter |
/// | max_reply_bytes | 64 MiB | larger replies are cut off (capacity error, connection reset) |
/// | tuning | spinning | how callers wait for replies; ConnectionTuning::plain() never spins |
template <class KeyFmt, class ValueFmt, class Comp, class Conn>
class RedisBackendBuilder {
  public:
    /// The backend `build()` returns.
    using backend_type = RedisBackend<KeyFmt, ValueFmt, Comp, Conn>;

    /// An empty builder: `.connection(...)` is required before build().
    RedisBackendBuilder() = default;

    /// The connection mode (required): `ConnectionMode::single("redis://host:6379/")`.
    template <class Mode>
    requires requires { typename Mode::connection_type; }
    auto connection(Mode mode) const {
        using NewConn = typename Mode::connection_type;
        static_assert(
            std::is_same_v<typename NewConn::config_type, Mode>,
            "hitbox: RedisBackend builder: the mode's connection_type must take this mode as config_type");
        auto b = rebind<KeyFmt, ValueFmt, Comp, NewConn>(keys_, values_, compressor_);
        b.mode_ = std::move(mode);
        return b;
    }

    /// Redis 6+ ACL user (overrides the URL's).
    RedisBackendBuilder& username(std::string user) {
        options_.username = std::move(user);
        return *this;
    }
    /// Password for AUTH (overrides the URL's). Never appears in errors, logs or metrics.
    RedisBackendBuilder& password(std::string pass) {
        options_.password = std::move(pass);
        return *this;
    }
    /// TLS for every connection (needs a build with TLS: tls_available()), also for a `redis://` URL;
    /// `rediss://` alone means TLS with the default options (verification on, the system's CAs).
    /// `.tls({.ca_file = "ca.crt", .cert_file = "client.crt", .key_file = "client.key"})`.
    RedisBackendBuilder& tls(TlsOptions options) {
        options_.tls = std::move(options);
        return *this;
    }
    /// The backend's label (default "redis").
    RedisBackendBuilder& label(std::string name) {
        label_ = std::move(name);
        return *this;
    }
    /// Prepended to every stored key, e.g. "app:" (default none).
    RedisBackendBuilder& key_prefix(std::string prefix) {
        key_prefix_ = std::move(prefix);
        return *this;
    }
    /// Time allowed for connect + AUTH + SELECT (default 2 s; rounded up to whole ms; `max()` of any
    /// duration type: no limit).
    template <class Rep, class Period>
    RedisBackendBuilder& connect_timeout(std::chrono::duration<Rep, Period> d) {
        options_.connect_timeout = detail::saturating_ms(d);
        return *this;
    }
    /// Time a caller waits for a reply (default 1 s; rounded up to whole ms; `max()`: no limit, and no
    /// stall reset either).
    template <class Rep, class Period>
    RedisBackendBuilder& command_timeout(std::chrono::duration<Rep, Period> d) {
        options_.command_timeout = detail::saturating_ms(d);
        return *this;
    }
    /// Delay after a failed connect (doubling with jitter up to `max`); operations during it fail at once.
    template <class R1, class P1, class R2, class P2>
    RedisBackendBuilder& reconnect_backoff(std::chrono::duration<R1, P1> initial,
                                           std::chrono::duration<R2, P2> max) {
        options_.reconnect_backoff_initial = detail::saturating_ms(initial);
        options_.reconnect_backoff_max = detail::saturating_ms(max);
        return *this;
    }
    /// Largest reply accepted (default 64 MiB, the default decompression limit): a larger one is cut off
    /// with a `capacity` error and the connection is reset, instead of being buffered.
    RedisBackendBuilder& max_reply_bytes(std::size_t bytes) {
        options_.max_reply_bytes = bytes;
        return *this;
    }
    /// How callers wait for replies (default: spinning, see ConnectionTuning; `ConnectionTuning::plain()`
    /// sleeps at once).
    RedisBackendBuilder& tuning(ConnectionTuning t) {
        options_.tuning = t;
        return *this;
    }

    /// Key format policy (default Bitcode).
    template <class F>
    auto key_format(F format = F{}) const {
        static_assert(detail::holds<KeyFormat<F>>,
                      "hitbox: RedisBackend builder: key_format<F>(): F must model hitbox::KeyFormat");
        return rebind<F, ValueFmt, Comp, Conn>(std::move(format), values_, compressor_);
    }
    /// Value format policy (default BinaryFormat).
    template <class F>
    auto value_format(F format = F{}) const {
        static_assert(detail::holds<ValueFormat<F>>,
                      "hitbox: RedisBackend builder: value_format<F>(): F must model hitbox::ValueFormat");
        return rebind<KeyFmt, F, Comp, Conn>(keys_, std::move(format), compressor_);
    }
    /// Compressor policy (default PassthroughCompressor), e.g. `.compressor(hitbox::ZstdCompressor{3})`.
    template <class C>
    auto compressor(C c) const {
        static_assert(detail::holds<Compressor<C>>,
                      "hitbox: RedisBackend builder: compressor(c): c must model hitbox::Compressor");
        return rebind<KeyFmt, ValueFmt, C, Conn>(keys_, values_, std::move(c));
    }

    /// Validates and assembles the backend: a config error when no connection was given, the URL is
    /// invalid, or an option is out of range. Does not connect (the first operation does).
    Result<backend_type> build() const {
        if (label_.empty()) return fail(ErrorKind::config, "RedisBackend: the label must not be empty");
        if (!mode_)
            return fail(ErrorKind::config,
                        "RedisBackend: no connection configured: call "
                        ".connection(hitbox::ConnectionMode::single(\"redis://host:6379/\")) before build()",
                        label_);
        if (options_.tls && !tls_available())
            return fail(ErrorKind::config,
                        "RedisBackend: .tls(...) needs TLS support: hitbox built with OpenSSL (meson -Dtls=enabled, "
                        "libssl-dev) and the hitbox-tls dependency",
                        label_);
        auto conn = Conn::create(*mode_, options_);
        if (!conn) return fail(conn.error().in(label_));
        return backend_type(std::move(*conn),
                            typename backend_type::codec_type(keys_, values_, compressor_, key_prefix_),
                            label_);
    }

    /// The options collected so far (credentials included: do not print them).
    const ConnectionOptions& options() const noexcept { return options_; }

  private:
    template <class, class, class, class>
    friend class RedisBackendBuilder;

    template <class K, class V, class C, class N>
    RedisBackendBuilder<K, V, C, N> rebind(K keys, V values, C comp) const {
        RedisBackendBuilder<K, V, C, N> b;
        b.keys_ = std::move(keys);
        b.values_ = std::move(values);
        b.compressor_ = std::move(comp);
        b.options_ = options_;
        b.label_ = label_;
        b.key_prefix_ = key_prefix_;
        if constexpr (std::is_same_v<N, Conn>) b.mode_ = mode_;
        return b;
    }

    [[no_unique_address]] KeyFmt keys_{};
    [[no_unique_address]] ValueFmt values_{};
    Comp compressor_{};
    std::optional<typename Conn::config_type> mode_;
    ConnectionOptions options_;
    std::string label_ = "redis";
    std::string key_prefix_;
};

}  // namespace hitbox
