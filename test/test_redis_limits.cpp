// Limits of the Redis backend that need a server or a peer on the wire: a reply whose bulk header claims
// 512 MiB is answered with an error and no allocation anywhere near that size (a tiny RESP peer on
// 127.0.0.1 sends the header: a protocol test, not a stand-in for Redis behaviour), and a backend with a
// wrong password hammered by four threads reconnects no faster than its backoff allows (connections
// counted by the real server's total_connections_received).
#include <catch2/catch.hpp>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <hitbox/backend/redis.hpp>

#include "support/alloc_probe.hpp"
#include "support/redis_server.hpp"

using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;
using hitbox::CacheKey;
using hitbox::ErrorKind;

namespace {

const bool redis_available = hitbox_test::require_redis_server();

/// A one-connection RESP peer on a free 127.0.0.1 port: waits for the first command, answers it with
/// `reply_head`, then streams `stream_bytes` more bytes of filler, then holds the connection open until
/// destroyed.
class LyingPeer {
public:
    LyingPeer(std::string reply_head, std::size_t stream_bytes) : head_(std::move(reply_head)), stream_(stream_bytes) {
        listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
        REQUIRE(listen_fd_ >= 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof a;
        REQUIRE(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
        REQUIRE(::listen(listen_fd_, 4) == 0);
        REQUIRE(::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len) == 0);
        port_ = ntohs(a.sin_port);
        thread_ = std::thread([this] { serve(); });
    }
    ~LyingPeer() {
        stop_ = true;
        thread_.join();
        ::close(listen_fd_);
    }
    std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_) + "/"; }
    std::size_t streamed() const { return streamed_.load(); }

private:
    bool wait_readable(int fd) {
        while (!stop_) {
            pollfd p{fd, POLLIN, 0};
            if (::poll(&p, 1, 20) == 1) return true;
        }
        return false;
    }

    void serve() {
        if (!wait_readable(listen_fd_)) return;
        const int fd = ::accept(listen_fd_, nullptr, nullptr);
        if (fd < 0) return;
        char buf[4096];
        if (wait_readable(fd) && ::recv(fd, buf, sizeof buf, 0) > 0) {
            [[maybe_unused]] auto sent = ::send(fd, head_.data(), head_.size(), MSG_NOSIGNAL);
            const std::string filler(64 * 1024, 'x');
            // Never blocked in send: a client that stops reading without closing must not hold the peer's
            // thread (and the test's end, which joins it) past stop_.
            while (!stop_ && streamed_ < stream_) {
                pollfd p{fd, POLLOUT, 0};
                if (::poll(&p, 1, 20) != 1) continue;
                if (p.revents & (POLLERR | POLLHUP)) break;
                const auto n = ::send(fd, filler.data(), std::min(filler.size(), stream_ - streamed_),
                                      MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) continue;
                if (n <= 0) break;
                streamed_ += static_cast<std::size_t>(n);
            }
        }
        while (!stop_) std::this_thread::sleep_for(10ms);
        ::close(fd);
    }

    std::string head_;
    std::size_t stream_;
    int listen_fd_ = -1;
    std::uint16_t port_ = 0;
    std::atomic<bool> stop_{false};
    std::atomic<std::size_t> streamed_{0};
    std::thread thread_;
};

hitbox::RedisBackend<> backend_at(const std::string& url, std::chrono::milliseconds timeout) {
    auto r = hitbox::RedisBackend<>::builder()
                 .connection(hitbox::ConnectionMode::single(url))
                 .connect_timeout(timeout)
                 .command_timeout(timeout)
                 .build();
    REQUIRE(r);
    return std::move(*r);
}

/// The most connects a backoff starting at `initial`, doubling to `max`, with jitter down to half of each
/// delay, allows within `window` (the first attempt is immediate).
int most_attempts(std::chrono::milliseconds initial, std::chrono::milliseconds max, std::chrono::milliseconds window) {
    int attempts = 1;
    auto delay = initial;
    auto elapsed = std::chrono::milliseconds(0);
    while (elapsed + delay / 2 <= window) {
        elapsed += delay / 2;
        ++attempts;
        delay = std::min(2 * delay, max);
    }
    return attempts;
}

std::uint64_t connections_received(const hitbox_test::RedisServer& server) {
    const auto info = server.cli({"INFO", "stats"});
    const std::string field = "total_connections_received:";
    const auto at = info.find(field);
    REQUIRE(at != std::string::npos);
    return std::stoull(info.substr(at + field.size()));
}

}  // namespace

TEST_CASE("Limits: a reply whose bulk header claims 512 MiB is an error, with no such allocation") {
    LyingPeer peer("$536870912\r\n", 0);
    auto redis = backend_at(peer.url(), 250ms);
    hitbox_test::reset_largest_request();
    const auto started = SteadyClock::now();
    auto r = redis.get<std::string>(CacheKey{"huge", 0});
    const auto took = SteadyClock::now() - started;
    const auto largest = hitbox_test::largest_request_bytes();
    REQUIRE_FALSE(r);
    CHECK((r.error().kind() == ErrorKind::timeout || r.error().kind() == ErrorKind::protocol));
    CHECK(took < 250ms + 250ms + 100ms);  // the first operation connects: connect + command timeout
    if (hitbox_test::alloc_probe_active()) {
        std::printf(
            "limits: 512 MiB bulk header: %s after %lld ms, largest allocation %zu B\n", r.error().what().c_str(),
            static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(took).count()), largest);
        CHECK(largest < (std::size_t{1} << 20));
    }
    // The connection is not left waiting for the rest forever: it is reset, and the backend stays usable.
    auto again = redis.get<std::string>(CacheKey{"huge", 0});
    CHECK_FALSE(again);
}

