#pragma once
/// \file
/// detail::ClusterRouter: routes commands of the Cluster connection policy to the node that owns each key's
/// hash slot, over one detail::NodeConnection (multiplexed, auto-pipelined) per node.
///
/// Routing. The slot table is an array of 16384 atomic node pointers, so routing a command costs one CRC16
/// and one load. The table is filled from `CLUSTER SLOTS` of any reachable node, on first use. A `MOVED`
/// patches the slot at once and asks for a full refresh once the command is done (at most one per
/// `cluster_min_refresh_interval`, by whoever finds no refresh running; the others carry on); `ASK` resends
/// `ASKING` + the command to the named node without touching the map; `TRYAGAIN` / `CLUSTERDOWN` are
/// retried with a doubling pause within the caller's deadline; a connection failure refreshes the map from
/// the other nodes and retries when the slot moved. Redirections per command are bounded.
///
/// Deadlines. Every operation gets one deadline, connect + command timeout from its start, and everything
/// it does is bounded by it: its commands, a refresh it runs, and waiting for another caller's refresh
/// (a condition variable waited on until the waiter's own deadline; the waiter then gets that refresh's
/// outcome, it does not start another). A refresh asks the candidates (known masters, other known nodes,
/// seeds; a suspect last) in order, but does not wait for one to answer before asking the next: a further
/// candidate is asked every `refresh_hedge()` (an eighth of the command timeout, 5-250 ms) or as soon as
/// one fails, and the first usable answer wins. Unresponsive seeds listed first thus cost a hedge step
/// each, not a command timeout each.
///
/// Nodes. A node is a small record (address, slot reference count) whose NodeConnection is created on its
/// first command, so a node costs no read buffer, socket or thread before it is used. At most `max_nodes`
/// (ClusterMode::max_nodes, default 1000) are known at once: a CLUSTER SLOTS reply naming more is not
/// installed, and a redirection to one more node fails, both with a `capacity` error naming the option.
/// A node that no slot points at any more (it left the topology, was a seed the topology does not list
/// under that address, or was the target of a MOVED later patched away) is dropped: unlinked from the
/// node list, its connection closed if idle, its record freed once no routing can still hold it.
///
/// Reclamation (why a freed node is never used): operations hold a Pin of `NodeEpochs`, which counts the
/// threads inside an operation per epoch parity, in 16 cache-line stripes. A dropped node is unlinked
/// (slot tables and node list) first; then the epoch is advanced; once no pin taken in the old epoch is
/// left, nobody can hold the node (a pin taken later reads the tables after the unlink), and it is freed
/// when its connection is idle (or, at the latest, after connect + 2 x command timeout, when a connection
/// that nobody uses has either finished or reset itself). The hot path pays two uncontended atomic
/// increments for the pin beside its CRC16 and slot load; a rarely set flag tells the end of an operation
/// that there is dropping to do.
///
/// Who touches what (locks are taken in the order maintain_mu_, retired_mu_, nodes_mu_; refresh_mu_ alone):
///
/// | state                                     | written by                          | guarded by            |
/// |-------------------------------------------|-------------------------------------|-----------------------|
/// | slots_, replicas_ entries                 | install, MOVED patch                | nodes_mu_ (read free) |
/// | nodes_, ClusterNode::refs, referenced_    | node_for, install, patch, collect   | nodes_mu_             |
/// | to_close_ (unlinked, connection open)     | collect_locked; emptied by maintain | nodes_mu_             |
/// | retired_, dropped_totals_, flip_waiting_  | maintain (one at a time)            | retired_mu_           |
/// | NodeEpochs counters                       | every operation (Pin)               | atomic                |
/// | refreshing_, refresh_gen_, last_refresh_* | the caller that runs the refresh    | refresh_mu_ (+ cv)    |
/// | ClusterNode::conn_                        | its first user (compare-exchange)   | atomic                |

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_set>
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
/// With replica reads: how often a read of a slot without a replica in the map reads the map again (a
/// replica that joined, came back or had not synced when the map was read serves reads from then).
inline constexpr std::chrono::milliseconds cluster_replica_recheck{5000};
/// First pause before retrying a TRYAGAIN / CLUSTERDOWN; it doubles up to cluster_max_retry_pause.
inline constexpr std::chrono::milliseconds cluster_first_retry_pause{10};
inline constexpr std::chrono::milliseconds cluster_max_retry_pause{200};
/// Most known (non-seed) nodes one refresh asks for CLUSTER SLOTS; the seeds are asked too.
inline constexpr std::size_t cluster_refresh_known_nodes = 8;
/// Unreferenced nodes tolerated before the node list is swept (a MOVED storm leaves one per hop).
inline constexpr std::size_t cluster_unreferenced_slack = 8;

/// One cluster node: its address and, from its first command on, its connection. Created by the router
/// (node_for) and freed by it only when no routing can hold it (see the file comment).
class ClusterNode {
public:
    ClusterNode(const NodeSettings& node_template, ClusterAddress where)
        : address(std::move(where)), template_(&node_template) {}
    ClusterNode(const ClusterNode&) = delete;
    ClusterNode& operator=(const ClusterNode&) = delete;
    ~ClusterNode() { NodeConnection::dispose(conn_.load(std::memory_order_acquire)); }

    /// The connection, created on first use (no buffer, socket or thread before).
    NodeConnection& conn() {
        if (NodeConnection* c = conn_.load(std::memory_order_acquire)) return *c;
        return create_conn();
    }
    /// The connection if it was ever used, else nullptr.
    NodeConnection* conn_if_created() const noexcept { return conn_.load(std::memory_order_acquire); }

