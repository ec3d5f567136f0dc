#pragma once
/// \file
/// The definitions of <hitbox/core/error.hpp>: included by that header in a header-only build, compiled
/// once into the hitbox library with HITBOX_COMPILED_LIB=1 (hitbox/core/linkage.hpp).

#include <hitbox/core/error.hpp>

namespace hitbox {

HITBOX_LIB_INLINE Error Error::in(std::string_view label) const {
    Error e = *this;
    if (label.empty()) return e;
    e.backend_ = backend_.empty() ? std::string(label) : std::string(label) + "." + backend_;
    return e;
}

HITBOX_LIB_INLINE std::string Error::what() const {
    std::string out;
    if (!backend_.empty()) out.append("[").append(backend_).append("] ");
    out.append(to_string(kind_)).append(": ").append(message_);
    return out;
}

HITBOX_LIB_INLINE std::ostream& operator<<(std::ostream& os, const Error& e) { return os << e.what(); }

HITBOX_LIB_INLINE Unexpected fail(ErrorKind kind, std::string message, std::string backend) {
    return Unexpected(Error(kind, std::move(message), std::move(backend)));
}

namespace detail {

HITBOX_LIB_INLINE Error exception_error(std::string_view what, std::string backend) {
    std::string message(what);
    try {
        throw;
    } catch (const std::exception& e) {
        message.append(" threw: ").append(e.what());
    } catch (...) {
        message.append(" threw an exception that is not a std::exception");
    }
    return Error(ErrorKind::unavailable, std::move(message), std::move(backend));
}

}  // namespace detail

}  // namespace hitbox
