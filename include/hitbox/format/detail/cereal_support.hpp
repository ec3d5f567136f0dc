#pragma once
// cereal support shared by every hitbox value format: the std types users cache, and serialization of
// Boost.Hana-adapted structs without a hand-written serialize().

#include <exception>
#include <optional>
#include <string>
#include <type_traits>

#include <boost/hana/accessors.hpp>
#include <boost/hana/concept/struct.hpp>
#include <boost/hana/first.hpp>
#include <boost/hana/for_each.hpp>
#include <boost/hana/second.hpp>
#include <boost/hana/string.hpp>

#include <cereal/cereal.hpp>
#include <cereal/types/array.hpp>
#include <cereal/types/chrono.hpp>
#include <cereal/types/deque.hpp>
#include <cereal/types/list.hpp>
#include <cereal/types/map.hpp>
#include <cereal/types/set.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/tuple.hpp>
#include <cereal/types/unordered_map.hpp>
#include <cereal/types/unordered_set.hpp>
#include <cereal/types/utility.hpp>
#include <cereal/types/variant.hpp>
#include <cereal/types/vector.hpp>

#include <hitbox/core/error.hpp>

namespace hitbox::detail {

template <class T, class Archive>
concept has_own_cereal_member = requires(T& t, Archive& ar) {
    t.serialize(ar);
}
|| requires(T& t, Archive& ar) { t.save(ar); }
|| requires(T& t, Archive& ar) { t.load(ar); };

}  // namespace hitbox::detail

// std::optional: the same wire shape as cereal's <cereal/types/optional.hpp> ("nullopt" flag, then "data"),
// but the flag is initialised before it is read. cereal's own load reads an uninitialised bool when an XML
// node holds no parsable "true"/"false" (istream extraction then leaves the variable untouched): undefined
// behaviour found by fuzz_xml_format. Defining cereal's include guard keeps its version out of the build;
// a program that includes cereal's header before any hitbox header gets cereal's version instead.
#ifndef CEREAL_TYPES_STD_OPTIONAL_
#define CEREAL_TYPES_STD_OPTIONAL_
namespace cereal {

template <class Archive, class T>
void CEREAL_SAVE_FUNCTION_NAME(Archive& ar, const std::optional<T>& optional) {
    if (!optional) {
        ar(CEREAL_NVP_("nullopt", true));
    } else {
        ar(CEREAL_NVP_("nullopt", false), CEREAL_NVP_("data", *optional));
    }
}

template <class Archive, class T>
void CEREAL_LOAD_FUNCTION_NAME(Archive& ar, std::optional<T>& optional) {
    bool nullopt = true;
    ar(CEREAL_NVP_("nullopt", nullopt));
    if (nullopt) {
        optional = std::nullopt;
    } else {
        optional.emplace();
        ar(CEREAL_NVP_("data", *optional));
    }
}

}  // namespace cereal
#endif

namespace cereal {

/// Serializes a Boost.Hana-adapted struct member by member, each as a name-value pair (the member name is
/// the JSON key / XML element). Found by argument-dependent lookup through the archive's namespace.
template <class Archive, class T>
    requires(boost::hana::Struct<T>::value && !hitbox::detail::has_own_cereal_member<T, Archive>)
void serialize(Archive& ar, T& value) {
    boost::hana::for_each(boost::hana::accessors<T>(), [&](auto accessor) {
        ar(cereal::make_nvp(boost::hana::to<char const*>(boost::hana::first(accessor)),
                            boost::hana::second(accessor)(value)));
    });
}

}  // namespace cereal

namespace hitbox::detail {

/// Runs a cereal save/load, turning any exception (cereal's, the allocator's, rapidjson's) into an Error.
template <class F>
auto cereal_guard(ErrorKind kind, std::string_view format, F&& f) -> Result<decltype(f())> {
    try {
        return f();
    } catch (const std::exception& e) {
        return fail(kind, std::string(format) + (kind == ErrorKind::encode ? " encode: " : " decode: ") + e.what());
    } catch (...) {
        return fail(kind, std::string(format) + " codec failed");
    }
}

/// Whether T saves to archive Out and loads from In (and can be default-constructed to load into): what
/// the cereal formats' `can_encode` / `can_decode` say.
template <class T, class Out, class In>
inline constexpr bool cereal_roundtrips = cereal::traits::is_output_serializable<T, Out>::value&&
    cereal::traits::is_input_serializable<T, In>::value&& std::is_default_constructible_v<T>;

}  // namespace hitbox::detail
