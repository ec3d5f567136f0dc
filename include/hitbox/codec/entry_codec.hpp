#pragma once
/// \file
/// hitbox::EntryCodec<KeyFmt, ValueFmt, Compressor>: keys and CacheValue<T> to the bytes a byte-storing
/// tier keeps (the envelope of hitbox/codec/envelope.hpp + the compressed payload), and back.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <hitbox/codec/envelope.hpp>
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

/// Encodes keys and entries for a byte-oriented tier from three policies: how keys become bytes, how
/// values become bytes, and how those bytes are compressed. Every byte tier (ByteBackend, so RedisBackend)
/// owns one; tools can use it to read or write entries directly. The envelope work itself is the
/// non-template seal_entry / open_entry (hitbox/codec/envelope.hpp), shared with AnyBackend.
///
/// \code
/// hitbox::EntryCodec<hitbox::UrlEncoded, hitbox::JsonFormat> codec;
/// std::string redis_key = codec.key(key);
/// auto blob  = codec.encode(hitbox::CacheValue<User>{user, expire});  // Result<std::string>
/// auto value = codec.decode<User>(*blob);                              // Result<CacheValue<User>>
/// \endcode
template <class KeyFmt = Bitcode, class ValueFmt = BinaryFormat, class Comp = PassthroughCompressor>
class EntryCodec {
    static_assert(detail::holds<KeyFormat<KeyFmt>>,
                  "hitbox: KeyFmt must model hitbox::KeyFormat: it needs `static constexpr std::string_view name`, "
                  "`std::string encode(const CacheKey&) const` and `Result<CacheKey> decode(std::string_view) const`");
    static_assert(detail::holds<ValueFormat<ValueFmt>>,
                  "hitbox: ValueFmt must model hitbox::ValueFormat: it needs `static constexpr std::uint8_t id`, "
                  "`name`, `template <class T> Result<std::string> encode(const T&) const` and "
                  "`template <class T> Result<T> decode(std::string_view) const`");
    static_assert(detail::holds<Compressor<Comp>>,
                  "hitbox: Compressor must model hitbox::Compressor: it needs `static constexpr std::uint8_t id`, "
                  "`name`, `Result<std::string> compress(std::string_view) const` and "
                  "`Result<std::string> decompress(std::string_view) const`");

public:
    /// The three policies, as given.
    using key_format = KeyFmt;
    using value_format = ValueFmt;
    using compressor_type = Comp;

    EntryCodec() = default;
    /// A codec of these policy objects; `key_prefix` is prepended to every stored key.
    EntryCodec(KeyFmt k, ValueFmt v, Comp c, std::string key_prefix = {})
        : keys_(std::move(k)), values_(std::move(v)), compressor_(std::move(c)), key_prefix_(std::move(key_prefix)) {}

    /// The stored key: the configured prefix followed by the key format's bytes.
    std::string key(const CacheKey& k) const {
        std::string out = key_prefix_;
        out += keys_.encode(k);
        return out;
    }

    /// Envelope + compressed payload for `value`.
    template <class T>
    Result<std::string> encode(const CacheValue<T>& value) const {
        return encode(value, nullptr);
    }

    /// As above, timing serialization and compression into `timers` when it is not null (a byte tier
    /// built with duration histograms passes its own).
    template <class T>
    Result<std::string> encode(const CacheValue<T>& value, detail::StageTimers* timers) const {
        auto payload = detail::timed(timers, TierStage::serialize, [&] { return values_.encode(value.data); });
        if (!payload) return fail(payload.error());
        auto packed = detail::timed(timers, TierStage::compress, [&] { return compressor_.compress(*payload); });
        if (!packed) return fail(packed.error());
        return seal_entry({ValueFmt::id, Comp::id, value.created, value.stale, value.expire, value.retain}, *packed);
    }

    /// Parses, checks the format and compressor ids, decompresses and decodes.
    template <class T>
    Result<CacheValue<T>> decode(std::string_view bytes) const {
        return decode<T>(bytes, nullptr);
    }

    /// As above, timing decompression and deserialization into `timers` when it is not null.
    template <class T>
    Result<CacheValue<T>> decode(std::string_view bytes, detail::StageTimers* timers) const {
        auto env = open_entry(bytes, policies());
        if (!env) return fail(env.error());
        const auto& h = env->header;
        auto raw = detail::timed(timers, TierStage::decompress, [&] { return compressor_.decompress(env->payload); });
        if (!raw) return fail(raw.error());
        auto data = detail::timed(timers, TierStage::deserialize, [&] { return values_.template decode<T>(*raw); });
        if (!data) return fail(data.error());
        return CacheValue<T>(std::move(*data), h.expire, h.stale, h.created, h.retain);
    }

    /// The value format and compressor ids this codec writes and reads (for open_entry).
    static constexpr EntryPolicies policies() noexcept { return {ValueFmt::id, ValueFmt::name, Comp::id, Comp::name}; }

    /// The policy objects and the key prefix in use.
    const KeyFmt& key_format_policy() const noexcept { return keys_; }
    const ValueFmt& value_format_policy() const noexcept { return values_; }
    const Comp& compressor() const noexcept { return compressor_; }
    const std::string& key_prefix() const noexcept { return key_prefix_; }

private:
    [[no_unique_address]] KeyFmt keys_{};
    [[no_unique_address]] ValueFmt values_{};
    Comp compressor_{};
    std::string key_prefix_;
};

}  // namespace hitbox
