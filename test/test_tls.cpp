// The TLS transport (detail/transport.hpp, detail/tls_transport.hpp) against real redis-server processes
// serving TLS with certificates made at run time (support/tls_certs.hpp): a verified session carries
// PING/PONG; a wrong CA, a wrong host name and an expired certificate are `tls` errors that say which;
// mutual TLS with and without a client certificate; plain and TLS on the wrong port fail within the
// connect timeout. Prints the handshake cost (connect + TLS handshake) next to a plain connect.

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <poll.h>

#include <hitbox/backend/redis.hpp>
#include <hitbox/backend/redis/detail/transport.hpp>
#include <hitbox/backend/redis/tls.hpp>

#include "support/redis_server.hpp"
#include "support/tls_certs.hpp"

using namespace std::chrono_literals;
using hitbox::ErrorKind;
using hitbox::TlsOptions;
using hitbox::detail::IoStatus;
using hitbox::detail::RedisEndpoint;
using hitbox::detail::TlsContext;
using hitbox::detail::Transport;
using hitbox_test::RedisServer;
using hitbox_test::RedisServerOptions;
using hitbox_test::TlsCertificates;
using SteadyClock = std::chrono::steady_clock;

namespace {

const bool redis_available = hitbox_test::require_redis_server();
const bool openssl_available = hitbox_test::require_openssl();

constexpr auto connect_timeout = 1000ms;
constexpr auto slack = 1500ms;  // a busy 2-core machine
const std::string secret = "hunter2-do-not-print";

const TlsCertificates& certs() { return hitbox_test::test_certificates(); }

std::unique_ptr<RedisServer> tls_server(std::string cert = {}, std::string auth_clients = "no") {
    RedisServerOptions o;
    o.tls = certs().server(std::move(cert), std::move(auth_clients));
    return std::make_unique<RedisServer>(std::move(o));
}

RedisEndpoint endpoint(const std::string& host, std::uint16_t port, bool tls = true) {
    RedisEndpoint ep;
    ep.host = host;
    ep.port = port;
    ep.tls = tls;
    ep.password = secret;  // the transport never sends it; no message may show it
    return ep;
}

std::shared_ptr<const TlsContext> context(const TlsOptions& options) {
    auto ctx = hitbox::detail::make_tls_context(options);
    if (!ctx) FAIL(ctx.error().what());
    REQUIRE(*ctx);
    return *ctx;
}

TlsOptions trusting(std::string ca) {
    TlsOptions o;
    o.ca_file = std::move(ca);
    return o;
}

/// Waits until `t` can go on in the direction `status` asks for, or the deadline passes.
bool wait_for(Transport& t, IoStatus status, SteadyClock::time_point deadline) {
    pollfd p{t.fd(), static_cast<short>(status == IoStatus::want_write ? POLLOUT : POLLIN), 0};
    const int ms = hitbox::detail::clamp_ms(SteadyClock::now(), deadline);
    return ms > 0 && ::poll(&p, 1, ms) == 1;
}

/// Writes `request` and reads until the reply holds `replies` lines, driving the transport as a
/// connection would (poll for what it asks, never sleep while buffered() > 0).
hitbox::Result<std::string> exchange(Transport& t, const std::string& request, int replies = 1,
                                     SteadyClock::time_point deadline = SteadyClock::now() + 2s) {
    std::size_t off = 0;
    while (off < request.size()) {
        auto r = t.write(request.data() + off, request.size() - off);
        if (r.status == IoStatus::moved) {
            off += r.bytes;
        } else if (r.status == IoStatus::error) {
            return hitbox::fail(*r.error);
        } else if (r.status == IoStatus::closed || !wait_for(t, r.status, deadline)) {
            return hitbox::fail(ErrorKind::connection, "write: closed or timed out");
        }
    }
    std::string reply;
    char buf[512];
    auto lines = [&] { return static_cast<int>(std::count(reply.begin(), reply.end(), '\n')); };
    while (lines() < replies) {
        auto r = t.read(buf, sizeof buf);
        if (r.status == IoStatus::moved) {
            reply.append(buf, r.bytes);
        } else if (r.status == IoStatus::error) {
            return hitbox::fail(*r.error);
        } else if (r.status == IoStatus::closed) {
            return hitbox::fail(ErrorKind::connection, "closed by the server after '" + reply + "'");
        } else if (!wait_for(t, r.status, deadline)) {
            return hitbox::fail(ErrorKind::timeout, "no reply");
        }
    }
    return reply;
}

/// Checks what every failure must be: a message, no password.
void check_message(const hitbox::Error& e) {
    INFO(e.what());
    CHECK_FALSE(e.message().empty());
    CHECK(e.what().find(secret) == std::string::npos);
}

double ms_since(SteadyClock::time_point start) {
    return std::chrono::duration<double, std::milli>(SteadyClock::now() - start).count();
}

}  // namespace

