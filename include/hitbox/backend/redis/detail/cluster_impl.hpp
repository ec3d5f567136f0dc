#pragma once
/// \file
/// The definitions of Cluster's members (see hitbox/core/linkage.hpp): cluster.hpp includes this file in a
/// header-only build; src/redis_connection.cpp compiles it once for HITBOX_COMPILED_LIB.

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <hitbox/backend/redis/cluster.hpp>
#include <hitbox/backend/redis/detail/cluster_router.hpp>
#include <hitbox/backend/redis/detail/node_connection.hpp>
#include <hitbox/backend/redis/detail/slot_map.hpp>
#include <hitbox/backend/redis/detail/url.hpp>
#include <hitbox/core/linkage.hpp>

namespace hitbox {

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

HITBOX_LIB_INLINE Result<Cluster> Cluster::create(const ClusterMode& config, const ConnectionOptions& options) {
    auto router = detail::make_cluster_router(config, options);
    if (!router) return fail(router.error());
    return Cluster(std::move(*router));
}

HITBOX_LIB_INLINE Result<void> Cluster::ping() { return router_->ping_masters(); }

HITBOX_LIB_INLINE Result<void> Cluster::refresh_topology() { return router_->refresh(); }

HITBOX_LIB_INLINE std::vector<std::string> Cluster::nodes() const { return router_->node_addresses(); }

HITBOX_LIB_INLINE std::vector<std::pair<std::pair<std::uint16_t, std::uint16_t>, std::string>> Cluster::slot_map()
    const {
    std::vector<std::pair<std::pair<std::uint16_t, std::uint16_t>, std::string>> out;
    for (const auto& r : router_->slot_ranges()) out.push_back({{r.first, r.last}, r.master.text()});
    return out;
}

HITBOX_LIB_INLINE std::string Cluster::owner_of(std::uint16_t slot) const {
    for (const auto& r : router_->slot_ranges())
        if (slot >= r.first && slot <= r.last) return r.master.text();
    return {};
}

HITBOX_LIB_INLINE ClusterCounters Cluster::counters() const {
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

HITBOX_LIB_INLINE const detail::NodeSettings& Cluster::settings() const noexcept { return router_->node_settings(); }

HITBOX_LIB_INLINE Result<detail::ReplyPtr> Cluster::exchange_one(std::string_view key, std::string_view command,
                                                                 bool read) {
    return router_->run(detail::key_slot(key), command, read, router_->deadline_from_now());
}

HITBOX_LIB_INLINE detail::BatchReplies Cluster::exchange_many(std::span<const std::string_view> keys,
                                                              std::string_view buffer,
                                                              std::span<const std::size_t> offsets, bool read) {
    std::vector<std::uint16_t> slots;
    slots.reserve(keys.size());
    for (auto k : keys) slots.push_back(detail::key_slot(k));
    return router_->run_many(slots, buffer, offsets, read, router_->deadline_from_now());
}

}  // namespace hitbox
