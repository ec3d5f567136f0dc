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
#include <hitbox/core/linkage.hpp>

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
HITBOX_LIB_INLINE bool append_command(std::string& out, std::initializer_list<std::string_view> args);

/// Replaces every occurrence of `secret` in `text` by "***" (no-op for an empty secret).
HITBOX_LIB_INLINE std::string scrub(std::string text, std::string_view secret);

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
HITBOX_LIB_INLINE Error reply_error(const redisReply& r, std::string_view command);

/// GET-style reply: a bulk string, or nil for a missing key.
HITBOX_LIB_INLINE Result<std::optional<std::string>> bulk_reply(const redisReply& r, std::string_view command);

/// "+OK"-style reply.
HITBOX_LIB_INLINE Result<void> status_reply(const redisReply& r, std::string_view command);

/// Integer reply read as "did anything happen" (DEL: the key existed).
HITBOX_LIB_INLINE Result<bool> count_reply(const redisReply& r, std::string_view command);

}  // namespace hitbox::detail

// The definitions: included here in a header-only build, compiled once into the hitbox-redis library otherwise.
#if !HITBOX_COMPILED_LIB
#include <hitbox/backend/redis/detail/resp_impl.hpp>
#endif
