#pragma once
/// \file
/// The stored form of a cache entry in every byte-storing tier (Redis, ByteBackend stores): a small
/// versioned envelope followed by the (compressed) payload (doc/wire-format.md), its non-template seal /
/// open, and the one TTL rule of byte tiers (store_ttl). hitbox::EntryCodec (hitbox/codec/entry_codec.hpp)
/// and the erased byte tier of AnyBackend both go through these functions, so there is one data path.
/// Needs no hiredis: usable by tools that read or write entries themselves.

#include <chrono>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <hitbox/core/clock.hpp>
#include <hitbox/core/error.hpp>
#include <hitbox/core/linkage.hpp>
#include <hitbox/core/value.hpp>

namespace hitbox {

/// The metadata of a stored entry, as read from its envelope.
struct EnvelopeHeader {
    std::uint8_t format_id = 0;
    std::uint8_t compressor_id = 0;
    TimePoint created{};
    std::optional<TimePoint> stale{};
    std::optional<TimePoint> expire{};
    std::optional<TimePoint> retain{};  ///< fail-safe retention past expire (flag 0x04; CacheValue::retain)
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
inline constexpr std::uint8_t envelope_has_retain = 0x04;
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
    const bool retain = h.expire && h.retain;
    std::uint8_t flags =
        (h.stale ? envelope_has_stale : 0) | (h.expire ? envelope_has_expire : 0) | (retain ? envelope_has_retain : 0);
    out.push_back(static_cast<char>(flags));
    put_i64_le(out, to_unix_ms(h.created));
    if (h.stale) put_i64_le(out, to_unix_ms(*h.stale));
    if (h.expire) put_i64_le(out, to_unix_ms(*h.expire));
    if (retain) put_i64_le(out, to_unix_ms(*h.retain));
}

}  // namespace detail

/// Parses an envelope. Wrong magic, an unknown version, unknown flag bits or truncation are decode errors.
HITBOX_LIB_INLINE Result<EnvelopeView> parse_envelope(std::string_view in);

/// Envelope header + payload (already compressed): the bytes a byte tier stores for one entry.
HITBOX_LIB_INLINE std::string seal_entry(const EnvelopeHeader& header, std::string_view payload);

/// The value format and compressor a reader expects an entry to carry (ids checked, names for messages).
struct EntryPolicies {
    std::uint8_t format_id = 0;
    std::string_view format_name;
    std::uint8_t compressor_id = 0;
    std::string_view compressor_name;
};

/// Parses `bytes` as an envelope and checks that it was written with `expect`'s value format and
/// compressor (a decode error naming both otherwise). The payload is still compressed.
HITBOX_LIB_INLINE Result<EnvelopeView> open_entry(std::string_view bytes, const EntryPolicies& expect);

/// An entry opened and decompressed but not decoded: its header and the value format's bytes.
struct OpenedEntry {
    EnvelopeHeader header;
    std::string payload;
};

/// open_entry, then, unless the entry is past its time at `now` (nullopt), its payload through
/// `decompress(view)`, the reader's compressor. For readers that decode the payload themselves (AnyBackend
/// over a byte tier, whose value format and compressor are chosen at run time).
template <class Decompress>
Result<std::optional<OpenedEntry>> open_payload(std::string_view bytes, const EntryPolicies& expect, TimePoint now,
                                                Decompress&& decompress) {
    auto env = open_entry(bytes, expect);
    if (!env) return fail(env.error());
    if (const auto until = detail::held_until(env->header.expire, env->header.retain); until && *until <= now)
        return std::optional<OpenedEntry>{};  // the store normally drops it first; clocks may differ
    Result<std::string> payload = std::forward<Decompress>(decompress)(env->payload);
    if (!payload) return fail(payload.error());
    return std::optional<OpenedEntry>(OpenedEntry{env->header, std::move(*payload)});
}

namespace detail {

/// Longest store TTL hitbox sends (about 3 170 years): Redis refuses an expire time near the int64 limit,
/// so an entry expiring later than this is stored without one (its envelope keeps the exact expiry).
inline constexpr std::int64_t max_px_ms = std::int64_t{100'000'000'000'000};

}  // namespace detail

/// How a byte tier writes an entry: the outcome of store_ttl.
struct StoreTtl {
    bool expired = false;            ///< already expired: not written, the key is removed instead
    std::optional<std::int64_t> px;  ///< the store's time to live in ms; nullopt: none
};

/// The one TTL rule of byte tiers, for an entry with `remaining` time to live (nullopt: it never
/// expires). Already expired (zero or less) → remove the key: the caller's intent is that it holds
/// nothing fresher. Otherwise write it with that TTL in ms, or with none when it never expires or
/// expires beyond detail::max_px_ms. Saturating: any duration, min() to max(), is safe.
inline StoreTtl store_ttl(std::optional<std::chrono::milliseconds> remaining) noexcept {
    if (!remaining) return {};
    const std::int64_t ms = remaining->count();
    if (ms <= 0) return {true, std::nullopt};
    if (ms > detail::max_px_ms) return {};
    return {false, ms};
}

/// store_ttl for an entry expiring at `expire` (nullopt: never), seen at `now`.
inline StoreTtl store_ttl(std::optional<TimePoint> expire, TimePoint now) noexcept {
    if (!expire) return {};
    return store_ttl(std::optional<std::chrono::milliseconds>(detail::saturating_sub(*expire, now)));
}

}  // namespace hitbox

// The definitions: included here in a header-only build, compiled once into the hitbox library otherwise.
#if !HITBOX_COMPILED_LIB
#include <hitbox/codec/detail/envelope_impl.hpp>
#endif
