#pragma once
/// \file
/// hitbox::JsonFormat: readable JSON values over cereal's JSON archives.

#include <cstdint>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>

#include <cereal/archives/json.hpp>

#include <hitbox/core/error.hpp>
#include <hitbox/core/linkage.hpp>
#include <hitbox/format/detail/cereal_support.hpp>
#include <hitbox/format/detail/text_guard.hpp>

namespace hitbox {

namespace detail {

/// A JSON document parsed as cereal reads it: the archive over the text. Made and destroyed by the
/// functions below, so that in the compiled-library mode rapidjson's parser is compiled once, in the
/// library, and a program only compiles the loads of its own types.
struct JsonReader {
    explicit JsonReader(std::string_view bytes);  ///< parses; throws as cereal does on malformed input
    std::istringstream text;
    cereal::JSONInputArchive archive;
};
struct JsonWriter;
/// Destroys a JsonReader or JsonWriter where they are defined (in the library in compiled-library mode).
struct JsonDelete {
    HITBOX_LIB_INLINE void operator()(JsonReader* r) const noexcept;
    HITBOX_LIB_INLINE void operator()(JsonWriter* w) const noexcept;
};
using JsonReaderPtr = std::unique_ptr<JsonReader, JsonDelete>;
/// Parses `bytes` (cereal's and rapidjson's exceptions pass through).
HITBOX_LIB_INLINE JsonReaderPtr read_json(std::string_view bytes);

/// A JSON document being written: cereal's archive over a string stream, without indentation.
struct JsonWriter {
    JsonWriter();
    std::ostringstream text;
    std::optional<cereal::JSONOutputArchive> archive;
};
using JsonWriterPtr = std::unique_ptr<JsonWriter, JsonDelete>;
/// A new document.
HITBOX_LIB_INLINE JsonWriterPtr write_json();
/// Closes the document (the archive's end) and returns its text.
HITBOX_LIB_INLINE std::string finish_json(JsonWriter& w);

}  // namespace detail

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
            detail::JsonWriterPtr w = detail::write_json();
            (*w->archive)(cereal::make_nvp("value", value));
            return detail::finish_json(*w);
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
            detail::JsonReaderPtr r = detail::read_json(bytes);
            T value{};
            r->archive(cereal::make_nvp("value", value));
            return value;
        });
    }
};

}  // namespace hitbox

// The definitions: included here in a header-only build, compiled once into the hitbox library otherwise.
#if !HITBOX_COMPILED_LIB
#include <hitbox/format/detail/json_impl.hpp>
#endif
