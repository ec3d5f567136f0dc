#pragma once
/// \file
/// hitbox::Error and hitbox::Result<T>: the one error type of the cache path.

#include <cstddef>
#include <cstdint>
#include <exception>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>

#include <hitbox/core/linkage.hpp>

#if defined(__cpp_lib_expected) && __cpp_lib_expected >= 202202L
#include <expected>
#define HITBOX_STD_EXPECTED 1
#else
#include <tl/expected.hpp>
#define HITBOX_STD_EXPECTED 0
#endif

namespace hitbox {

/// What went wrong, coarse enough to count and to branch on.
enum class ErrorKind : std::uint8_t {
    connection,     ///< could not reach a server, or the connection dropped
    timeout,        ///< an operation did not finish within its configured time
    protocol,       ///< the server answered something we cannot interpret
    auth,           ///< wrong credentials or missing permission
    encode,         ///< a value or key could not be serialized
    decode,         ///< stored bytes are corrupt, truncated or of an unknown version
    compression,    ///< (de)compression failed or exceeded its size limit
    config,         ///< invalid configuration (builder, URL)
    type_mismatch,  ///< a typed read of a key stored with another type
    capacity,       ///< a bound was reached (queue full, value too large)
    cluster_down,   ///< Redis Cluster reported CLUSTERDOWN / TRYAGAIN past the retry budget
    server,         ///< the server answered with an error reply
    unavailable,    ///< every tier of a composition failed, the backend is shut down, or a callback threw
    tls,            ///< a TLS handshake or session failed: the peer's certificate did not verify (expired,
                    ///< unknown CA, host name mismatch), no common protocol, or a TLS alert
};

/// Number of ErrorKind values: the size of arrays indexed by kind (RedisStats::errors). New kinds go last.
inline constexpr std::size_t error_kind_count = static_cast<std::size_t>(ErrorKind::tls) + 1;

/// Stable lower-case name of an error kind ("connection", "decode", ...), used in messages and metrics.
constexpr std::string_view to_string(ErrorKind kind) noexcept {
    switch (kind) {
        case ErrorKind::connection: return "connection";
        case ErrorKind::timeout: return "timeout";
        case ErrorKind::protocol: return "protocol";
        case ErrorKind::auth: return "auth";
        case ErrorKind::encode: return "encode";
        case ErrorKind::decode: return "decode";
        case ErrorKind::compression: return "compression";
        case ErrorKind::config: return "config";
        case ErrorKind::type_mismatch: return "type_mismatch";
        case ErrorKind::capacity: return "capacity";
        case ErrorKind::cluster_down: return "cluster_down";
        case ErrorKind::server: return "server";
        case ErrorKind::unavailable: return "unavailable";
        case ErrorKind::tls: return "tls";
    }
    return "unknown";
}

/// The error of every fallible hitbox operation: a kind, a message and the label of the backend that
/// produced it. Messages are built by hitbox and never contain credentials.
///
/// \code
/// auto r = backend.get<User>(key);
/// if (!r) std::cerr << r.error() << '\n';   // "[redis] connection: connect to 127.0.0.1:6379 refused"
/// \endcode
class Error {
public:
    /// An error of `kind`; `backend` is the label of the tier it came from, if any.
    Error(ErrorKind kind, std::string message, std::string backend = {})
        : kind_(kind), message_(std::move(message)), backend_(std::move(backend)) {}

    /// What went wrong, to branch on or count.
    ErrorKind kind() const noexcept { return kind_; }
    /// The description without kind or backend.
    const std::string& message() const noexcept { return message_; }
    /// Label (or label path) of the backend that failed; empty when not tied to one.
    const std::string& backend() const noexcept { return backend_; }

    /// A copy attributed to `label`; an existing label is kept as the inner part of a path
    /// ("outer" + "redis" -> "outer.redis").
    Error in(std::string_view label) const;

    /// The one place errors turn into text: "[backend] kind: message".
    std::string what() const;

    friend bool operator==(const Error&, const Error&) = default;
    /// Writes what().
    friend std::ostream& operator<<(std::ostream& os, const Error& e);

private:
    ErrorKind kind_;
    std::string message_;
    std::string backend_;
};

#if HITBOX_STD_EXPECTED
/// `expected<T, Error>`: std::expected where the library has it, tl::expected otherwise.
template <class T>
using Result = std::expected<T, Error>;
using Unexpected = std::unexpected<Error>;
#else
/// `expected<T, Error>`: std::expected where the library has it, tl::expected otherwise.
template <class T>
using Result = tl::expected<T, Error>;
using Unexpected = tl::unexpected<Error>;
#endif

/// Shorthand for returning an error: `return hitbox::fail(ErrorKind::decode, "truncated envelope");`
HITBOX_LIB_INLINE Unexpected fail(ErrorKind kind, std::string message, std::string backend = {});

/// Returns an existing error: `return hitbox::fail(r.error());`
inline Unexpected fail(Error error) { return Unexpected(std::move(error)); }

namespace detail {

/// The exception being handled as an Error: kind `unavailable`, message "<what> threw: <e.what()>". Call
/// it only inside a catch block. It is how a callback's exception (a loader, a tier, a weigher, a
/// value's copy) becomes an error result instead of leaving the cache path.
HITBOX_LIB_INLINE Error exception_error(std::string_view what, std::string backend = {});

}  // namespace detail

}  // namespace hitbox

// The definitions: included here in a header-only build, compiled once into the hitbox library otherwise.
#if !HITBOX_COMPILED_LIB
#include <hitbox/core/detail/error_impl.hpp>
#endif
