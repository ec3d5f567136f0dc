#pragma once
/// \file
/// hitbox::TypeList: a list of policy types that run-time code folds over (the built-in value formats and
/// compressors, hitbox/format/builtin.hpp and hitbox/compress/builtin.hpp), so each built-in is named once.

#include <array>
#include <cstddef>
#include <string_view>
#include <type_traits>

namespace hitbox {

/// A list of types; carries nothing at run time.
template <class... Ts>
struct TypeList {
    static constexpr std::size_t size = sizeof...(Ts);
};

/// Calls `fn(std::type_identity<T>{})` for each T of the list in order until one returns true; true when
/// one did. The fold a switch over "every built-in" becomes.
template <class... Ts, class Fn>
constexpr bool find_type(TypeList<Ts...>, Fn&& fn) {
    return (fn(std::type_identity<Ts>{}) || ...);
}

/// True when T is one of the list.
template <class T, class... Ts>
constexpr bool type_list_contains(TypeList<Ts...>) noexcept {
    return (std::is_same_v<T, Ts> || ...);
}

/// The `name` of each type of the list, in order.
template <class... Ts>
constexpr std::array<std::string_view, sizeof...(Ts)> type_list_names(TypeList<Ts...>) noexcept {
    return {Ts::name...};
}

}  // namespace hitbox