    const ClusterAddress address;
    std::uint32_t refs = 0;  ///< slot-table entries (master and replica tables) pointing here (nodes_mu_)

private:
    NodeConnection& create_conn() {
        NodeSettings s = *template_;
        s.endpoint.transport = RedisEndpoint::Transport::tcp;
        s.endpoint.host = address.host;
        s.endpoint.port = address.port;
        s.endpoint.db = 0;
        auto fresh = std::make_unique<NodeConnection>(std::move(s));
        NodeConnection* expected = nullptr;
        if (conn_.compare_exchange_strong(expected, fresh.get(), std::memory_order_acq_rel)) return *fresh.release();
        return *expected;  // another thread created it first
    }

    const NodeSettings* template_;  // the router's; outlives every node
    std::atomic<NodeConnection*> conn_{nullptr};
};

/// Epoch-based proof that no operation still holds a node (see the file comment): a Pin counts the calling
/// thread into its stripe's counter of the current epoch's parity for as long as the operation runs.
class NodeEpochs {
    struct alignas(64) Stripe {
        std::array<std::atomic<std::uint64_t>, 2> inside{};
    };

public:
    /// Held by one operation; node pointers it reads stay valid until it is destroyed.
    class Pin {
    public:
        explicit Pin(NodeEpochs& epochs) noexcept {
            Stripe& stripe = epochs.local();
            // A retry follows an epoch advance between the two loads (rare: one per node sweep).
            for (;;) {
                const std::uint64_t e = epochs.epoch_.load(std::memory_order_seq_cst);
                count_ = &stripe.inside[e & 1];
                count_->fetch_add(1, std::memory_order_seq_cst);
                if (epochs.epoch_.load(std::memory_order_seq_cst) == e) return;
                count_->fetch_sub(1, std::memory_order_release);
            }
        }
        Pin(const Pin&) = delete;
        Pin& operator=(const Pin&) = delete;
        ~Pin() { count_->fetch_sub(1, std::memory_order_release); }

    private:
        std::atomic<std::uint64_t>* count_;
    };

    /// Starts a new epoch (after nodes were unlinked); returns it.
    std::uint64_t advance() noexcept { return epoch_.fetch_add(1, std::memory_order_seq_cst) + 1; }
    std::uint64_t current() const noexcept { return epoch_.load(std::memory_order_seq_cst); }

    /// True when no pin taken in epoch `e` is still held (pins of epoch e + 2 share its counters: call this
    /// only while the current epoch is e + 1).
    bool quiet(std::uint64_t e) const noexcept {
        for (const auto& s : stripes_)
            if (s.inside[e & 1].load(std::memory_order_seq_cst) != 0) return false;
        return true;
    }

private:
    Stripe& local() noexcept {
        static std::atomic<std::size_t> next{0};
        thread_local const std::size_t index = next.fetch_add(1, std::memory_order_relaxed) % stripe_count;
        return stripes_[index];
    }

    static constexpr std::size_t stripe_count = 16;
    alignas(64) std::atomic<std::uint64_t> epoch_{0};
    std::array<Stripe, stripe_count> stripes_{};
};

/// Counters of the routing layer (the node connections keep their own).
struct ClusterRouterCounters {
    std::atomic<std::uint64_t> moved{0}, ask{0}, retries{0}, refreshes{0}, refresh_failures{0}, nodes_dropped{0};
};

/// The node list's numbers for counters: nodes known now and every connection's counters summed (those of
/// dropped nodes included, so the sums never go back).
struct ClusterNodeCensus {
    std::uint64_t live = 0;
    ConnectionCounters totals;
};

/// The slot-routing core of the Cluster policy (see the file comment). Thread-safe.
class ClusterRouter {
public:
    using SteadyClock = std::chrono::steady_clock;

    /// `seeds`: where to ask for the topology; `node_template`: credentials and timeouts for every node
    /// (its endpoint's host and port are replaced per node); `max_nodes`: most nodes known at once.
    ClusterRouter(std::vector<RedisEndpoint> seeds, NodeSettings node_template, bool read_from_replicas,
                  std::size_t max_nodes = default_cluster_max_nodes)
        : seeds_(std::move(seeds)), template_(std::move(node_template)), max_nodes_(max_nodes) {
        for (auto& s : slots_) s.store(nullptr, std::memory_order_relaxed);
        if (read_from_replicas) {
            replicas_ = std::make_unique<std::array<std::atomic<ClusterNode*>, cluster_slot_count>>();
            for (auto& s : *replicas_) s.store(nullptr, std::memory_order_relaxed);
        }
    }

    ClusterRouter(const ClusterRouter&) = delete;
    ClusterRouter& operator=(const ClusterRouter&) = delete;

    /// The latest time an operation started now may finish: connect + command timeout (a command may have
    /// to connect to the node it is redirected to, or to read the topology first).
    SteadyClock::time_point deadline_from_now() const { return deadline_after(SteadyClock::now(), operation_budget()); }

    /// connect + command timeout, saturated (either may be milliseconds::max(): no limit).
    std::chrono::milliseconds operation_budget() const noexcept {
        return saturating_sum(template_.connect_timeout, template_.command_timeout);
    }

