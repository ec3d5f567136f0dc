#pragma once
/// \file
/// Non-blocking sockets for the Redis transport: connect with a deadline (TCP or unix), POSIX only.

#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <string>

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <hitbox/backend/redis/detail/url.hpp>
#include <hitbox/core/error.hpp>

namespace hitbox::detail {

/// Closes a file descriptor on scope exit unless released.
class FdGuard {
  public:
    explicit FdGuard(int fd = -1) noexcept : fd_(fd) {}
    ~FdGuard() {
        if (fd_ >= 0) ::close(fd_);
    }
    FdGuard(const FdGuard&) = delete;
    FdGuard& operator=(const FdGuard&) = delete;
    int get() const noexcept { return fd_; }
    int release() noexcept {
        int fd = fd_;
        fd_ = -1;
        return fd;
    }

  private:
    int fd_;
};

inline std::string errno_text(int err) {
    char buf[256];
#if defined(__GLIBC__) && defined(_GNU_SOURCE)
    return ::strerror_r(err, buf, sizeof buf);
#else
    if (::strerror_r(err, buf, sizeof buf) != 0) return "error " + std::to_string(err);
    return buf;
#endif
}

inline int remaining_ms(std::chrono::steady_clock::time_point deadline) {
    auto left =
        std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
    return left < 0 ? 0 : static_cast<int>(left);
}

/// Starts a non-blocking connect of `fd` to `addr` and waits for it until `deadline`.
inline Result<void> connect_until(int fd, const sockaddr* addr, socklen_t len,
                                  std::chrono::steady_clock::time_point deadline, const std::string& what) {
    if (::connect(fd, addr, len) == 0) return {};
    if (errno != EINPROGRESS && errno != EINTR)
        return fail(ErrorKind::connection, what + ": " + errno_text(errno));
    for (;;) {
        pollfd p{fd, POLLOUT, 0};
        int ms = remaining_ms(deadline);
        int rc = ::poll(&p, 1, ms);
        if (rc < 0 && errno == EINTR) continue;
        if (rc < 0) return fail(ErrorKind::connection, what + ": " + errno_text(errno));
        if (rc == 0) return fail(ErrorKind::connection, what + ": timed out");
        int err = 0;
        socklen_t elen = sizeof err;
        if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0) err = errno;
        if (err != 0) return fail(ErrorKind::connection, what + ": " + errno_text(err));
        return {};
    }
}

/// A connected, non-blocking, close-on-exec socket to `ep` (TCP_NODELAY and keep-alive on TCP), or a
/// connection error once `timeout` has passed. Name resolution uses getaddrinfo (blocking).
inline Result<int> connect_socket(const RedisEndpoint& ep, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    const std::string what = "connect to " + ep.address();
    if (ep.transport == RedisEndpoint::Transport::unix_socket) {
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        if (ep.path.size() >= sizeof addr.sun_path)
            return fail(ErrorKind::config,
                        what + ": socket path longer than " + std::to_string(sizeof addr.sun_path - 1));
        std::memcpy(addr.sun_path, ep.path.data(), ep.path.size());
        FdGuard fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
        if (fd.get() < 0) return fail(ErrorKind::connection, what + ": " + errno_text(errno));
        auto r =
            connect_until(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr, deadline, what);
        if (!r) return fail(r.error());
        return fd.release();
    }

    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    const std::string port = std::to_string(ep.port);
    if (int rc = ::getaddrinfo(ep.host.c_str(), port.c_str(), &hints, &found); rc != 0)
        return fail(ErrorKind::connection, what + ": cannot resolve host: " + ::gai_strerror(rc));
    std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> list(found, &::freeaddrinfo);
    Error last(ErrorKind::connection, what + ": no address");
    for (auto* ai = list.get(); ai != nullptr; ai = ai->ai_next) {
        FdGuard fd(::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol));
        if (fd.get() < 0) {
            last = Error(ErrorKind::connection, what + ": " + errno_text(errno));
            continue;
        }
        auto r = connect_until(fd.get(), ai->ai_addr, ai->ai_addrlen, deadline, what);
        if (!r) {
            last = r.error();
            if (std::chrono::steady_clock::now() >= deadline) break;
            continue;
        }
        int one = 1;
        ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        ::setsockopt(fd.get(), SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
        return fd.release();
    }
    return fail(std::move(last));
}

}  // namespace hitbox::detail
