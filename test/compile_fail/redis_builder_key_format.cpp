// The builder's key_format<F>() given something that is not a KeyFormat.
// expect: key_format<F>(): F must model hitbox::KeyFormat
#include <hitbox/backend/redis.hpp>
#include <hitbox/key_format/url_encoded.hpp>

struct NotAKeyFormat {};

// The whole chain a user writes: nothing after the misuse may add a diagnostic.
auto build() {
#ifdef HITBOX_COMPILE_FAIL
    return hitbox::RedisBackend<>::builder()
        .connection(hitbox::ConnectionMode::single("redis://127.0.0.1:6379/"))
        .key_format<NotAKeyFormat>()
        .build();
#else
    return hitbox::RedisBackend<>::builder()
        .connection(hitbox::ConnectionMode::single("redis://127.0.0.1:6379/"))
        .key_format<hitbox::UrlEncoded>()
        .build();
#endif
}
