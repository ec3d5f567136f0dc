#pragma once
/// \file
/// hitbox::RawFormat: no archive at all, for trivially copyable values and byte strings.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <hitbox/core/error.hpp>

namespace hitbox {

namespace detail {

template <class T>
inline constexpr bool is_byte_string =
    std::is_same_v<T, std::string> || std::is_same_v<T, std::vector<char>> ||
    std::is_same_v<T, std::vector<unsigned char>> || std::is_same_v<T, std::vector<std::byte>>;

template <class T>
inline constexpr bool raw_storable = is_byte_string<T> || std::is_trivially_copyable_v<T>;

}  // namespace detail

/// The fastest format: a byte string is stored as its bytes, a trivially copyable type as its object
/// representation (host byte order: share it only between machines of one architecture). Decoding checks
/// the exact size, and that a `bool` is 0 or 1; the bytes of a struct are taken as they are, so a struct
/// with `bool` or enum members read from foreign bytes can hold values its type does not allow: store
/// such types with BinaryFormat where other writers share the keys. Anything else is a compile error;
/// use BinaryFormat for it.
struct RawFormat {
    static constexpr std::uint8_t id = 4;
    static constexpr std::string_view name = "raw";
    /// Whether encode<T> / decode<T> compile for T: AnyBackend turns the other types into run-time
    /// encode / decode errors instead of compile errors (see hitbox/format/builtin.hpp).
    template <class T>
    static constexpr bool can_encode = detail::raw_storable<T>;
    template <class T>
    static constexpr bool can_decode = detail::raw_storable<T>&& std::is_default_constructible_v<T>;

    /// The bytes of `value`; decode<T> checks the exact size.
    template <class T>
    Result<std::string> encode(const T& value) const {
        static_assert(detail::raw_storable<T>,
                      "hitbox::RawFormat stores byte strings (std::string, std::vector<char|unsigned char|std::byte>) "
                      "and trivially copyable types only; use hitbox::BinaryFormat for other types");
        if constexpr (detail::is_byte_string<T>) {
            return std::string(reinterpret_cast<const char*>(value.data()), value.size());
        } else {
            return std::string(reinterpret_cast<const char*>(&value), sizeof(T));
        }
    }

    template <class T>
    Result<T> decode(std::string_view bytes) const {
        static_assert(detail::raw_storable<T>,
                      "hitbox::RawFormat stores byte strings (std::string, std::vector<char|unsigned char|std::byte>) "
                      "and trivially copyable types only; use hitbox::BinaryFormat for other types");
        if constexpr (detail::is_byte_string<T>) {
            using E = typename T::value_type;
            const auto* p = reinterpret_cast<const E*>(bytes.data());
            return T(p, p + bytes.size());
        } else {
            static_assert(std::is_default_constructible_v<T>, "hitbox::RawFormat decodes default-constructible types");
            if constexpr (std::is_default_constructible_v<T>) {  // else: the assertion alone, no cascade
                if (bytes.size() != sizeof(T))
                    return fail(ErrorKind::decode, "raw decode: expected " + std::to_string(sizeof(T)) +
                                                       " bytes, got " + std::to_string(bytes.size()));
                if constexpr (std::is_same_v<std::remove_cv_t<T>, bool>) {
                    // Any other byte would be a bool with no valid value (undefined behaviour to read).
                    if (static_cast<unsigned char>(bytes[0]) > 1)
                        return fail(ErrorKind::decode, "raw decode: a bool is stored as 0 or 1, got " +
                                                           std::to_string(static_cast<unsigned char>(bytes[0])));
                }
                T value{};
                std::memcpy(&value, bytes.data(), sizeof(T));
                return value;
            } else {
                return fail(ErrorKind::decode, "raw decode: not default-constructible");
            }
        }
    }
};

}  // namespace hitbox
