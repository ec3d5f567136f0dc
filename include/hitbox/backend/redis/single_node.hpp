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
#include <hitbox/backend/redis/detail/key_commands.hpp>
#include <hitbox/backend/redis/detail/node_connection.hpp>
#include <hitbox/backend/redis/detail/resp.hpp>
#include <hitbox/backend/redis/detail/url.hpp>
#include <hitbox/core/concepts.hpp>
#include <hitbox/core/error.hpp>

namespace hitbox {

/// Connection policy for a single Redis server (see hitbox::Connection). Built by RedisBackend's builder
/// from `ConnectionMode::single(url)`; construction validates the URL and options but does not connect.
/// Copies share the connection. get / set_px / del / get_many / write_many come from detail::KeyCommands;
/// batches are one pipeline on the connection.
class SingleNode : public detail::KeyCommands<SingleNode> {
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

    /// PING: connects if needed; an explicit health check (build() never touches the network).
    Result<void> ping() {
        auto& buf = detail::command_scratch();
        if (!detail::append_command(buf, {"PING"})) return fail(detail::format_error());
        auto reply = exchange_one({}, buf, false);
        if (!reply) return fail(reply.error());
        return detail::status_reply(**reply, "PING");
    }

    /// Counters of the shared connection.
    ConnectionCounters counters() const noexcept { return node_->counters(); }
    /// "host:port" or "unix:/path" (never credentials).
    const std::string& address() const noexcept { return node_->address(); }
    /// The effective timeouts and backoff.
    const detail::NodeSettings& settings() const noexcept { return node_->settings(); }

private:
    explicit SingleNode(std::shared_ptr<detail::NodeConnection> node) : node_(std::move(node)) {}

    friend class detail::KeyCommands<SingleNode>;

    Result<detail::ReplyPtr> exchange_one(std::string_view, std::string_view command, bool) {
        auto replies = node_->execute(command, 1);
        if (!replies) return fail(replies.error());
        return std::move(replies->front());
    }

    detail::BatchReplies exchange_many(std::span<const std::string_view> keys, std::string_view buffer,
                                       std::span<const std::size_t>, bool) {
        detail::BatchReplies out;
        auto replies = node_->execute(buffer, keys.size());
        if (replies) {
            out.replies = std::move(*replies);
            out.errors.resize(keys.size());
        } else {
            out.replies.resize(keys.size());
            out.errors.assign(keys.size(), replies.error());
        }
        return out;
    }

    std::shared_ptr<detail::NodeConnection> node_;
};

static_assert(Connection<SingleNode>);

}  // namespace hitbox
