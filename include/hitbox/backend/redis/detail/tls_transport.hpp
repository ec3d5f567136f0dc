#pragma once
/// \file
/// TLS over a connected TCP socket with OpenSSL (3.0; 1.1.1 works too): the shared client context
/// (TlsContext: one SSL_CTX per backend) and the transport (TlsTransport: one SSL object per connection).
/// Needs HITBOX_WITH_TLS and the OpenSSL libraries (the meson dependency `hitbox-tls`).
///
/// - TLS 1.2 at least; the peer's chain and name are checked unless TlsOptions::verify_peer is false.
/// - The name is the URL's host or TlsOptions::server_name: sent as SNI and checked against the
///   certificate's DNS names (SSL_set1_host), or against its IP addresses for an IP literal (no SNI then).
/// - The socket is driven through a small BIO of ours that sends with MSG_NOSIGNAL, so a peer that has
///   gone never raises SIGPIPE in the user's process, and that tells a peer's EOF apart from an error.
/// - OpenSSL keeps a per-thread error queue: it is cleared before every SSL call and read (then cleared)
///   after a failing one, so a message never carries another connection's error.

#include <cerrno>
#include <chrono>
#include <climits>
#include <cstddef>
#include <memory>
#include <string>
#include <utility>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <hitbox/backend/redis/detail/deadline.hpp>
#include <hitbox/backend/redis/detail/socket.hpp>
#include <hitbox/backend/redis/detail/transport.hpp>
#include <hitbox/backend/redis/detail/url.hpp>
#include <hitbox/backend/redis/tls.hpp>
#include <hitbox/core/error.hpp>

namespace hitbox::detail {

/// The reasons queued in this thread's OpenSSL error queue ("certificate verify failed; ..."), distinct
/// ones only, at most four; empties the queue. `first_reason` gets the oldest reason code (0: none).
inline std::string take_openssl_errors(int* first_reason = nullptr) {
    std::string out;
    if (first_reason != nullptr) *first_reason = 0;
    int kept = 0;
    for (unsigned long e = ERR_get_error(); e != 0; e = ERR_get_error()) {
        if (first_reason != nullptr && *first_reason == 0) *first_reason = ERR_GET_REASON(e);
        if (kept == 4) continue;  // drain the rest
        const char* reason = ERR_reason_error_string(e);
        const std::string text = reason != nullptr ? reason : "OpenSSL error " + std::to_string(ERR_GET_REASON(e));
        if (out.find(text) != std::string::npos) continue;
        if (!out.empty()) out += "; ";
        out += text;
        ++kept;
    }
    return out.empty() ? "no reason given" : out;
}

/// What our socket BIO saw, read by the transport to tell EOF from errors.
struct TlsSocketState {
    int fd = -1;
    bool eof = false;  ///< the peer closed its side (recv returned 0)
    int error = 0;     ///< errno of the last failed send / recv, 0 if none
};

inline int tls_bio_write(BIO* bio, const char* buf, int len) {
    auto* s = static_cast<TlsSocketState*>(BIO_get_data(bio));
    BIO_clear_retry_flags(bio);
    for (;;) {
        const auto n = ::send(s->fd, buf, static_cast<std::size_t>(len), MSG_NOSIGNAL);
        if (n >= 0) return static_cast<int>(n);
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            BIO_set_retry_write(bio);
        } else {
            s->error = errno;
        }
        return -1;
    }
}

inline int tls_bio_read(BIO* bio, char* buf, int len) {
    auto* s = static_cast<TlsSocketState*>(BIO_get_data(bio));
    BIO_clear_retry_flags(bio);
    for (;;) {
        const auto n = ::recv(s->fd, buf, static_cast<std::size_t>(len), 0);
        if (n > 0) return static_cast<int>(n);
        if (n == 0) {
            s->eof = true;
            return 0;
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            BIO_set_retry_read(bio);
        } else {
            s->error = errno;
        }
        return -1;
    }
}

inline long tls_bio_ctrl(BIO* bio, int cmd, long, void*) {
    switch (cmd) {
        case BIO_CTRL_FLUSH: return 1;  // send() does not buffer
        case BIO_CTRL_EOF: return static_cast<TlsSocketState*>(BIO_get_data(bio))->eof ? 1 : 0;
        default: return 0;
    }
}

/// The BIO type of our sockets, created once (never freed: it lives as long as the process).
inline BIO_METHOD* tls_socket_bio_method() {
    static BIO_METHOD* const method = [] {
        BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "hitbox socket");
        if (m == nullptr) return m;
        if (BIO_meth_set_write(m, tls_bio_write) != 1 || BIO_meth_set_read(m, tls_bio_read) != 1 ||
            BIO_meth_set_ctrl(m, tls_bio_ctrl) != 1) {
            BIO_meth_free(m);
            return static_cast<BIO_METHOD*>(nullptr);
        }
        return m;
    }();
    return method;
}

