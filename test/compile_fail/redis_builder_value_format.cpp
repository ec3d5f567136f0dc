// The builder's value_format<F>() given something that is not a ValueFormat.
// expect: value_format<F>(): F must model hitbox::ValueFormat
#include <hitbox/backend/redis.hpp>
#include <hitbox/format/xml.hpp>

struct NotAValueFormat {};

auto builder() {
#ifdef HITBOX_COMPILE_FAIL
    return hitbox::RedisBackend<>::builder().value_format<NotAValueFormat>();
#else
    return hitbox::RedisBackend<>::builder().value_format<hitbox::XmlFormat>();
#endif
}
