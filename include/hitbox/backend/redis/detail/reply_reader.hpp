#pragma once
/// \file
/// detail::ReplyReader: hiredis's RESP reader under a memory budget per reply.
///
/// hiredis bounds nothing by itself (0.14 has no `maxelements`): a 13-byte `*1000000000\r\n` makes its
/// default object functions allocate 8 GB for the element pointers at once, and an endless array of small
/// elements grows without bound. ReplyReader installs object functions that charge every object of the
/// reply being parsed (the reply struct, an array's element pointers, a string's bytes) to a budget before
/// hiredis's own functions allocate it; an object that would overdraw the budget is refused, the parse
/// fails, and `next()` answers a `capacity` error. The budget starts again with each top-level reply.
/// Bytes received and not yet parsed count too (`feed`), so one reply holds at most about `limit` bytes
/// of memory, parsed objects and buffered input together, plus one read chunk.
///
/// Server text in error and status replies is scrubbed of the connection's secrets before any caller
/// sees it (see `scrub_secrets`).
///
/// Non-generic code. Uses only hiredis APIs present in both 0.14 and 1.x.

#include <cstddef>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <hiredis/hiredis.h>

#include <hitbox/backend/redis/detail/resp.hpp>
#include <hitbox/core/error.hpp>

namespace hitbox::detail {

/// What one reply may cost while it is parsed (ReplyReader's privdata).
struct ReplyBudget {
    std::size_t limit = 0;      ///< bytes one reply may hold, parsed objects and unparsed input together
    std::size_t charged = 0;    ///< objects of the reply being parsed
    std::size_t requested = 0;  ///< what the refused object asked for (0: nothing refused)

    /// Charges `bytes` for an object of `task`; false (nothing charged) when it does not fit.
    bool charge(const redisReadTask* task, std::size_t bytes) noexcept {
        if (task->parent == nullptr) charged = 0;  // a new top-level reply
        if (bytes > limit || charged > limit - bytes) {
            requested = bytes;
            return false;
        }
        charged += bytes;
        return true;
    }
};

/// The object functions hiredis's default reader uses (to allocate what the budget allowed).
inline const redisReplyObjectFunctions& default_reply_functions() {
    static const redisReplyObjectFunctions fns = [] {
        redisReader* r = redisReaderCreate();
        redisReplyObjectFunctions copy{};
        if (r != nullptr) {
            copy = *r->fn;
            redisReaderFree(r);
        }
        return copy;
    }();
    return fns;
}

inline ReplyBudget* budget_of(const redisReadTask* task) noexcept { return static_cast<ReplyBudget*>(task->privdata); }

inline void* budgeted_string(const redisReadTask* task, char* str, std::size_t len) {
    if (!budget_of(task)->charge(task, sizeof(redisReply) + len + 1)) return nullptr;
    return default_reply_functions().createString(task, str, len);
}

// The count is an int in hiredis 0.14 and a size_t in 1.x: the function pointer's type picks the instance.
template <class Count>
void* budgeted_array(const redisReadTask* task, Count elements) {
    const std::size_t n = elements > 0 ? static_cast<std::size_t>(elements) : 0;
    // The element count is checked before hiredis allocates the pointers: `*1000000000` fails here.
    if (n > (~std::size_t{0} - sizeof(redisReply)) / sizeof(redisReply*) ||
        !budget_of(task)->charge(task, sizeof(redisReply) + n * sizeof(redisReply*)))
        return nullptr;
    return default_reply_functions().createArray(task, elements);
}

inline void* budgeted_integer(const redisReadTask* task, long long value) {
    if (!budget_of(task)->charge(task, sizeof(redisReply))) return nullptr;
    return default_reply_functions().createInteger(task, value);
}

inline void* budgeted_nil(const redisReadTask* task) {
    if (!budget_of(task)->charge(task, sizeof(redisReply))) return nullptr;
    return default_reply_functions().createNil(task);
}

/// The budgeted object functions, with the defaults for whatever this hiredis has beyond 0.14's four
/// (1.x: doubles and booleans of RESP3, which a RESP2 connection never receives).
inline redisReplyObjectFunctions* budgeted_reply_functions() {
    static redisReplyObjectFunctions fns = [] {
        redisReplyObjectFunctions f = default_reply_functions();
        f.createString = &budgeted_string;
        f.createArray = &budgeted_array;
        f.createInteger = &budgeted_integer;
        f.createNil = &budgeted_nil;
        return f;
    }();
    return &fns;
}

/// A run of a secret's first bytes at least this long is masked too: a server that echoes arguments cuts
/// them short (Redis 7: 128 bytes), which leaves a prefix of a long password in its error text.
inline constexpr std::size_t secret_prefix_mask = 8;

/// A cluster redirection as a server sends it: `MOVED <slot> <host>:<port>` or `ASK ...`, one unquoted
/// target. The server writes it from its cluster configuration and never echoes a client's arguments in
/// it, and the router needs its host as sent: a host name may well contain the user name (`default`,
/// `cache`, `local` in `redis-0.cache.default.svc`, `localhost`).
inline bool server_redirection(const redisReply& r) noexcept {
    if (r.type != REDIS_REPLY_ERROR || r.str == nullptr) return false;
    const std::string_view text(r.str, r.len);
    std::string_view rest;
    if (text.substr(0, 6) == "MOVED ")
        rest = text.substr(6);
    else if (text.substr(0, 4) == "ASK ")
        rest = text.substr(4);
    else
        return false;
    const auto space = rest.find(' ');
    if (space == 0 || space == std::string_view::npos || space > 5) return false;
    for (char c : rest.substr(0, space))
        if (c < '0' || c > '9') return false;
    const auto target = rest.substr(space + 1);
    if (target.empty() || target.size() > 300) return false;
    for (char c : target)
        if (static_cast<unsigned char>(c) <= ' ' || c == '\'' || c == '"') return false;
    return true;
}

/// Replaces every occurrence of each secret in the text of `r` (an error or status reply, also nested in
/// arrays) in place, by `***` (or as many `*` as the secret is long, when that is shorter), and every run
/// of at least secret_prefix_mask bytes that begins the secret (an echo cut short): the text never grows,
/// so hiredis's own buffer holds it. Empty secrets are ignored; a cluster redirection is left whole.
inline void scrub_secrets(redisReply& r, std::initializer_list<std::string_view> secrets) {
    if (r.type == REDIS_REPLY_ARRAY) {
        for (std::size_t i = 0; i < r.elements; ++i)
            if (r.element[i] != nullptr) scrub_secrets(*r.element[i], secrets);
        return;
    }
    if ((r.type != REDIS_REPLY_ERROR && r.type != REDIS_REPLY_STATUS) || r.str == nullptr) return;
    if (server_redirection(r)) return;
    for (auto secret : secrets) {
        if (secret.empty()) continue;
        const std::size_t mask = secret.size() < 3 ? secret.size() : 3;
        std::size_t out = 0, in = 0;
        while (in < r.len) {
            // How many of the secret's first bytes start here.
            std::size_t run = 0;
            while (run < secret.size() && in + run < r.len && r.str[in + run] == secret[run]) ++run;
            if (run == secret.size() || run >= secret_prefix_mask) {
                std::memset(r.str + out, '*', mask);
                out += mask;
                in += run;
            } else {
                r.str[out++] = r.str[in++];
            }
        }
        r.len = out;
        r.str[out] = '\0';
    }
}

/// hiredis's reader with a per-reply memory budget (see the file comment). Not thread-safe: owned by
/// whoever holds the connection's read claim.
class ReplyReader {
public:
    explicit ReplyReader(std::size_t limit) {
        budget_.limit = limit;
        reader_ = redisReaderCreateWithFunctions(budgeted_reply_functions());
        if (reader_ != nullptr) reader_->privdata = &budget_;
    }
    ReplyReader(const ReplyReader&) = delete;
    ReplyReader& operator=(const ReplyReader&) = delete;
    ~ReplyReader() {
        if (reader_ != nullptr) redisReaderFree(reader_);
    }