    /// Runs one formatted command for `slot` and returns its reply (a non-redirect error reply is returned
    /// as a reply). `read`: may go to a replica when replica reads are on.
    Result<ReplyPtr> run(std::uint16_t slot, std::string_view command, bool read, SteadyClock::time_point deadline) {
        auto out = [&] {
            NodeEpochs::Pin pin(epochs_);
            return run_pinned(slot, command, read, deadline);
        }();
        after_operation();
        return out;
    }

    /// Runs `commands` (command i is bytes [offsets[i], offsets[i+1]) of `buffer`, for slot `slots[i]`):
    /// one pipeline per node, all nodes in flight at once; commands that are redirected or whose node
    /// failed are then run one by one. Replies in input order.
    BatchReplies run_many(std::span<const std::uint16_t> slots, std::string_view buffer,
                          std::span<const std::size_t> offsets, bool read, SteadyClock::time_point deadline) {
        auto out = [&] {
            NodeEpochs::Pin pin(epochs_);
            return run_many_pinned(slots, buffer, offsets, read, deadline);
        }();
        after_operation();
        return out;
    }

    /// Loads the slot map now (from any node), bypassing the rate limit (after waiting, within the
    /// deadline, for a refresh that is running). For health checks and tests; also drops the nodes that
    /// left the topology.
    Result<void> refresh() {
        const auto deadline = deadline_from_now();
        auto out = [&]() -> Result<void> {
            NodeEpochs::Pin pin(epochs_);
            std::unique_lock<std::mutex> lk(refresh_mu_);
            if (!refresh_cv_.wait_until(lk, deadline, [&] { return !refreshing_; }))
                return fail(ErrorKind::timeout, waited_too_long());
            return refresh_owned(lk, nullptr, deadline);
        }();
        maintain(true);
        return out;
    }

    /// PINGs every master of the slot map (loading it first), each within a fresh deadline.
    Result<void> ping_masters() {
        auto out = [&]() -> Result<void> {
            NodeEpochs::Pin pin(epochs_);
            if (auto ok = ensure_map(deadline_from_now()); !ok) return fail(ok.error());
            std::string command;
            append_command(command, {"PING"});
            for (auto* node : masters()) {
                auto replies = exchange(*node, command, 1, deadline_from_now());
                if (!replies) return fail(replies.error());
                if (auto ok = status_reply(*replies->front(), "PING"); !ok) return fail(ok.error());
            }
            return {};
        }();
        after_operation();
        return out;
    }

    /// The current map as ranges of consecutive slots with the same master (replicas not listed).
    std::vector<ClusterSlotRange> slot_ranges() {
        NodeEpochs::Pin pin(epochs_);
        std::vector<ClusterSlotRange> out;
        ClusterNode* run_node = nullptr;
        for (std::uint32_t s = 0; s < cluster_slot_count; ++s) {
            ClusterNode* node = slots_[s].load(std::memory_order_acquire);
            if (node != nullptr && node == run_node && out.back().last + 1u == s) {
                out.back().last = static_cast<std::uint16_t>(s);
            } else if (node != nullptr) {
                out.push_back(
                    ClusterSlotRange{static_cast<std::uint16_t>(s), static_cast<std::uint16_t>(s), node->address, {}});
            }
            run_node = node;
        }
        return out;
    }

    /// Nodes known now and the counters of every connection ever opened (dropped nodes' included).
    ClusterNodeCensus census() const {
        ClusterNodeCensus c;
        auto add = [&](const ClusterNode& n) {
            if (const NodeConnection* conn = n.conn_if_created()) add_counters(c.totals, conn->counters());
        };
        // Both locks (in maintain's order), so a node moving from one list to the next is counted once.
        std::lock_guard<std::mutex> rk(retired_mu_);
        std::lock_guard<std::mutex> nk(nodes_mu_);
        c.live = nodes_.size();
        for (const auto& n : nodes_) add(*n);
        for (const auto& n : to_close_) add(*n);
        for (const auto& r : retired_) add(*r.node);
        add_counters(c.totals, dropped_totals_);
        return c;
    }

    /// Addresses of the nodes known now (for tests and diagnostics).
    std::vector<std::string> node_addresses() const {
        std::lock_guard<std::mutex> lk(nodes_mu_);
        std::vector<std::string> out;
        for (const auto& n : nodes_) out.push_back(n->address.text());
        return out;
    }

    const ClusterRouterCounters& counters() const noexcept { return counters_; }
    const NodeSettings& node_settings() const noexcept { return template_; }
    std::size_t max_nodes() const noexcept { return max_nodes_; }

private:
    // ---- operations (a Pin held) ----

    Result<ReplyPtr> run_pinned(std::uint16_t slot, std::string_view command, bool read,
                                SteadyClock::time_point deadline) {
        if (auto ok = ensure_map(deadline); !ok) return fail(ok.error());
        bool moved = false;
        auto out = follow(slot, command, read, deadline, moved);
        // The slot is patched already; the full refresh a MOVED asks for waits until the command is done.
        if (moved) request_refresh(nullptr, deadline);
        return out;
    }

