#pragma once
/// \file
/// hitbox::XmlFormat: readable XML values over cereal's XML archives.

#include <cstdint>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>

#include <cereal/archives/xml.hpp>

#include <hitbox/core/error.hpp>
#include <hitbox/format/detail/cereal_support.hpp>
#include <hitbox/format/detail/text_guard.hpp>

namespace hitbox {

/// XML, `<cereal><value>...</value></cereal>`; for interop with XML tooling. The largest and slowest format.
/// Input nested deeper than 256 levels is refused before parsing.
struct XmlFormat {
    static constexpr std::uint8_t id = 3;
    static constexpr std::string_view name = "xml";
    /// Whether encode<T> / decode<T> compile for T: AnyBackend turns the other types into run-time
    /// encode / decode errors instead of compile errors (see hitbox/format/builtin.hpp).
    template <class T>
    static constexpr bool can_encode = detail::cereal_roundtrips<T, cereal::XMLOutputArchive, cereal::XMLInputArchive>;
    template <class T>
    static constexpr bool can_decode = can_encode<T>;

    /// Encodes `value`; decode<T> reads it back (a decode error for corrupt or foreign bytes).
    template <class T>
    Result<std::string> encode(const T& value) const {
        return detail::cereal_guard(ErrorKind::encode, name, [&] {
            std::ostringstream os;
            {
                cereal::XMLOutputArchive ar(os, cereal::XMLOutputArchive::Options().indent(false).outputType(false));
                ar(cereal::make_nvp("value", value));
            }
            return std::move(os).str();
        });
    }

    template <class T>
    Result<T> decode(std::string_view bytes) const {
        if (!detail::xml_nesting_ok(bytes)) return fail(ErrorKind::decode, "xml decode: nesting too deep");
        if constexpr (std::is_same_v<T, std::string>)
            if (!detail::xml_root_is_text(bytes))
                return fail(ErrorKind::decode, "xml decode: the entry holds elements, not a string");
        return detail::cereal_guard(ErrorKind::decode, name, [&] {
            std::istringstream is{std::string(bytes)};
            cereal::XMLInputArchive ar(is);
            T value{};
            ar(cereal::make_nvp("value", value));
            return value;
        });
    }
};

}  // namespace hitbox