    /// False when the reader could not be created (out of memory).
    bool ok() const noexcept { return reader_ != nullptr; }

    /// Appends received bytes. Fails (`capacity`) once the unparsed input and the objects of the reply
    /// in progress together exceed the limit: the connection must then be reset.
    Result<void> feed(const char* data, std::size_t n) {
        if (redisReaderFeed(reader_, data, n) != REDIS_OK) return fail(ErrorKind::protocol, "reply buffer error");
        const std::size_t unparsed = reader_->len - reader_->pos;
        if (unparsed > budget_.limit || budget_.charged > budget_.limit - unparsed)
            return fail(ErrorKind::capacity,
                        "reply exceeds max_reply_bytes (" + std::to_string(budget_.limit) + " bytes)");
        return {};
    }

    /// The next complete reply, nullptr when none is complete yet, or an error: `capacity` when the reply
    /// outgrew the budget, `protocol` for bytes that are not RESP. After an error the reader is unusable.
    Result<ReplyPtr> next() {
        void* raw = nullptr;
        if (redisReaderGetReply(reader_, &raw) != REDIS_OK) {
            if (budget_.requested != 0)
                return fail(ErrorKind::capacity, "reply exceeds max_reply_bytes (" + std::to_string(budget_.limit) +
                                                     " bytes): an object of " + std::to_string(budget_.requested) +
                                                     " bytes does not fit");
            return fail(ErrorKind::protocol, std::string(reader_->errstr));
        }
        if (raw == nullptr) return ReplyPtr{};
        budget_.charged = 0;  // the reply is complete: its caller owns it now
        return ReplyPtr(static_cast<redisReply*>(raw));
    }

private:
    ReplyBudget budget_;
    redisReader* reader_ = nullptr;
};

}  // namespace hitbox::detail
