#pragma once
// The key commands of the Connection concept (GET, SET [PX], DEL, pipelined batches of them), written once
// for every connection policy. A policy derives from KeyCommands<Policy> and supplies how formatted
// commands reach Redis:
//   Result<ReplyPtr> exchange_one(std::string_view key, std::string_view command, bool read);
//   BatchReplies exchange_many(std::span<const std::string_view> keys, std::string_view buffer,
//                              std::span<const std::size_t> offsets, bool read);
// (command i of a batch is bytes [offsets[i], offsets[i+1]) of buffer, on keys[i]; `read`: a GET, which a
// cluster may send to a replica).

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <hitbox/backend/redis/detail/resp.hpp>
#include <hitbox/core/concepts.hpp>
#include <hitbox/core/error.hpp>
#include <hitbox/core/linkage.hpp>

namespace hitbox::detail {

/// The calling thread's buffer for formatting commands (the connection copies it, so it is reusable at once).
HITBOX_LIB_INLINE std::string& command_scratch();

inline Error format_error() { return Error(ErrorKind::encode, "cannot format the Redis command (out of memory)"); }

HITBOX_LIB_INLINE bool append_write(std::string& out, const ConnectionWrite& w);

HITBOX_LIB_INLINE Result<bool> write_reply(const redisReply& r, const ConnectionWrite& w);

/// The largest value a SET may carry so that the reply to its GET can be read back under `max_reply_bytes`.
/// The reader holds a whole bulk string, with what follows it in the same read (up to 64 KiB) and the
/// reply object: a margin of 64 KiB + 256 bytes is kept, or a quarter of the limit when that is less.
constexpr std::size_t readable_value_bytes(std::size_t max_reply_bytes) noexcept {
    const std::size_t margin = std::min(max_reply_bytes / 4, std::size_t{64 * 1024 + 256});
    return max_reply_bytes - margin;
}

/// The `capacity` error of a SET refused by readable_value_bytes.
HITBOX_LIB_INLINE Error unreadable_value_error(std::size_t size, std::size_t max_reply_bytes);

template <class Policy>
class KeyCommands {
public:
    /// GET key: the value, or nullopt when the key does not exist.
    Result<std::optional<std::string>> get(std::string_view key) {
        auto& buf = command_scratch();
        if (!append_command(buf, {"GET", key})) return fail(format_error());
        auto reply = self().exchange_one(key, buf, true);
        if (!reply) return fail(reply.error());
        return bulk_reply(**reply, "GET");
    }

    /// One `SET key value [PX px_ms]`.
    Result<void> set_px(std::string_view key, std::string_view value, std::optional<std::int64_t> px_ms) {
        auto r = write_one(ConnectionWrite{key, value, px_ms, false});
        if (!r) return fail(r.error());
        return {};
    }

    /// DEL key: true when the key existed.
    Result<bool> del(std::string_view key) { return write_one(ConnectionWrite{key, {}, std::nullopt, true}); }

    /// `SET key value NX PX px_ms`: true when this call set the key, false when it already existed. The
    /// primitive of a lock held by `value` (a token only its owner knows) that expires by itself.
    Result<bool> set_nx_px(std::string_view key, std::string_view value, std::int64_t px_ms) {
        auto& buf = command_scratch();
        const std::string px = std::to_string(px_ms < 1 ? 1 : px_ms);
        if (!append_command(buf, {"SET", key, value, "NX", "PX", px})) return fail(format_error());
        auto reply = self().exchange_one(key, buf, false);
        if (!reply) return fail(reply.error());
        if ((*reply)->type == REDIS_REPLY_NIL) return false;
        auto ok = status_reply(**reply, "SET");
        if (!ok) return fail(ok.error());
        return true;
    }

    /// Deletes `key` only while it holds `value`, atomically on the server (one EVAL of a compare-and-delete
    /// script): true when it was deleted. Releases a lock taken by set_nx_px without touching a lock that
    /// expired and was taken by someone else since.
    Result<bool> del_if_equal(std::string_view key, std::string_view value) {
        static constexpr std::string_view script =
            "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";
        auto& buf = command_scratch();
        if (!append_command(buf, {"EVAL", script, "1", key, value})) return fail(format_error());
        auto reply = self().exchange_one(key, buf, false);
        if (!reply) return fail(reply.error());
        return count_reply(**reply, "EVAL");
    }

