// The builder's value_format<F>() given something that is not a ValueFormat.
// expect: value_format<F>(): F must model hitbox::ValueFormat
#include <hitbox/backend/redis.hpp>
#include <hitbox/format/xml.hpp>

struct NotAValueFormat {};

// The whole chain a user writes: nothing after the misuse may add a diagnostic.
auto build() {
#ifdef HITBOX_COMPILE_FAIL
    return hitbox::RedisBackend<>::builder()
        .connection(hitbox::ConnectionMode::single("redis://127.0.0.1:6379/"))
        .value_format<NotAValueFormat>()
        .build();
#else
    return hitbox::RedisBackend<>::builder()
        .connection(hitbox::ConnectionMode::single("redis://127.0.0.1:6379/"))
        .value_format<hitbox::XmlFormat>()
        .build();
#endif
}