TEST_CASE("TLS: the error kind and the build") {
    STATIC_REQUIRE(hitbox::tls_available());
    CHECK(hitbox::to_string(ErrorKind::tls) == "tls");
    CHECK(hitbox::error_kind_count == static_cast<std::size_t>(ErrorKind::tls) + 1);
    CHECK(hitbox::to_string(static_cast<ErrorKind>(hitbox::error_kind_count - 1)) == "tls");
}

TEST_CASE("TLS: rediss:// URLs and options") {
    auto ep = hitbox::detail::parse_redis_url("rediss://user:" + secret + "@localhost:6380/2");
    REQUIRE(ep);
    CHECK(ep->tls);
    CHECK(ep->host == "localhost");
    CHECK(ep->port == 6380);
    CHECK(ep->db == 2);
    CHECK_FALSE(hitbox::detail::parse_redis_url("redis://localhost/")->tls);

    // Plain unless asked for; a rediss:// URL alone gets the defaults; .tls() turns TLS on for redis://.
    hitbox::ConnectionOptions plain;
    auto none = hitbox::detail::tls_context_for(endpoint("localhost", 6379, false), plain);
    REQUIRE(none);
    CHECK_FALSE(*none);
    auto by_url = hitbox::detail::tls_context_for(*ep, plain);
    REQUIRE(by_url);
    CHECK(*by_url);
    CHECK((*by_url)->verify_peer());
    hitbox::ConnectionOptions with_tls;
    with_tls.tls = trusting(certs().ca_cert());
    auto by_option = hitbox::detail::tls_context_for(endpoint("localhost", 6379, false), with_tls);
    REQUIRE(by_option);
    CHECK(*by_option);

    RedisEndpoint unix_ep;
    unix_ep.transport = RedisEndpoint::Transport::unix_socket;
    unix_ep.path = "/tmp/redis.sock";
    auto over_unix = hitbox::detail::tls_context_for(unix_ep, with_tls);
    REQUIRE_FALSE(over_unix);
    CHECK(over_unix.error().kind() == ErrorKind::config);

    // The builder takes .tls() and stays lazy.
    auto b = hitbox::RedisBackend<>::builder()
                 .connection(hitbox::ConnectionMode::single("rediss://127.0.0.1:6380/"))
                 .tls(trusting(certs().ca_cert()))
                 .build();
    REQUIRE(b);
}

TEST_CASE("TLS: bad settings are config errors that name the file") {
    auto missing = hitbox::detail::make_tls_context(trusting("/nonexistent/ca.pem"));
    REQUIRE_FALSE(missing);
    CHECK(missing.error().kind() == ErrorKind::config);
    CHECK(missing.error().message().find("/nonexistent/ca.pem") != std::string::npos);
    check_message(missing.error());

    TlsOptions half = trusting(certs().ca_cert());
    half.cert_file = certs().client_cert();
    auto no_key = hitbox::detail::make_tls_context(half);
    REQUIRE_FALSE(no_key);
    CHECK(no_key.error().kind() == ErrorKind::config);

    TlsOptions mismatched = half;
    mismatched.key_file = certs().server_key();  // not the client certificate's key
    auto wrong_key = hitbox::detail::make_tls_context(mismatched);
    REQUIRE_FALSE(wrong_key);
    CHECK(wrong_key.error().kind() == ErrorKind::config);
    CHECK(wrong_key.error().message().find("does not belong to") != std::string::npos);  // not "must be PEM"
    check_message(wrong_key.error());

    // A TLS endpoint without a context is refused, never opened in plain text.
    auto no_ctx = hitbox::detail::open_transport(endpoint("127.0.0.1", 1), nullptr, connect_timeout);
    REQUIRE_FALSE(no_ctx);
    CHECK(no_ctx.error().kind() == ErrorKind::config);
    auto old_path = hitbox::detail::connect_socket(endpoint("127.0.0.1", 1), connect_timeout);
    REQUIRE_FALSE(old_path);
    CHECK(old_path.error().kind() == ErrorKind::config);
}