/// A key file's passphrase is never asked for (OpenSSL's default would prompt on the terminal).
inline int tls_no_passphrase(char*, int, int, void*) { return 0; }

/// Called by OpenSSL when the server asks for a client certificate and none is configured: notes it in
/// the session's flag (app data) for the messages, and goes on without one.
inline int tls_note_certificate_request(SSL* ssl, X509**, EVP_PKEY**) {
    if (auto* requested = static_cast<bool*>(SSL_get_app_data(ssl))) *requested = true;
    return 0;
}

/// One TLS client configuration, shared (read-only) by every connection of a backend.
class TlsContext {
public:
    TlsContext(const TlsContext&) = delete;
    TlsContext& operator=(const TlsContext&) = delete;
    ~TlsContext() { SSL_CTX_free(ctx_); }

    /// The SSL_CTX to make connections from (SSL_new is safe on a shared context).
    SSL_CTX* native() const noexcept { return ctx_; }
    /// TlsOptions::server_name: empty means the endpoint's host.
    const std::string& server_name() const noexcept { return server_name_; }
    bool verify_peer() const noexcept { return verify_peer_; }

private:
    friend Result<std::shared_ptr<const TlsContext>> make_tls_context(const TlsOptions& options);
    TlsContext(SSL_CTX* ctx, std::string server_name, bool verify_peer) noexcept
        : ctx_(ctx), server_name_(std::move(server_name)), verify_peer_(verify_peer) {}

    SSL_CTX* ctx_;
    std::string server_name_;
    bool verify_peer_;
};

inline Result<std::shared_ptr<const TlsContext>> make_tls_context(const TlsOptions& options) {
    auto bad = [](std::string what) { return fail(ErrorKind::config, "TLS: " + what + ": " + take_openssl_errors()); };
    if (options.cert_file.empty() != options.key_file.empty())
        return fail(ErrorKind::config, "TLS: a client certificate needs both cert_file and key_file");
    ERR_clear_error();
    std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx(SSL_CTX_new(TLS_client_method()), &SSL_CTX_free);
    if (!ctx) return bad("cannot create a context");
    if (SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION) != 1) return bad("cannot require TLS 1.2");
    SSL_CTX_set_mode(ctx.get(), SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_default_passwd_cb(ctx.get(), &tls_no_passphrase);
    if (options.verify_peer) {
        SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
        if (!options.ca_file.empty() || !options.ca_path.empty()) {
            const char* file = options.ca_file.empty() ? nullptr : options.ca_file.c_str();
            const char* path = options.ca_path.empty() ? nullptr : options.ca_path.c_str();
            if (SSL_CTX_load_verify_locations(ctx.get(), file, path) != 1)
                return bad("cannot load the CA certificates from " +
                           (file != nullptr ? "'" + options.ca_file + "'" : "'" + options.ca_path + "'"));
        } else if (SSL_CTX_set_default_verify_paths(ctx.get()) != 1) {
            return bad("cannot load the system's CA certificates");
        }
    } else {
        SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
    }
    if (!options.cert_file.empty()) {
        if (SSL_CTX_use_certificate_chain_file(ctx.get(), options.cert_file.c_str()) != 1)
            return bad("cannot load the client certificate '" + options.cert_file + "'");
        if (SSL_CTX_use_PrivateKey_file(ctx.get(), options.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
            // OpenSSL checks the key against the certificate as it loads it ("key values mismatch").
            if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH)
                return bad("the client key '" + options.key_file + "' does not belong to '" + options.cert_file + "'");
            return bad("cannot load the client key '" + options.key_file +
                       "' (it must be PEM and not protected by a passphrase)");
        }
        if (SSL_CTX_check_private_key(ctx.get()) != 1)
            return bad("the client key '" + options.key_file + "' does not belong to '" + options.cert_file + "'");
    } else {
        SSL_CTX_set_client_cert_cb(ctx.get(), &tls_note_certificate_request);
    }
    if (tls_socket_bio_method() == nullptr) return bad("cannot create the socket BIO type");
    ERR_clear_error();
    return std::shared_ptr<const TlsContext>(new TlsContext(ctx.release(), options.server_name, options.verify_peer));
}

/// A TLS session on a connected socket.
class TlsTransport final : public Transport {
public:
    TlsTransport(int fd, std::string address) noexcept : Transport(fd, std::move(address)) { state_.fd = fd; }
    ~TlsTransport() override {
        if (ssl_ == nullptr) return;
        ERR_clear_error();
        if (established_ && !broken_) SSL_shutdown(ssl_);  // one close_notify, best effort, never waits
        SSL_free(ssl_);                                    // frees the BIO too
        ERR_clear_error();
    }

