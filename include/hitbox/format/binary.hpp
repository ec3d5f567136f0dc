#pragma once
/// \file
/// hitbox::BinaryFormat: the default value format (compact little-endian binary over cereal).

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

#include <hitbox/core/error.hpp>
#include <hitbox/format/detail/binary_archive.hpp>
#include <hitbox/format/detail/cereal_support.hpp>

namespace hitbox {

/// Compact portable binary: fixed-width little-endian numbers, LEB128 varint lengths, no field names. Any type cereal
/// can serialize works, including Boost.Hana-adapted structs and the common std types.
///
/// Decoding is safe on hostile bytes: lengths beyond the input and trailing bytes are decode errors, and so
/// are values that would need too much memory or nest too deeply:
///  - **decode budget**: decoding `n` input bytes creates at most `decode_budget_factor * n +
///    decode_budget_floor` bytes (16 n + 64 KiB by default) of container storage, string bytes, map / set /
///    list nodes and smart-pointer pointees, counted before each is allocated (malloc's own overhead aside).
///    Typical values need 1-8 bytes per input byte; shapes made of empty strings or containers need up to
///    32 (an empty std::string is one input byte and 32 bytes in memory): raise the factor to cache those.
///  - **nesting**: objects and containers nested deeper than `max_nesting` (256, as JsonFormat and XmlFormat)
///    are refused, so a recursive type (`struct Node { std::vector<Node> children; }`) cannot exhaust the
///    stack.
///
/// \code
/// hitbox::BinaryFormat fmt;
/// auto bytes = fmt.encode(user);             // Result<std::string>
/// auto back  = fmt.decode<User>(*bytes);     // Result<User>
/// hitbox::BinaryFormat roomy{.decode_budget_factor = 64};  // for values of many empty strings
/// \endcode
struct BinaryFormat {
    static constexpr std::uint8_t id = 1;
    static constexpr std::string_view name = "binary";
    /// Whether encode<T> / decode<T> compile for T: AnyBackend turns the other types into run-time
    /// encode / decode errors instead of compile errors (see hitbox/format/builtin.hpp).
    template <class T>
    static constexpr bool can_encode =
        detail::cereal_roundtrips<T, detail::BinaryOutputArchive, detail::BinaryInputArchive>;
    template <class T>
    static constexpr bool can_decode = can_encode<T>;
    /// Memory any decode may create, whatever its input size.
    static constexpr std::size_t decode_budget_floor = std::size_t{64} << 10;

    /// Memory a decode may create per input byte (see above); SIZE_MAX: no budget.
    std::size_t decode_budget_factor = 16;
    /// Deepest nesting of objects and containers a decode accepts.
    std::size_t max_nesting = 256;

    /// The decode budget for `input_size` bytes: factor x size + floor, saturating.
    constexpr std::size_t decode_budget(std::size_t input_size) const noexcept {
        constexpr std::size_t max = std::numeric_limits<std::size_t>::max();
        if (input_size != 0 && decode_budget_factor > (max - decode_budget_floor) / input_size) return max;
        return decode_budget_factor * input_size + decode_budget_floor;
    }

    /// Encodes `value`; decode<T> reads it back (a decode error for corrupt or foreign bytes).
    template <class T>
    Result<std::string> encode(const T& value) const {
        return detail::cereal_guard(ErrorKind::encode, name, [&] {
            std::string out;
            {
                detail::BinaryOutputArchive ar(out);
                ar(value);
            }
            return out;
        });
    }

    template <class T>
    Result<T> decode(std::string_view bytes) const {
        auto r = detail::cereal_guard(ErrorKind::decode, name, [&] {
            T value{};
            detail::BinaryInputArchive ar(bytes, decode_budget(bytes.size()), max_nesting);
            ar(value);
            if (ar.remaining() != 0) throw cereal::Exception(std::to_string(ar.remaining()) + " trailing bytes");
            return value;
        });
        return r;
    }
};

}  // namespace hitbox