TEST_CASE("TLS: a verified session carries PING / PONG (host name and IP address)") {
    auto server = tls_server();
    auto ctx = context(trusting(certs().ca_cert()));
    for (const char* host : {"localhost", "127.0.0.1"}) {
        INFO(host);
        auto t = hitbox::detail::open_transport(endpoint(host, server->port()), ctx.get(), connect_timeout);
        if (!t) FAIL(t.error().what());
        CHECK((*t)->protocol().rfind("TLSv1.", 0) == 0);
        CHECK((*t)->address() == std::string(host) + ":" + std::to_string(server->port()));
        auto reply = exchange(**t, "PING\r\n");
        if (!reply) FAIL(reply.error().what());
        CHECK(*reply == "+PONG\r\n");
    }
    // buffered(): a reply read one byte at a time leaves the rest decrypted inside the session.
    auto t = hitbox::detail::open_transport(endpoint("localhost", server->port()), ctx.get(), connect_timeout);
    REQUIRE(t);
    auto& tr = **t;
    const std::string three = "*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPING\r\n";
    REQUIRE(tr.write(three.data(), three.size()).status == IoStatus::moved);
    char c = 0;
    hitbox::detail::IoResult r;
    const auto deadline = SteadyClock::now() + 2s;
    while ((r = tr.read(&c, 1)).status != IoStatus::moved) {
        REQUIRE(r.status != IoStatus::error);
        REQUIRE(wait_for(tr, r.status, deadline));
    }
    CHECK(c == '+');
    CHECK(tr.buffered() > 0);
    // The deadline may be "never": milliseconds::max() does not overflow.
    auto forever = hitbox::detail::open_transport(endpoint("127.0.0.1", server->port()), ctx.get(),
                                                  std::chrono::milliseconds::max());
    REQUIRE(forever);
    CHECK(exchange(**forever, "PING\r\n").value_or("") == "+PONG\r\n");
}

TEST_CASE("TLS: an unknown CA is a tls error that says so") {
    auto server = tls_server();
    auto ctx = context(trusting(certs().other_ca_cert()));
    auto t = hitbox::detail::open_transport(endpoint("localhost", server->port()), ctx.get(), connect_timeout);
    REQUIRE_FALSE(t);
    INFO(t.error().what());
    CHECK(t.error().kind() == ErrorKind::tls);
    // Redis sends its chain with the CA (OpenSSL builds it from tls-ca-cert-file): an untrusted
    // self-signed root in the chain; a server sending its own certificate alone gives "unable to get local
    // issuer certificate".
    const bool says_why =
        t.error().message().find("self-signed certificate in certificate chain") != std::string::npos ||
        t.error().message().find("unable to get local issuer certificate") != std::string::npos;
    CHECK(says_why);
    CHECK(t.error().message().find("unknown CA") != std::string::npos);
    CHECK(t.error().message().find(std::to_string(server->port())) != std::string::npos);
    check_message(t.error());
}