// A peer that really streams a 512 MiB bulk: the connection buffers at most max_reply_bytes (64 MiB by
// default), then drops the connection, so the peer cannot push its 96 MiB and no allocation grows past it.
TEST_CASE("Limits: a streamed oversized reply is cut off before its bytes pile up in memory") {
    constexpr std::size_t streamed = std::size_t{96} << 20;
    LyingPeer peer("$536870912\r\n", streamed);
    auto redis = backend_at(peer.url(), 250ms);
    hitbox_test::reset_largest_request();
    auto r = redis.get<std::string>(CacheKey{"huge", 0});
    REQUIRE_FALSE(r);
    // Wait until the peer has sent everything or has stopped getting anywhere for 300 ms (cut off: the
    // connection was dropped, or nobody reads it any more), at most 5 s.
    const auto deadline = SteadyClock::now() + 5s;
    auto last = peer.streamed();
    auto moved_at = SteadyClock::now();
    while (last < streamed && SteadyClock::now() < deadline && SteadyClock::now() - moved_at < 300ms) {
        std::this_thread::sleep_for(10ms);
        if (const auto now_streamed = peer.streamed(); now_streamed != last) {
            last = now_streamed;
            moved_at = SteadyClock::now();
        }
    }
    std::this_thread::sleep_for(200ms);
    const auto largest = hitbox_test::largest_request_bytes();
    std::printf("limits: streamed %zu B of a 512 MiB bulk: largest allocation %zu B\n", peer.streamed(), largest);
    CHECK(peer.streamed() < hitbox::default_max_reply_bytes + (std::size_t{16} << 20));  // cut off, not drained
    if (hitbox_test::alloc_probe_active()) CHECK(largest <= hitbox::default_max_reply_bytes + (std::size_t{2} << 20));
}

TEST_CASE("Limits: a long password echoed cut short by the server appears in no message") {
    // A server without AUTH answers "unknown command 'AUTH', with args beginning with: '...'", the
    // arguments cut at 128 bytes: a long password's first bytes, never the whole of it.
    hitbox_test::RedisServer server({.extra_config = {"rename-command AUTH \"\""}});
    std::string password;
    for (int i = 0; password.size() < 214; ++i) password += "Zq" + std::to_string(i % 10);
    for (const auto& user : {std::optional<std::string>{}, std::optional<std::string>{"user-name-that-is-long"}}) {
        auto builder = hitbox::RedisBackend<>::builder()
                           .connection(hitbox::ConnectionMode::single(server.url()))
                           .password(password)
                           .connect_timeout(1000ms)
                           .command_timeout(1000ms);
        if (user) builder.username(*user);
        auto b = builder.build();
        REQUIRE(b);
        auto r = b->get<int>(CacheKey{"auth", 0});
        REQUIRE_FALSE(r);
        const std::string text = r.error().what();
        INFO(text);
        CHECK(text.find("unknown command") != std::string::npos);  // the server's text is still there
        // No 8 consecutive bytes of either secret.
        for (const std::string& secret : {password, user.value_or(password)})
            for (std::size_t i = 0; i + 8 <= secret.size(); ++i)
                CHECK(text.find(secret.substr(i, 8)) == std::string::npos);
    }
}

TEST_CASE("Limits: a wrong password hammered by 4 threads reconnects no faster than the backoff") {
    hitbox_test::RedisServer server({.requirepass = "right-pw-7"});
    constexpr auto initial = 100ms, max = 800ms, window = 3000ms;
    auto b = hitbox::RedisBackend<>::builder()
                 .connection(hitbox::ConnectionMode::single(server.url()))
                 .password("wrong-pw-7")
                 .connect_timeout(250ms)
                 .command_timeout(250ms)
                 .reconnect_backoff(initial, max)
                 .build();
    REQUIRE(b);
    const auto before = connections_received(server);
    std::atomic<bool> stop{false};
    std::atomic<std::uint64_t> calls{0}, auth_errors{0}, other_errors{0}, leaked{0}, successes{0};
    std::vector<std::thread> pool;
    for (int t = 0; t < 4; ++t)
        pool.emplace_back([&] {
            while (!stop) {
                auto r = b->get<int>(CacheKey{"auth", 0});
                ++calls;
                if (r) {
                    ++successes;
                    continue;
                }
                if (r.error().what().find("wrong-pw-7") != std::string::npos) ++leaked;
                (r.error().kind() == ErrorKind::auth ? auth_errors : other_errors)++;
            }
        });
    std::this_thread::sleep_for(window);
    stop = true;
    for (auto& th : pool) th.join();
    const auto after = connections_received(server);
    const auto backend_connections = after - before - 1;  // the second INFO is a connection of its own
    const int allowed = most_attempts(initial, max, window + 100ms);
    std::printf(
        "limits: wrong password, 4 threads for %lld ms: %llu calls, %llu connections (backoff allows %d), "
        "%llu auth errors, %llu other errors\n",
        static_cast<long long>(window.count()), static_cast<unsigned long long>(calls.load()),
        static_cast<unsigned long long>(backend_connections), allowed,
        static_cast<unsigned long long>(auth_errors.load()), static_cast<unsigned long long>(other_errors.load()));
    CHECK(successes == 0);
    CHECK(leaked == 0);
    CHECK(calls > 1000);              // hammered: calls fail at once during the backoff
    CHECK(auth_errors == calls);      // every failure names the cause, not a generic connection error
    CHECK(backend_connections >= 3);  // it does keep retrying
    CHECK(backend_connections <= static_cast<std::uint64_t>(allowed));
    CHECK(b->connection().counters().connect_attempts == backend_connections);
}
