// Fuzzes a key format's decoder (HITBOX_FUZZ_KEY_FORMAT names it). Law checked: whatever decodes
// re-encodes and decodes to the same key; Bitcode accepts only canonical bytes, so it re-encodes exactly.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include <hitbox/key_format/bitcode.hpp>
#include <hitbox/key_format/url_encoded.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view in(reinterpret_cast<const char*>(data), size);
    const HITBOX_FUZZ_KEY_FORMAT fmt;
    auto key = fmt.decode(in);
    if (!key) return 0;
    const auto again = fmt.encode(*key);
    auto back = fmt.decode(again);
    if (!back || !(*back == *key)) std::abort();
    if constexpr (std::is_same_v<HITBOX_FUZZ_KEY_FORMAT, hitbox::Bitcode>)
        if (again != in) std::abort();
    return 0;
}
