#pragma once
/// \file
/// detail::ClusterRouter: routes commands of the Cluster connection policy to the node that owns each key's
/// hash slot, over one detail::NodeConnection (multiplexed, auto-pipelined) per node.
///
/// The slot table is an array of 16384 atomic node pointers, so routing a command costs one CRC16 and one
/// load. Nodes are created on first sight and live as long as the router (a node that leaves the topology
/// keeps an idle connection), so a pointer read from the table is always valid. The table is filled from
/// `CLUSTER SLOTS` of any reachable node, on first use. A `MOVED` patches the slot at once and asks for a
/// full refresh (at most one per `min_refresh_interval`, done by the caller that gets the refresh lock; the
/// others carry on); `ASK` resends `ASKING` + the command to the named node without touching the map;
/// `TRYAGAIN` / `CLUSTERDOWN` are retried with a doubling pause within the caller's deadline; a connection
/// failure refreshes the map from the other nodes and retries when the slot moved. Redirections per
/// command are bounded.

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <hitbox/backend/redis/connection_mode.hpp>
#include <hitbox/backend/redis/detail/crc16.hpp>
#include <hitbox/backend/redis/detail/node_connection.hpp>
#include <hitbox/backend/redis/detail/resp.hpp>
#include <hitbox/backend/redis/detail/slot_map.hpp>
#include <hitbox/backend/redis/detail/url.hpp>
#include <hitbox/core/error.hpp>

namespace hitbox::detail {

/// Most MOVED / ASK hops (and reconnect hops) one command follows before giving up.
inline constexpr int cluster_max_redirects = 16;
/// Shortest time between two full slot-map refreshes triggered by redirections or failures.
inline constexpr std::chrono::milliseconds cluster_min_refresh_interval{100};
/// First pause before retrying a TRYAGAIN / CLUSTERDOWN; it doubles up to cluster_max_retry_pause.
inline constexpr std::chrono::milliseconds cluster_first_retry_pause{10};
inline constexpr std::chrono::milliseconds cluster_max_retry_pause{200};

/// One cluster node: its connection and its address.
struct ClusterNode {
    explicit ClusterNode(NodeSettings settings, ClusterAddress where)
        : conn(std::move(settings)), address(std::move(where)) {}
    NodeConnection conn;
    ClusterAddress address;
};

/// Counters of the routing layer (the node connections keep their own).
struct ClusterRouterCounters {
    std::atomic<std::uint64_t> moved{0}, ask{0}, retries{0}, refreshes{0}, refresh_failures{0};
};

/// The slot-routing core of the Cluster policy (see the file comment). Thread-safe.
class ClusterRouter {
  public:
    using SteadyClock = std::chrono::steady_clock;

    /// `seeds`: where to ask for the topology; `node_template`: credentials and timeouts for every node
    /// (its endpoint's host and port are replaced per node).
    ClusterRouter(std::vector<RedisEndpoint> seeds, NodeSettings node_template, bool read_from_replicas)
        : seeds_(std::move(seeds)), template_(std::move(node_template)) {
        for (auto& s : slots_) s.store(nullptr, std::memory_order_relaxed);
        if (read_from_replicas) {
            replicas_ = std::make_unique<std::array<std::atomic<ClusterNode*>, cluster_slot_count>>();
            for (auto& s : *replicas_) s.store(nullptr, std::memory_order_relaxed);
        }
    }

    ClusterRouter(const ClusterRouter&) = delete;
    ClusterRouter& operator=(const ClusterRouter&) = delete;

    /// The latest time an operation started now may finish: connect + command timeout (a command may have
    /// to connect to the node it is redirected to).
    SteadyClock::time_point deadline_from_now() const {
        return SteadyClock::now() + template_.connect_timeout + template_.command_timeout;
    }

