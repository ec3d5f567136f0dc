#pragma once
/// \file
/// RESP glue over hiredis: owned replies, command framing (binary-safe: every argument is sent with its
/// length, never spliced into a command string; byte for byte what hiredis's formatter writes) and reply
/// interpretation.
/// Uses only hiredis APIs present in both 0.14 and 1.x.

#include <charconv>
#include <cstddef>
#include <cstdlib>
#include <initializer_list>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <hiredis/hiredis.h>

#include <hitbox/core/error.hpp>

namespace hitbox::detail {

/// Frees a hiredis reply object.
struct ReplyDeleter {
    void operator()(redisReply* r) const noexcept {
        if (r != nullptr) freeReplyObject(r);
    }
};

/// An owned hiredis reply.
using ReplyPtr = std::unique_ptr<redisReply, ReplyDeleter>;

/// The replies of a batch of commands, in command order: replies[i], or errors[i] when command i got none.
struct BatchReplies {
    std::vector<ReplyPtr> replies;
    std::vector<std::optional<Error>> errors;
};

/// Appends the RESP form of `args` to `out`: an array of bulk strings, each sent with its length, so any
/// bytes are safe. False only when memory runs out (nothing is appended then). The test suite checks the
/// bytes against hiredis's own formatter (redisFormatCommandArgv).
inline bool append_command(std::string& out, std::initializer_list<std::string_view> args) {
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

/// Replaces every occurrence of `secret` in `text` by "***" (no-op for an empty secret).
inline std::string scrub(std::string text, std::string_view secret) {
    if (secret.empty()) return text;
    for (auto pos = text.find(secret); pos != std::string::npos; pos = text.find(secret, pos + 3))
        text.replace(pos, secret.size(), "***");
    return text;
}

/// The kind of a server error reply: auth for NOAUTH / WRONGPASS / NOPERM, server otherwise.
inline ErrorKind error_reply_kind(std::string_view msg) noexcept {
    for (std::string_view prefix : {"NOAUTH", "WRONGPASS", "NOPERM"})
        if (msg.substr(0, prefix.size()) == prefix) return ErrorKind::auth;
    return ErrorKind::server;
}

inline std::string_view reply_text(const redisReply& r) noexcept {
    return r.str != nullptr ? std::string_view(r.str, r.len) : std::string_view{};
}

/// An error for a reply that is an error reply or of an unexpected type for `command`.
inline Error reply_error(const redisReply& r, std::string_view command) {
    if (r.type == REDIS_REPLY_ERROR) {
        auto msg = reply_text(r);
        return Error(error_reply_kind(msg), std::string(command) + ": " + std::string(msg));
    }
    return Error(ErrorKind::protocol, std::string(command) + ": unexpected reply type " + std::to_string(r.type));
}

/// GET-style reply: a bulk string, or nil for a missing key.
inline Result<std::optional<std::string>> bulk_reply(const redisReply& r, std::string_view command) {
    if (r.type == REDIS_REPLY_STRING) return std::optional<std::string>(std::string(reply_text(r)));
    if (r.type == REDIS_REPLY_NIL) return std::optional<std::string>{};
    return fail(reply_error(r, command));
}

/// "+OK"-style reply.
inline Result<void> status_reply(const redisReply& r, std::string_view command) {
    if (r.type == REDIS_REPLY_STATUS) return {};
    return fail(reply_error(r, command));
}

/// Integer reply read as "did anything happen" (DEL: the key existed).
inline Result<bool> count_reply(const redisReply& r, std::string_view command) {
    if (r.type == REDIS_REPLY_INTEGER) return r.integer > 0;
    return fail(reply_error(r, command));
}

}  // namespace hitbox::detail
