#pragma once
/// \file
/// What an entry of the memory tier weighs under `max_bytes`: hitbox::heap_bytes (the heap memory a value
/// owns), hitbox::DefaultWeigher (node + key + value, the default) and the WeigherFor concept.

#include <concepts>
#include <cstddef>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <ranges>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>

#include <boost/hana/accessors.hpp>
#include <boost/hana/for_each.hpp>
#include <boost/hana/second.hpp>

#include <hitbox/backend/memory/detail/node.hpp>
#include <hitbox/core/key.hpp>

namespace hitbox {

namespace detail {

template <class T>
struct is_basic_string : std::false_type {};
template <class C, class Tr, class A>
struct is_basic_string<std::basic_string<C, Tr, A>> : std::true_type {};

template <class T>
struct is_variant : std::false_type {};
template <class... Ts>
struct is_variant<std::variant<Ts...>> : std::true_type {};

template <class T>
struct is_tuple_like_std : std::false_type {};
template <class... Ts>
struct is_tuple_like_std<std::tuple<Ts...>> : std::true_type {};
template <class A, class B>
struct is_tuple_like_std<std::pair<A, B>> : std::true_type {};

template <class T>
struct is_owning_ptr : std::false_type {};
template <class T, class D>
struct is_owning_ptr<std::unique_ptr<T, D>> : std::true_type {};
template <class T>
struct is_owning_ptr<std::shared_ptr<T>> : std::true_type {};

/// A user hook: `std::size_t hitbox_heap_bytes(const T&)` found by argument-dependent lookup.
template <class T>
concept has_heap_bytes_hook = requires(const T& v) {
    { hitbox_heap_bytes(v) } -> std::convertible_to<std::size_t>;
};

/// `a + b`, or SIZE_MAX where the sum would wrap: a hook that answers SIZE_MAX weighs the most, never little.
constexpr std::size_t add_bytes(std::size_t a, std::size_t b) noexcept {
    return a > std::numeric_limits<std::size_t>::max() - b ? std::numeric_limits<std::size_t>::max() : a + b;
}

}  // namespace detail

/// Heap bytes owned by `value`, beyond `sizeof(value)`; what the default weigher adds to an entry.
///
/// Counted: std::basic_string capacity when not in the small-string buffer; vectors (any range with
/// `capacity()` and contiguous storage) `capacity() * sizeof(element)`; node containers (map, set,
/// unordered_*, list, deque) `size() * (sizeof(element) + node overhead)` plus the bucket array, where
/// node overhead is 32 bytes for ordered and 16 for the others (estimates of libstdc++'s layouts);
/// optional, variant, pair, tuple, unique_ptr/shared_ptr (the pointee) and Boost.Hana structs
/// recursively. Trivially copyable types and anything else own nothing. A type that owns memory in some
/// other way provides `std::size_t hitbox_heap_bytes(const T&)` next to it (found by ADL).
template <class T>
std::size_t heap_bytes(const T& value) {
    using U = std::remove_cvref_t<T>;
    if constexpr (detail::has_heap_bytes_hook<U>) {
        return static_cast<std::size_t>(hitbox_heap_bytes(value));
    } else if constexpr (std::is_trivially_copyable_v<U>) {
        return 0;
    } else if constexpr (detail::is_basic_string<U>::value) {
        const auto* object = reinterpret_cast<const char*>(&value);
        const auto* chars = reinterpret_cast<const char*>(value.data());
        const bool inline_buffer =
            std::less_equal<const char*>{}(object, chars) && std::less<const char*>{}(chars, object + sizeof(U));
        return inline_buffer ? 0 : (value.capacity() + 1) * sizeof(typename U::value_type);
    } else if constexpr (detail::is_optional<U>::value) {
        return value ? heap_bytes(*value) : 0;
    } else if constexpr (detail::is_variant<U>::value) {
        return std::visit([](const auto& alt) { return heap_bytes(alt); }, value);
    } else if constexpr (detail::is_tuple_like_std<U>::value) {
        return std::apply(
            [](const auto&... parts) {
                std::size_t total = 0;
                ((total = detail::add_bytes(total, heap_bytes(parts))), ...);
                return total;
            },
            value);
    } else if constexpr (detail::is_owning_ptr<U>::value) {
        using E = typename U::element_type;
        if (!value) return 0;
        if constexpr (std::is_array_v<E> || std::is_abstract_v<E>) {
            return 0;
        } else {
            return detail::add_bytes(sizeof(E), heap_bytes(*value));
        }
    } else if constexpr (detail::is_hana_struct<U>) {
        std::size_t total = 0;
        boost::hana::for_each(boost::hana::accessors<U>(), [&](auto accessor) {
            total = detail::add_bytes(total, heap_bytes(boost::hana::second(accessor)(value)));
        });
        return total;
    } else if constexpr (std::ranges::sized_range<const U&>) {
        using E = std::ranges::range_value_t<const U&>;
        std::size_t total = 0;
        if constexpr (std::ranges::contiguous_range<const U&> && requires { value.capacity(); }) {
            total = value.capacity() * sizeof(E);
        } else if constexpr (requires { typename U::key_compare; }) {
            total = std::ranges::size(value) * (sizeof(E) + 32);
        } else if constexpr (requires { value.bucket_count(); }) {
            total = std::ranges::size(value) * (sizeof(E) + 16) + value.bucket_count() * sizeof(void*);
        } else if constexpr (!std::ranges::contiguous_range<const U&>) {
            total = std::ranges::size(value) * (sizeof(E) + 16);
        }
        if constexpr (!std::is_trivially_copyable_v<E> || detail::has_heap_bytes_hook<E>)
            for (const auto& element : value) total = detail::add_bytes(total, heap_bytes(element));
        return total;
    } else {
        return 0;
    }
}

/// Heap bytes of a key's shared record: prefix, parts and the record itself.
inline std::size_t key_bytes(const CacheKey& key) {
    std::size_t total = 96;  // the shared record (prefix, version, parts vector, hash) and its control block
    total += heap_bytes(key.prefix());
    total += key.parts().capacity() * sizeof(KeyPart);
    for (const KeyPart& part : key.parts()) total += heap_bytes(part.name) + heap_bytes(part.value);
    return total;
}

/// The default weigher: approximately the memory one entry occupies, i.e. the entry node with its
/// inline CacheValue<T> and bookkeeping (`sizeof`), its hash buckets (tables stay half empty), the key's
/// record, and `heap_bytes(value)`. Allocator overhead is not counted.
struct DefaultWeigher {
    template <class T>
    std::size_t operator()(const CacheKey& key, const T& value) const {
        return detail::add_bytes(sizeof(detail::TypedNode<T>) + 2 * sizeof(void*) + key_bytes(key), heap_bytes(value));
    }
};

/// WeigherFor<W, T>: W gives the weight in bytes of an entry holding a T, as
/// `std::size_t w(const CacheKey&, const T&) const`. It must be cheap and must not depend on anything
/// that changes while the entry is stored (the weight is taken once, at set). A generic lambda works:
///
/// \code
/// auto memory = hitbox::MemoryBackend::builder()
///                   .max_bytes(64 << 20)
///                   .weigher([](const hitbox::CacheKey&, const auto& v) { return hitbox::heap_bytes(v) + 64; })
///                   .build();
/// \endcode
template <class W, class T>
concept WeigherFor = std::copy_constructible<W> && requires(const W& w, const CacheKey& key, const T& value) {
    { w(key, value) } -> std::convertible_to<std::size_t>;
};

}  // namespace hitbox
