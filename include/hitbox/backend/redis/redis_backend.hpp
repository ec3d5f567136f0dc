#pragma once
/// \file
/// hitbox::RedisBackend<KeyFmt, ValueFmt, Compressor, Connection>: a cache tier stored in Redis, assembled
/// at compile time from policies, and its builder. Its host, ByteBackend, owns keys, TTLs and framing
/// (EntryCodec); the Connection policy, its store, owns sockets and routing.

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

#include <hitbox/backend/byte_backend.hpp>
#include <hitbox/backend/redis/connection_mode.hpp>
#include <hitbox/backend/redis/detail/deadline.hpp>
#include <hitbox/backend/redis/single_node.hpp>
#include <hitbox/backend/redis/tls.hpp>
#include <hitbox/codec/entry_codec.hpp>
#include <hitbox/compress/passthrough.hpp>
#include <hitbox/core/clock.hpp>
#include <hitbox/core/concepts.hpp>
#include <hitbox/core/durations.hpp>
#include <hitbox/core/error.hpp>
#include <hitbox/core/key.hpp>
#include <hitbox/core/value.hpp>
#include <hitbox/format/binary.hpp>
#include <hitbox/key_format/bitcode.hpp>

namespace hitbox {

/// The counters of a RedisBackend: those of its host, ByteBackend.
using RedisStats = ByteStats;

namespace detail {

/// RedisBackend's policies all valid: only then is its host instantiated (otherwise its static_asserts
/// say which one is wrong, and the host would only repeat them).
template <class KeyFmt, class ValueFmt, class Comp, class Conn>
inline constexpr bool redis_policies_hold =
    holds<KeyFormat<KeyFmt> && ValueFormat<ValueFmt> && Compressor<Comp> && Connection<Conn>>;

template <class KeyFmt, class ValueFmt, class Comp, class Conn>
using redis_host_t = std::conditional_t<redis_policies_hold<KeyFmt, ValueFmt, Comp, Conn>,
                                        ByteBackend<KeyFmt, ValueFmt, Comp, Conn>, InvalidPolicy>;

}  // namespace detail

template <class KeyFmt, class ValueFmt, class Comp, class Conn>
class RedisBackendBuilder;

/// A cache tier in Redis. Each entry is one Redis string holding a versioned envelope (format and
/// compressor ids, created/stale/expire in ms) followed by the payload, written with one
/// `SET key blob [PX ms]` and read with one `GET`. The stored key is `key_prefix + KeyFmt::encode(key)`.
/// The operations (get, set, remove, get_many, set_many, read, write, stats, codec) are those of its host,
/// ByteBackend<KeyFmt, ValueFmt, Comp, Conn> (hitbox/backend/byte_backend.hpp), with the Connection as
/// its store; this type adds the builder and `connection()`.
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
class RedisBackend : public detail::redis_host_t<KeyFmt, ValueFmt, Comp, Conn> {
    static_assert(detail::holds<KeyFormat<KeyFmt>>,
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
    RedisBackend(Conn connection, codec_type codec, std::string label,
                 DurationHistograms durations = DurationHistograms::off)
        : detail::redis_host_t<KeyFmt, ValueFmt, Comp, Conn>(std::move(connection), std::move(codec), std::move(label),
                                                             durations) {}

    /// The connection policy (e.g. SingleNode::ping(), SingleNode::counters()).
    Conn& connection() noexcept { return this->store(); }
    const Conn& connection() const noexcept { return this->store(); }
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
/// | reconnect_backoff | 100 ms .. 5 s | delay after a failed connect (half to all of it: jitter), doubling |
/// | max_reply_bytes | 64 MiB | larger replies are cut off (capacity error, connection reset) |
/// | tuning | spinning callers | how callers wait for replies; ConnectionTuning::plain() never spins; `drive`: who drives a busy connection |
/// | duration_histograms | off | time round trips, (de)serialization and (de)compression (`durations()`) |
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
        static_assert(std::is_same_v<typename NewConn::config_type, Mode>,
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
    /// Delay after a failed connect (a random half to all of it, doubling up to `max`); operations during it
    /// fail at once.
    template <class R1, class P1, class R2, class P2>
    RedisBackendBuilder& reconnect_backoff(std::chrono::duration<R1, P1> initial, std::chrono::duration<R2, P2> max) {
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
    /// sleeps at once), and who drives a busy connection (`drive`: the callers by default).
    RedisBackendBuilder& tuning(ConnectionTuning t) {
        options_.tuning = t;
        return *this;
    }
    /// Records duration histograms (default off): each round trip's read or write time, serialization,
    /// deserialization, compression and decompression, exported as `hitbox_backend_*_duration_seconds`
    /// (doc/metrics.md). Costs two clock reads per timed stage.
    RedisBackendBuilder& duration_histograms(bool on = true) {
        durations_ = on ? DurationHistograms::on : DurationHistograms::off;
        return *this;
    }

    /// Key format policy (default Bitcode).
    template <class F>
    auto key_format(F format = F{}) const {
        static_assert(detail::holds<KeyFormat<F>>,
                      "hitbox: RedisBackend builder: key_format<F>(): F must model hitbox::KeyFormat: it needs "
                      "`static constexpr std::string_view name`, `std::string encode(const CacheKey&) const` and "
                      "`Result<CacheKey> decode(std::string_view) const`");
        if constexpr (detail::holds<KeyFormat<F>>)
            return rebind<F, ValueFmt, Comp, Conn>(std::move(format), values_, compressor_);
        else
            return *this;  // the assertion failed: keep this builder, so build() reports nothing more
    }
    /// Value format policy (default BinaryFormat).
    template <class F>
    auto value_format(F format = F{}) const {
        static_assert(detail::holds<ValueFormat<F>>,
                      "hitbox: RedisBackend builder: value_format<F>(): F must model hitbox::ValueFormat: it needs "
                      "`static constexpr std::uint8_t id`, `name`, `template <class T> Result<std::string> "
                      "encode(const T&) const` and `template <class T> Result<T> decode(std::string_view) const`");
        if constexpr (detail::holds<ValueFormat<F>>)
            return rebind<KeyFmt, F, Comp, Conn>(keys_, std::move(format), compressor_);
        else
            return *this;  // the assertion failed: keep this builder, so build() reports nothing more
    }
    /// Compressor policy (default PassthroughCompressor), e.g. `.compressor(hitbox::ZstdCompressor{3})`.
    template <class C>
    auto compressor(C c) const {
        static_assert(detail::holds<Compressor<C>>,
                      "hitbox: RedisBackend builder: compressor(c): c must model hitbox::Compressor: it needs "
                      "`static constexpr std::uint8_t id`, `name`, `Result<std::string> compress(std::string_view) "
                      "const` and `decompress`");
        if constexpr (detail::holds<Compressor<C>>)
            return rebind<KeyFmt, ValueFmt, C, Conn>(keys_, values_, std::move(c));
        else
            return *this;  // the assertion failed: keep this builder, so build() reports nothing more
    }

    /// Validates and assembles the backend: a config error when no connection was given, the URL is
    /// invalid, or an option is out of range. Does not connect (the first operation does).
    Result<backend_type> build() const {
        if constexpr (detail::redis_policies_hold<KeyFmt, ValueFmt, Comp, Conn>)
            return build_();
        else  // RedisBackend's static_asserts said which policy is wrong; assembling it would only repeat them
            return fail(ErrorKind::config, "RedisBackend: a policy does not model its concept", label_);
    }

    /// The options collected so far (credentials included: do not print them).
    const ConnectionOptions& options() const noexcept { return options_; }

private:
    Result<backend_type> build_() const {
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
                            typename backend_type::codec_type(keys_, values_, compressor_, key_prefix_), label_,
                            durations_);
    }

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
        b.durations_ = durations_;
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
    DurationHistograms durations_ = DurationHistograms::off;
};

}  // namespace hitbox
