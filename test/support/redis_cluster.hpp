#pragma once
// Test support: a real Redis Cluster of redis-server processes (test/support/redis_server.hpp) on free
// 127.0.0.1 ports whose cluster-bus twins (+10000) are free too: 3 masters with 1 replica each by default,
// created with `redis-cli --cluster create ... --cluster-replicas 1 --cluster-yes`, ready once every node
// reports cluster_state:ok and sees every replica attached. Torn down by the destructor. Every wait has a
// deadline and throws std::runtime_error with the nodes' state when it passes.

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "support/redis_server.hpp"

namespace hitbox_test {

/// Shape of the cluster to start.
struct RedisClusterOptions {
    int masters = 3;
    int replicas_per_master = 1;
    int node_timeout_ms = 2000;           ///< cluster-node-timeout: a dead master's replica takes over after ~this
    std::optional<RedisServerTls> tls{};  ///< every node TLS-only, the cluster bus and replication too
};

/// A running Redis Cluster. Node indices are stable (a killed node keeps its index and can be restarted).
class RedisCluster {
public:
    explicit RedisCluster(RedisClusterOptions options = {}) : options_(options) {
        const int total = options_.masters * (1 + options_.replicas_per_master);
        for (int i = 0; i < total; ++i) nodes_.push_back(start_node());
        std::vector<std::string> args = {"--cluster", "create"};
        for (const auto& n : nodes_) args.push_back("127.0.0.1:" + std::to_string(n->port()));
        args.insert(args.end(), {"--cluster-replicas", std::to_string(options_.replicas_per_master), "--cluster-yes"});
        nodes_[0]->cli(args);
        wait_ready(std::chrono::seconds(30));
    }

    RedisCluster(const RedisCluster&) = delete;
    RedisCluster& operator=(const RedisCluster&) = delete;

    std::size_t size() const noexcept { return nodes_.size(); }
    RedisServer& node(std::size_t i) { return *nodes_.at(i); }
    /// `redis://127.0.0.1:PORT` of every running node (seed URLs for the client).
    std::vector<std::string> urls() const {
        std::vector<std::string> out;
        for (const auto& n : nodes_)
            if (n->running())
                out.push_back((options_.tls ? "rediss://127.0.0.1:" : "redis://127.0.0.1:") +
                              std::to_string(n->port()));
        return out;
    }
    /// "127.0.0.1:PORT" of node i (the form the client reports).
    std::string address(std::size_t i) const { return "127.0.0.1:" + std::to_string(nodes_.at(i)->port()); }

    /// redis-cli on the first running node.
    std::string cli(const std::vector<std::string>& args, std::string_view input = {}) {
        return any_running().cli(args, input);
    }

    /// The server's own CLUSTER KEYSLOT of a (binary) key, sent through stdin so any byte is allowed.
    int keyslot(std::string_view key) { return std::stoi(cli({"-x", "CLUSTER", "KEYSLOT"}, key)); }
    /// Node i's cluster node id.
    std::string node_id(std::size_t i) { return nodes_.at(i)->cli({"CLUSTER", "MYID"}); }
    /// True when node i is running and says it is a master.
    bool is_master(std::size_t i) {
        if (!nodes_.at(i)->running()) return false;
        return nodes_[i]->cli({"ROLE"}).rfind("master", 0) == 0;
    }
    /// Indices of the running masters that own slots.
    std::vector<std::size_t> masters() {
        std::vector<std::size_t> out;
        for (std::size_t i = 0; i < nodes_.size(); ++i)
            if (is_master(i) && owned_slots(i) > 0) out.push_back(i);
        return out;
    }
    /// Number of slots node i owns, per its own CLUSTER NODES line.
    int owned_slots(std::size_t i) {
        std::istringstream lines(nodes_.at(i)->cli({"CLUSTER", "NODES"}));
        std::string line;
        while (std::getline(lines, line)) {
            if (line.find("myself") == std::string::npos) continue;
            std::istringstream words(line);
            std::string w;
            int field = 0, slots = 0;
            while (words >> w) {
                if (++field <= 8 || w.front() == '[') continue;  // id addr flags master ping pong epoch state
                auto dash = w.find('-');
                slots +=
                    dash == std::string::npos ? 1 : std::stoi(w.substr(dash + 1)) - std::stoi(w.substr(0, dash)) + 1;
            }
            return slots;
        }
        return 0;
    }
    /// Keys stored on node i (DBSIZE).
    long long dbsize(std::size_t i) { return std::stoll(nodes_.at(i)->cli({"DBSIZE"})); }
    /// Index of the node with `address` ("127.0.0.1:PORT"), or size() when none.
    std::size_t index_of(std::string_view address) const {
        for (std::size_t i = 0; i < nodes_.size(); ++i)
            if (this->address(i) == address) return i;
        return nodes_.size();
    }

