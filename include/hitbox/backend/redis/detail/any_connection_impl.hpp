#pragma once
/// \file
/// The definitions of AnyConnection's members (see hitbox/core/linkage.hpp): any_connection.hpp includes
/// this file in a header-only build; src/redis_connection.cpp compiles it once for HITBOX_COMPILED_LIB.

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include <hitbox/backend/redis/any_connection.hpp>
#include <hitbox/core/linkage.hpp>

namespace hitbox {

HITBOX_LIB_INLINE Result<AnyConnection> AnyConnection::create(const AnyMode& config, const ConnectionOptions& options) {
    return std::visit(
        [&](const auto& m) -> Result<AnyConnection> {
            using Policy = typename std::decay_t<decltype(m)>::connection_type;
            auto policy = Policy::create(m, options);
            if (!policy) return fail(policy.error());
            return AnyConnection(std::move(*policy));
        },
        config.mode);
}

HITBOX_LIB_INLINE std::string_view AnyConnection::active_mode() const noexcept {
    return std::visit([](const auto& c) { return std::decay_t<decltype(c)>::mode; }, conn_);
}

HITBOX_LIB_INLINE Result<std::optional<std::string>> AnyConnection::get(std::string_view key) {
    return std::visit([&](auto& c) { return c.get(key); }, conn_);
}

HITBOX_LIB_INLINE Result<void> AnyConnection::set_px(std::string_view key, std::string_view value,
                                                     std::optional<std::int64_t> px_ms) {
    return std::visit([&](auto& c) { return c.set_px(key, value, px_ms); }, conn_);
}

HITBOX_LIB_INLINE Result<bool> AnyConnection::del(std::string_view key) {
    return std::visit([&](auto& c) { return c.del(key); }, conn_);
}

HITBOX_LIB_INLINE Result<bool> AnyConnection::set_nx_px(std::string_view key, std::string_view value,
                                                        std::int64_t px_ms) {
    return std::visit([&](auto& c) { return c.set_nx_px(key, value, px_ms); }, conn_);
}

HITBOX_LIB_INLINE Result<bool> AnyConnection::del_if_equal(std::string_view key, std::string_view value) {
    return std::visit([&](auto& c) { return c.del_if_equal(key, value); }, conn_);
}

HITBOX_LIB_INLINE std::vector<Result<std::optional<std::string>>> AnyConnection::get_many(
    std::span<const std::string> keys) {
    return std::visit([&](auto& c) { return c.get_many(keys); }, conn_);
}

HITBOX_LIB_INLINE std::vector<Result<bool>> AnyConnection::write_many(std::span<const ConnectionWrite> writes) {
    return std::visit([&](auto& c) { return c.write_many(writes); }, conn_);
}

HITBOX_LIB_INLINE Result<void> AnyConnection::ping() {
    return std::visit([](auto& c) { return c.ping(); }, conn_);
}

HITBOX_LIB_INLINE ConnectionCounters AnyConnection::counters() const {
    if (const auto* c = cluster()) return c->counters().connections;
    return std::get<SingleNode>(conn_).counters();
}

}  // namespace hitbox
