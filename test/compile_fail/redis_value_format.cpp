// RedisBackend's ValueFmt slot given a type that is not a ValueFormat (no id).
// expect: RedisBackend<KeyFmt, ValueFmt, Compressor, Connection>: ValueFmt must model hitbox::ValueFormat
#include <hitbox/backend/redis.hpp>
#include <hitbox/format/json.hpp>

struct NoIdFormat {
    static constexpr std::string_view name = "no-id";
    template <class T>
    hitbox::Result<std::string> encode(const T&) const {
        return std::string();
    }
    template <class T>
    hitbox::Result<T> decode(std::string_view) const {
        return T{};
    }
};

#ifdef HITBOX_COMPILE_FAIL
using Backend = hitbox::RedisBackend<hitbox::Bitcode, NoIdFormat>;
#else
using Backend = hitbox::RedisBackend<hitbox::Bitcode, hitbox::JsonFormat>;
#endif

// Built as a user would: the slot's assertion is the only diagnostic, not the builder's or the codec's.
auto build() {
    return Backend::builder().connection(hitbox::ConnectionMode::single("redis://127.0.0.1:6379/")).build();
}