TEST_CASE("TLS: a certificate for another host is a tls error naming the mismatch") {
    auto server = tls_server(certs().wrong_host_cert());
    auto ctx = context(trusting(certs().ca_cert()));
    auto by_name = hitbox::detail::open_transport(endpoint("localhost", server->port()), ctx.get(), connect_timeout);
    REQUIRE_FALSE(by_name);
    INFO(by_name.error().what());
    CHECK(by_name.error().kind() == ErrorKind::tls);
    CHECK(by_name.error().message().find("hostname mismatch") != std::string::npos);
    CHECK(by_name.error().message().find("'localhost'") != std::string::npos);
    check_message(by_name.error());

    auto by_ip = hitbox::detail::open_transport(endpoint("127.0.0.1", server->port()), ctx.get(), connect_timeout);
    REQUIRE_FALSE(by_ip);
    INFO(by_ip.error().what());
    CHECK(by_ip.error().kind() == ErrorKind::tls);
    CHECK(by_ip.error().message().find("IP address mismatch") != std::string::npos);

    // server_name sets the expected name (and SNI): the certificate's own name verifies.
    TlsOptions named = trusting(certs().ca_cert());
    named.server_name = "other.example";
    auto ok =
        hitbox::detail::open_transport(endpoint("127.0.0.1", server->port()), context(named).get(), connect_timeout);
    if (!ok) FAIL(ok.error().what());
    CHECK(exchange(**ok, "PING\r\n").value_or("") == "+PONG\r\n");
}

TEST_CASE("TLS: an expired certificate is a tls error saying expired") {
    auto server = tls_server(certs().expired_cert());
    auto ctx = context(trusting(certs().ca_cert()));
    auto t = hitbox::detail::open_transport(endpoint("localhost", server->port()), ctx.get(), connect_timeout);
    REQUIRE_FALSE(t);
    INFO(t.error().what());
    CHECK(t.error().kind() == ErrorKind::tls);
    CHECK(t.error().message().find("certificate has expired") != std::string::npos);
    check_message(t.error());
}

TEST_CASE("TLS: verify_peer = false accepts any certificate (insecure)") {
    TlsOptions insecure = trusting(certs().other_ca_cert());
    insecure.verify_peer = false;
    auto ctx = context(insecure);
    for (std::string cert : {certs().server_cert(), certs().expired_cert(), certs().wrong_host_cert()}) {
        INFO(cert);
        auto server = tls_server(cert);
        auto t = hitbox::detail::open_transport(endpoint("localhost", server->port()), ctx.get(), connect_timeout);
        if (!t) FAIL(t.error().what());
        CHECK(exchange(**t, "PING\r\n").value_or("") == "+PONG\r\n");
    }
}

TEST_CASE("TLS: mutual TLS, with and without a client certificate") {
    auto server = tls_server({}, "yes");
    SECTION("without one: an error within the connect timeout") {
        auto ctx = context(trusting(certs().ca_cert()));
        const auto start = SteadyClock::now();
        const auto deadline = start + connect_timeout;
        // TLS 1.3 finishes the client's handshake before the server checks the client: the refusal then
        // arrives as an alert on the first read, still within the connect deadline.
        auto t =
            hitbox::detail::open_transport(endpoint("localhost", server->port()), ctx.get(), deadline, connect_timeout);
        hitbox::Error error(ErrorKind::unavailable, "none");
        if (!t) {
            error = t.error();
        } else {
            auto reply = exchange(**t, "PING\r\n", 1, deadline);
            REQUIRE_FALSE(reply);
            error = reply.error();
        }
        const double ms = ms_since(start);
        INFO(error.what());
        CHECK(ms < std::chrono::duration<double, std::milli>(connect_timeout + slack).count());
        CHECK((error.kind() == ErrorKind::tls || error.kind() == ErrorKind::connection));
        CHECK(error.message().find("certificate") != std::string::npos);
        check_message(error);
        std::printf("mutual TLS without a client certificate: %.1f ms: %s\n", ms, error.what().c_str());
    }
    SECTION("with one: PING / PONG") {
        TlsOptions mutual = trusting(certs().ca_cert());
        mutual.cert_file = certs().client_cert();
        mutual.key_file = certs().client_key();
        auto t = hitbox::detail::open_transport(endpoint("localhost", server->port()), context(mutual).get(),
                                                connect_timeout);
        if (!t) FAIL(t.error().what());
        auto reply = exchange(**t, "PING\r\n");
        if (!reply) FAIL(reply.error().what());
        CHECK(*reply == "+PONG\r\n");
    }
}

