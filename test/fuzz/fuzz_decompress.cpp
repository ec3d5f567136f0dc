// Fuzzes a decompressor (HITBOX_FUZZ_COMPRESSOR names it) with a 1 MiB output limit. Laws checked: output
// never exceeds the limit, and what decompresses recompresses and round-trips.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include <hitbox/compress/gzip.hpp>
#include <hitbox/compress/zstd.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view in(reinterpret_cast<const char*>(data), size);
    constexpr std::size_t limit = std::size_t{1} << 20;
    const HITBOX_FUZZ_COMPRESSOR c{3, limit};
    auto out = c.decompress(in);
    if (!out) return 0;
    if (out->size() > limit) std::abort();
    auto again = c.compress(*out);
    if (!again) std::abort();
    auto back = c.decompress(*again);
    if (!back || *back != *out) std::abort();
    return 0;
}
