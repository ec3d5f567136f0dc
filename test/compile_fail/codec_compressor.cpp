// A compressor slot given a type whose compress has the wrong signature.
// expect: Compressor must model hitbox::Compressor
#include <hitbox/backend/redis/envelope.hpp>

struct WrongCompressor {
    static constexpr std::uint8_t id = 9;
    static constexpr std::string_view name = "wrong";
    std::string compress(std::string_view in) const { return std::string(in); }  // must return Result
};

#ifdef HITBOX_COMPILE_FAIL
hitbox::EntryCodec<hitbox::Bitcode, hitbox::BinaryFormat, WrongCompressor> codec;
#else
hitbox::EntryCodec<hitbox::Bitcode, hitbox::BinaryFormat, hitbox::PassthroughCompressor> codec;
#endif
