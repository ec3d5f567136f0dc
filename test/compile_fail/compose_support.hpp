// Shared by the compose_* compile-fail cases: a minimal Backend and a type that is not one.
#pragma once
#include <optional>
#include <string>
#include <string_view>

#include <hitbox/compose/compose.hpp>
#include <hitbox/offload/inline_offload.hpp>

struct TinyBackend {
    template <class T>
    hitbox::Result<std::optional<hitbox::CacheValue<T>>> get(const hitbox::CacheKey&) {
        return std::optional<hitbox::CacheValue<T>>{};
    }
    template <class T>
    hitbox::Result<void> set(const hitbox::CacheKey&, const hitbox::CacheValue<T>&) {
        return {};
    }
    hitbox::Result<bool> remove(const hitbox::CacheKey&) { return false; }
    std::string_view label() const { return "tiny"; }
};

/// Has get and set but no remove or label: not a Backend.
struct HalfBackend {
    template <class T>
    hitbox::Result<std::optional<hitbox::CacheValue<T>>> get(const hitbox::CacheKey&) {
        return std::optional<hitbox::CacheValue<T>>{};
    }
};

inline hitbox::InlineOffload offload;
