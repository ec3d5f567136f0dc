// A RedisBackend whose Connection slot is given a type that lacks the Connection members.
// expect: Connection must model hitbox::Connection
#include <hitbox/backend/redis.hpp>

struct NotAConnection {
    static constexpr std::string_view mode = "none";
    hitbox::Result<std::optional<std::string>> get(std::string_view) { return std::nullopt; }
};

#ifdef HITBOX_COMPILE_FAIL
using Backend =
    hitbox::RedisBackend<hitbox::Bitcode, hitbox::BinaryFormat, hitbox::PassthroughCompressor, NotAConnection>;
#else
using Backend =
    hitbox::RedisBackend<hitbox::Bitcode, hitbox::BinaryFormat, hitbox::PassthroughCompressor, hitbox::SingleNode>;
#endif
static_assert(sizeof(Backend) > 0);
