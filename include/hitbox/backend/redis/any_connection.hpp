#pragma once
/// \file
/// hitbox::AnyConnection: a connection policy that is SingleNode or Cluster, chosen at run time from
/// `ConnectionMode::any(...)` or `ConnectionMode::parse(name, urls)`. For services that read the Redis mode
/// from their configuration and still want one RedisBackend type (no AnyBackend, no virtual calls): each
/// command costs one branch on the held alternative.
///
/// \code
/// auto mode = hitbox::ConnectionMode::parse(cfg.redis_mode, cfg.redis_urls);  // "single" or "cluster"
/// if (!mode) return mode.error();
/// auto redis = hitbox::RedisBackend<>::builder().connection(std::move(*mode)).build();
/// // Result<RedisBackend<Bitcode, BinaryFormat, PassthroughCompressor, AnyConnection>>
/// \endcode

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include <hitbox/backend/redis/cluster.hpp>
#include <hitbox/backend/redis/connection_mode.hpp>
#include <hitbox/backend/redis/single_node.hpp>
#include <hitbox/core/concepts.hpp>
#include <hitbox/core/error.hpp>
#include <hitbox/core/linkage.hpp>

namespace hitbox {

/// Connection policy holding a SingleNode or a Cluster (see hitbox::Connection and the file comment).
/// Construction validates like the held policy and does not connect. Copies share the connections.
class AnyConnection {
public:
    /// Connection policy identity; the mode actually in use is active_mode().
    static constexpr std::string_view mode = "any";
    using config_type = AnyMode;

    /// Creates the policy the mode names (SingleNode::create or Cluster::create). No network access.
    static Result<AnyConnection> create(const AnyMode& config, const ConnectionOptions& options);

    /// "single" or "cluster".
    std::string_view active_mode() const noexcept;

    Result<std::optional<std::string>> get(std::string_view key);
    Result<void> set_px(std::string_view key, std::string_view value, std::optional<std::int64_t> px_ms);
    Result<bool> del(std::string_view key);
    Result<bool> set_nx_px(std::string_view key, std::string_view value, std::int64_t px_ms);
    Result<bool> del_if_equal(std::string_view key, std::string_view value);
    std::vector<Result<std::optional<std::string>>> get_many(std::span<const std::string> keys);
    std::vector<Result<bool>> write_many(std::span<const ConnectionWrite> writes);
    /// PING the server, or every master of the cluster.
    Result<void> ping();

    /// Counters of the node connection, or summed over the cluster's node connections.
    ConnectionCounters counters() const;

    /// The held policy, for what only it offers (e.g. Cluster::slot_map()); null when the other one is held.
    SingleNode* single() noexcept { return std::get_if<SingleNode>(&conn_); }
    const SingleNode* single() const noexcept { return std::get_if<SingleNode>(&conn_); }
    Cluster* cluster() noexcept { return std::get_if<Cluster>(&conn_); }
    const Cluster* cluster() const noexcept { return std::get_if<Cluster>(&conn_); }

private:
    explicit AnyConnection(SingleNode c) : conn_(std::move(c)) {}
    explicit AnyConnection(Cluster c) : conn_(std::move(c)) {}

    std::variant<SingleNode, Cluster> conn_;
};

static_assert(Connection<AnyConnection>);

}  // namespace hitbox

// The definitions: included here in a header-only build, compiled once into the library otherwise.
#if !HITBOX_COMPILED_LIB
#include <hitbox/backend/redis/detail/any_connection_impl.hpp>
#endif
