#pragma once
/// \file
/// How the cache front sees its tiers: only through the Backend concept and the named capabilities of
/// core/concepts.hpp (TieredBackend, ListsTierPaths, ...) and visit_tiers (compose/visit.hpp), which walks the
/// label paths of every level; cache_backend_holder holds the backend by reference or by value; first_tier is the tier a hit reads.
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include <hitbox/compose/compose.hpp>
#include <hitbox/compose/visit.hpp>
#include <hitbox/core/concepts.hpp>

namespace hitbox {

namespace detail {

template <class B>
struct cache_backend_holder {
    using type = B;
    using backend_type = tier_t<B>;
    static backend_type& get(B& b) noexcept { return tier_traits<B>::get(b); }
    static const backend_type& get(const B& b) noexcept { return tier_traits<B>::get(b); }
};
template <class B>
struct cache_backend_holder<B&> {
    using type = B*;
    using backend_type = B;
    static B& get(B* b) noexcept { return *b; }
};

/// The first tier of a backend: its L1 when it is a TieredBackend (the cache front's hit path reads it
/// directly), else the backend itself.
template <class B>
decltype(auto) first_tier(B& b) noexcept {
    if constexpr (TieredBackend<B>)
        return (b.l1());
    else
        return (b);
}
template <class B>
using first_tier_t = std::remove_reference_t<decltype(first_tier(std::declval<B&>()))>;

}  // namespace detail

}  // namespace hitbox
