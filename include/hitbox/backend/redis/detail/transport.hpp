#pragma once
/// \file
/// The transport: one connected, non-blocking byte stream to a Redis server (plain TCP, a unix socket, or
/// TLS over TCP) behind one small interface, and open_transport(), which connects one by a deadline.
///
/// Calls happen once per batch of commands, not per command, so the interface is a class with virtual
/// functions. Rules for the connection that owns a transport:
/// - read() and write() never block. A call that moves nothing says what it waits for: `want_read` (poll
///   fd() for POLLIN) or `want_write` (POLLOUT). read_wait() is the one call that may block, for at most
///   wait_slice, on a transport whose can_wait() says so (plain sockets: one system call per reply instead
///   of a poll() and a read). A TLS read may need to write first (a key update), and a
///   TLS write may need to read, so a caller polls for what the result says, not for what it called.
/// - After `want_write` or `want_read` from write(), the next write() must start with the same bytes: the
///   buffer may move and grow (more commands appended), never shrink (OpenSSL's retry rule).
/// - buffered() > 0 means read() has bytes without touching the socket (TLS: records already decrypted):
///   a poller must not sleep on fd() while it is non-zero.
/// - One thread at a time uses read(), write() and buffered() (an SSL object is not safe for concurrent
///   use). shutdown() may be called from any thread: it wakes a thread blocked in poll() on fd() or in
///   read_wait().
/// - Errors: `connection` for what the network did (refused, reset, timed out, closed), `tls` for what
///   TLS decided (a certificate that does not verify and why, an alert from the server, no common
///   protocol), `config` for settings that cannot work (TLS over a unix socket, TLS in a build without it).

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <hitbox/backend/redis/connection_mode.hpp>
#include <hitbox/backend/redis/detail/deadline.hpp>
#include <hitbox/backend/redis/detail/socket.hpp>
#include <hitbox/backend/redis/detail/url.hpp>
#include <hitbox/backend/redis/tls.hpp>
#include <hitbox/core/error.hpp>

namespace hitbox::detail {

/// What a read() or write() did.
enum class IoStatus : std::uint8_t {
    moved,       ///< `bytes` (> 0) were read or written
    want_read,   ///< nothing moved: call again once fd() is readable (TLS: for a write too)
    want_write,  ///< nothing moved: call again once fd() is writable (TLS: for a read too)
    closed,      ///< the peer closed the stream: nothing more will come
    error,       ///< the stream is broken (`error` says why): close the transport
};

/// The outcome of one read() or write().
struct IoResult {
    IoStatus status = IoStatus::moved;
    std::size_t bytes = 0;       ///< `moved`: how many bytes
    std::optional<Error> error;  ///< `error`: what went wrong (never a secret)

    static IoResult moved(std::size_t n) noexcept { return {IoStatus::moved, n, std::nullopt}; }
    static IoResult wait(IoStatus what) noexcept { return {what, 0, std::nullopt}; }
    static IoResult failed(Error e) noexcept { return {IoStatus::error, 0, std::move(e)}; }
};

/// A connected byte stream. Owns its descriptor and closes it in the destructor.
class Transport {
public:
    Transport(const Transport&) = delete;
    Transport& operator=(const Transport&) = delete;
    virtual ~Transport() {
        if (fd_ >= 0) ::close(fd_);
    }

    /// Reads up to `len` (> 0) bytes into `buf`.
    virtual IoResult read(char* buf, std::size_t len) = 0;
    /// Writes up to `len` (> 0) bytes of `buf`; `moved` may be fewer than `len`.
    virtual IoResult write(const char* buf, std::size_t len) = 0;
    /// Bytes read() returns without touching the socket (TLS: decrypted data held inside the SSL object).
    virtual std::size_t buffered() const noexcept { return 0; }

