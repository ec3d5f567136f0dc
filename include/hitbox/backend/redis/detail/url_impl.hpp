#pragma once
/// \file
/// The definitions of <hitbox/backend/redis/detail/url.hpp>: included by that header in a header-only
/// build, compiled once into the hitbox library with HITBOX_COMPILED_LIB=1 (hitbox/core/linkage.hpp).

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>

#include <hitbox/backend/redis/detail/url.hpp>

namespace hitbox::detail {

HITBOX_LIB_INLINE std::pair<std::size_t, std::size_t> url_authority(std::string_view url) {
    const auto scheme_end = url.find("://");
    const std::size_t start = scheme_end == std::string_view::npos ? 0 : scheme_end + 3;
    const auto end = url.find_first_of("/?", start);
    return {start, end == std::string_view::npos ? url.size() : end};
}

HITBOX_LIB_INLINE std::string redact_url(std::string_view url) {
    const auto scheme_end = url.find("://");
    const std::size_t start = scheme_end == std::string_view::npos ? 0 : scheme_end + 3;
    std::string out(url.substr(0, start));
    std::string_view rest = url.substr(start);
    // Everything up to the last '@', wherever it is: a password with an unescaped '/' or '?' ends past the
    // authority, and such a URL is the one that fails to parse and gets printed.
    if (const auto at = rest.rfind('@'); at != std::string_view::npos) {
        out += "***";
        rest = rest.substr(at);
    }
    // Query text is not shown either (a parameter may carry a secret, as in ?password=).
    if (const auto q = rest.find('?'); q != std::string_view::npos) {
        out += rest.substr(0, q);
        out += "?***";
    } else {
        out += rest;
    }
    return out;
}

HITBOX_LIB_INLINE bool percent_decode(std::string_view in, std::string& out) {
    out.clear();
    auto hex = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    };
    for (std::size_t i = 0; i < in.size(); ++i) {
        if (in[i] != '%') {
            out.push_back(in[i]);
            continue;
        }
        if (i + 2 >= in.size()) return false;
        int hi = hex(in[i + 1]), lo = hex(in[i + 2]);
        if (hi < 0 || lo < 0) return false;
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
    }
    return true;
}

HITBOX_LIB_INLINE Result<RedisEndpoint> parse_redis_url_as(std::string_view url, bool tls_built) {
    auto bad = [&](const std::string& what) {
        // An '@' past the authority is most often a password with an unescaped '/' or '?' in it.
        const bool at_past_authority = url.find('@', url_authority(url).second) != std::string_view::npos;
        return fail(ErrorKind::config,
                    "Redis URL '" + redact_url(url) + "': " + what +
                        (at_past_authority ? " (a '/', '?' or '#' in a user name or password must be "
                                             "percent-encoded: %2F, %3F, %23)"
                                           : ""));
    };
    RedisEndpoint ep;
    auto scheme_end = url.find("://");
    if (scheme_end == std::string_view::npos)
        return bad("expected redis://host:port/db, unix:///path/to/socket or rediss:// (TLS)");
    auto scheme = url.substr(0, scheme_end);
    if (scheme == "rediss") {
        if (!tls_built)
            return bad(
                "TLS is not available in this build: rediss:// needs hitbox built with OpenSSL "
                "(meson -Dtls=enabled, libssl-dev) and the hitbox-tls dependency");
        ep.tls = true;
    } else if (scheme == "unix" || scheme == "redis+unix")
        ep.transport = RedisEndpoint::Transport::unix_socket;
    else if (scheme != "redis")
        return bad("unknown scheme '" + std::string(scheme) + "' (expected redis, rediss, unix or redis+unix)");

    auto rest = url.substr(scheme_end + 3);
    // Credentials: the authority (up to the first '/' or '?') up to its last '@' (a password may itself
    // contain '@' when not escaped, but never '/').
    const auto authority_end = url_authority(url).second - (scheme_end + 3);
    if (auto at = rest.substr(0, authority_end).rfind('@'); at != std::string_view::npos) {
        auto userinfo = rest.substr(0, at);
        rest = rest.substr(at + 1);
        auto colon = userinfo.find(':');
        std::string user, pass;
        if (colon == std::string_view::npos) {  // password only
            if (!percent_decode(userinfo, pass)) return bad("bad %-escape in the credentials");
        } else {
            if (!percent_decode(userinfo.substr(0, colon), user)) return bad("bad %-escape in the credentials");
            if (!percent_decode(userinfo.substr(colon + 1), pass)) return bad("bad %-escape in the credentials");
        }
        if (!user.empty()) ep.username = std::move(user);
        if (!pass.empty()) ep.password = std::move(pass);
    }

    std::string_view query;
    if (auto q = rest.find('?'); q != std::string_view::npos) {
        query = rest.substr(q + 1);
        rest = rest.substr(0, q);
    }

    if (ep.transport == RedisEndpoint::Transport::unix_socket) {
        if (rest.empty() || rest.front() != '/') return bad("a unix socket URL needs an absolute path (unix:///path)");
        ep.path = std::string(rest);
        while (!query.empty()) {
            auto amp = query.find('&');
            auto item = query.substr(0, amp);
            query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
            if (item.substr(0, 3) == "db=") {
                if (!parse_decimal(item.substr(3), ep.db) || ep.db > 0x7fffffff) return bad("bad database number");
            } else {
                return bad("unknown parameter (only ?db=N is supported)");
            }
        }
        return ep;
    }

    if (!query.empty()) return bad("query parameters are not supported; give the database as the path: /2");
    std::string_view hostport = rest, path;
    if (auto slash = rest.find('/'); slash != std::string_view::npos) {
        hostport = rest.substr(0, slash);
        path = rest.substr(slash + 1);
    }
    std::string_view port_text;
    if (!hostport.empty() && hostport.front() == '[') {
        auto close = hostport.find(']');
        if (close == std::string_view::npos) return bad("unterminated [IPv6] host");
        ep.host = std::string(hostport.substr(1, close - 1));
        auto after = hostport.substr(close + 1);
        if (!after.empty()) {
            if (after.front() != ':') return bad("unexpected text after ]");
            port_text = after.substr(1);
            if (port_text.empty()) return bad("empty port");
        }
    } else {
        auto colon = hostport.find(':');
        ep.host = std::string(hostport.substr(0, colon));
        if (colon != std::string_view::npos) {
            port_text = hostport.substr(colon + 1);
            if (port_text.empty()) return bad("empty port");
        }
    }
    if (ep.host.empty()) return bad("missing host");
    for (char c : ep.host)
        if (static_cast<unsigned char>(c) <= ' ' || c == '/' || c == '@' || c == '[' || c == ']' || c == '#')
            return bad("invalid character in host");
    if (!port_text.empty()) {
        unsigned port = 0;
        if (!parse_decimal(port_text, port) || port == 0 || port > 65535)
            return bad("port must be a number from 1 to 65535");
        ep.port = static_cast<std::uint16_t>(port);
    }
    if (!path.empty()) {
        if (!parse_decimal(path, ep.db) || ep.db > 0x7fffffff)
            return bad("the path must be a database number (redis://host:6379/2)");
    }
    return ep;
}

}  // namespace hitbox::detail
