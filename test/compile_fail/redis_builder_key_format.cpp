// The builder's key_format<F>() given something that is not a KeyFormat.
// expect: key_format<F>(): F must model hitbox::KeyFormat
#include <hitbox/backend/redis.hpp>
#include <hitbox/key_format/url_encoded.hpp>

struct NotAKeyFormat {};

auto builder() {
#ifdef HITBOX_COMPILE_FAIL
    return hitbox::RedisBackend<>::builder().key_format<NotAKeyFormat>();
#else
    return hitbox::RedisBackend<>::builder().key_format<hitbox::UrlEncoded>();
#endif
}
