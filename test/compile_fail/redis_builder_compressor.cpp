// The builder's compressor(c) given something that is not a Compressor.
// expect: compressor(c): c must model hitbox::Compressor
#include <hitbox/backend/redis.hpp>

struct NotACompressor {};

auto builder() {
#ifdef HITBOX_COMPILE_FAIL
    return hitbox::RedisBackend<>::builder().compressor(NotACompressor{});
#else
    return hitbox::RedisBackend<>::builder().compressor(hitbox::PassthroughCompressor{});
#endif
}
