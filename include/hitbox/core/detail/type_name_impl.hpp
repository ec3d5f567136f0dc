#pragma once
/// \file
/// The definition of <hitbox/core/detail/type_name.hpp>: included by that header in a header-only build,
/// compiled once into the hitbox library with HITBOX_COMPILED_LIB=1 (hitbox/core/linkage.hpp).

#include <cstdlib>
#include <string>
#include <typeinfo>

#if defined(__GNUG__)
#include <cxxabi.h>
#endif

#include <hitbox/core/detail/type_name.hpp>

namespace hitbox::detail {

HITBOX_LIB_INLINE std::string type_name(const std::type_info& t) {
#if defined(__GNUG__)
    int status = 0;
    char* demangled = abi::__cxa_demangle(t.name(), nullptr, nullptr, &status);
    if (status == 0 && demangled != nullptr) {
        std::string out(demangled);
        std::free(demangled);
        const std::string long_string =
            "std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> >";
        if (out == long_string) return "std::string";
        return out;
    }
#endif
    return t.name();
}

}  // namespace hitbox::detail
