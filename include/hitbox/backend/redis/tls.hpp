#pragma once
/// \file
/// TLS for the Redis tier: TlsOptions (what `RedisBackendBuilder::tls()` takes) and tls_available().
/// No OpenSSL here: the transport that uses these options is in detail/tls_transport.hpp, compiled only
/// when the build defines HITBOX_WITH_TLS (meson: the `hitbox-tls` dependency, option `-Dtls`).
///
/// \code
/// auto redis = hitbox::RedisBackend<>::builder()
///                  .connection(hitbox::ConnectionMode::single("rediss://cache.internal:6380/0"))
///                  .tls(hitbox::TlsOptions{.ca_file = "/etc/hitbox/ca.crt"})
///                  .build();
/// \endcode

#include <string>

#if !defined(HITBOX_WITH_TLS)
#define HITBOX_WITH_TLS 0
#endif

namespace hitbox {

/// True when this build can open TLS connections (`rediss://`, `.tls(...)`). Without it, both are a
/// `config` error that says how to enable TLS. Every translation unit of a program must agree: use the
/// `hitbox-tls` dependency for all of them or none.
constexpr bool tls_available() noexcept { return HITBOX_WITH_TLS != 0; }

/// How a Redis connection sets up TLS (1.2 at least). An empty string means "not set". One set of options
/// serves every node of a backend (a cluster's nodes share one TLS context), so the server name override
/// is only for a single node or a cluster whose nodes all carry the same name.
///
/// A `rediss://` URL without `.tls(...)` uses the defaults: verification on, the system's CA store, the
/// URL's host as the expected name. `.tls(...)` with a `redis://` URL turns TLS on too.
struct TlsOptions {
    /// PEM file of CA certificates that may sign the server's certificate. With neither `ca_file` nor
    /// `ca_path`, the system's default store (OpenSSL's default paths) is used.
    std::string ca_file{};
    /// Directory of hashed CA certificates (`openssl rehash`), in addition to `ca_file`.
    std::string ca_path{};
    /// PEM client certificate (chain) for mutual TLS (`tls-auth-clients yes` on the server); needs `key_file`.
    std::string cert_file{};
    /// PEM private key of `cert_file`, unencrypted (a passphrase-protected key is refused, never prompted for).
    std::string key_file{};
    /// The name to send as SNI and to check the certificate against, instead of the URL's host (for a
    /// server reached by IP address or through a tunnel). An IP literal is checked against the
    /// certificate's IP addresses and sent without SNI.
    std::string server_name{};
    /// Check the server's certificate chain and name (default). `false` accepts any certificate: the
    /// traffic is encrypted but anyone on the path can impersonate the server. Insecure; for tests only.
    bool verify_peer = true;
};

}  // namespace hitbox
