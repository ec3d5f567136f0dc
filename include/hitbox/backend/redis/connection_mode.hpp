#pragma once
/// \file
/// How RedisBackend reaches Redis: `ConnectionMode::single(url)` selects the SingleNode connection
/// policy in the builder, `ConnectionMode::cluster({urls})` the Cluster policy; ConnectionOptions carries
/// what every mode shares (credentials, timeouts, backoff).

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include <hitbox/backend/redis/tls.hpp>
#include <hitbox/core/error.hpp>
#include <hitbox/core/linkage.hpp>

namespace hitbox {

class SingleNode;
class Cluster;
class AnyConnection;

/// Default time to establish a connection (host name lookup + TCP connect + AUTH + SELECT).
inline constexpr std::chrono::milliseconds default_connect_timeout{2000};
/// Default time to wait for a reply once a command is sent.
inline constexpr std::chrono::milliseconds default_command_timeout{1000};
/// Default delay after the first failed connect; it doubles (with jitter) on each further failure.
inline constexpr std::chrono::milliseconds default_reconnect_backoff_initial{100};
/// Default cap of the reconnect delay.
inline constexpr std::chrono::milliseconds default_reconnect_backoff_max{5000};

/// Default largest reply a connection accepts: the default decompression limit (64 MiB), so any entry the
/// default policies can decode fits. A larger reply is cut off (a `capacity` error) before it is buffered.
inline constexpr std::size_t default_max_reply_bytes = std::size_t{64} << 20;

/// Who drives a busy connection's socket (an idle one is always driven by its one caller, who writes and
/// reads for itself): `callers` (the default) write their own commands and read the socket themselves while
/// they wait; `io_thread` leaves both to the connection's I/O thread, callers only queue and sleep, which is
/// faster where waking a thread is cheap and with many callers; `adaptive` measures both while the
/// connection is busy and keeps the one that completes more (doc/internals/connection.md).
enum class ConnectionDrive : std::uint8_t { callers, io_thread, adaptive };

/// How a connection's callers wait for their replies. The default spins: a waiting caller yields the CPU a
/// few times and meanwhile reads the socket itself, a busy writer yields once so ready callers join its
/// send, and the connection lock tries a while before it sleeps. That avoids waking sleeping threads,
/// which costs more than a loopback round trip on some virtual machines (doc/internals/connection.md).
/// `plain()` turns all of it off: callers sleep at once and are woken by whoever reads their replies.
struct ConnectionTuning {
    bool spin = true;                                  ///< false: none of the spinning below
    int spin_yields = 16;                              ///< yields of a waiting caller before it sleeps
    std::chrono::nanoseconds pump_gap{5000};           ///< at most one spinning caller's socket read per gap
    bool writer_yield = true;                          ///< a busy writer yields once before it sends
    int lock_spins = 100;                              ///< tries of the connection lock before it sleeps
    int max_write_rounds = 8;                          ///< sends by one caller before the I/O thread takes over
    ConnectionDrive drive = ConnectionDrive::callers;  ///< who drives a busy connection's socket

