// Fuzzes the entry envelope: header parsing alone, then a full EntryCodec decode (zstd payload, binary
// format) of the representative struct.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include <hitbox/backend/redis/envelope.hpp>
#include <hitbox/compress/zstd.hpp>

#include "fuzz_record.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view in(reinterpret_cast<const char*>(data), size);
    auto env = hitbox::parse_envelope(in);
    if (env && env->payload.size() > in.size()) std::abort();
    static const hitbox::EntryCodec<hitbox::Bitcode, hitbox::BinaryFormat, hitbox::ZstdCompressor> zstd_codec{
        {}, {}, hitbox::ZstdCompressor{3, 1 << 20}, {}};
    static const hitbox::EntryCodec<> plain_codec;
    for (auto r : {zstd_codec.decode<hitbox_fuzz::Record>(in), plain_codec.decode<hitbox_fuzz::Record>(in)}) {
        if (!r) continue;
        if (!env) std::abort();  // a full decode implies a valid header
        if (r->created != env->header.created || r->expire != env->header.expire) std::abort();
    }
    return 0;
}