    Result<ReplyPtr> follow(std::uint16_t slot, std::string_view command, bool read, SteadyClock::time_point deadline,
                            bool& moved) {
        ClusterNode* ask_node = nullptr;
        auto pause = cluster_first_retry_pause;
        int hops = 0;
        bool master_only = false;  // a replica failed this read: its master answers it
        std::string framed;
        for (;;) {
            if (hops > 0 && SteadyClock::now() >= deadline)  // nothing is sent past the deadline
                return fail(ErrorKind::timeout, "slot " + std::to_string(slot) +
                                                    ": the command deadline passed while following the cluster");
            bool via_replica = false;
            ClusterNode* node = ask_node;
            if (node == nullptr) {
                auto routed = route(slot, read && !master_only, via_replica, deadline);
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
                    request_refresh(node, deadline);
                    if (via_replica && ++hops < cluster_max_redirects && SteadyClock::now() < deadline) {
                        // A replica that does not answer a read leaves it to its master (a GET is safe to
                        // repeat) until the cluster fails the replica over or drops it from the map.
                        master_only = true;
                        continue;
                    }
                    bool again_replica = false;
                    auto now_owner = route(slot, read, again_replica, deadline);
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
                const auto now = SteadyClock::now();
                if (now + pause >= deadline)
                    return fail(ErrorKind::cluster_down, node->address.text() + " answered " +
                                                             std::string(text.substr(0, 120)) +
                                                             " until the command deadline");
                counters_.retries.fetch_add(1, std::memory_order_relaxed);  // retried: counted
                std::this_thread::sleep_for(pause);
                pause = std::min(2 * pause, cluster_max_retry_pause);
                continue;  // an ASK target stays the target: the migration is still in progress
            }
            auto redirect = parse_redirect(text, node->address.host);
            if (!redirect) return fail(ErrorKind::protocol, "unreadable redirection from " + node->address.text());
            if (++hops >= cluster_max_redirects)
                return fail(ErrorKind::connection, "slot " + std::to_string(slot) + ": more than " +
                                                       std::to_string(cluster_max_redirects) + " redirections");
            auto target = node_for(redirect->target, "a redirection from " + node->address.text());
            if (!target) return fail(target.error());
            if (redirect->ask) {
                counters_.ask.fetch_add(1, std::memory_order_relaxed);
                ask_node = *target;
            } else {
                counters_.moved.fetch_add(1, std::memory_order_relaxed);
                ask_node = nullptr;
                patch(redirect->slot, *target);
                moved = true;
                after_operation();  // a MOVED storm: close the nodes it left behind as it goes
            }
        }
    }

