#pragma once
/// \file
/// The definitions of <hitbox/backend/redis/detail/key_commands.hpp>: included by that header in a header-only build,
/// compiled once into the hitbox-redis library with HITBOX_COMPILED_LIB=1 (hitbox/core/linkage.hpp).

#include <hitbox/backend/redis/detail/key_commands.hpp>

namespace hitbox::detail {

HITBOX_LIB_INLINE std::string& command_scratch() {
    thread_local std::string buf;
    if (buf.capacity() > (std::size_t{1} << 20)) std::string().swap(buf);  // do not pin a huge batch's buffer
    buf.clear();
    return buf;
}

HITBOX_LIB_INLINE bool append_write(std::string& out, const ConnectionWrite& w) {
    if (w.remove) return append_command(out, {"DEL", w.key});
    if (!w.px_ms) return append_command(out, {"SET", w.key, w.value});
    const std::string px = std::to_string(*w.px_ms);
    return append_command(out, {"SET", w.key, w.value, "PX", px});
}

HITBOX_LIB_INLINE Error unreadable_value_error(std::size_t size, std::size_t max_reply_bytes) {
    return Error(ErrorKind::capacity, "SET of a value of " + std::to_string(size) +
                                          " bytes refused: its reply could not be read back (max_reply_bytes " +
                                          std::to_string(max_reply_bytes) + " leaves " +
                                          std::to_string(readable_value_bytes(max_reply_bytes)) +
                                          " bytes for a value)");
}

HITBOX_LIB_INLINE Result<bool> write_reply(const redisReply& r, const ConnectionWrite& w) {
    if (w.remove) return count_reply(r, "DEL");
    auto ok = status_reply(r, "SET");
    if (!ok) return fail(ok.error());
    return true;
}

}  // namespace hitbox::detail
