#pragma once
/// \file
/// The definitions of SingleNode's members (see hitbox/core/linkage.hpp): single_node.hpp includes this
/// file in a header-only build; src/redis_connection.cpp compiles it once for HITBOX_COMPILED_LIB.

#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include <hitbox/backend/redis/detail/node_connection.hpp>
#include <hitbox/backend/redis/detail/url.hpp>
#include <hitbox/backend/redis/single_node.hpp>
#include <hitbox/core/linkage.hpp>

namespace hitbox {

HITBOX_LIB_INLINE Result<SingleNode> SingleNode::create(const SingleNodeMode& config,
                                                        const ConnectionOptions& options) {
    auto endpoint = detail::parse_redis_url(config.url);
    if (!endpoint) return fail(endpoint.error());
    auto settings = detail::make_node_settings(std::move(*endpoint), options);
    if (!settings) return fail(settings.error());
    return SingleNode(std::shared_ptr<detail::NodeConnection>(new detail::NodeConnection(std::move(*settings)),
                                                              &detail::NodeConnection::dispose));
}

HITBOX_LIB_INLINE Result<void> SingleNode::ping() {
    auto& buf = detail::command_scratch();
    if (!detail::append_command(buf, {"PING"})) return fail(detail::format_error());
    auto reply = exchange_one({}, buf, false);
    if (!reply) return fail(reply.error());
    return detail::status_reply(**reply, "PING");
}

HITBOX_LIB_INLINE ConnectionCounters SingleNode::counters() const noexcept { return node_->counters(); }

HITBOX_LIB_INLINE const std::string& SingleNode::address() const noexcept { return node_->address(); }

HITBOX_LIB_INLINE const detail::NodeSettings& SingleNode::settings() const noexcept { return node_->settings(); }

HITBOX_LIB_INLINE Result<detail::ReplyPtr> SingleNode::exchange_one(std::string_view, std::string_view command, bool) {
    auto replies = node_->execute(command, 1);
    if (!replies) return fail(replies.error());
    return std::move(replies->front());
}

HITBOX_LIB_INLINE detail::BatchReplies SingleNode::exchange_many(std::span<const std::string_view> keys,
                                                                 std::string_view buffer, std::span<const std::size_t>,
                                                                 bool) {
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

}  // namespace hitbox
