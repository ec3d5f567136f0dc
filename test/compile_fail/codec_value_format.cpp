// A value format slot given a type without id/encode/decode.
// expect: ValueFmt must model hitbox::ValueFormat
#include <hitbox/backend/redis/envelope.hpp>

struct NotAValueFormat {
    static constexpr std::string_view name = "nope";
};

#ifdef HITBOX_COMPILE_FAIL
hitbox::EntryCodec<hitbox::Bitcode, NotAValueFormat> codec;
#else
hitbox::EntryCodec<hitbox::Bitcode, hitbox::BinaryFormat> codec;
#endif