    /// Pipelined GETs, one result per key in key order.
    std::vector<Result<std::optional<std::string>>> get_many(std::span<const std::string> keys) {
        return batch<std::optional<std::string>>(
            keys, true,
            [](std::string& buf, const std::string& k) {
                return append_command(buf, {"GET", k});
            },
            [](const std::string& k) { return std::string_view(k); },
            [](const redisReply& r, const std::string&) { return bulk_reply(r, "GET"); });
    }

    /// Pipelined SET / DEL, one result per write in input order. A value too large to read back is refused
    /// on its own (`capacity`); the others go.
    std::vector<Result<bool>> write_many(std::span<const ConnectionWrite> writes) {
        if (std::none_of(writes.begin(), writes.end(), [&](const ConnectionWrite& w) { return too_large(w); }))
            return write_batch(writes);
        std::vector<Result<bool>> out(writes.size());
        std::vector<ConnectionWrite> fit;
        std::vector<std::size_t> where;
        for (std::size_t i = 0; i < writes.size(); ++i) {
            if (too_large(writes[i])) {
                out[i] = fail(unreadable_value_error(writes[i].value.size(), max_reply_bytes()));
            } else {
                where.push_back(i);
                fit.push_back(writes[i]);
            }
        }
        auto done = write_batch(fit);
        for (std::size_t j = 0; j < done.size(); ++j) out[where[j]] = std::move(done[j]);
        return out;
    }

private:
    Policy& self() noexcept { return static_cast<Policy&>(*this); }
    const Policy& self() const noexcept { return static_cast<const Policy&>(*this); }

    std::size_t max_reply_bytes() const noexcept { return self().settings().max_reply_bytes; }

    /// A SET whose value could not be read back (readable_value_bytes).
    bool too_large(const ConnectionWrite& w) const noexcept {
        return !w.remove && w.value.size() > readable_value_bytes(max_reply_bytes());
    }

    std::vector<Result<bool>> write_batch(std::span<const ConnectionWrite> writes) {
        return batch<bool>(
            writes, false, [](std::string& buf, const ConnectionWrite& w) { return append_write(buf, w); },
            [](const ConnectionWrite& w) { return w.key; },
            [](const redisReply& r, const ConnectionWrite& w) { return write_reply(r, w); });
    }

    Result<bool> write_one(const ConnectionWrite& w) {
        if (too_large(w)) return fail(unreadable_value_error(w.value.size(), max_reply_bytes()));
        auto& buf = command_scratch();
        if (!append_write(buf, w)) return fail(format_error());
        auto reply = self().exchange_one(w.key, buf, false);
        if (!reply) return fail(reply.error());
        return write_reply(**reply, w);
    }

    template <class R, class Item, class Format, class KeyOf, class Decode>
    std::vector<Result<R>> batch(std::span<const Item> items, bool read, Format format, KeyOf key_of, Decode decode) {
        std::vector<Result<R>> out;
        out.reserve(items.size());
        if (items.empty()) return out;
        auto& buf = command_scratch();
        std::vector<std::string_view> keys;
        std::vector<std::size_t> offsets{0};
        keys.reserve(items.size());
        offsets.reserve(items.size() + 1);
        for (const auto& item : items) {
            if (!format(buf, item)) {
                for (std::size_t i = 0; i < items.size(); ++i) out.push_back(fail(format_error()));
                return out;
            }
            keys.push_back(key_of(item));
            offsets.push_back(buf.size());
        }
        auto replies = self().exchange_many(keys, buf, offsets, read);
        for (std::size_t i = 0; i < items.size(); ++i) {
            if (replies.errors[i])
                out.push_back(fail(*replies.errors[i]));
            else
                out.push_back(decode(*replies.replies[i], items[i]));
        }
        return out;
    }
};

}  // namespace hitbox::detail

// The definitions: included here in a header-only build, compiled once into the hitbox-redis library otherwise.
#if !HITBOX_COMPILED_LIB
#include <hitbox/backend/redis/detail/key_commands_impl.hpp>
#endif