TEST_CASE("TLS: plain on a TLS port and TLS on a plain port fail within the connect timeout") {
    auto tls = tls_server();
    RedisServer plain;
    auto ctx = context(trusting(certs().ca_cert()));
    const double bound = std::chrono::duration<double, std::milli>(connect_timeout + slack).count();

    SECTION("plain client, TLS server") {
        const auto start = SteadyClock::now();
        const auto deadline = start + connect_timeout;
        auto t = hitbox::detail::open_transport(endpoint("127.0.0.1", tls->port(), false), nullptr, deadline,
                                                connect_timeout);
        REQUIRE(t);  // TCP connects; the server drops what is not TLS
        auto reply = exchange(**t, "PING\r\n", 1, deadline);
        const double ms = ms_since(start);
        REQUIRE_FALSE(reply);
        INFO(reply.error().what());
        CHECK(ms < bound);
        check_message(reply.error());
        std::printf("plain client on a TLS port: %.1f ms: %s\n", ms, reply.error().what().c_str());
    }
    SECTION("TLS client, plain server") {
        const auto start = SteadyClock::now();
        auto t = hitbox::detail::open_transport(endpoint("localhost", plain.port()), ctx.get(), connect_timeout);
        const double ms = ms_since(start);
        REQUIRE_FALSE(t);
        INFO(t.error().what());
        CHECK(ms < bound);
        CHECK((t.error().kind() == ErrorKind::connection || t.error().kind() == ErrorKind::tls));
        CHECK(t.error().message().find("TLS") != std::string::npos);
        check_message(t.error());
        std::printf("TLS client on a plain port: %.1f ms: %s\n", ms, t.error().what().c_str());
    }
}

TEST_CASE("TLS: shutdown() wakes a thread polling the socket; the session then fails or closes") {
    auto server = tls_server();
    auto ctx = context(trusting(certs().ca_cert()));
    auto t = hitbox::detail::open_transport(endpoint("localhost", server->port()), ctx.get(), connect_timeout);
    REQUIRE(t);
    std::atomic<bool> woke{false};
    const auto start = SteadyClock::now();
    std::thread poller([&] {
        pollfd p{(*t)->fd(), POLLIN, 0};
        ::poll(&p, 1, 10000);
        woke = true;
    });
    std::this_thread::sleep_for(50ms);
    (*t)->shutdown();
    poller.join();
    CHECK(woke);
    CHECK(ms_since(start) < 5000);
    char buf[16];
    auto r = (*t)->read(buf, sizeof buf);
    CHECK((r.status == IoStatus::closed || r.status == IoStatus::error));
}

TEST_CASE("TLS: handshake cost (connect + TLS handshake) next to a plain connect") {
    auto tls = tls_server();
    RedisServer plain;
    auto ctx = context(trusting(certs().ca_cert()));
    constexpr int rounds = 40;
    auto measure = [&](const RedisEndpoint& ep, const TlsContext* c) {
        std::vector<double> ms;
        for (int i = 0; i < rounds; ++i) {
            const auto start = SteadyClock::now();
            auto t = hitbox::detail::open_transport(ep, c, connect_timeout);
            ms.push_back(ms_since(start));
            REQUIRE(t);
            REQUIRE(exchange(**t, "PING\r\n").value_or("") == "+PONG\r\n");
        }
        std::sort(ms.begin(), ms.end());
        return std::pair{ms[ms.size() / 2], ms[ms.size() * 9 / 10]};
    };
    const auto [tls_median, tls_p90] = measure(endpoint("127.0.0.1", tls->port()), ctx.get());
    const auto [plain_median, plain_p90] = measure(endpoint("127.0.0.1", plain.port(), false), nullptr);
    auto probe = hitbox::detail::open_transport(endpoint("127.0.0.1", tls->port()), ctx.get(), connect_timeout);
    REQUIRE(probe);
    std::printf("| open_transport to 127.0.0.1, %d rounds | median ms | p90 ms |\n|---|---|---|\n", rounds);
    std::printf("| TLS (%s, EC P-256 certificate, verified) | %.3f | %.3f |\n", (*probe)->protocol().c_str(),
                tls_median, tls_p90);
    std::printf("| plain TCP | %.3f | %.3f |\n", plain_median, plain_p90);
    CHECK(tls_median > 0.0);
}
