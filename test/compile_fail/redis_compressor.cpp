// RedisBackend's Compressor slot given a type that is not a Compressor (no decompress).
// expect: RedisBackend<KeyFmt, ValueFmt, Compressor, Connection>: Compressor must model hitbox::Compressor
#include <hitbox/backend/redis.hpp>

struct CompressOnly {
    static constexpr std::uint8_t id = 200;
    static constexpr std::string_view name = "compress-only";
    hitbox::Result<std::string> compress(std::string_view in) const { return std::string(in); }
};

#ifdef HITBOX_COMPILE_FAIL
using Backend = hitbox::RedisBackend<hitbox::Bitcode, hitbox::BinaryFormat, CompressOnly>;
#else
using Backend = hitbox::RedisBackend<hitbox::Bitcode, hitbox::BinaryFormat, hitbox::PassthroughCompressor>;
#endif

// Built as a user would: the slot's assertion is the only diagnostic, not the builder's or the codec's.
auto build() {
    return Backend::builder().connection(hitbox::ConnectionMode::single("redis://127.0.0.1:6379/")).build();
}