    void abandon() noexcept override { broken_ = true; }

    IoResult read(char* buf, std::size_t len) override {
        ERR_clear_error();
        const int n = SSL_read(ssl_, buf, len > INT_MAX ? INT_MAX : static_cast<int>(len));
        if (n > 0) return IoResult::moved(static_cast<std::size_t>(n));
        return outcome(n, "read from ");
    }

    IoResult write(const char* buf, std::size_t len) override {
        ERR_clear_error();
        const int n = SSL_write(ssl_, buf, len > INT_MAX ? INT_MAX : static_cast<int>(len));
        if (n > 0) return IoResult::moved(static_cast<std::size_t>(n));
        return outcome(n, "write to ");
    }

    std::size_t buffered() const noexcept override {
        const int n = SSL_pending(ssl_);
        return n > 0 ? static_cast<std::size_t>(n) : 0;
    }

    std::string protocol() const override {
        const char* version = SSL_get_version(ssl_);
        const char* cipher = SSL_get_cipher_name(ssl_);
        return std::string(version != nullptr ? version : "TLS") + " " + (cipher != nullptr ? cipher : "");
    }

    /// Creates the SSL object on the socket and runs the handshake until `deadline`.
    Result<void> handshake(const TlsContext& tls, const RedisEndpoint& ep,
                           std::chrono::steady_clock::time_point deadline, std::chrono::milliseconds timeout) {
        ERR_clear_error();
        ssl_ = SSL_new(tls.native());
        if (ssl_ == nullptr) return fail(ErrorKind::tls, what() + "cannot create a session: " + take_openssl_errors());
        BIO* bio = BIO_new(tls_socket_bio_method());
        if (bio == nullptr) return fail(ErrorKind::tls, what() + "cannot create a BIO: " + take_openssl_errors());
        BIO_set_data(bio, &state_);
        BIO_set_init(bio, 1);
        SSL_set_bio(ssl_, bio, bio);  // ssl_ owns it now
        SSL_set_app_data(ssl_, &certificate_requested_);

        name_ = tls.server_name().empty() ? ep.host : tls.server_name();
        in6_addr scratch{};
        const bool ip =
            ::inet_pton(AF_INET, name_.c_str(), &scratch) == 1 || ::inet_pton(AF_INET6, name_.c_str(), &scratch) == 1;
        // SNI carries host names only (RFC 6066).
        if (!ip && SSL_set_tlsext_host_name(ssl_, name_.c_str()) != 1)
            return fail(ErrorKind::config,
                        what() + "cannot use '" + name_ + "' as the server name: " + take_openssl_errors());
        if (tls.verify_peer()) {
            const bool set = ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_), name_.c_str()) == 1
                                : (SSL_set_hostflags(ssl_, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS),
                                   SSL_set1_host(ssl_, name_.c_str()) == 1);
            if (!set)
                return fail(ErrorKind::config,
                            what() + "cannot check the certificate against '" + name_ + "': " + take_openssl_errors());
        }
        SSL_set_connect_state(ssl_);

        for (;;) {
            ERR_clear_error();
            const int rc = SSL_do_handshake(ssl_);
            if (rc == 1) break;
            const int err = SSL_get_error(ssl_, rc);
            short events = 0;
            if (err == SSL_ERROR_WANT_READ)
                events = POLLIN;
            else if (err == SSL_ERROR_WANT_WRITE)
                events = POLLOUT;
            else
                return fail(handshake_error(err));
            pollfd p{fd(), events, 0};
            const int ready = ::poll(&p, 1, remaining_ms(deadline));
            if (ready < 0 && errno == EINTR) continue;
            if (ready < 0) return fail(ErrorKind::connection, what() + errno_text(errno));
            if (ready == 0) {
                broken_ = true;
                return fail(ErrorKind::connection,
                            what() + "no TLS answer within the connect timeout (" + std::to_string(timeout.count()) +
                                " ms): is this a TLS port? A plain Redis port never answers a TLS hello");
            }
        }
        established_ = true;
        ERR_clear_error();
        return {};
    }

