#pragma once
/// \file
/// hitbox::JsonFormat: readable JSON values over cereal's JSON archives.

#include <cstdint>
#include <sstream>
#include <string>
#include <string_view>

#include <cereal/archives/json.hpp>

#include <hitbox/core/error.hpp>
#include <hitbox/format/detail/cereal_support.hpp>
#include <hitbox/format/detail/text_guard.hpp>

namespace hitbox {

/// JSON, one object `{"value": ...}` per entry; Hana-adapted structs become objects keyed by member name.
/// Readable with redis-cli; larger and slower than BinaryFormat. Input nested deeper than 256 levels is
/// refused before parsing.
struct JsonFormat {
    static constexpr std::uint8_t id = 2;
    static constexpr std::string_view name = "json";
    /// Whether encode<T> / decode<T> compile for T: AnyBackend turns the other types into run-time
    /// encode / decode errors instead of compile errors (see hitbox/format/builtin.hpp).
    template <class T>
    static constexpr bool can_encode =
        detail::cereal_roundtrips<T, cereal::JSONOutputArchive, cereal::JSONInputArchive>;
    template <class T>
    static constexpr bool can_decode = can_encode<T>;

    /// Encodes `value`; decode<T> reads it back (a decode error for corrupt or foreign bytes).
    template <class T>
    Result<std::string> encode(const T& value) const {
        return detail::cereal_guard(ErrorKind::encode, name, [&] {
            std::ostringstream os;
            {
                cereal::JSONOutputArchive ar(os, cereal::JSONOutputArchive::Options::NoIndent());
                ar(cereal::make_nvp("value", value));
            }
            return std::move(os).str();
        });
    }

    template <class T>
    Result<T> decode(std::string_view bytes) const {
        switch (detail::json_input_check(bytes)) {
            case detail::JsonCheck::too_deep: return fail(ErrorKind::decode, "json decode: nesting too deep");
            case detail::JsonCheck::bad_number:
                return fail(ErrorKind::decode,
                            "json decode: a number hitbox does not read (all zeros with an exponent or over "
                            "15 decimals, over 20 significant digits, beyond 1e-328..1e308, over 40 "
                            "characters, or digits after NaN / Infinity)");
            case detail::JsonCheck::ok: break;
        }
        return detail::cereal_guard(ErrorKind::decode, name, [&] {
            std::istringstream is{std::string(bytes)};
            cereal::JSONInputArchive ar(is);
            T value{};
            ar(cereal::make_nvp("value", value));
            return value;
        });
    }
};

}  // namespace hitbox