    BatchReplies run_many_pinned(std::span<const std::uint16_t> slots, std::string_view buffer,
                                 std::span<const std::size_t> offsets, bool read, SteadyClock::time_point deadline) {
        const std::size_t n = slots.size();
        BatchReplies out{std::vector<ReplyPtr>(n), std::vector<std::optional<Error>>(n)};
        if (auto ok = ensure_map(deadline); !ok) {
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
            auto routed = route(slots[i], read, via_replica, deadline);
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
            auto p = g.node->conn().submit(g.commands, g.index.size() + (g.replica ? 1 : 0));
            if (p)
                g.pending = std::move(*p);
            else
                g.error = p.error();
        }
        for (auto& g : groups) {
            if (g.pending) {
                auto replies = g.node->conn().wait(*g.pending, deadline);
                if (!replies) {
                    g.error = replies.error();
                } else {
                    const std::size_t skip = g.replica ? 1 : 0;
                    for (std::size_t k = 0; k < g.index.size(); ++k) {
                        ReplyPtr& r = (*replies)[k + skip];
                        if (r->type == REDIS_REPLY_ERROR &&
                            classify_cluster_error(reply_text(*r)) != ClusterReply::other)
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
                    if (g.error->kind() == ErrorKind::timeout) request_refresh(g.node, deadline);
                }
            }
        }
        std::sort(retry.begin(), retry.end());
        for (auto i : retry) {
            if (SteadyClock::now() >= deadline) {  // the batch's deadline holds for its retried keys too
                out.errors[i] =
                    Error(ErrorKind::timeout, "slot " + std::to_string(slots[i]) +
                                                  ": the batch's deadline passed before this key's retry after a "
                                                  "redirection or a lost node");
                continue;
            }
            auto r = run_pinned(slots[i], piece(i), read, deadline);
            if (r)
                out.replies[i] = std::move(*r);
            else
                out.errors[i] = r.error();
        }
        return out;
    }

    /// Runs `count` commands on one node within `deadline`.
    Result<std::vector<ReplyPtr>> exchange(ClusterNode& node, std::string_view commands, std::size_t count,
                                           SteadyClock::time_point deadline) {
        NodeConnection& conn = node.conn();
        auto pending = conn.submit(commands, count);
        if (!pending) return fail(pending.error());
        return conn.wait(*pending, deadline);
    }

    /// The node for `slot`: its master, or with replica reads on and `read`, a replica (via_replica set).
    Result<ClusterNode*> route(std::uint16_t slot, bool read, bool& via_replica, SteadyClock::time_point deadline) {
        via_replica = false;
        if (read && replicas_) {
            if (ClusterNode* r = (*replicas_)[slot].load(std::memory_order_acquire)) {
                via_replica = true;
                return r;
            }
            look_for_replicas(deadline);
        }
        if (ClusterNode* m = slots_[slot].load(std::memory_order_acquire)) return m;
        request_refresh(nullptr, deadline);
        if (ClusterNode* m = slots_[slot].load(std::memory_order_acquire)) return m;
        return fail(ErrorKind::cluster_down, "hash slot " + std::to_string(slot) + " is not served by any node");
    }

    /// A read found no replica for its slot: at most every cluster_replica_recheck one such read reads the
    /// map again (the others go on to the master at once). A cluster whose masters have no replicas pays
    /// one CLUSTER SLOTS per interval.
    void look_for_replicas(SteadyClock::time_point deadline) {
        const auto now = SteadyClock::now().time_since_epoch().count();
        auto last = replica_recheck_at_.load(std::memory_order_relaxed);
        const auto gap = std::chrono::duration_cast<SteadyClock::duration>(cluster_replica_recheck).count();
        if (now - last < gap) return;
        if (!replica_recheck_at_.compare_exchange_strong(last, now, std::memory_order_relaxed)) return;
        request_refresh(nullptr, deadline);
    }

    /// The masters of the current map, each once, in slot order (a set of those seen: a map may name 16 384).
    std::vector<ClusterNode*> masters() const {
        std::vector<ClusterNode*> out;
        std::unordered_set<ClusterNode*> seen;
        for (const auto& s : slots_) {
            ClusterNode* n = s.load(std::memory_order_acquire);
            if (n != nullptr && (out.empty() || out.back() != n) && seen.insert(n).second) out.push_back(n);
        }
        return out;
    }

    // ---- the node list ----

    /// The node at `where`, created (not connected) on first sight; a capacity error when `max_nodes` are
    /// known and none of them can be dropped. `why`: who named the node, for that error.
    Result<ClusterNode*> node_for(const ClusterAddress& where, const std::string& why) {
        std::lock_guard<std::mutex> lk(nodes_mu_);
        return node_for_locked(where, why, false);
    }

    Result<ClusterNode*> node_for_locked(const ClusterAddress& where, const std::string& why, bool forced) {
        for (const auto& n : nodes_)
            if (n->address == where) return n.get();
        if (!forced && nodes_.size() - referenced_ > cluster_unreferenced_slack) collect_locked();
        if (!forced && nodes_.size() >= max_nodes_) {
            collect_locked();
            if (nodes_.size() >= max_nodes_)
                return fail(ErrorKind::capacity, "Redis Cluster: " + where.text() + ", named by " + why +
                                                     ", would be node " + std::to_string(nodes_.size() + 1) +
                                                     ", more than max_nodes (" + std::to_string(max_nodes_) +
                                                     "); raise ClusterMode::max_nodes for a cluster that large");
        }
        nodes_.push_back(std::make_unique<ClusterNode>(template_, where));
        return nodes_.back().get();
    }

    /// Points `table[slot]` at `node`, keeping the reference counts (nodes_mu_ held).
    void set_slot_locked(std::array<std::atomic<ClusterNode*>, cluster_slot_count>& table, std::uint32_t slot,
                         ClusterNode* node) {
        ClusterNode* old = table[slot].load(std::memory_order_relaxed);
        if (old == node) return;
        if (node != nullptr && node->refs++ == 0) ++referenced_;
        if (old != nullptr && --old->refs == 0) --referenced_;
        table[slot].store(node, std::memory_order_release);
    }

    /// A MOVED: the slot's master is now `target`, its replica unknown.
    void patch(std::uint16_t slot, ClusterNode* target) {
        std::lock_guard<std::mutex> lk(nodes_mu_);
        // Another caller may have collected the target (no slot pointed at it yet) since node_for returned
        // it: a slot must point only at a linked node, or it would outlive the node's retirement. This
        // operation may still use the target (its pin keeps it), but the slot gets the linked node.
        if (std::none_of(nodes_.begin(), nodes_.end(), [&](const auto& n) { return n.get() == target; })) {
            auto linked = node_for_locked(target->address, "a redirection", true);
            if (!linked) return;
            target = *linked;
        }
        set_slot_locked(slots_, slot, target);
        if (replicas_) set_slot_locked(*replicas_, slot, nullptr);
    }

    /// Unlinks every node no slot points at (nodes_mu_ held); maintain() closes and retires them.
    void collect_locked() {
        auto keep = std::stable_partition(nodes_.begin(), nodes_.end(), [](const auto& n) { return n->refs > 0; });
        if (keep == nodes_.end()) return;
        for (auto it = keep; it != nodes_.end(); ++it) to_close_.push_back(std::move(*it));
        nodes_.erase(keep, nodes_.end());
        close_due_.store(true, std::memory_order_release);
        maintenance_due_.store(true, std::memory_order_release);
    }

    // ---- dropping nodes ----

    /// A dropped node waiting to be freed.
    struct Retired {
        enum class Stage : std::uint8_t { unlinked, epoch_advanced, unreachable };
        std::unique_ptr<ClusterNode> node;
        Stage stage = Stage::unlinked;
        SteadyClock::time_point since;  // when it was unlinked
        bool closed_once = false;       // maintain() tried to close its connection
        // Its connection's command count when maintain() closed it: unchanged later, nobody reopened it.
        std::optional<std::uint64_t> closed_at_commands;
    };

    /// The end of every operation, and every MOVED: closes unlinked nodes' connections at once; frees
    /// retired nodes at most once a millisecond (a node still busy may wait a while to be freed).
    void after_operation() {
        if (!maintenance_due_.load(std::memory_order_acquire)) return;
        if (close_due_.load(std::memory_order_acquire)) {
            maintain(false);
            return;
        }
        const std::int64_t now =
            std::chrono::duration_cast<std::chrono::nanoseconds>(SteadyClock::now().time_since_epoch()).count();
        auto next = next_maintain_.load(std::memory_order_relaxed);
        if (now < next ||
            !next_maintain_.compare_exchange_strong(next, now + maintain_gap_ns, std::memory_order_relaxed))
            return;
        maintain(false);
    }

    /// Closes unlinked nodes' connections, advances the epoch over them and frees those no pin can hold
    /// and whose connection is idle. Never waits for a lock (another caller is doing it) unless `wait`.
    /// A caller holding a Pin may call it: its own pin then only delays the freeing to a later call.
    void maintain(bool wait) {
        std::unique_lock<std::mutex> mk(maintain_mu_, std::defer_lock);
        if (wait)
            mk.lock();
        else if (!mk.try_lock())
            return;
        const auto now = SteadyClock::now();
        std::vector<std::unique_ptr<ClusterNode>> freed;
        {
            std::lock_guard<std::mutex> lk(retired_mu_);
            {
                std::lock_guard<std::mutex> nk(nodes_mu_);
                for (auto& n : to_close_)
                    retired_.push_back(Retired{std::move(n), Retired::Stage::unlinked, now, false, std::nullopt});
                to_close_.clear();
                close_due_.store(false, std::memory_order_relaxed);
            }
            for (auto& r : retired_) {
                if (r.closed_once) continue;
                r.closed_once = true;
                if (NodeConnection* c = r.node->conn_if_created()) {
                    // Counted before the close: a command sent meanwhile shows up as a change later.
                    const auto commands = c->counters().commands;
                    if (c->close_if_idle()) r.closed_at_commands = commands;  // its thread and socket, now
                }
            }
            // Two rounds: with no pin left in the old epoch, nodes unlinked now become unreachable at once.
            for (int round = 0; round < 2; ++round) {
                if (flip_waiting_) {
                    if (!epochs_.quiet(epochs_.current() - 1)) break;
                    flip_waiting_ = false;
                    for (auto& r : retired_)
                        if (r.stage == Retired::Stage::epoch_advanced) r.stage = Retired::Stage::unreachable;
                }
                const bool any_unlinked = std::any_of(retired_.begin(), retired_.end(), [](const Retired& r) {
                    return r.stage == Retired::Stage::unlinked;
                });
                if (!any_unlinked) break;
                for (auto& r : retired_)
                    if (r.stage == Retired::Stage::unlinked) r.stage = Retired::Stage::epoch_advanced;
                epochs_.advance();  // after the unlink: a pin taken from now on cannot find these nodes
                flip_waiting_ = true;
            }
            // A connect started by a late user is over by then, so freeing never waits for one.
            const auto linger = saturating_twice(operation_budget());
            for (auto& r : retired_) {
                if (r.stage != Retired::Stage::unreachable) continue;
                NodeConnection* c = r.node->conn_if_created();
                // Nobody can send to it any more: free it once its connection is closed (or, if it is not
                // idle yet, once a connection that nobody uses has finished or reset itself).
                const bool still_closed =
                    c != nullptr && r.closed_at_commands && c->counters().commands == *r.closed_at_commands;
                if (c == nullptr || still_closed || c->close_if_idle() || now >= deadline_after(r.since, linger)) {
                    if (c != nullptr) add_counters(dropped_totals_, c->counters());
                    freed.push_back(std::move(r.node));
                }
            }
            std::erase_if(retired_, [](const Retired& r) { return r.node == nullptr; });
            counters_.nodes_dropped.fetch_add(freed.size(), std::memory_order_relaxed);
            std::lock_guard<std::mutex> nk(nodes_mu_);
            maintenance_due_.store(!retired_.empty() || !to_close_.empty(), std::memory_order_release);
        }
        freed.clear();  // destroyed outside retired_mu_ (their I/O threads are stopped)
    }

    static void add_counters(ConnectionCounters& to, const ConnectionCounters& n) {
        to.connect_attempts += n.connect_attempts;
        to.connects += n.connects;
        to.drops += n.drops;
        to.timeouts += n.timeouts;
        to.commands += n.commands;
        to.writes += n.writes;
        to.io_thread_rounds += n.io_thread_rounds;
        to.drive_switches += n.drive_switches;
    }

    // ---- topology refresh (a Pin held) ----

    /// Loads the slot map unless it is loaded. A caller that finds another's refresh running waits for it
    /// until its own deadline and then shares its outcome.
    Result<void> ensure_map(SteadyClock::time_point deadline) {
        if (loaded_.load(std::memory_order_acquire)) return {};
        std::unique_lock<std::mutex> lk(refresh_mu_);
        if (refreshing_) {
            const auto gen = refresh_gen_;
            if (!refresh_cv_.wait_until(lk, deadline, [&] { return !refreshing_; }))
                return fail(ErrorKind::timeout, waited_too_long());
            if (loaded_.load(std::memory_order_acquire)) return {};
            if (refresh_gen_ != gen && last_refresh_error_) return fail(*last_refresh_error_);
        }
        if (loaded_.load(std::memory_order_acquire)) return {};
        return refresh_owned(lk, nullptr, deadline);
    }

    /// A rate-limited refresh by a caller that finds none running; the others do not wait for it.
    void request_refresh(ClusterNode* suspect, SteadyClock::time_point deadline) {
        std::unique_lock<std::mutex> lk(refresh_mu_);
        if (refreshing_ || SteadyClock::now() - last_refresh_ < cluster_min_refresh_interval) return;
        [[maybe_unused]] auto r = refresh_owned(lk, suspect, deadline);
    }

    std::string waited_too_long() const {
        return "the Redis Cluster topology was still being read by another caller at this operation's "
               "deadline (connect + command timeout, " +
               std::to_string(operation_budget().count()) + " ms)";
    }

    /// Runs a refresh as the one refreshing caller (refresh_mu_ held by `lk` on entry and exit, released
    /// meanwhile), then wakes the callers waiting for it.
    Result<void> refresh_owned(std::unique_lock<std::mutex>& lk, ClusterNode* suspect,
                               SteadyClock::time_point deadline) {
        refreshing_ = true;
        last_refresh_ = SteadyClock::now();
        lk.unlock();
        struct Done {  // also when the refresh throws (allocation failure): waiters must not hang
            ClusterRouter& r;
            std::unique_lock<std::mutex>& lk;
            Result<void> out = fail(ErrorKind::unavailable, "topology refresh did not finish");
            ~Done() {
                lk.lock();
                r.refreshing_ = false;
                ++r.refresh_gen_;
                if (out)
                    r.last_refresh_error_.reset();
                else
                    r.last_refresh_error_ = out.error();
                r.refresh_cv_.notify_all();
            }
        } done{*this, lk};
        done.out = read_topology(suspect, deadline);
        return done.out;
    }

    /// Where to ask for CLUSTER SLOTS: up to cluster_refresh_known_nodes of the known masters, then of the
    /// other known nodes, then every seed (`suspect` last), each address once. The bound keeps a map of
    /// thousands of dead owners from costing thousands of connection attempts per refresh.
    std::vector<ClusterAddress> refresh_candidates(ClusterNode* suspect) const {
        std::vector<ClusterAddress> out;
        auto add = [&](const ClusterAddress& a) {
            if (std::find(out.begin(), out.end(), a) == out.end()) out.push_back(a);
        };
        for (ClusterNode* n : masters()) {
            if (out.size() >= cluster_refresh_known_nodes) break;
            add(n->address);
        }
        {
            std::lock_guard<std::mutex> lk(nodes_mu_);
            for (const auto& n : nodes_) {
                if (out.size() >= cluster_refresh_known_nodes) break;
                add(n->address);
            }
        }
        for (const auto& seed : seeds_) add(ClusterAddress{seed.host, seed.port});
        if (suspect != nullptr) {
            out.erase(std::remove(out.begin(), out.end(), suspect->address), out.end());
            out.push_back(suspect->address);
        }
        return out;
    }

    /// Time between asking one refresh candidate and asking the next while the first has not answered.
    std::chrono::milliseconds refresh_hedge() const {
        return std::clamp(template_.command_timeout / 8, std::chrono::milliseconds(5), std::chrono::milliseconds(250));
    }

    /// Asks the candidates for CLUSTER SLOTS, a further one every refresh_hedge() or when one fails, and
    /// installs the first usable answer; gives up at `deadline`.
    Result<void> read_topology(ClusterNode* suspect, SteadyClock::time_point deadline) {
        counters_.refreshes.fetch_add(1, std::memory_order_relaxed);
        const auto candidates = refresh_candidates(suspect);
        std::string command;
        append_command(command, {"CLUSTER", "SLOTS"});
        struct Asked {
            ClusterNode* node;
            NodeConnection::Pending pending;
        };
        std::vector<Asked> asked;
        std::optional<Error> last;  // the most telling failure so far (see telling)
        auto note = [&last](Error e) {
            if (!last || telling(e.kind()) >= telling(last->kind())) last = std::move(e);
        };
        std::size_t next = 0;
        const auto hedge = refresh_hedge();
        auto next_ask = SteadyClock::now();
        const auto started = next_ask;
        bool out_of_time = false;
        for (;;) {  // bounded by the deadline
            const auto now = SteadyClock::now();
            if (now >= deadline) {
                out_of_time = true;
                break;
            }
            if (next < candidates.size() && (asked.empty() || now >= next_ask)) {
                const ClusterAddress& where = candidates[next++];
                auto node = node_for(where, "the topology refresh");
                if (!node) {
                    note(node.error());
                    continue;
                }
                auto pending = (*node)->conn().submit(command, 1);
                if (!pending) {
                    note(pending.error());
                    continue;
                }
                asked.push_back(Asked{*node, std::move(*pending)});
                next_ask = now + hedge;
                continue;
            }
            if (asked.empty()) break;  // every candidate failed
            bool answered = false;
            for (auto it = asked.begin(); it != asked.end();) {
                if (it->pending.batch->done()) {
                    ClusterNode* node = it->node;
                    auto replies = node->conn().wait(it->pending, deadline);  // returns at once
                    it = asked.erase(it);
                    answered = true;
                    if (!replies) {
                        note(replies.error());
                        continue;
                    }
                    auto taken = take_topology(*node, *replies->front());
                    if (taken) return {};
                    note(taken.error());
                } else if (now >= it->pending.deadline) {  // its own connect + command budget is spent
                    note(Error(ErrorKind::timeout, "no reply from " + node_text(*it->node) + " within " +
                                                       std::to_string(it->pending.budget.count()) + " ms"));
                    it = asked.erase(it);
                    answered = true;
                } else {
                    ++it;
                }
            }
            if (answered) continue;
            // Look again soon: replies are read by the connections' own threads.
            auto until = std::min(deadline, now + std::chrono::microseconds(500));
            if (next < candidates.size()) until = std::min(until, next_ask);
            std::this_thread::sleep_until(until);
        }
        counters_.refresh_failures.fetch_add(1, std::memory_order_relaxed);
        // Commands still in flight are left behind: a late reply is dropped with its slot.
        if (out_of_time) {
            std::string silent;
            for (const auto& a : asked) silent += (silent.empty() ? "" : ", ") + node_text(*a.node);
            const auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - started);
            return fail(ErrorKind::timeout,
                        "cannot read the cluster topology within " + std::to_string(waited.count()) +
                            " ms (the operation's deadline): " + "asked " + std::to_string(next) + " of " +
                            std::to_string(candidates.size()) + " nodes, no answer from " +
                            (silent.empty() ? "any" : silent) + (last ? "; " + last->message() : std::string()));
        }
        Error e = last ? *last : Error(ErrorKind::connection, "no cluster node known");
        return fail(Error(e.kind(), "cannot read the cluster topology from any of " +
                                        std::to_string(candidates.size()) + " nodes; " + e.message()));
    }