    /// The longest read_wait() blocks.
    static constexpr std::chrono::milliseconds wait_slice{10};
    /// Whether read_wait() may block (a plain socket; TLS never does: its reads may need to write).
    virtual bool can_wait() const noexcept { return false; }
    /// read() that waits up to wait_slice for the first byte when can_wait(); `want_read` when none came
    /// in that time. Otherwise the same as read().
    virtual IoResult read_wait(char* buf, std::size_t len) { return read(buf, len); }
    /// "tcp", "unix" or the TLS version and cipher ("TLSv1.3 TLS_AES_256_GCM_SHA384"), for messages.
    virtual std::string protocol() const = 0;

    /// The descriptor to poll (or epoll) for the direction read() / write() asked for.
    int fd() const noexcept { return fd_; }
    /// The peer's "host:port" or "unix:/path", for messages.
    const std::string& address() const noexcept { return address_; }
    /// Shuts the socket down both ways without closing it: any thread blocked in poll() on fd() wakes up,
    /// and the next read() or write() fails. Safe from any thread.
    void shutdown() noexcept { ::shutdown(fd_, SHUT_RDWR); }
    /// In a child of fork(): the stream is the parent's, so the destructor only closes this process's
    /// descriptor and sends nothing on it (no TLS close_notify).
    virtual void abandon() noexcept {}

protected:
    Transport(int fd, std::string address) noexcept : fd_(fd), address_(std::move(address)) {}

private:
    const int fd_;
    const std::string address_;
};

/// A plain TCP or unix socket. The descriptor itself blocks, with a receive timeout of wait_slice, so that
/// read_wait() is one recv(); read() and write() pass MSG_DONTWAIT and never block. Should the socket
/// options fail, the descriptor stays non-blocking and read_wait() is read().
class PlainTransport final : public Transport {
public:
    PlainTransport(int fd, std::string address, bool unix_socket) noexcept
        : Transport(fd, std::move(address)), unix_socket_(unix_socket), can_wait_(make_waitable(fd)) {}

    IoResult read(char* buf, std::size_t len) override { return recv_(buf, len, MSG_DONTWAIT); }

    bool can_wait() const noexcept override { return can_wait_; }

    IoResult read_wait(char* buf, std::size_t len) override { return can_wait_ ? recv_(buf, len, 0) : read(buf, len); }

    IoResult write(const char* buf, std::size_t len) override {
        for (;;) {
            const auto n = ::send(fd(), buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n >= 0) return IoResult::moved(static_cast<std::size_t>(n));
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return IoResult::wait(IoStatus::want_write);
            return IoResult::failed(Error(ErrorKind::connection, "write to " + address() + ": " + errno_text(errno)));
        }
    }

    std::string protocol() const override { return unix_socket_ ? "unix" : "tcp"; }

private:
    /// recv with `flags`: moved, closed, want_read (nothing there, or a blocking wait ran out), or an error.
    IoResult recv_(char* buf, std::size_t len, int flags) {
        for (;;) {
            const auto n = ::recv(fd(), buf, len, flags);
            if (n > 0) return IoResult::moved(static_cast<std::size_t>(n));
            if (n == 0) return IoResult::wait(IoStatus::closed);
            // A signal in a blocking wait: nothing read; the caller looks at its deadline and waits again.
            if (errno == EINTR) {
                if (flags == 0) return IoResult::wait(IoStatus::want_read);
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) return IoResult::wait(IoStatus::want_read);
            return IoResult::failed(Error(ErrorKind::connection, "read from " + address() + ": " + errno_text(errno)));
        }
    }

    /// Makes `fd` blocking with a receive timeout of wait_slice; false (and `fd` left non-blocking) when
    /// the system refuses either.
    static bool make_waitable(int fd) noexcept {
        timeval tv{};
        tv.tv_usec = static_cast<suseconds_t>(std::chrono::microseconds(wait_slice).count());
        if (::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0) return false;
        const int flags = ::fcntl(fd, F_GETFL);
        return flags >= 0 && ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) == 0;
    }

    bool unix_socket_;
    bool can_wait_;
};

/// One TLS client configuration (an OpenSSL SSL_CTX): created once per backend from its TlsOptions and
/// shared by every node connection (detail/tls_transport.hpp). Incomplete in a build without TLS, where
/// no instance can exist.
class TlsContext;

