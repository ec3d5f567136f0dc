#pragma once
// Pre-parse checks for the text value formats: cereal's JSON and XML parsers recurse per nesting level, so
// hostile input nested deeply enough would exhaust the stack; these scans bound the depth first. JSON input
// is also checked for the numbers rapidjson 1.1 mishandles, in the same pass.

#include <cstddef>
#include <string_view>

#include <hitbox/core/linkage.hpp>

namespace hitbox::detail {

inline constexpr std::size_t max_text_nesting = 256;

/// Longest number token JsonFormat reads: cereal's writer (rapidjson's shortest round-trip printer) emits at
/// most 25 characters for a double and 20 for a 64-bit integer.
inline constexpr std::size_t max_json_number_chars = 40;

/// What json_input_check found.
enum class JsonCheck { ok, too_deep, bad_number };

/// One pass over JSON input before cereal parses it: `too_deep` when objects / arrays nest deeper than
/// `limit`, `bad_number` when a number is one that rapidjson 1.1's full-precision parser (which cereal
/// enables) does not read without undefined behaviour. Fuzzing found these shapes, none of which hitbox's
/// own writer emits:
///  - digits that are all zero with an exponent or more than 15 decimals ("0e66", "0.0000000000000000000000"):
///    it normalises a zero significand (__builtin_clzll(0), shifts out of range);
///  - a magnitude below 1e-328 or from 1e309 once leading zeros count ("0.<400 zeros>1"): it indexes its
///    table of powers of ten out of bounds (a crash);
///  - more than 20 significant digits ("0.184467440737095516157"): its 64-bit significand rounds up past
///    2^64 - 1 to zero, the first case again;
///  - tokens longer than max_json_number_chars, which bounds the cases above; exponents over 4 digits;
///  - NaN / Inf / Infinity followed by a fraction or exponent, which it parses like the digits above.
HITBOX_LIB_INLINE JsonCheck json_input_check(std::string_view s, std::size_t limit = max_text_nesting) noexcept;

HITBOX_LIB_INLINE bool xml_nesting_ok(std::string_view s, std::size_t limit = max_text_nesting) noexcept;

/// Whether the root `value` element of XmlFormat bytes holds text only, as a string's does. cereal reads
/// an element's text as a string, so an entry that holds a struct (elements, no text) would be read as ""
/// instead of failing.
HITBOX_LIB_INLINE bool xml_root_is_text(std::string_view s) noexcept;

}  // namespace hitbox::detail

// The definitions: included here in a header-only build, compiled once into the hitbox library otherwise.
#if !HITBOX_COMPILED_LIB
#include <hitbox/format/detail/text_guard_impl.hpp>
#endif
