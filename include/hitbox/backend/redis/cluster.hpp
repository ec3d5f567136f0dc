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
#include <hitbox/backend/redis/detail/cluster_router.hpp>
#include <hitbox/backend/redis/detail/crc16.hpp>
#include <hitbox/backend/redis/detail/key_commands.hpp>
#include <hitbox/backend/redis/detail/resp.hpp>
#include <hitbox/backend/redis/detail/slot_map.hpp>
#include <hitbox/backend/redis/detail/url.hpp>
#include <hitbox/backend/redis/single_node.hpp>
#include <hitbox/core/concepts.hpp>
#include <hitbox/core/error.hpp>

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

/// Builds the router's seeds and node settings from the mode and options (no network access).
inline Result<std::shared_ptr<ClusterRouter>> make_cluster_router(const ClusterMode& config,
                                                                  const ConnectionOptions& options) {
    if (config.max_nodes == 0) return fail(ErrorKind::config, "cluster mode: max_nodes must be positive");
    if (config.urls.empty())
        return fail(ErrorKind::config, "cluster mode needs at least one seed node URL (redis://host:port)");
    std::vector<RedisEndpoint> seeds;
    std::optional<NodeSettings> first;
    for (const auto& url : config.urls) {
        auto endpoint = parse_redis_url(url);
        if (!endpoint) return fail(endpoint.error());
        if (endpoint->transport != RedisEndpoint::Transport::tcp)
            return fail(ErrorKind::config,
                        "Redis URL '" + redact_url(url) + "': cluster nodes are reached over TCP (redis://host:port)");
        if (endpoint->db != 0)
            return fail(ErrorKind::config, "Redis URL '" + redact_url(url) + "': a cluster has only database 0");
        auto settings = make_node_settings(*endpoint, options);
        if (!settings) return fail(settings.error());
        if (!first) first = std::move(*settings);
        seeds.push_back(std::move(*endpoint));
    }
    return std::make_shared<ClusterRouter>(std::move(seeds), std::move(*first), config.read_from_replicas,
                                           config.max_nodes);
}

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
    static Result<Cluster> create(const ClusterMode& config, const ConnectionOptions& options) {
        auto router = detail::make_cluster_router(config, options);
        if (!router) return fail(router.error());
        return Cluster(std::move(*router));
    }

    /// The hash slot (0..16383) of a stored key, as `CLUSTER KEYSLOT` computes it.
    static std::uint16_t slot_of(std::string_view stored_key) noexcept { return detail::key_slot(stored_key); }

    /// PING every master of the slot map (loading the map first): an explicit health check.
    Result<void> ping() { return router_->ping_masters(); }

    /// Reloads the slot map from any node now (the router also does this by itself on MOVED and failures),
    /// within connect + command timeout, and drops the nodes that left the topology.
    Result<void> refresh_topology() { return router_->refresh(); }

    /// "host:port" of every node known now (the topology's masters, replicas in use, seeds not yet
    /// dropped, redirection targets).
    std::vector<std::string> nodes() const { return router_->node_addresses(); }

    /// The slot map as ranges of consecutive slots with their master ("host:port"); empty before first use.
    std::vector<std::pair<std::pair<std::uint16_t, std::uint16_t>, std::string>> slot_map() const {
        std::vector<std::pair<std::pair<std::uint16_t, std::uint16_t>, std::string>> out;
        for (const auto& r : router_->slot_ranges()) out.push_back({{r.first, r.last}, r.master.text()});
        return out;
    }

    /// "host:port" of the master that currently owns `slot` per the map, or empty when unknown.
    std::string owner_of(std::uint16_t slot) const {
        for (const auto& r : router_->slot_ranges())
            if (slot >= r.first && slot <= r.last) return r.master.text();
        return {};
    }

    /// Routing counters and the node connections' counters summed.
    ClusterCounters counters() const {
        ClusterCounters c;
        const auto& rc = router_->counters();
        c.moved = rc.moved.load(std::memory_order_relaxed);
        c.ask = rc.ask.load(std::memory_order_relaxed);
        c.retries = rc.retries.load(std::memory_order_relaxed);
        c.refreshes = rc.refreshes.load(std::memory_order_relaxed);
        c.refresh_failures = rc.refresh_failures.load(std::memory_order_relaxed);
        c.nodes_dropped = rc.nodes_dropped.load(std::memory_order_relaxed);
        const auto census = router_->census();
        c.nodes = census.live;
        c.connections = census.totals;
        return c;
    }

    /// The effective timeouts and backoff (shared by every node).
    const detail::NodeSettings& settings() const noexcept { return router_->node_settings(); }

private:
    explicit Cluster(std::shared_ptr<detail::ClusterRouter> router) : router_(std::move(router)) {}

    friend class detail::KeyCommands<Cluster>;

    // GETs may go to a replica when replica reads are on; everything else goes to the slot's master.
    Result<detail::ReplyPtr> exchange_one(std::string_view key, std::string_view command, bool read) {
        return router_->run(detail::key_slot(key), command, read, router_->deadline_from_now());
    }

    // Split by node, pipelined on every node at once.
    detail::BatchReplies exchange_many(std::span<const std::string_view> keys, std::string_view buffer,
                                       std::span<const std::size_t> offsets, bool read) {
        std::vector<std::uint16_t> slots;
        slots.reserve(keys.size());
        for (auto k : keys) slots.push_back(detail::key_slot(k));
        return router_->run_many(slots, buffer, offsets, read, router_->deadline_from_now());
    }

    std::shared_ptr<detail::ClusterRouter> router_;
};

static_assert(Connection<Cluster>);

}  // namespace hitbox