    static std::string node_text(const ClusterNode& n) { return n.address.text(); }

    /// How much a failure of one candidate tells: wrong credentials, a certificate or a configuration say
    /// what to fix (and hold for every node), where a dead seed's refused connection says nothing about
    /// the live ones. The topology error reports the most telling one, the latest among equals.
    static int telling(ErrorKind kind) noexcept {
        switch (kind) {
            case ErrorKind::auth:
            case ErrorKind::tls:
            case ErrorKind::config: return 2;
            case ErrorKind::connection:
            case ErrorKind::timeout: return 0;
            default: return 1;
        }
    }

    /// Checks one CLUSTER SLOTS reply from `node` and installs it.
    Result<void> take_topology(const ClusterNode& node, const redisReply& reply) {
        auto ranges = parse_cluster_slots(reply, node.address.host);
        if (!ranges) {
            if (ranges.error().message().find("cluster support disabled") != std::string::npos)
                return fail(ErrorKind::config,
                            node.address.text() + " is not a cluster node (cluster support disabled)");
            return fail(ranges.error());
        }
        if (ranges->empty()) return fail(ErrorKind::cluster_down, node.address.text() + " reports no slot assigned");
        // Count the nodes the map would use before creating any.
        std::unordered_set<std::string> distinct;
        for (const auto& r : *ranges) {
            distinct.insert(r.master.text());
            if (replicas_ && !r.replicas.empty()) distinct.insert(r.replicas.front().text());
            if (distinct.size() > max_nodes_)
                return fail(ErrorKind::capacity, "Redis Cluster: CLUSTER SLOTS from " + node.address.text() +
                                                     " names more than max_nodes (" + std::to_string(max_nodes_) +
                                                     ") nodes; not installed (raise ClusterMode::max_nodes "
                                                     "for a cluster that large)");
        }
        install(*ranges);
        loaded_.store(true, std::memory_order_release);
        return {};
    }

