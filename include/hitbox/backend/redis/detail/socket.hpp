#pragma once
/// \file
/// Non-blocking sockets for the Redis transport: connect with a deadline (TCP or unix), POSIX only. The
/// transport (detail/transport.hpp) wraps the connected descriptor, in TLS when the endpoint asks for it.

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <hitbox/backend/redis/detail/deadline.hpp>
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
    return clamp_ms(std::chrono::steady_clock::now(), deadline);
}

/// Starts a non-blocking connect of `fd` to `addr` and waits for it until `deadline`.
inline Result<void> connect_until(int fd, const sockaddr* addr, socklen_t len,
                                  std::chrono::steady_clock::time_point deadline, const std::string& what) {
    if (::connect(fd, addr, len) == 0) return {};
    if (errno != EINPROGRESS && errno != EINTR) return fail(ErrorKind::connection, what + ": " + errno_text(errno));
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

/// An owned getaddrinfo result.
using AddressList = std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)>;

/// The TCP addresses of `host`:`port`, or a connection error by `deadline` (`timeout` is that deadline's
/// budget, for the message). A numeric address is converted at once; a host name is looked up by
/// `lookup` (getaddrinfo's signature) on a helper thread, so a slow resolver costs the caller no more than
/// the deadline: the helper finishes on its own and frees a result nobody waits for any more.
template <class Lookup>
Result<AddressList> resolve_until(const std::string& host, const std::string& port,
                                  std::chrono::steady_clock::time_point deadline, std::chrono::milliseconds timeout,
                                  const std::string& what, Lookup lookup) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    {
        addrinfo numeric = hints;
        numeric.ai_flags = AI_NUMERICHOST;
        addrinfo* found = nullptr;
        if (::getaddrinfo(host.c_str(), port.c_str(), &numeric, &found) == 0)
            return AddressList(found, &::freeaddrinfo);
    }
    struct LookupState {
        std::mutex mu;
        std::condition_variable done_cv;
        bool done = false, abandoned = false;
        int rc = 0;
        addrinfo* found = nullptr;
    };
    auto state = std::make_shared<LookupState>();
    try {
        std::thread([state, host, port, hints, lookup]() mutable {
            addrinfo* found = nullptr;
            const int rc = lookup(host.c_str(), port.c_str(), &hints, &found);
            std::lock_guard<std::mutex> lk(state->mu);
            if (state->abandoned) {
                if (found != nullptr) ::freeaddrinfo(found);
                return;
            }
            state->rc = rc;
            state->found = found;
            state->done = true;
            state->done_cv.notify_one();
        }).detach();
    } catch (const std::system_error& e) {
        return fail(ErrorKind::connection, what + ": cannot start name resolution: " + e.what());
    }
    std::unique_lock<std::mutex> lk(state->mu);
    if (!state->done_cv.wait_until(lk, deadline, [&] { return state->done; })) {
        state->abandoned = true;
        return fail(ErrorKind::connection, what + ": host name not resolved within the connect timeout (" +
                                               std::to_string(timeout.count()) + " ms)");
    }
    AddressList list(state->found, &::freeaddrinfo);
    if (state->rc != 0)
        return fail(ErrorKind::connection, what + ": cannot resolve host: " + ::gai_strerror(state->rc));
    if (!list) return fail(ErrorKind::connection, what + ": cannot resolve host: no address");
    return list;
}

/// A connected, non-blocking, close-on-exec socket to `ep` (TCP_NODELAY and keep-alive on TCP), or a
/// connection error at `deadline`, name resolution included (`timeout` is the deadline's budget, for the
/// message). Plain bytes: `ep.tls` is the caller's business (open_transport wraps the socket in TLS).
inline Result<int> connect_plain(const RedisEndpoint& ep, std::chrono::steady_clock::time_point deadline,
                                 std::chrono::milliseconds timeout) {
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
        auto r = connect_until(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr, deadline, what);
        if (!r) return fail(r.error());
        return fd.release();
    }

    auto list = resolve_until(ep.host, std::to_string(ep.port), deadline, timeout, what, &::getaddrinfo);
    if (!list) return fail(list.error());
    Error last(ErrorKind::connection, what + ": no address");
    for (auto* ai = list->get(); ai != nullptr; ai = ai->ai_next) {
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

/// connect_plain with a deadline `timeout` from now, for a plain endpoint only: a TLS endpoint
/// (`rediss://`) is refused, so a caller that does not speak TLS never talks plain text to it.
inline Result<int> connect_socket(const RedisEndpoint& ep, std::chrono::milliseconds timeout) {
    if (ep.tls)
        return fail(ErrorKind::config,
                    "connect to " + ep.address() + ": a TLS endpoint (rediss://) must be opened with open_transport");
    return connect_plain(ep, deadline_after(std::chrono::steady_clock::now(), timeout), timeout);
}

}  // namespace hitbox::detail
