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
#include <hitbox/backend/redis/detail/node_settings.hpp>
#include <hitbox/backend/redis/detail/resp.hpp>
#include <hitbox/core/concepts.hpp>
#include <hitbox/core/error.hpp>
#include <hitbox/core/linkage.hpp>

namespace hitbox {

namespace detail {
class NodeConnection;  // detail/node_connection.hpp
}  // namespace detail

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
    static Result<SingleNode> create(const SingleNodeMode& config, const ConnectionOptions& options);

    /// PING: connects if needed; an explicit health check (build() never touches the network).
    Result<void> ping();

    /// Counters of the shared connection.
    ConnectionCounters counters() const noexcept;
    /// "host:port" or "unix:/path" (never credentials).
    const std::string& address() const noexcept;
    /// The effective timeouts and backoff.
    const detail::NodeSettings& settings() const noexcept;

private:
    explicit SingleNode(std::shared_ptr<detail::NodeConnection> node) : node_(std::move(node)) {}

    friend class detail::KeyCommands<SingleNode>;

    Result<detail::ReplyPtr> exchange_one(std::string_view, std::string_view command, bool);
    detail::BatchReplies exchange_many(std::span<const std::string_view> keys, std::string_view buffer,
                                       std::span<const std::size_t>, bool);

    std::shared_ptr<detail::NodeConnection> node_;
};

static_assert(Connection<SingleNode>);

#if HITBOX_COMPILED_LIB
// The command helpers of this policy are compiled once into the hitbox-redis library.
extern template class detail::KeyCommands<SingleNode>;
#endif

}  // namespace hitbox

// The definitions: included here in a header-only build, compiled once into the library otherwise.
#if !HITBOX_COMPILED_LIB
#include <hitbox/backend/redis/detail/single_node_impl.hpp>
#endif
