// Fuzzes a value format's decoder (HITBOX_FUZZ_VALUE_FORMAT names it) on a representative struct.
// Law checked: a decoded value re-encodes to bytes that decode and re-encode to the same bytes.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include <hitbox/format/binary.hpp>
#include <hitbox/format/json.hpp>
#include <hitbox/format/xml.hpp>

#include "fuzz_record.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view in(reinterpret_cast<const char*>(data), size);
    const HITBOX_FUZZ_VALUE_FORMAT fmt;
    auto value = fmt.decode<hitbox_fuzz::Record>(in);
    if (!value) return 0;
    auto bytes = fmt.encode(*value);
    if (!bytes) return 0;  // e.g. a NaN JSON cannot write: an encode error, not a crash
    auto back = fmt.decode<hitbox_fuzz::Record>(*bytes);
    if (!back) std::abort();
    auto bytes2 = fmt.encode(*back);
    if (!bytes2 || *bytes2 != *bytes) std::abort();
    return 0;
}