    /// No spinning at all: the waiting strategy of a plain multiplexer.
    static ConnectionTuning plain() noexcept {
        ConnectionTuning t;
        t.spin = false;
        t.spin_yields = 0;
        t.writer_yield = false;
        t.lock_spins = 0;
        return t;
    }
};

/// Settings every connection policy shares. Credentials set here override the ones in the URL, each on its
/// own (a builder password with a URL user authenticates as that user with the builder's password).
struct ConnectionOptions {
    std::optional<std::string> username;  ///< Redis 6+ ACL user
    std::optional<std::string> password;  ///< never printed, logged or counted
    std::chrono::milliseconds connect_timeout = default_connect_timeout;
    std::chrono::milliseconds command_timeout = default_command_timeout;
    std::chrono::milliseconds reconnect_backoff_initial = default_reconnect_backoff_initial;
    std::chrono::milliseconds reconnect_backoff_max = default_reconnect_backoff_max;
    std::size_t max_reply_bytes = default_max_reply_bytes;  ///< larger replies drop the connection
    ConnectionTuning tuning{};  ///< how callers wait (spinning by default; ConnectionTuning::plain())
    /// TLS for every node (set by `.tls(...)`); a `rediss://` URL without it means TLS with the defaults.
    std::optional<TlsOptions> tls;
};

/// Monotonic counters of one node connection, for health checks and tests.
struct ConnectionCounters {
    std::uint64_t connect_attempts = 0;  ///< connects started (backoff keeps this low while a server is down)
    std::uint64_t connects = 0;          ///< connections that completed their handshake
    std::uint64_t drops = 0;             ///< established connections lost
    std::uint64_t timeouts = 0;          ///< callers that gave up waiting for a reply
    std::uint64_t commands = 0;          ///< commands submitted
    std::uint64_t writes = 0;            ///< socket flushes; commands / writes shows how much pipelining happened
    std::uint64_t io_thread_rounds = 0;  ///< round trips driven by the I/O thread (ConnectionDrive::io_thread)
    std::uint64_t drive_switches = 0;    ///< changes of who drives a busy connection (ConnectionDrive::adaptive)
};

/// Default most nodes a Cluster connection knows at once (ClusterMode::max_nodes): far above any real
/// cluster's size (Redis advises at most 1000 nodes), far below what a bogus topology could name (16384).
inline constexpr std::size_t default_cluster_max_nodes = 1000;

/// One Redis server, given by URL. Selects the SingleNode connection policy.
struct SingleNodeMode {
    using connection_type = SingleNode;
    std::string url;  ///< `redis[s]://[user[:password]@]host[:port][/db]` or `unix:///path[?db=N]`
};

/// A Redis Cluster, given by seed node URLs (any reachable one yields the topology). Selects the Cluster
/// connection policy (`#include <hitbox/backend/redis/cluster.hpp>`, or the umbrella redis.hpp).
struct ClusterMode {
    using connection_type = Cluster;
    std::vector<std::string> urls;    ///< `redis://[user[:password]@]host[:port]` of some nodes (db 0 only)
    bool read_from_replicas = false;  ///< GETs go to a replica of the slot (READONLY), writes to its master
    /// Most nodes known at once. A CLUSTER SLOTS reply naming more is not used, and a redirection to one
    /// more node fails, both with a `capacity` error; nodes that left the topology do not count (they are
    /// closed and dropped).
    std::size_t max_nodes = default_cluster_max_nodes;
};

/// Single node or cluster, decided at run time (for a mode read from configuration). Selects the
/// AnyConnection policy (`#include <hitbox/backend/redis/any_connection.hpp>`, or the umbrella redis.hpp):
/// one backend type for both modes, at the cost of one branch per command.
struct AnyMode {
    using connection_type = AnyConnection;
    std::variant<SingleNodeMode, ClusterMode> mode;
};

/// Factories for the connection modes, used with `RedisBackend<>::builder().connection(...)`.
///
/// \code
/// auto redis = hitbox::RedisBackend<>::builder()
///                  .connection(hitbox::ConnectionMode::single("redis://localhost:6379/"))
///                  .build();
/// \endcode
struct ConnectionMode {
    /// A single Redis server.
    static SingleNodeMode single(std::string url) { return SingleNodeMode{std::move(url)}; }
    /// A Redis Cluster reached through any of the seed `urls`: `cluster({"redis://n1:6379", ...})`.
    static ClusterMode cluster(std::vector<std::string> urls, bool read_from_replicas = false) {
        return ClusterMode{std::move(urls), read_from_replicas};
    }
    /// Either mode behind one type (AnyConnection): `any(single(url))` or `any(cluster(urls))`.
    HITBOX_LIB_INLINE static AnyMode any(SingleNodeMode mode);
    HITBOX_LIB_INLINE static AnyMode any(ClusterMode mode);
    /// The mode by name, as a configuration file spells it: "single" (exactly one URL) or "cluster" (seed
    /// URLs). Anything else is a config error that lists the valid names; URLs are checked by build().
    HITBOX_LIB_INLINE static Result<AnyMode> parse(std::string_view name, std::vector<std::string> urls,
                                                   bool read_from_replicas = false);
};

}  // namespace hitbox

// The definitions: included here in a header-only build, compiled once into the hitbox-redis library otherwise.
#if !HITBOX_COMPILED_LIB
#include <hitbox/backend/redis/detail/connection_mode_impl.hpp>
#endif