    /// Runs one formatted command for `slot` and returns its reply (a non-redirect error reply is returned
    /// as a reply). `read`: may go to a replica when replica reads are on.
    Result<ReplyPtr> run(std::uint16_t slot, std::string_view command, bool read, SteadyClock::time_point deadline) {
        if (auto ok = ensure_map(); !ok) return fail(ok.error());
        ClusterNode* ask_node = nullptr;
        auto pause = cluster_first_retry_pause;
        int hops = 0;
        std::string framed;
        for (;;) {
            bool via_replica = false;
            ClusterNode* node = ask_node;
            if (node == nullptr) {
                auto routed = route(slot, read, via_replica);
                if (!routed) return fail(routed.error());
                node = *routed;
            }
            std::string_view send = command;
            std::size_t count = 1;
            if (ask_node != nullptr || via_replica) {
                framed.clear();
                append_command(framed, {ask_node != nullptr ? std::string_view("ASKING") : "READONLY"});
                framed.append(command);
                send = framed;
                count = 2;
            }
            auto replies = exchange(*node, send, count, deadline);
            if (!replies) {
                const auto kind = replies.error().kind();
                if ((kind == ErrorKind::connection || kind == ErrorKind::timeout) && ask_node == nullptr) {
                    // The node may be gone: look at the topology from the others; retry if the slot moved.
                    request_refresh(node);
                    bool again_replica = false;
                    auto now_owner = route(slot, read, again_replica);
                    if (kind == ErrorKind::connection && now_owner && *now_owner != node &&
                        ++hops < cluster_max_redirects && SteadyClock::now() < deadline)
                        continue;
                }
                return fail(replies.error());
            }
            ReplyPtr reply = std::move(replies->back());
            if (reply->type != REDIS_REPLY_ERROR) return reply;
            const auto text = reply_text(*reply);
            const auto kind = classify_cluster_error(text);
            if (kind == ClusterReply::other) return reply;
            if (kind == ClusterReply::tryagain || kind == ClusterReply::clusterdown) {
                counters_.retries.fetch_add(1, std::memory_order_relaxed);
                const auto now = SteadyClock::now();
                if (now + pause >= deadline)
                    return fail(ErrorKind::cluster_down, node->address.text() + " answered " +
                                                             std::string(text.substr(0, 120)) +
                                                             " until the command deadline");
                std::this_thread::sleep_for(pause);
                pause = std::min(2 * pause, cluster_max_retry_pause);
                continue;  // an ASK target stays the target: the migration is still in progress
            }
            auto redirect = parse_redirect(text, node->address.host);
            if (!redirect) return fail(ErrorKind::protocol, "unreadable redirection from " + node->address.text());
            if (++hops >= cluster_max_redirects)
                return fail(ErrorKind::connection, "slot " + std::to_string(slot) + ": more than " +
                                                       std::to_string(cluster_max_redirects) + " redirections");
            ClusterNode* target = node_for(redirect->target);
            if (redirect->ask) {
                counters_.ask.fetch_add(1, std::memory_order_relaxed);
                ask_node = target;
            } else {
                counters_.moved.fetch_add(1, std::memory_order_relaxed);
                ask_node = nullptr;
                slots_[redirect->slot].store(target, std::memory_order_release);
                if (replicas_) (*replicas_)[redirect->slot].store(nullptr, std::memory_order_release);
                request_refresh(nullptr);
            }
        }
    }

    /// Runs `commands` (command i is bytes [offsets[i], offsets[i+1]) of `buffer`, for slot `slots[i]`):
    /// one pipeline per node, all nodes in flight at once; commands that are redirected or whose node
    /// failed are then run one by one through `run`. Replies in input order.
    BatchReplies run_many(std::span<const std::uint16_t> slots, std::string_view buffer,
                          std::span<const std::size_t> offsets, bool read, SteadyClock::time_point deadline) {
        const std::size_t n = slots.size();
        BatchReplies out{std::vector<ReplyPtr>(n), std::vector<std::optional<Error>>(n)};
        if (auto ok = ensure_map(); !ok) {
            for (auto& e : out.errors) e = ok.error();
            return out;
        }
        auto piece = [&](std::size_t i) { return buffer.substr(offsets[i], offsets[i + 1] - offsets[i]); };

        struct Group {
            ClusterNode* node;
            bool replica;
            std::string commands;
            std::vector<std::size_t> index;
            std::optional<NodeConnection::Pending> pending;
            std::optional<Error> error;
        };
        std::vector<Group> groups;
        std::vector<std::size_t> retry;
        for (std::size_t i = 0; i < n; ++i) {
            bool via_replica = false;
            auto routed = route(slots[i], read, via_replica);
            if (!routed) {
                out.errors[i] = routed.error();
                continue;
            }
            auto it = std::find_if(groups.begin(), groups.end(),
                                   [&](const Group& g) { return g.node == *routed && g.replica == via_replica; });
            if (it == groups.end()) {
                groups.push_back(Group{*routed, via_replica, {}, {}, std::nullopt, std::nullopt});
                it = groups.end() - 1;
                if (via_replica) append_command(it->commands, {"READONLY"});
            }
            it->commands.append(piece(i));
            it->index.push_back(i);
        }
        for (auto& g : groups) {
            auto p = g.node->conn.submit(g.commands, g.index.size() + (g.replica ? 1 : 0));
            if (p)
                g.pending = std::move(*p);
            else
                g.error = p.error();
        }
        for (auto& g : groups) {
            if (g.pending) {
                auto replies = g.node->conn.wait(*g.pending, deadline);
                if (!replies) {
                    g.error = replies.error();
                } else {
                    const std::size_t skip = g.replica ? 1 : 0;
                    for (std::size_t k = 0; k < g.index.size(); ++k) {
                        ReplyPtr& r = (*replies)[k + skip];
                        if (r->type == REDIS_REPLY_ERROR && classify_cluster_error(reply_text(*r)) != ClusterReply::other)
                            retry.push_back(g.index[k]);
                        else
                            out.replies[g.index[k]] = std::move(r);
                    }
                }
            }
            if (g.error) {
                if (g.error->kind() == ErrorKind::connection) {
                    retry.insert(retry.end(), g.index.begin(), g.index.end());
                } else {
                    for (auto i : g.index) out.errors[i] = *g.error;
                    if (g.error->kind() == ErrorKind::timeout) request_refresh(g.node);
                }
            }
        }
        std::sort(retry.begin(), retry.end());
        for (auto i : retry) {
            auto r = run(slots[i], piece(i), read, deadline);
            if (r)
                out.replies[i] = std::move(*r);
            else
                out.errors[i] = r.error();
        }
        return out;
    }