    /// Points each slot of `ranges` at its master (and first replica); slots not listed keep their node.
    /// Then drops the nodes no slot points at (seeds the topology does not list under their address
    /// included: the topology's own node serves their slots).
    void install(const std::vector<ClusterSlotRange>& ranges) {
        replica_recheck_at_.store(SteadyClock::now().time_since_epoch().count(), std::memory_order_relaxed);
        std::lock_guard<std::mutex> lk(nodes_mu_);
        for (const auto& r : ranges) {
            // The count was checked: old nodes that lose their slots are collected below.
            ClusterNode* master = *node_for_locked(r.master, "CLUSTER SLOTS", true);
            ClusterNode* replica = replicas_ && !r.replicas.empty()
                                       ? *node_for_locked(r.replicas.front(), "CLUSTER SLOTS", true)
                                       : nullptr;
            for (std::uint32_t s = r.first; s <= r.last; ++s) {
                set_slot_locked(slots_, s, master);
                if (replicas_) set_slot_locked(*replicas_, s, replica);
            }
        }
        collect_locked();
    }

    const std::vector<RedisEndpoint> seeds_;
    const NodeSettings template_;
    const std::size_t max_nodes_;
    std::array<std::atomic<ClusterNode*>, cluster_slot_count> slots_;
    std::unique_ptr<std::array<std::atomic<ClusterNode*>, cluster_slot_count>> replicas_;
    std::atomic<SteadyClock::rep> replica_recheck_at_{0};  // look_for_replicas(): the last re-read it asked for
    std::atomic<bool> loaded_{false};
    NodeEpochs epochs_;

