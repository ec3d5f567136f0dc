#pragma once
/// \file
/// detail::visit_tiers: the one walk over a tier tree, naming each level by the label path its answers
/// carry. It sees tiers only through capabilities (TieredBackend, ListsTierPaths); the cache front (names
/// and metrics per tier) and AnyBackend (the leaf paths of an erased composition) both use it.

#include <string>
#include <string_view>
#include <type_traits>

#include <hitbox/compose/compose.hpp>
#include <hitbox/core/concepts.hpp>

namespace hitbox::detail {

/// The first argument of `f(ErasedTiers{}, prefix, tier)`: see visit_tiers.
struct ErasedTiers {};

/// Calls `f(path, tier)` for every level of a backend, outermost first: each composition level and each
/// leaf tier, with the label path its answers carry ("cache", "cache.memory", ...). An erased backend
/// (ListsTierPaths) is one `f(leaf path, backend)` per leaf it lists, or, when `f` takes it, one
/// `f(ErasedTiers{}, prefix, backend)` for the backend to handle its hidden tiers itself.
template <class Tier, class F>
void visit_tiers(Tier& tier, std::string_view prefix, F& f) {
    if constexpr (ListsTierPaths<Tier> && std::is_invocable_v<F&, ErasedTiers, std::string_view, Tier&>) {
        f(ErasedTiers{}, prefix, tier);
        return;
    } else if constexpr (ListsTierPaths<Tier>) {  // an erased backend lists its own leaf tiers
        for (const auto& p : tier.tier_paths()) {
            const std::string leaf = join_path(prefix, p);
            f(std::string_view(leaf), tier);
        }
        return;
    }
    const std::string path = join_path(prefix, tier.label());
    f(std::string_view(path), tier);
    if constexpr (TieredBackend<std::remove_cv_t<Tier>>) {
        visit_tiers(tier.l1(), path, f);
        visit_tiers(tier.l2(), path, f);
    }
}

}  // namespace hitbox::detail
