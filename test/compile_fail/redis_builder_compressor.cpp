// The builder's compressor(c) given something that is not a Compressor.
// expect: compressor(c): c must model hitbox::Compressor
#include <hitbox/backend/redis.hpp>

struct NotACompressor {};

// The whole chain a user writes: nothing after the misuse may add a diagnostic.
auto build() {
#ifdef HITBOX_COMPILE_FAIL
    return hitbox::RedisBackend<>::builder()
        .connection(hitbox::ConnectionMode::single("redis://127.0.0.1:6379/"))
        .compressor(NotACompressor{})
        .build();
#else
    return hitbox::RedisBackend<>::builder()
        .connection(hitbox::ConnectionMode::single("redis://127.0.0.1:6379/"))
        .compressor(hitbox::PassthroughCompressor{})
        .build();
#endif
}
