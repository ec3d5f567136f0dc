// RedisBackend's KeyFmt slot given a type that is not a KeyFormat (no decode).
// expect: RedisBackend<KeyFmt, ValueFmt, Compressor, Connection>: KeyFmt must model hitbox::KeyFormat
#include <hitbox/backend/redis.hpp>
#include <hitbox/key_format/url_encoded.hpp>

struct EncodeOnly {
    static constexpr std::string_view name = "encode-only";
    std::string encode(const hitbox::CacheKey&) const { return {}; }
};

#ifdef HITBOX_COMPILE_FAIL
using Backend = hitbox::RedisBackend<EncodeOnly>;
#else
using Backend = hitbox::RedisBackend<hitbox::UrlEncoded>;
#endif

// Built as a user would: the slot's assertion is the only diagnostic, not the builder's or the codec's.
auto build() {
    return Backend::builder().connection(hitbox::ConnectionMode::single("redis://127.0.0.1:6379/")).build();
}
