#pragma once
/// \file
/// hitbox::BinaryFormat: the default value format (compact little-endian binary over cereal).

#include <cstdint>
#include <string>
#include <string_view>

#include <hitbox/core/error.hpp>
#include <hitbox/format/detail/binary_archive.hpp>
#include <hitbox/format/detail/cereal_support.hpp>

namespace hitbox {

/// Compact portable binary: fixed-width little-endian numbers, LEB128 varint lengths, no field names. Any type cereal
/// can serialize works, including Boost.Hana-adapted structs and the common std types. Decoding refuses
/// lengths beyond the input and trailing bytes, so corrupt input is a decode error, never a huge allocation.
///
/// \code
/// hitbox::BinaryFormat fmt;
/// auto bytes = fmt.encode(user);             // Result<std::string>
/// auto back  = fmt.decode<User>(*bytes);     // Result<User>
/// \endcode
struct BinaryFormat {
    static constexpr std::uint8_t id = 1;
    static constexpr std::string_view name = "binary";

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
            detail::BinaryInputArchive ar(bytes);
            ar(value);
            if (ar.remaining() != 0) throw cereal::Exception(std::to_string(ar.remaining()) + " trailing bytes");
            return value;
        });
        return r;
    }
};

}  // namespace hitbox