#if HITBOX_WITH_TLS
// Defined in detail/tls_transport.hpp, included at the end of this header.

/// A TLS context for `options`: TLS 1.2 at least, the CAs, the client certificate. A config error names
/// the file that could not be used.
inline Result<std::shared_ptr<const TlsContext>> make_tls_context(const TlsOptions& options);
/// Runs the TLS handshake on the connected socket `fd` (owned from here on) by `deadline`.
inline Result<std::unique_ptr<Transport>> open_tls_transport(const TlsContext& tls, int fd, const RedisEndpoint& ep,
                                                             std::chrono::steady_clock::time_point deadline,
                                                             std::chrono::milliseconds timeout);
#else
/// In a build without TLS: the config error every TLS request gets.
inline Result<std::shared_ptr<const TlsContext>> make_tls_context(const TlsOptions&) {
    return fail(ErrorKind::config,
                "TLS is not available in this build: rediss:// and .tls() need hitbox built "
                "with OpenSSL (meson -Dtls=enabled, libssl-dev) and the hitbox-tls dependency");
}
#endif

/// The TLS context a connection to `endpoint` needs under `options`: nullptr for plain (neither a
/// `rediss://` URL nor `options.tls`), else one made from `options.tls` (defaults when unset). Call it
/// once per backend and share the result among its nodes: every call makes a new context (reads the CA
/// and key files). A config error in a build without TLS, or for TLS over a unix socket.
inline Result<std::shared_ptr<const TlsContext>> tls_context_for(const RedisEndpoint& endpoint,
                                                                 const ConnectionOptions& options) {
    if (!endpoint.tls && !options.tls) return std::shared_ptr<const TlsContext>();
    if (endpoint.transport == RedisEndpoint::Transport::unix_socket)
        return fail(ErrorKind::config, "Redis at " + endpoint.address() +
                                           ": TLS is for TCP connections (rediss://host:port), not unix sockets");
    return make_tls_context(options.tls.value_or(TlsOptions{}));
}

/// Connects to `ep` by `deadline` and returns the transport: plain when `tls` is null, else TLS with that
/// context, its handshake done (certificate checked) by the same deadline. `timeout` is the deadline's
/// budget, for messages. A TLS endpoint (`ep.tls`) without a context is a config error, never plain text.
inline Result<std::unique_ptr<Transport>> open_transport(const RedisEndpoint& ep, const TlsContext* tls,
                                                         std::chrono::steady_clock::time_point deadline,
                                                         std::chrono::milliseconds timeout) {
    if (ep.tls && tls == nullptr) {
        if (!tls_available()) return fail(make_tls_context(TlsOptions{}).error());
        return fail(ErrorKind::config,
                    "connect to " + ep.address() + ": a TLS endpoint (rediss://) needs a TLS context");
    }
    const bool unix_socket = ep.transport == RedisEndpoint::Transport::unix_socket;
    if (tls != nullptr && unix_socket)
        return fail(ErrorKind::config, "connect to " + ep.address() + ": TLS over a unix socket is not supported");
    auto fd = connect_plain(ep, deadline, timeout);
    if (!fd) return fail(fd.error());
    if (tls == nullptr) {
        FdGuard guard(*fd);  // closed if the allocation throws
        auto plain = std::make_unique<PlainTransport>(guard.get(), ep.address(), unix_socket);
        guard.release();
        return std::unique_ptr<Transport>(std::move(plain));
    }
#if HITBOX_WITH_TLS
    return open_tls_transport(*tls, *fd, ep, deadline, timeout);
#else
    ::close(*fd);
    return fail(make_tls_context(TlsOptions{}).error());
#endif
}

/// open_transport with a deadline `timeout` from now.
inline Result<std::unique_ptr<Transport>> open_transport(const RedisEndpoint& ep, const TlsContext* tls,
                                                         std::chrono::milliseconds timeout) {
    return open_transport(ep, tls, deadline_after(std::chrono::steady_clock::now(), timeout), timeout);
}

}  // namespace hitbox::detail

#if HITBOX_WITH_TLS
#include <hitbox/backend/redis/detail/tls_transport.hpp>
#endif