    /// Moves `slots` slots from master `from` to master `to` with `redis-cli --cluster reshard` (MIGRATE of
    /// every key, slot by slot, while clients keep running). Returns redis-cli's output.
    std::string reshard(std::size_t from, std::size_t to, int slots) {
        return nodes_.at(from)->cli({"--cluster", "reshard", address(from), "--cluster-from", node_id(from),
                                     "--cluster-to", node_id(to), "--cluster-slots", std::to_string(slots),
                                     "--cluster-yes"});
    }

    /// Starts a new empty node and joins it to the cluster as a master without slots; returns its index.
    std::size_t add_master() {
        nodes_.push_back(start_node());
        const std::size_t i = nodes_.size() - 1;
        auto& seed = any_running();
        seed.cli({"--cluster", "add-node", address(i), "127.0.0.1:" + std::to_string(seed.port())});
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
        for (;;) {
            bool known = true;
            for (std::size_t k = 0; k < nodes_.size(); ++k)
                if (nodes_[k]->running() && info_field(k, "cluster_known_nodes") != std::to_string(known_nodes()))
                    known = false;
            if (known && info_field(i, "cluster_state") == "ok") return i;
            if (std::chrono::steady_clock::now() > deadline)
                throw std::runtime_error("new node " + address(i) + " did not join the cluster within 20 s");
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
    }

    /// One field of node i's CLUSTER INFO ("" when absent or the node is down).
    std::string info_field(std::size_t i, std::string_view field) {
        if (!nodes_.at(i)->running()) return {};
        std::istringstream lines(nodes_[i]->cli({"CLUSTER", "INFO"}));
        std::string line;
        while (std::getline(lines, line)) {
            if (!line.empty() && line.back() == '\r') line.pop_back();
            if (line.rfind(std::string(field) + ":", 0) == 0) return line.substr(field.size() + 1);
        }
        return {};
    }

    /// Waits until every running node reports cluster_state:ok, knows every node, and every master has
    /// its replicas attached (replicas briefly show as masters right after create).
    void wait_ready(std::chrono::seconds budget) {
        const auto deadline = std::chrono::steady_clock::now() + budget;
        for (;;) {
            if (ready()) return;
            if (std::chrono::steady_clock::now() > deadline) {
                std::string state;
                for (std::size_t i = 0; i < nodes_.size(); ++i)
                    state += address(i) + ": " + info_field(i, "cluster_state") + "\n";
                throw std::runtime_error("cluster not ready within " + std::to_string(budget.count()) + " s:\n" +
                                         state + cli({"CLUSTER", "NODES"}));
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
    }

private:
    std::unique_ptr<RedisServer> start_node() const {
        RedisServerOptions o;
        o.cluster_bus = true;
        if (options_.tls) {
            o.tls = options_.tls;
            o.tls->cluster = true;
            o.tls->replication = true;
        }
        o.extra_config = {"cluster-enabled yes", "cluster-config-file nodes.conf",
                          "cluster-node-timeout " + std::to_string(options_.node_timeout_ms),
                          "cluster-replica-validity-factor 0", "cluster-allow-replica-migration no"};
        return std::make_unique<RedisServer>(std::move(o));
    }

    RedisServer& any_running() {
        for (auto& n : nodes_)
            if (n->running()) return *n;
        throw std::runtime_error("no cluster node is running");
    }

    std::size_t known_nodes() const {
        return nodes_.size();  // killed nodes stay known to the others
    }

    bool ready() {
        int masters_with_replicas = 0, replicas = 0;
        for (std::size_t i = 0; i < nodes_.size(); ++i) {
            if (!nodes_[i]->running()) continue;
            if (info_field(i, "cluster_state") != "ok") return false;
            if (info_field(i, "cluster_slots_assigned") != "16384") return false;
        }
        // Every running replica must be attached and in sync with a master (master_link_status:up).
        for (std::size_t i = 0; i < nodes_.size(); ++i) {
            if (!nodes_[i]->running()) continue;
            const std::string role = nodes_[i]->cli({"ROLE"});
            if (role.rfind("master", 0) == 0) {
                if (owned_slots(i) > 0) ++masters_with_replicas;
                continue;
            }
            const std::string repl = nodes_[i]->cli({"INFO", "replication"});
            if (repl.find("master_link_status:up") == std::string::npos) return false;
            ++replicas;
        }
        return masters_with_replicas >= options_.masters && replicas >= options_.masters * options_.replicas_per_master;
    }

    RedisClusterOptions options_;
    std::vector<std::unique_ptr<RedisServer>> nodes_;
};

}  // namespace hitbox_test
