#pragma once
/// \file
/// Redis URL parsing: `redis://[user[:password]@]host[:port][/db]`, `rediss://` (the same over TLS),
/// `unix:///path/to/redis.sock[?db=N]`.
/// Non-generic: plain inline functions. Messages never contain the password.

#include <charconv>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <hitbox/backend/redis/tls.hpp>
#include <hitbox/core/error.hpp>
#include <hitbox/core/linkage.hpp>

namespace hitbox::detail {

/// Where and how to reach one Redis server.
struct RedisEndpoint {
    /// Transport of the connection.
    enum class Transport : std::uint8_t { tcp, unix_socket };

    Transport transport = Transport::tcp;
    std::string host;                     ///< tcp: host name or IP literal (IPv6 without brackets)
    std::uint16_t port = 6379;            ///< tcp port
    std::string path;                     ///< unix socket path
    std::optional<std::string> username;  ///< Redis 6+ ACL user
    std::optional<std::string> password;  ///< never printed
    std::int64_t db = 0;                  ///< logical database selected after connecting
    bool tls = false;                     ///< `rediss://`: the connection must be TLS (tcp only)

    /// "host:port", "[::1]:6379" or "unix:/path": for messages; never contains credentials.
    std::string address() const {
        if (transport == Transport::unix_socket) return "unix:" + path;
        std::string out = host.find(':') != std::string::npos ? "[" + host + "]" : host;
        return out + ":" + std::to_string(port);
    }
};

/// Where the authority of `url` (`[userinfo@]host[:port]`) starts and ends: after `scheme://` (or at 0
/// without one) up to the first `/` or `?` (RFC 3986: an `@` after that is path, not userinfo).
HITBOX_LIB_INLINE std::pair<std::size_t, std::size_t> url_authority(std::string_view url);

/// The URL with its whole userinfo (user name and password) replaced by `***`, safe to put in a message.
HITBOX_LIB_INLINE std::string redact_url(std::string_view url);

HITBOX_LIB_INLINE bool percent_decode(std::string_view in, std::string& out);

template <class Int>
inline bool parse_decimal(std::string_view s, Int& out) {
    if (s.empty()) return false;
    for (char c : s)
        if (c < '0' || c > '9') return false;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc() && p == s.data() + s.size();
}

/// Parses a Redis URL. Accepted forms:
/// - `redis://[[user]:password@]host[:port][/db]`: host is a name, an IPv4 literal or `[IPv6]`; port
///   defaults to 6379, db to 0; user and password may be percent-escaped. The authority ends at the first
///   `/` or `?` (RFC 3986), so `redis://host:6379/0@other` is a bad database path, never a connection to
///   `other`. A userinfo without `:` (`redis://secret@host`) is a password alone (the default user), as
///   some clients accept it; a user name needs the colon form (`redis://user:password@host`). No message
///   ever shows the userinfo.
/// - `unix://[user[:password]@]/absolute/path.sock[?db=N]` (also `redis+unix://`).
/// - `rediss://...`: as `redis://`, with `tls` set; the port still defaults to 6379. In a build without
///   TLS (tls_available() is false) it is a config error that says how to enable TLS.
inline Result<RedisEndpoint> parse_redis_url(std::string_view url);

/// parse_redis_url for a build with TLS (`tls_built`) or without: the parser itself is compiled once, into
/// the core library in compiled-library mode (the run-time configuration checks URLs without the Redis
/// library), and the answer to "is TLS built in" comes from the translation unit that asks.
HITBOX_LIB_INLINE Result<RedisEndpoint> parse_redis_url_as(std::string_view url, bool tls_built);

inline Result<RedisEndpoint> parse_redis_url(std::string_view url) { return parse_redis_url_as(url, tls_available()); }

}  // namespace hitbox::detail

// The definitions: included here in a header-only build, compiled once into the hitbox library otherwise.
#if !HITBOX_COMPILED_LIB
#include <hitbox/backend/redis/detail/url_impl.hpp>
#endif
