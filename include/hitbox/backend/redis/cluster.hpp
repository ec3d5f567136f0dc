#pragma once
/// \file
/// hitbox::Cluster: the connection policy for a Redis Cluster. Keys are routed by hash slot (CRC16 of the
/// stored key, `{hash tag}` rule) to their master over one multiplexed, auto-pipelined connection per node;
/// MOVED / ASK / TRYAGAIN / CLUSTERDOWN and failovers are handled inside (detail::ClusterRouter).
///
/// The slot is computed over the full stored key: `key_prefix + KeyFmt::encode(key)`. To keep several
/// keys on one slot (one node), put a `{tag}` in the key prefix (`.key_prefix("{user:42}:")`) or use a key
/// format whose bytes contain one.
///
/// \code
/// auto redis = hitbox::RedisBackend<>::builder()
///                  .connection(hitbox::ConnectionMode::cluster({"redis://10.0.0.1:6379", "redis://10.0.0.2:6379"}))
///                  .build();   // Result<RedisBackend<Bitcode, BinaryFormat, PassthroughCompressor, Cluster>>
/// \endcode

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <hitbox/backend/redis/connection_mode.hpp>
#include <hitbox/backend/redis/detail/crc16.hpp>
#include <hitbox/backend/redis/detail/key_commands.hpp>
#include <hitbox/backend/redis/detail/node_settings.hpp>
#include <hitbox/backend/redis/detail/resp.hpp>
#include <hitbox/backend/redis/single_node.hpp>
#include <hitbox/core/concepts.hpp>
#include <hitbox/core/error.hpp>
#include <hitbox/core/linkage.hpp>

namespace hitbox {

/// Counters of a Cluster connection: the routing layer's and the sum over its node connections.
struct ClusterCounters {
    ConnectionCounters connections;      ///< summed over every node connection
    std::uint64_t nodes = 0;             ///< nodes known now (connected or not; at most ClusterMode::max_nodes)
    std::uint64_t nodes_dropped = 0;     ///< nodes that left the topology, closed and freed
    std::uint64_t moved = 0;             ///< MOVED redirections followed
    std::uint64_t ask = 0;               ///< ASK redirections followed
    std::uint64_t retries = 0;           ///< TRYAGAIN / CLUSTERDOWN replies retried
    std::uint64_t refreshes = 0;         ///< slot-map refreshes attempted
    std::uint64_t refresh_failures = 0;  ///< refreshes for which no node answered
};

namespace detail {
class ClusterRouter;  // detail/cluster_router.hpp
}  // namespace detail

/// Connection policy for a Redis Cluster (see hitbox::Connection and the file comment). get / set_px / del /
/// get_many / write_many come from detail::KeyCommands: single keys go to their slot's master (GETs to a
/// replica when replica reads are on), batches are split by node and pipelined on every node at once. Built by
/// RedisBackend's builder from `ConnectionMode::cluster({urls})`; construction validates the URLs and
/// options but does not connect: the first operation reads the slot map from any reachable seed.
/// Every node uses the first URL's credentials (or the builder's username / password). Copies share the
/// connections and the slot map.
class Cluster : public detail::KeyCommands<Cluster> {
public:
    /// Connection policy identity: the mode name, and the ConnectionMode value the builder takes.
    static constexpr std::string_view mode = "cluster";
    using config_type = ClusterMode;

    /// Parses the URLs, merges credentials (options win) and checks the options. No network access.
    static Result<Cluster> create(const ClusterMode& config, const ConnectionOptions& options);

    /// The hash slot (0..16383) of a stored key, as `CLUSTER KEYSLOT` computes it.
    static std::uint16_t slot_of(std::string_view stored_key) noexcept { return detail::key_slot(stored_key); }

    /// PING every master of the slot map (loading the map first): an explicit health check.
    Result<void> ping();

    /// Reloads the slot map from any node now (the router also does this by itself on MOVED and failures),
    /// within connect + command timeout, and drops the nodes that left the topology.
    Result<void> refresh_topology();

    /// "host:port" of every node known now (the topology's masters, replicas in use, seeds not yet
    /// dropped, redirection targets).
    std::vector<std::string> nodes() const;

    /// The slot map as ranges of consecutive slots with their master ("host:port"); empty before first use.
    std::vector<std::pair<std::pair<std::uint16_t, std::uint16_t>, std::string>> slot_map() const;

    /// "host:port" of the master that currently owns `slot` per the map, or empty when unknown.
    std::string owner_of(std::uint16_t slot) const;

    /// Routing counters and the node connections' counters summed.
    ClusterCounters counters() const;

    /// The effective timeouts and backoff (shared by every node).
    const detail::NodeSettings& settings() const noexcept;

private:
    explicit Cluster(std::shared_ptr<detail::ClusterRouter> router) : router_(std::move(router)) {}

    friend class detail::KeyCommands<Cluster>;

    // GETs may go to a replica when replica reads are on; everything else goes to the slot's master.
    Result<detail::ReplyPtr> exchange_one(std::string_view key, std::string_view command, bool read);

    // Split by node, pipelined on every node at once.
    detail::BatchReplies exchange_many(std::span<const std::string_view> keys, std::string_view buffer,
                                       std::span<const std::size_t> offsets, bool read);

    std::shared_ptr<detail::ClusterRouter> router_;
};

static_assert(Connection<Cluster>);

#if HITBOX_COMPILED_LIB
// The command helpers of this policy are compiled once into the hitbox-redis library.
extern template class detail::KeyCommands<Cluster>;
#endif

}  // namespace hitbox

// The definitions: included here in a header-only build, compiled once into the library otherwise.
#if !HITBOX_COMPILED_LIB
#include <hitbox/backend/redis/detail/cluster_impl.hpp>
#endif
