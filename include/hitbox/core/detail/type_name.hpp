#pragma once
/// \file
/// hitbox::detail::type_name: a readable name of a type for error messages (the memory tier's and
/// AnyBackend's type mismatches).

#include <string>
#include <typeinfo>

#include <hitbox/core/linkage.hpp>

namespace hitbox::detail {

/// Readable name of a type for error messages ("std::string" rather than a mangled name where possible).
HITBOX_LIB_INLINE std::string type_name(const std::type_info& t);

}  // namespace hitbox::detail

// The definition: included here in a header-only build, compiled once into the hitbox library otherwise.
#if !HITBOX_COMPILED_LIB
#include <hitbox/core/detail/type_name_impl.hpp>
#endif
