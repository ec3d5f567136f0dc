#pragma once
/// \file
/// detail::NodeSettings: the settings of one node connection (address, credentials, timeouts, TLS, tuning),
/// and detail::EndpointSource, where a link connects. Apart from detail/node_connection.hpp so that the
/// connection policies' headers (SingleNode::settings()) name them without the connection itself, which a
/// compiled-library build (HITBOX_COMPILED_LIB) keeps out of user translation units.

#include <chrono>
#include <cstddef>
#include <memory>

#include <hitbox/backend/redis/connection_mode.hpp>
#include <hitbox/backend/redis/detail/drive_selector.hpp>
#include <hitbox/backend/redis/detail/url.hpp>
#include <hitbox/core/error.hpp>

namespace hitbox::detail {

class TlsContext;  // detail/transport.hpp

/// Where a link connects, asked on every connect (doc/internals/connection.md): a fixed address by default;
/// Sentinel (the current master) or cluster re-resolution plug in here without touching the multiplexer.
/// Only the address is taken from the answer (host, port, or unix path; TLS or not); credentials and
/// database stay the node's. Called on the connection's I/O thread; it may block up to the connect timeout.
class EndpointSource {
public:
    virtual ~EndpointSource() = default;
    /// The address to connect to now, or why there is none (the connect then fails and backs off).
    virtual Result<RedisEndpoint> endpoint() = 0;
};

/// Settings of one node connection.
struct NodeSettings {
    RedisEndpoint endpoint;                                 ///< address, credentials, database
    std::chrono::milliseconds connect_timeout{2000};        ///< host name lookup + TCP connect + AUTH/SELECT
    std::chrono::milliseconds command_timeout{1000};        ///< wait for a reply
    std::chrono::milliseconds backoff_initial{100};         ///< first delay after a failed connect
    std::chrono::milliseconds backoff_max{5000};            ///< the delay doubles up to this
    std::size_t max_reply_bytes = default_max_reply_bytes;  ///< a reply buffering beyond this drops the connection
    std::shared_ptr<const TlsContext> tls;   ///< TLS for this node (shared by a backend's nodes), or plain
    ConnectionTuning tuning{};               ///< how callers wait
    std::shared_ptr<EndpointSource> source;  ///< where to connect each time; null: `endpoint`, fixed
    DriveSelectorConfig drive_timing{};      ///< when ConnectionDrive::adaptive measures (tests shorten it)
};

}  // namespace hitbox::detail
