#pragma once
/// \file
/// The definitions of <hitbox/backend/redis/detail/resp.hpp>: included by that header in a header-only build,
/// compiled once into the hitbox-redis library with HITBOX_COMPILED_LIB=1 (hitbox/core/linkage.hpp).

#include <hitbox/backend/redis/detail/resp.hpp>

namespace hitbox::detail {

HITBOX_LIB_INLINE bool append_command(std::string& out, std::initializer_list<std::string_view> args) {
    const std::size_t before = out.size();
    try {
        auto header = [&out](char kind, std::size_t n) {
            char buf[24];
            buf[0] = kind;
            auto [end, ec] = std::to_chars(buf + 1, buf + sizeof buf - 2, n);
            *end++ = '\r';
            *end++ = '\n';
            out.append(buf, static_cast<std::size_t>(end - buf));
        };
        std::size_t total = 16;
        for (auto a : args) total += a.size() + 24;
        out.reserve(before + total);
        header('*', args.size());
        for (auto a : args) {
            header('$', a.size());
            out.append(a);
            out.append("\r\n", 2);
        }
        return true;
    } catch (const std::bad_alloc&) {
        out.resize(before);
        return false;
    }
}

HITBOX_LIB_INLINE std::string scrub(std::string text, std::string_view secret) {
    if (secret.empty()) return text;
    for (auto pos = text.find(secret); pos != std::string::npos; pos = text.find(secret, pos + 3))
        text.replace(pos, secret.size(), "***");
    return text;
}

HITBOX_LIB_INLINE Error reply_error(const redisReply& r, std::string_view command) {
    if (r.type == REDIS_REPLY_ERROR) {
        auto msg = reply_text(r);
        return Error(error_reply_kind(msg), std::string(command) + ": " + std::string(msg));
    }
    return Error(ErrorKind::protocol, std::string(command) + ": unexpected reply type " + std::to_string(r.type));
}

HITBOX_LIB_INLINE Result<std::optional<std::string>> bulk_reply(const redisReply& r, std::string_view command) {
    if (r.type == REDIS_REPLY_STRING) return std::optional<std::string>(std::string(reply_text(r)));
    if (r.type == REDIS_REPLY_NIL) return std::optional<std::string>{};
    return fail(reply_error(r, command));
}

HITBOX_LIB_INLINE Result<void> status_reply(const redisReply& r, std::string_view command) {
    if (r.type == REDIS_REPLY_STATUS) return {};
    return fail(reply_error(r, command));
}

HITBOX_LIB_INLINE Result<bool> count_reply(const redisReply& r, std::string_view command) {
    if (r.type == REDIS_REPLY_INTEGER) return r.integer > 0;
    return fail(reply_error(r, command));
}

}  // namespace hitbox::detail
