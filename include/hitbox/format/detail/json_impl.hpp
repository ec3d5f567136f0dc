#pragma once
/// \file
/// The definitions of <hitbox/format/json.hpp>: included by that header in a header-only build,
/// compiled once into the hitbox library with HITBOX_COMPILED_LIB=1 (hitbox/core/linkage.hpp).

#include <hitbox/format/json.hpp>

namespace hitbox::detail {

HITBOX_LIB_INLINE JsonReader::JsonReader(std::string_view bytes) : text(std::string(bytes)), archive(text) {}

HITBOX_LIB_INLINE void JsonDelete::operator()(JsonReader* r) const noexcept { delete r; }

HITBOX_LIB_INLINE JsonReaderPtr read_json(std::string_view bytes) { return JsonReaderPtr(new JsonReader(bytes)); }

HITBOX_LIB_INLINE JsonWriter::JsonWriter() { archive.emplace(text, cereal::JSONOutputArchive::Options::NoIndent()); }

HITBOX_LIB_INLINE void JsonDelete::operator()(JsonWriter* w) const noexcept { delete w; }

HITBOX_LIB_INLINE JsonWriterPtr write_json() { return JsonWriterPtr(new JsonWriter()); }

HITBOX_LIB_INLINE std::string finish_json(JsonWriter& w) {
    w.archive.reset();  // the archive's destructor closes the document
    return std::move(w.text).str();
}

}  // namespace hitbox::detail