    /// Loads the slot map now (from any node), bypassing the rate limit. For health checks and tests.
    Result<void> refresh() {
        std::lock_guard<std::mutex> lk(refresh_mu_);
        return refresh_locked(nullptr);
    }

    /// Loads the slot map unless it is loaded; the first operation calls it.
    Result<void> ensure_map() {
        if (loaded_.load(std::memory_order_acquire)) return {};
        std::lock_guard<std::mutex> lk(refresh_mu_);
        if (loaded_.load(std::memory_order_relaxed)) return {};
        return refresh_locked(nullptr);
    }

    /// The current map as ranges of consecutive slots with the same master (replicas not listed).
    std::vector<ClusterSlotRange> slot_ranges() const {
        std::vector<ClusterSlotRange> out;
        ClusterNode* run_node = nullptr;
        for (std::uint32_t s = 0; s < cluster_slot_count; ++s) {
            ClusterNode* node = slots_[s].load(std::memory_order_acquire);
            if (node != nullptr && node == run_node && out.back().last + 1u == s) {
                out.back().last = static_cast<std::uint16_t>(s);
            } else if (node != nullptr) {
                out.push_back(ClusterSlotRange{static_cast<std::uint16_t>(s), static_cast<std::uint16_t>(s),
                                               node->address, {}});
            }
            run_node = node;
        }
        return out;
    }

    /// Every node connection ever opened or announced (address and counters).
    std::vector<std::pair<std::string, ConnectionCounters>> node_counters() const {
        std::lock_guard<std::mutex> lk(nodes_mu_);
        std::vector<std::pair<std::string, ConnectionCounters>> out;
        for (const auto& n : nodes_) out.emplace_back(n->address.text(), n->conn.counters());
        return out;
    }

    /// The masters of the current map, each once.
    std::vector<ClusterNode*> masters() const {
        std::vector<ClusterNode*> out;
        for (const auto& s : slots_) {
            ClusterNode* n = s.load(std::memory_order_acquire);
            if (n != nullptr && std::find(out.begin(), out.end(), n) == out.end()) out.push_back(n);
        }
        return out;
    }

    /// Runs `count` commands on one node within `deadline`.
    Result<std::vector<ReplyPtr>> exchange(ClusterNode& node, std::string_view commands, std::size_t count,
                                           SteadyClock::time_point deadline) {
        auto pending = node.conn.submit(commands, count);
        if (!pending) return fail(pending.error());
        return node.conn.wait(*pending, deadline);
    }

    const ClusterRouterCounters& counters() const noexcept { return counters_; }
    const NodeSettings& node_settings() const noexcept { return template_; }

  private:
    /// The node for `slot`: its master, or with replica reads on and `read`, a replica (via_replica set).
    Result<ClusterNode*> route(std::uint16_t slot, bool read, bool& via_replica) {
        via_replica = false;
        if (read && replicas_) {
            if (ClusterNode* r = (*replicas_)[slot].load(std::memory_order_acquire)) {
                via_replica = true;
                return r;
            }
        }
        if (ClusterNode* m = slots_[slot].load(std::memory_order_acquire)) return m;
        request_refresh(nullptr);
        if (ClusterNode* m = slots_[slot].load(std::memory_order_acquire)) return m;
        return fail(ErrorKind::cluster_down, "hash slot " + std::to_string(slot) + " is not served by any node");
    }

    /// The node at `where`, created (not connected) on first sight.
    ClusterNode* node_for(const ClusterAddress& where) {
        std::lock_guard<std::mutex> lk(nodes_mu_);
        for (const auto& n : nodes_)
            if (n->address == where) return n.get();
        NodeSettings s = template_;
        s.endpoint.transport = RedisEndpoint::Transport::tcp;
        s.endpoint.host = where.host;
        s.endpoint.port = where.port;
        s.endpoint.db = 0;
        nodes_.push_back(std::make_unique<ClusterNode>(std::move(s), where));
        return nodes_.back().get();
    }

