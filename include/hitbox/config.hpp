#pragma once
/// \file
/// The run-time factory: hitbox::make_backend turns a BackendConfig (hitbox/backend_config.hpp: filled in
/// code, parsed from text or read from the environment) into an AnyBackend, a tier or a composition of
/// tiers. Every name the configuration takes (tier types, modes, key and value formats, compressors,
/// read / write / refill policies) maps to the policy type of the same name; an unknown name is a `config`
/// error listing the valid ones. Needs hiredis, libzstd and zlib (meson: `hitbox-redis`, `hitbox-zstd`,
/// `hitbox-gzip`; pkg-config: `hitbox-config`), since any of them may be named at run time.
///
/// \code
/// #include <hitbox/config.hpp>
/// auto config = hitbox::parse_config(text);                 // or hitbox::config_from_env(environ)
/// if (!config) return fail(config.error());
/// hitbox::OffloadManager offload{config->offload};
/// auto backend = hitbox::make_backend(*config, offload);   // Result<AnyBackend>
/// hitbox::Cache cache{*backend, offload, hitbox::NoMetrics{}, hitbox::SystemClock{},
///                     hitbox::CacheOptions{.policy = config->cache}};
/// \endcode

#include <concepts>
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include <hitbox/any_backend.hpp>
#include <hitbox/backend/memory/memory_backend.hpp>
#include <hitbox/backend/redis.hpp>
#include <hitbox/backend_config.hpp>
#include <hitbox/compose/compose.hpp>
#include <hitbox/compose/policies.hpp>
#include <hitbox/compress/builtin.hpp>
#include <hitbox/compress/gzip.hpp>  // the compressors of builtin_compressors that need a library
#include <hitbox/compress/passthrough.hpp>
#include <hitbox/compress/zstd.hpp>
#include <hitbox/core/concepts.hpp>
#include <hitbox/core/error.hpp>
#include <hitbox/core/type_list.hpp>
#include <hitbox/format/builtin.hpp>
#include <hitbox/key_format/bitcode.hpp>
#include <hitbox/key_format/url_encoded.hpp>

namespace hitbox {

/// The most tiers make_backend folds into one composition (deeper stacks: hitbox::compose of AnyBackends
/// in code).
inline constexpr std::size_t max_config_tiers = 3;

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
inline ComposePolicies<DynamicRead, DynamicWrite, DynamicRefill> config_policies(const BackendConfig& c) {
    const RaceLoser loser = c.race_loser == "drop" ? RaceLoser::drop : RaceLoser::offload;
    DynamicRead read{ReadMode::sequential, loser, c.steal_after};
    if (c.read == "race") read.mode = ReadMode::race;
    if (c.read == "parallel") read.mode = ReadMode::parallel;
    DynamicWrite write{WriteMode::optimistic_parallel, loser, c.steal_after};
    if (c.write == "race") write.mode = WriteMode::race;
    if (c.write == "sequential") write.mode = WriteMode::sequential;
    return {read, write, DynamicRefill{c.refill != "never", c.refill_offloaded}};
}

/// Folds 2..max_config_tiers erased tiers like hitbox::compose(): the configured policies on the outer
/// level, the inner level with the defaults and no label of its own (paths stay "cache.<tier>"). The
/// policies are run-time values (DynamicRead, ...), so this is one Compose type per depth, and the inner
/// level of three tiers is the same type as a level of two.
template <class O>
Result<AnyBackend> fold_tiers(std::vector<AnyBackend>& t, O& offload, const BackendConfig& config) {
    using A = AnyBackend;
    using Level = Compose<A, A, O, DynamicRead, DynamicWrite, DynamicRefill>;
    auto [read, write, refill] = config_policies(config);
    if (t.size() == 2) return A(Level(t[0], t[1], offload, read, write, refill, config.label));
    return A(Compose<A, Level, O, DynamicRead, DynamicWrite, DynamicRefill>(
        t[0], Level(t[1], t[2], offload, {}, {}, {}, ""), offload, read, write, refill, config.label));
}

}  // namespace detail

/// Builds one tier from its configuration (validated first): a MemoryBackend or a RedisBackend with the
/// named policies, erased. Never touches the network (Redis connects on first use).
inline Result<AnyBackend> make_tier(const TierConfig& tier) {
    BackendConfig alone;
    alone.tiers.push_back(tier);
    if (auto ok = validate_config(alone); !ok) return fail(ok.error());
    if (tier.effective_type() == "memory") return detail::make_memory_tier(tier);
    return detail::make_redis_tier(tier);
}

/// Builds the configured backend: the tier itself when there is one, otherwise the tiers folded, fastest
/// first, into a composition with the configured read / write / refill policies (up to max_config_tiers
/// tiers). The offload is held by reference: keep it alive longer than the backend (and any Cache on it).
/// Every error is a `config` error from validation or a builder; nothing is thrown, nothing connects.
///
/// \code
/// hitbox::OffloadManager offload{config.offload};
/// auto backend = hitbox::make_backend(config, offload);   // Result<hitbox::AnyBackend>
/// auto user = backend->get<User>(key);
/// \endcode
template <class O>
Result<AnyBackend> make_backend(const BackendConfig& config, O& offload) {
    static_assert(Offload<O>,
                  "hitbox::make_backend(config, offload): offload must model hitbox::Offload (OffloadManager, "
                  "InlineOffload or NoOffload)");
    if (auto ok = validate_config(config); !ok) return fail(ok.error());
    if (config.tiers.size() > max_config_tiers)
        return fail(ErrorKind::config, "at most " + std::to_string(max_config_tiers) + " tiers can be composed, got " +
                                           std::to_string(config.tiers.size()));
    std::vector<AnyBackend> tiers;
    tiers.reserve(config.tiers.size());
    for (const auto& t : config.tiers) {
        auto tier = t.effective_type() == "memory" ? detail::make_memory_tier(t) : detail::make_redis_tier(t);
        if (!tier) return fail(tier.error());
        tiers.push_back(std::move(*tier));
    }
    if (tiers.size() == 1) return std::move(tiers.front());
    return detail::fold_tiers(tiers, offload, config);
}

}  // namespace hitbox