    mutable std::mutex nodes_mu_;  // guards nodes_, refs, referenced_, to_close_, slot-table writes
    std::vector<std::unique_ptr<ClusterNode>> nodes_;
    std::size_t referenced_ = 0;                          // nodes with refs > 0
    std::vector<std::unique_ptr<ClusterNode>> to_close_;  // unlinked, connection not closed yet
    std::atomic<bool> maintenance_due_{false};            // to_close_ or retired_ not empty
    std::atomic<bool> close_due_{false};                  // to_close_ not empty
    static constexpr std::int64_t maintain_gap_ns = 1'000'000;
    std::atomic<std::int64_t> next_maintain_{0};  // steady_clock ns before which after_operation skips

    std::mutex maintain_mu_;         // one maintain() at a time; taken before retired_mu_
    mutable std::mutex retired_mu_;  // guards retired_, dropped_totals_, flip_waiting_
    std::vector<Retired> retired_;
    ConnectionCounters dropped_totals_;
    bool flip_waiting_ = false;  // the epoch was advanced over retired nodes; the old one is not quiet yet

    std::mutex refresh_mu_;  // guards the fields below
    std::condition_variable refresh_cv_;
    bool refreshing_ = false;
    std::uint64_t refresh_gen_ = 0;  // refreshes finished
    std::optional<Error> last_refresh_error_;
    SteadyClock::time_point last_refresh_{};

    ClusterRouterCounters counters_;
};

}  // namespace hitbox::detail
