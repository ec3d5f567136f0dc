#pragma once
/// \file
/// The definitions behind hitbox/config.hpp's factory: the memory and Redis tiers and the policies of a
/// configuration. A header-only build includes this from config.hpp (inline); with HITBOX_COMPILED_LIB=1
/// it is compiled once into the hitbox-config library (src/config.cpp).

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <utility>

#include <hitbox/config.hpp>

namespace hitbox {

namespace detail {

inline Result<AnyBackend> make_memory_tier(const TierConfig& t) {
    auto b = MemoryBackend::builder();
    b.label(t.name);
    if (t.max_entries) b.max_entries(*t.max_entries);
    if (t.max_bytes) b.max_bytes(*t.max_bytes);
    if (t.shards) b.shards(*t.shards);
    if (t.cleanup_interval) b.cleanup_interval(*t.cleanup_interval);
    b.duration_histograms(t.duration_histograms);
    auto built = b.build();
    if (!built) return fail(built.error());
    return AnyBackend(std::move(*built));
}

/// The value format id of a configured name (validated before): one of builtin_value_formats.
inline std::uint8_t config_format_id(std::string_view name) noexcept {
    std::uint8_t id = BinaryFormat::id;
    find_type(builtin_value_formats{}, [&](auto f) {
        using F = typename decltype(f)::type;
        if (name != F::name) return false;
        id = F::id;
        return true;
    });
    return id;
}

/// The compressor of a configured name (validated before): one of builtin_compressors ("none" is
/// passthrough), with the configured level (or its default) and decompression limit.
inline AnyCompressor config_compressor(const TierConfig& t) {
    const std::size_t limit = t.max_decompressed.value_or(default_max_decompressed);
    AnyCompressor out = AnyCompressor::of(PassthroughCompressor{});
    find_type(builtin_compressors{}, [&](auto spec) {
        using S = typename decltype(spec)::type;
        using C = typename compressor_of<S>::type;
        if (t.compressor != S::name) return false;
        if constexpr (compressor_leveled<S>)
            out = AnyCompressor::of(C{t.compression_level.value_or(S::default_level), limit});
        else
            out = AnyCompressor::of(C{});
        return true;
    });
    return out;
}

/// Builds the RedisBackend and erases it. Only the key format is in its type (the connection is an
/// AnyConnection; the erased tier applies the value format and the compressor itself, the same envelope
/// bytes the static RedisBackend<KeyFmt, ValueFmt, Compressor, Conn> writes), so the factory instantiates 2
/// RedisBackend types instead of 48.
template <class Builder>
Result<AnyBackend> finish_redis(const Builder& b, const TierConfig& t) {
    auto built = b.build();
    if (!built) return fail(built.error());
    return any_envelope_tier(std::move(*built), config_format_id(t.value_format), config_compressor(t));
}

template <class Builder>
Result<AnyBackend> redis_with_formats(const Builder& b, const TierConfig& t) {
    if (t.key_format == "url") return finish_redis(b.template key_format<UrlEncoded>(), t);
    return finish_redis(b, t);
}

/// The tier's connection mode (validated before), behind AnyConnection: one RedisBackend type serves both.
inline AnyMode config_mode(const TierConfig& t) {
    if (t.mode == "cluster") return ConnectionMode::any(ConnectionMode::cluster(t.urls, t.read_from_replicas));
    return ConnectionMode::any(ConnectionMode::single(t.urls.front()));
}

inline Result<AnyBackend> make_redis_tier(const TierConfig& t) {
    auto b = RedisBackend<>::builder();
    b.label(t.name).key_prefix(t.key_prefix);
    if (t.username) b.username(*t.username);
    if (t.password) b.password(*t.password);
    if (t.connect_timeout) b.connect_timeout(*t.connect_timeout);
    if (t.command_timeout) b.command_timeout(*t.command_timeout);
    if (t.reconnect_backoff_initial || t.reconnect_backoff_max)
        b.reconnect_backoff(t.reconnect_backoff_initial.value_or(default_reconnect_backoff_initial),
                            t.reconnect_backoff_max.value_or(default_reconnect_backoff_max));
    if (t.max_reply_bytes) b.max_reply_bytes(*t.max_reply_bytes);
    b.duration_histograms(t.duration_histograms);
    return redis_with_formats(b.connection(config_mode(t)), t);
}

/// The configured policies as run-time values (names validated before): one Compose type serves them all.
HITBOX_LIB_INLINE ComposePolicies<DynamicRead, DynamicWrite, DynamicRefill> config_policies(const BackendConfig& c) {
    const RaceLoser loser = c.race_loser == "drop" ? RaceLoser::drop : RaceLoser::offload;
    DynamicRead read{ReadMode::sequential, loser, c.steal_after};
    if (c.read == "race") read.mode = ReadMode::race;
    if (c.read == "parallel") read.mode = ReadMode::parallel;
    DynamicWrite write{WriteMode::optimistic_parallel, loser, c.steal_after};
    if (c.write == "race") write.mode = WriteMode::race;
    if (c.write == "sequential") write.mode = WriteMode::sequential;
    return {read, write, DynamicRefill{c.refill != "never", c.refill_offloaded}};
}

HITBOX_LIB_INLINE Result<AnyBackend> make_validated_tier(const TierConfig& t) {
    return t.effective_type() == "memory" ? make_memory_tier(t) : make_redis_tier(t);
}

}  // namespace detail

/// Builds one tier from its configuration (validated first): a MemoryBackend or a RedisBackend with the
/// named policies, erased. Never touches the network (Redis connects on first use).
HITBOX_LIB_INLINE Result<AnyBackend> make_tier(const TierConfig& tier) {
    BackendConfig alone;
    alone.tiers.push_back(tier);
    if (auto ok = validate_config(alone); !ok) return fail(ok.error());
    return detail::make_validated_tier(tier);
}

}  // namespace hitbox
