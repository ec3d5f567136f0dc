#pragma once
/// \file
/// Redis Cluster topology text: parsing `CLUSTER SLOTS` replies into slot ranges and `MOVED` / `ASK`
/// error replies into redirections. Non-generic: plain inline functions over hiredis replies.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <hiredis/hiredis.h>

#include <hitbox/backend/redis/detail/crc16.hpp>
#include <hitbox/backend/redis/detail/resp.hpp>
#include <hitbox/backend/redis/detail/url.hpp>
#include <hitbox/core/error.hpp>

namespace hitbox::detail {

/// A cluster node's TCP address as the cluster announces it.
struct ClusterAddress {
    std::string host;
    std::uint16_t port = 0;

    /// "host:port" ("[v6]:port" for IPv6), the form RedisEndpoint::address() gives.
    std::string text() const {
        std::string out = host.find(':') != std::string::npos ? "[" + host + "]" : host;
        return out + ":" + std::to_string(port);
    }
    /// The port first: a cheap test that tells most nodes of a cluster apart (the node list is searched
    /// linearly; with 16 384 nodes on one host, comparing hosts first cost a minute under ASan).
    friend bool operator==(const ClusterAddress& a, const ClusterAddress& b) {
        return a.port == b.port && a.host == b.host;
    }
};

/// One range of hash slots and the nodes serving it (from CLUSTER SLOTS).
struct ClusterSlotRange {
    std::uint16_t first = 0;               ///< first slot of the range
    std::uint16_t last = 0;                ///< last slot, inclusive
    ClusterAddress master;                 ///< the node that owns the slots
    std::vector<ClusterAddress> replicas;  ///< its replicas, in the server's order
};

/// The kind of a cluster error reply.
enum class ClusterReply : std::uint8_t { other, moved, ask, tryagain, clusterdown };

/// Classifies an error reply's text by its first word.
inline ClusterReply classify_cluster_error(std::string_view text) noexcept {
    auto starts = [&](std::string_view word) {
        return text.substr(0, word.size()) == word && (text.size() == word.size() || text[word.size()] == ' ');
    };
    if (starts("MOVED")) return ClusterReply::moved;
    if (starts("ASK")) return ClusterReply::ask;
    if (starts("TRYAGAIN")) return ClusterReply::tryagain;
    if (starts("CLUSTERDOWN")) return ClusterReply::clusterdown;
    return ClusterReply::other;
}

/// Splits "host:port" (the host may be an unbracketed IPv6 literal, or empty: then `fallback_host`).
inline std::optional<ClusterAddress> parse_cluster_address(std::string_view text, std::string_view fallback_host) {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return std::nullopt;
    unsigned port = 0;
    if (!parse_decimal(text.substr(colon + 1), port) || port == 0 || port > 65535) return std::nullopt;
    std::string_view host = text.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    if (host.empty()) host = fallback_host;
    return ClusterAddress{std::string(host), static_cast<std::uint16_t>(port)};
}

/// A `MOVED <slot> <host:port>` or `ASK <slot> <host:port>` reply.
struct ClusterRedirect {
    bool ask = false;  ///< ASK (one command, map unchanged) rather than MOVED
    std::uint16_t slot = 0;
    ClusterAddress target;
};

/// Parses a MOVED / ASK reply; nullopt for anything else or a malformed one.
inline std::optional<ClusterRedirect> parse_redirect(std::string_view text, std::string_view fallback_host) {
    const auto kind = classify_cluster_error(text);
    if (kind != ClusterReply::moved && kind != ClusterReply::ask) return std::nullopt;
    auto sp1 = text.find(' ');
    auto sp2 = sp1 == std::string_view::npos ? sp1 : text.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos) return std::nullopt;
    unsigned slot = 0;
    if (!parse_decimal(text.substr(sp1 + 1, sp2 - sp1 - 1), slot) || slot >= cluster_slot_count) return std::nullopt;
    auto target = parse_cluster_address(text.substr(sp2 + 1), fallback_host);
    if (!target) return std::nullopt;
    return ClusterRedirect{kind == ClusterReply::ask, static_cast<std::uint16_t>(slot), std::move(*target)};
}

/// One node entry of a CLUSTER SLOTS range: `[ip, port, id, ...]`. An empty or nil ip means "the node you
/// asked" (`asked_host`); "?" means unknown (nullopt).
inline std::optional<ClusterAddress> slots_node(const redisReply& n, std::string_view asked_host) {
    if (n.type != REDIS_REPLY_ARRAY || n.elements < 2) return std::nullopt;
    const redisReply& ip = *n.element[0];
    const redisReply& port = *n.element[1];
    if (port.type != REDIS_REPLY_INTEGER || port.integer <= 0 || port.integer > 65535) return std::nullopt;
    std::string_view host;
    if (ip.type == REDIS_REPLY_STRING)
        host = reply_text(ip);
    else if (ip.type != REDIS_REPLY_NIL)
        return std::nullopt;
    if (host == "?") return std::nullopt;
    if (host.empty()) host = asked_host;
    return ClusterAddress{std::string(host), static_cast<std::uint16_t>(port.integer)};
}

/// Parses a CLUSTER SLOTS reply. `asked_host`: host of the node that answered (for empty endpoints).
inline Result<std::vector<ClusterSlotRange>> parse_cluster_slots(const redisReply& r, std::string_view asked_host) {
    if (r.type == REDIS_REPLY_ERROR) return fail(reply_error(r, "CLUSTER SLOTS"));
    auto bad = [] { return fail(ErrorKind::protocol, "CLUSTER SLOTS: malformed reply"); };
    if (r.type != REDIS_REPLY_ARRAY) return bad();
    std::vector<ClusterSlotRange> out;
    out.reserve(r.elements);
    for (std::size_t i = 0; i < r.elements; ++i) {
        const redisReply& e = *r.element[i];
        if (e.type != REDIS_REPLY_ARRAY || e.elements < 3) return bad();
        const redisReply& first = *e.element[0];
        const redisReply& last = *e.element[1];
        if (first.type != REDIS_REPLY_INTEGER || last.type != REDIS_REPLY_INTEGER || first.integer < 0 ||
            last.integer < first.integer || last.integer >= cluster_slot_count)
            return bad();
        auto master = slots_node(*e.element[2], asked_host);
        if (!master) continue;  // owner's endpoint unknown: leave the range unmapped
        ClusterSlotRange range{static_cast<std::uint16_t>(first.integer),
                               static_cast<std::uint16_t>(last.integer),
                               std::move(*master),
                               {}};
        for (std::size_t j = 3; j < e.elements; ++j)
            if (auto replica = slots_node(*e.element[j], asked_host)) range.replicas.push_back(std::move(*replica));
        out.push_back(std::move(range));
    }
    return out;
}

}  // namespace hitbox::detail
