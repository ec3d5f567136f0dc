#pragma once
/// \file
/// hitbox::SingleNode: the connection policy for one Redis server. All copies share one lazily opened,
/// multiplexed, automatically pipelined connection (detail::NodeConnection).

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <hitbox/backend/redis/connection_mode.hpp>
#include <hitbox/backend/redis/detail/node_connection.hpp>
#include <hitbox/backend/redis/detail/resp.hpp>
#include <hitbox/backend/redis/detail/url.hpp>
#include <hitbox/core/concepts.hpp>
#include <hitbox/core/error.hpp>

namespace hitbox {

namespace detail {

/// The calling thread's buffer for formatting commands (execute copies it, so it is reusable at once).
inline std::string& command_scratch() {
    thread_local std::string buf;
    if (buf.capacity() > (std::size_t{1} << 20)) std::string().swap(buf);  // do not pin a huge batch's buffer
    buf.clear();
    return buf;
}

inline Error format_error() {
    return Error(ErrorKind::encode, "cannot format the Redis command (out of memory)");
}

inline bool append_write(std::string& out, const ConnectionWrite& w) {
    if (w.remove) return append_command(out, {"DEL", w.key});
    if (!w.px_ms) return append_command(out, {"SET", w.key, w.value});
    const std::string px = std::to_string(*w.px_ms);
    return append_command(out, {"SET", w.key, w.value, "PX", px});
}

inline Result<bool> write_reply(const redisReply& r, const ConnectionWrite& w) {
    if (w.remove) return count_reply(r, "DEL");
    auto ok = status_reply(r, "SET");
    if (!ok) return fail(ok.error());
    return true;
}

}  // namespace detail

/// Connection policy for a single Redis server (see hitbox::Connection). Built by RedisBackend's builder
/// from `ConnectionMode::single(url)`; construction validates the URL and options but does not connect.
/// Copies share the connection.
class SingleNode {
  public:
    /// Connection policy identity: the mode name, and the ConnectionMode value the builder takes.
    static constexpr std::string_view mode = "single";
    using config_type = SingleNodeMode;

    /// Parses the URL, merges credentials (options win) and checks the options. No network access.
    static Result<SingleNode> create(const SingleNodeMode& config, const ConnectionOptions& options) {
        auto endpoint = detail::parse_redis_url(config.url);
        if (!endpoint) return fail(endpoint.error());
        auto settings = detail::make_node_settings(std::move(*endpoint), options);
        if (!settings) return fail(settings.error());
        return SingleNode(std::make_shared<detail::NodeConnection>(std::move(*settings)));
    }

    /// GET key: the value, or nullopt when the key does not exist.
    Result<std::optional<std::string>> get(std::string_view key) {
        auto& buf = detail::command_scratch();
        if (!detail::append_command(buf, {"GET", key})) return fail(detail::format_error());
        auto replies = node_->execute(buf, 1);
        if (!replies) return fail(replies.error());
        return detail::bulk_reply(*replies->front(), "GET");
    }

    /// One `SET key value [PX px_ms]`.
    Result<void> set_px(std::string_view key, std::string_view value, std::optional<std::int64_t> px_ms) {
        auto r = write_one(ConnectionWrite{key, value, px_ms, false});
        if (!r) return fail(r.error());
        return {};
    }

    /// DEL key: true when the key existed.
    Result<bool> del(std::string_view key) { return write_one(ConnectionWrite{key, {}, std::nullopt, true}); }

    /// Pipelined GETs, one result per key in key order.
    std::vector<Result<std::optional<std::string>>> get_many(std::span<const std::string> keys) {
        std::vector<Result<std::optional<std::string>>> out;
        out.reserve(keys.size());
        if (keys.empty()) return out;
        auto& buf = detail::command_scratch();
        for (const auto& k : keys)
            if (!detail::append_command(buf, {"GET", k}))
                return fill(out, keys.size(), detail::format_error());
        auto replies = node_->execute(buf, keys.size());
        if (!replies) return fill(out, keys.size(), replies.error());
        for (const auto& r : *replies) out.push_back(detail::bulk_reply(*r, "GET"));
        return out;
    }

    /// Pipelined SET / DEL, one result per write in input order.
    std::vector<Result<bool>> write_many(std::span<const ConnectionWrite> writes) {
        std::vector<Result<bool>> out;
        out.reserve(writes.size());
        if (writes.empty()) return out;
        auto& buf = detail::command_scratch();
        for (const auto& w : writes)
            if (!detail::append_write(buf, w)) return fill(out, writes.size(), detail::format_error());
        auto replies = node_->execute(buf, writes.size());
        if (!replies) return fill(out, writes.size(), replies.error());
        for (std::size_t i = 0; i < writes.size(); ++i)
            out.push_back(detail::write_reply(*(*replies)[i], writes[i]));
        return out;
    }

    /// PING: connects if needed; an explicit health check (build() never touches the network).
    Result<void> ping() {
        auto& buf = detail::command_scratch();
        if (!detail::append_command(buf, {"PING"})) return fail(detail::format_error());
        auto replies = node_->execute(buf, 1);
        if (!replies) return fail(replies.error());
        return detail::status_reply(*replies->front(), "PING");
    }

    /// Counters of the shared connection.
    ConnectionCounters counters() const noexcept { return node_->counters(); }
    /// "host:port" or "unix:/path" (never credentials).
    const std::string& address() const noexcept { return node_->address(); }
    /// The effective timeouts and backoff.
    const detail::NodeSettings& settings() const noexcept { return node_->settings(); }

  private:
    explicit SingleNode(std::shared_ptr<detail::NodeConnection> node) : node_(std::move(node)) {}

    Result<bool> write_one(const ConnectionWrite& w) {
        auto& buf = detail::command_scratch();
        if (!detail::append_write(buf, w)) return fail(detail::format_error());
        auto replies = node_->execute(buf, 1);
        if (!replies) return fail(replies.error());
        return detail::write_reply(*replies->front(), w);
    }

    template <class R>
    static std::vector<R> fill(std::vector<R>& out, std::size_t n, const Error& e) {
        out.clear();
        for (std::size_t i = 0; i < n; ++i) out.push_back(fail(e));
        return std::move(out);
    }

    std::shared_ptr<detail::NodeConnection> node_;
};

static_assert(Connection<SingleNode>);

}  // namespace hitbox
