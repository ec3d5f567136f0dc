#pragma once
/// \file
/// The stored form of a cache entry in byte-oriented tiers (Redis): a small versioned envelope followed by
/// the (compressed) payload, and hitbox::EntryCodec, which turns keys and CacheValue<T> into those bytes.
/// Needs no hiredis: usable by tools that read or write entries themselves.

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <hitbox/compress/passthrough.hpp>
#include <hitbox/core/clock.hpp>
#include <hitbox/core/concepts.hpp>
#include <hitbox/core/error.hpp>
#include <hitbox/core/key.hpp>
#include <hitbox/core/value.hpp>
#include <hitbox/format/binary.hpp>
#include <hitbox/key_format/bitcode.hpp>

namespace hitbox {

/// The metadata of a stored entry, as read from its envelope.
struct EnvelopeHeader {
    std::uint8_t format_id = 0;
    std::uint8_t compressor_id = 0;
    TimePoint created{};
    std::optional<TimePoint> stale{};
    std::optional<TimePoint> expire{};
};

/// A parsed envelope: header and the still-compressed payload (a view into the input).
struct EnvelopeView {
    EnvelopeHeader header;
    std::string_view payload;
};

namespace detail {

inline constexpr unsigned char envelope_magic0 = 'H';
inline constexpr unsigned char envelope_magic1 = 'B';
inline constexpr std::uint8_t envelope_version = 1;
inline constexpr std::uint8_t envelope_has_stale = 0x01;
inline constexpr std::uint8_t envelope_has_expire = 0x02;
inline constexpr std::size_t envelope_fixed_size = 14;  // magic 2, version, format, compressor, flags, created 8

inline void put_i64_le(std::string& out, std::int64_t v) {
    auto u = static_cast<std::uint64_t>(v);
    for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((u >> (8 * i)) & 0xff));
}

inline std::int64_t get_i64_le(const char* p) {
    std::uint64_t u = 0;
    for (int i = 0; i < 8; ++i) u |= static_cast<std::uint64_t>(static_cast<unsigned char>(p[i])) << (8 * i);
    return static_cast<std::int64_t>(u);
}

/// Appends the envelope header; the payload follows it directly.
inline void write_envelope_header(std::string& out, const EnvelopeHeader& h) {
    out.push_back(static_cast<char>(envelope_magic0));
    out.push_back(static_cast<char>(envelope_magic1));
    out.push_back(static_cast<char>(envelope_version));
    out.push_back(static_cast<char>(h.format_id));
    out.push_back(static_cast<char>(h.compressor_id));
    std::uint8_t flags = (h.stale ? envelope_has_stale : 0) | (h.expire ? envelope_has_expire : 0);
    out.push_back(static_cast<char>(flags));
    put_i64_le(out, to_unix_ms(h.created));
    if (h.stale) put_i64_le(out, to_unix_ms(*h.stale));
    if (h.expire) put_i64_le(out, to_unix_ms(*h.expire));
}

}  // namespace detail

/// Parses an envelope. Wrong magic, an unknown version, unknown flag bits or truncation are decode errors.
inline Result<EnvelopeView> parse_envelope(std::string_view in) {
    auto bad = [](const std::string& what) { return fail(ErrorKind::decode, "envelope: " + what); };
    if (in.size() < detail::envelope_fixed_size) return bad("truncated (" + std::to_string(in.size()) + " bytes)");
    if (static_cast<unsigned char>(in[0]) != detail::envelope_magic0 ||
        static_cast<unsigned char>(in[1]) != detail::envelope_magic1)
        return bad("bad magic (not written by hitbox)");
    auto version = static_cast<std::uint8_t>(in[2]);
    if (version != detail::envelope_version) return bad("unknown version " + std::to_string(version));
    EnvelopeView v;
    v.header.format_id = static_cast<std::uint8_t>(in[3]);
    v.header.compressor_id = static_cast<std::uint8_t>(in[4]);
    auto flags = static_cast<std::uint8_t>(in[5]);
    if (flags & ~(detail::envelope_has_stale | detail::envelope_has_expire))
        return bad("unknown flags " + std::to_string(flags));
    std::size_t need = detail::envelope_fixed_size + ((flags & detail::envelope_has_stale) ? 8 : 0) +
                       ((flags & detail::envelope_has_expire) ? 8 : 0);
    if (in.size() < need) return bad("truncated header");
    v.header.created = from_unix_ms(detail::get_i64_le(in.data() + 6));
    std::size_t pos = detail::envelope_fixed_size;
    if (flags & detail::envelope_has_stale) {
        v.header.stale = from_unix_ms(detail::get_i64_le(in.data() + pos));
        pos += 8;
    }
    if (flags & detail::envelope_has_expire) {
        v.header.expire = from_unix_ms(detail::get_i64_le(in.data() + pos));
        pos += 8;
    }
    v.payload = in.substr(pos);
    return v;
}

/// Encodes keys and entries for a byte-oriented tier from three policies: how keys become bytes, how
/// values become bytes, and how those bytes are compressed. RedisBackend owns one; tools can use it to
/// read or write entries directly.
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
        auto payload = values_.encode(value.data);
        if (!payload) return fail(payload.error());
        auto packed = compressor_.compress(*payload);
        if (!packed) return fail(packed.error());
        std::string out;
        out.reserve(detail::envelope_fixed_size + 16 + packed->size());
        detail::write_envelope_header(out, {ValueFmt::id, Comp::id, value.created, value.stale, value.expire});
        out.append(*packed);
        return out;
    }

    /// Parses, checks the format and compressor ids, decompresses and decodes.
    template <class T>
    Result<CacheValue<T>> decode(std::string_view bytes) const {
        auto env = parse_envelope(bytes);
        if (!env) return fail(env.error());
        const auto& h = env->header;
        if (h.format_id != ValueFmt::id)
            return fail(ErrorKind::decode, "envelope: value format id " + std::to_string(h.format_id) +
                                               ", this codec reads " + std::string(ValueFmt::name) + " (id " +
                                               std::to_string(ValueFmt::id) + ")");
        if (h.compressor_id != Comp::id)
            return fail(ErrorKind::decode, "envelope: compressor id " + std::to_string(h.compressor_id) +
                                               ", this codec uses " + std::string(Comp::name) + " (id " +
                                               std::to_string(Comp::id) + ")");
        auto raw = compressor_.decompress(env->payload);
        if (!raw) return fail(raw.error());
        auto data = values_.template decode<T>(*raw);
        if (!data) return fail(data.error());
        return CacheValue<T>(std::move(*data), h.expire, h.stale, h.created);
    }

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