private:
    std::string what() const { return "TLS handshake with " + address() + ": "; }

    /// Why the handshake failed, from the verify result, the error queue and the socket.
    Error handshake_error(int err) {
        broken_ = true;
        int reason = 0;
        const std::string reasons = take_openssl_errors(&reason);
        if (err == SSL_ERROR_SSL) {
            const long verify = SSL_get_verify_result(ssl_);
            if (verify != X509_V_OK) {
                std::string msg =
                    what() + "the server's certificate does not verify: " + X509_verify_cert_error_string(verify);
                switch (verify) {
                    case X509_V_ERR_HOSTNAME_MISMATCH:
                    case X509_V_ERR_IP_ADDRESS_MISMATCH:
                        msg += " (it is not for '" + name_ + "'; TlsOptions::server_name sets the expected name)";
                        break;
                    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
                    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
                    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
                    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
                        msg += " (unknown CA: give the CA that signed it as TlsOptions::ca_file)";
                        break;
                    default: break;
                }
                return Error(ErrorKind::tls, std::move(msg));
            }
            std::string msg = what() + reasons;
            if (reason == SSL_R_WRONG_VERSION_NUMBER || reason == SSL_R_PACKET_LENGTH_TOO_LONG ||
                reason == SSL_R_UNKNOWN_PROTOCOL)
                msg += " (the server did not answer in TLS: is this a plain Redis port?)";
            else if (state_.eof)
                msg += " (the server closed the connection)";
            return Error(ErrorKind::tls, std::move(msg) + client_certificate_hint(reason));
        }
        if (state_.error != 0)
            return Error(ErrorKind::connection, what() + errno_text(state_.error) + client_certificate_hint(0));
        if (state_.eof)
            return Error(ErrorKind::connection,
                         what() +
                             "the server closed the connection (is this a TLS port? does it require a client "
                             "certificate?)");
        return Error(ErrorKind::tls, what() + reasons + client_certificate_hint(reason));
    }

    /// A hint when the server asked for a client certificate that is not configured (TLS 1.3 then
    /// refuses the client after the handshake: an alert, or a reset when a write crossed it), or its alert
    /// says it wanted one.
    std::string client_certificate_hint(int reason) const {
        if (certificate_requested_)
            return " (the server asked for a client certificate and none is configured: TlsOptions::cert_file "
                   "and key_file)";
#if defined(SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED)
        if (reason == SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED)
            return " (the server requires a client certificate: TlsOptions::cert_file and key_file)";
#endif
        return {};
    }

    /// The IoResult of an SSL_read / SSL_write that returned `rc` <= 0.
    IoResult outcome(int rc, const char* direction) {
        const int err = SSL_get_error(ssl_, rc);
        switch (err) {
            case SSL_ERROR_WANT_READ: return IoResult::wait(IoStatus::want_read);
            case SSL_ERROR_WANT_WRITE: return IoResult::wait(IoStatus::want_write);
            case SSL_ERROR_ZERO_RETURN: return IoResult::wait(IoStatus::closed);  // close_notify
            default: break;
        }
        broken_ = true;
        int reason = 0;
        const std::string reasons = take_openssl_errors(&reason);
        const std::string where = std::string("TLS ") + direction + address() + ": ";
        if (state_.eof && (err == SSL_ERROR_SYSCALL
#if defined(SSL_R_UNEXPECTED_EOF_WHILE_READING)
                           || reason == SSL_R_UNEXPECTED_EOF_WHILE_READING
#endif
                           )) {
            // EOF without close_notify. After the server asked for a client certificate we do not have, that
            // is its refusal of this client (TLS 1.3 checks the client after the handshake): say so.
            if (certificate_requested_)
                return IoResult::failed(Error(
                    ErrorKind::tls, where + "the server closed the connection" + client_certificate_hint(reason)));
            return IoResult::wait(IoStatus::closed);
        }
        if (err == SSL_ERROR_SYSCALL && state_.error != 0)
            return IoResult::failed(
                Error(ErrorKind::connection, where + errno_text(state_.error) + client_certificate_hint(reason)));
        return IoResult::failed(Error(ErrorKind::tls, where + reasons + client_certificate_hint(reason)));
    }

    TlsSocketState state_;
    SSL* ssl_ = nullptr;
    std::string name_;                    // the name checked (host or server_name), for messages
    bool certificate_requested_ = false;  // the server asked for a client certificate we do not have
    bool established_ = false;            // the handshake completed
    bool broken_ = false;                 // a fatal error happened: no SSL_shutdown (OpenSSL forbids it then)
};

inline Result<std::unique_ptr<Transport>> open_tls_transport(const TlsContext& tls, int fd, const RedisEndpoint& ep,
                                                             std::chrono::steady_clock::time_point deadline,
                                                             std::chrono::milliseconds timeout) {
    std::unique_ptr<TlsTransport> t;
    try {
        t = std::make_unique<TlsTransport>(fd, ep.address());
    } catch (...) {
        ::close(fd);
        throw;
    }
    auto r = t->handshake(tls, ep, deadline, timeout);
    if (!r) return fail(r.error());
    return std::unique_ptr<Transport>(std::move(t));
}

}  // namespace hitbox::detail
