#pragma once
/// \file
/// The built-in value formats, listed once: run-time code that must name every format (AnyBackend's
/// erased byte tiers, the configuration names, the factory) folds over hitbox::builtin_value_formats.
/// A new value format is its header, one entry here and its tests (doc/extending.md).

#include <cstdint>
#include <string>
#include <string_view>

#include <hitbox/core/type_list.hpp>
#include <hitbox/format/binary.hpp>
#include <hitbox/format/json.hpp>
#include <hitbox/format/raw.hpp>
#include <hitbox/format/xml.hpp>

namespace hitbox {

/// The value formats a configuration can name and an AnyBackend byte tier can hold, in the order
/// messages list them. Ids and names must be unique (checked below).
using builtin_value_formats = TypeList<BinaryFormat, JsonFormat, XmlFormat, RawFormat>;

namespace detail {

/// Whether format F can encode / decode a T: its `can_encode<T>` / `can_decode<T>` when it declares them,
/// else true (its encode / decode then compile for every T it is used with).
template <class F, class T>
constexpr bool format_encodes() noexcept {
    if constexpr (requires { F::template can_encode<T>; })
        return F::template can_encode<T>;
    else
        return true;
}
template <class F, class T>
constexpr bool format_decodes() noexcept {
    if constexpr (requires { F::template can_decode<T>; })
        return F::template can_decode<T>;
    else
        return true;
}

template <class... Fs>
constexpr bool formats_unique(TypeList<Fs...>) noexcept {
    constexpr std::uint8_t ids[] = {Fs::id...};
    constexpr std::string_view names[] = {Fs::name...};
    for (std::size_t i = 0; i < sizeof...(Fs); ++i)
        for (std::size_t j = 0; j < i; ++j)
            if (ids[i] == ids[j] || names[i] == names[j] || ids[i] == 0) return false;
    return true;
}
static_assert(formats_unique(builtin_value_formats{}),
              "hitbox::builtin_value_formats: every format needs its own non-zero id and its own name");

/// "binary (1), json (2), xml (3), raw (4)": the built-in formats for messages.
inline std::string builtin_format_list() {
    std::string out;
    find_type(builtin_value_formats{}, [&](auto f) {
        using F = typename decltype(f)::type;
        if (!out.empty()) out += ", ";
        out += std::string(F::name) + " (" + std::to_string(F::id) + ")";
        return false;
    });
    return out;
}

}  // namespace detail

/// The name of the built-in value format with this id, or "unknown".
inline std::string_view builtin_format_name(std::uint8_t id) noexcept {
    std::string_view out = "unknown";
    find_type(builtin_value_formats{}, [&](auto f) {
        using F = typename decltype(f)::type;
        if (F::id != id) return false;
        out = F::name;
        return true;
    });
    return out;
}

}  // namespace hitbox
