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
#include <hitbox/core/linkage.hpp>
#include <hitbox/core/type_list.hpp>
#include <hitbox/format/builtin.hpp>
#include <hitbox/key_format/bitcode.hpp>
#include <hitbox/key_format/url_encoded.hpp>
#include <hitbox/offload/inline_offload.hpp>
#include <hitbox/offload/offload_manager.hpp>

namespace hitbox {

namespace detail {

// The tiers and the policies of a configuration (names validated before). Defined in
// hitbox/detail/config_impl.hpp: included below in a header-only build, compiled once into the
// hitbox-config library with HITBOX_COMPILED_LIB=1 (hitbox/core/linkage.hpp), so that a program's
// translation units neither instantiate nor compile the RedisBackend, memory tier and erased models the
// factory builds.

/// One validated tier, erased: a MemoryBackend or a RedisBackend with the tier's options (make_tier and
/// make_backend both build their tiers here).
HITBOX_LIB_INLINE Result<AnyBackend> make_validated_tier(const TierConfig& t);
/// The configured read / write / refill policies as run-time values.
HITBOX_LIB_INLINE ComposePolicies<DynamicRead, DynamicWrite, DynamicRefill> config_policies(const BackendConfig& c);

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
HITBOX_LIB_INLINE Result<AnyBackend> make_tier(const TierConfig& tier);

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
    if (auto ok = validate_config(config); !ok) return fail(ok.error());  // also: at most max_config_tiers
    std::vector<AnyBackend> tiers;
    tiers.reserve(config.tiers.size());
    for (const auto& t : config.tiers) {
        auto tier = detail::make_validated_tier(t);
        if (!tier) return fail(tier.error());
        tiers.push_back(std::move(*tier));
    }
    if (tiers.size() == 1) return std::move(tiers.front());
    return detail::fold_tiers(tiers, offload, config);
}

#if HITBOX_COMPILED_LIB
// The folds of the two offloads programs use, compiled once into the hitbox-config library with the
// Compose types they build.
extern template Result<AnyBackend> detail::fold_tiers<OffloadManager>(std::vector<AnyBackend>&, OffloadManager&,
                                                                      const BackendConfig&);
extern template Result<AnyBackend> detail::fold_tiers<InlineOffload>(std::vector<AnyBackend>&, InlineOffload&,
                                                                     const BackendConfig&);
#endif

}  // namespace hitbox

// The definitions: included here in a header-only build, compiled once into the library otherwise.
#if !HITBOX_COMPILED_LIB
#include <hitbox/detail/config_impl.hpp>
#endif
