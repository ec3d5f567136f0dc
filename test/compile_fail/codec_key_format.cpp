// A key format slot given a type that is not a KeyFormat.
// expect: KeyFmt must model hitbox::KeyFormat
#include <hitbox/backend/redis/envelope.hpp>

struct NotAKeyFormat {};

#ifdef HITBOX_COMPILE_FAIL
hitbox::EntryCodec<NotAKeyFormat> codec;
#else
hitbox::EntryCodec<hitbox::Bitcode> codec;
#endif