    /// A rate-limited refresh by whoever gets the lock first; the others do not wait for it.
    void request_refresh(ClusterNode* suspect) {
        std::unique_lock<std::mutex> lk(refresh_mu_, std::try_to_lock);
        if (!lk.owns_lock()) return;
        if (SteadyClock::now() - last_refresh_ < cluster_min_refresh_interval) return;
        [[maybe_unused]] auto r = refresh_locked(suspect);
    }

    /// Asks the known masters, then the other known nodes, then the seeds (`suspect` last) for CLUSTER
    /// SLOTS, and installs the first answer.
    Result<void> refresh_locked(ClusterNode* suspect) {
        last_refresh_ = SteadyClock::now();
        counters_.refreshes.fetch_add(1, std::memory_order_relaxed);
        std::vector<ClusterNode*> candidates = masters();
        {
            std::lock_guard<std::mutex> lk(nodes_mu_);
            for (const auto& n : nodes_)
                if (std::find(candidates.begin(), candidates.end(), n.get()) == candidates.end())
                    candidates.push_back(n.get());
        }
        for (const auto& seed : seeds_) {
            ClusterNode* n = node_for(ClusterAddress{seed.host, seed.port});
            if (std::find(candidates.begin(), candidates.end(), n) == candidates.end()) candidates.push_back(n);
        }
        if (suspect != nullptr) {
            candidates.erase(std::remove(candidates.begin(), candidates.end(), suspect), candidates.end());
            candidates.push_back(suspect);
        }
        std::string command;
        append_command(command, {"CLUSTER", "SLOTS"});
        std::optional<Error> last;
        for (ClusterNode* node : candidates) {
            auto replies = node->conn.execute(command, 1);
            if (!replies) {
                last = replies.error();
                continue;
            }
            auto ranges = parse_cluster_slots(*replies->front(), node->address.host);
            if (!ranges) {
                last = ranges.error();
                if (last->message().find("cluster support disabled") != std::string::npos)
                    last = Error(ErrorKind::config, node->address.text() +
                                                        " is not a cluster node (cluster support disabled)");
                continue;
            }
            if (ranges->empty()) {
                last = Error(ErrorKind::cluster_down, node->address.text() + " reports no slot assigned");
                continue;
            }
            install(*ranges);
            loaded_.store(true, std::memory_order_release);
            close_seeds_outside(*ranges);
            return {};
        }
        counters_.refresh_failures.fetch_add(1, std::memory_order_relaxed);
        Error e = last ? *last : Error(ErrorKind::connection, "no cluster node known");
        return fail(Error(e.kind(), "cannot read the cluster topology from any of " +
                                        std::to_string(candidates.size()) + " nodes; last: " + e.message()));
    }

    /// Closes the connection of every seed that the topology does not list under the same address (a seed
    /// given by host name, say, while the cluster announces IP addresses): the topology's own node serves
    /// its slots, and the seed's connection would only sit idle with its I/O thread. The node object stays
    /// (it is asked again if every known node fails) and reconnects on its next command.
    void close_seeds_outside(const std::vector<ClusterSlotRange>& ranges) {
        for (const auto& seed : seeds_) {
            const ClusterAddress where{seed.host, seed.port};
            const bool listed = std::any_of(ranges.begin(), ranges.end(), [&](const ClusterSlotRange& r) {
                return r.master == where ||
                       std::find(r.replicas.begin(), r.replicas.end(), where) != r.replicas.end();
            });
            if (!listed) node_for(where)->conn.close_if_idle();
        }
    }

    /// Points each slot of `ranges` at its master (and first replica); slots not listed keep their node.
    void install(const std::vector<ClusterSlotRange>& ranges) {
        for (const auto& r : ranges) {
            ClusterNode* master = node_for(r.master);
            ClusterNode* replica = replicas_ && !r.replicas.empty() ? node_for(r.replicas.front()) : nullptr;
            for (std::uint32_t s = r.first; s <= r.last; ++s) {
                slots_[s].store(master, std::memory_order_release);
                if (replicas_) (*replicas_)[s].store(replica, std::memory_order_release);
            }
        }
    }

    const std::vector<RedisEndpoint> seeds_;
    const NodeSettings template_;
    std::array<std::atomic<ClusterNode*>, cluster_slot_count> slots_;
    std::unique_ptr<std::array<std::atomic<ClusterNode*>, cluster_slot_count>> replicas_;
    std::atomic<bool> loaded_{false};

    mutable std::mutex nodes_mu_;  // guards nodes_ (the nodes themselves are never destroyed before *this)
    std::vector<std::unique_ptr<ClusterNode>> nodes_;

    std::mutex refresh_mu_;  // one refresh at a time; guards last_refresh_
    SteadyClock::time_point last_refresh_{};

    ClusterRouterCounters counters_;
};

}  // namespace hitbox::detail
