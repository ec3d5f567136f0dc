#pragma once
/// \file
/// The definitions of <hitbox/key_format/url_encoded.hpp>: included by that header in a header-only build,
/// compiled once into the hitbox library with HITBOX_COMPILED_LIB=1 (hitbox/core/linkage.hpp).

#include <hitbox/key_format/url_encoded.hpp>

namespace hitbox::detail {

HITBOX_LIB_INLINE void url_escape_into(std::string& out, std::string_view s) {
    static constexpr char hex[] = "0123456789ABCDEF";
    for (unsigned char c : s) {
        if (url_unreserved(c)) {
            out.push_back(static_cast<char>(c));
        } else {
            out.push_back('%');
            out.push_back(hex[c >> 4]);
            out.push_back(hex[c & 0xf]);
        }
    }
}

HITBOX_LIB_INLINE std::optional<std::string> url_unescape(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
        auto c = static_cast<unsigned char>(s[i]);
        if (c == '%') {
            if (s.size() - i < 3) return std::nullopt;
            int hi = url_hex_value(s[i + 1]), lo = url_hex_value(s[i + 2]);
            if (hi < 0 || lo < 0) return std::nullopt;
            out.push_back(static_cast<char>(hi * 16 + lo));
            i += 2;
        } else if (url_unreserved(c)) {
            out.push_back(static_cast<char>(c));
        } else {
            return std::nullopt;
        }
    }
    return out;
}

HITBOX_LIB_INLINE std::string url_encode_key(const CacheKey& key) {
    std::string out;
    out.reserve(8 + key.prefix().size() * 3 + key.parts().size() * 16);
    url_escape_into(out, key.prefix());
    out.append(":v").append(std::to_string(key.version()));
    if (key.parts().empty()) return out;  // "prefix:v1" has no parts; "prefix:v1:" has one empty part
    out.push_back(':');
    bool first = true;
    for (const auto& p : key.parts()) {
        if (!first) out.push_back('&');
        first = false;
        url_escape_into(out, p.name);
        if (p.value) {
            out.push_back('=');
            url_escape_into(out, *p.value);
        }
    }
    return out;
}

HITBOX_LIB_INLINE Result<CacheKey> url_decode_key(std::string_view in) {
    auto bad = [](const char* what) { return fail(ErrorKind::decode, std::string("url-encoded key: ") + what); };
    auto colon = in.find(':');
    if (colon == std::string_view::npos) return bad("missing ':v<version>'");
    auto prefix = url_unescape(in.substr(0, colon));
    if (!prefix) return bad("bad escape in prefix");
    std::string_view rest = in.substr(colon + 1);
    if (rest.empty() || rest[0] != 'v') return bad("missing version");
    auto vend = rest.find(':');
    std::string_view digits = rest.substr(1, vend == std::string_view::npos ? rest.size() - 1 : vend - 1);
    std::uint32_t version = 0;
    auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), version);
    if (digits.empty() || ec != std::errc{} || ptr != digits.data() + digits.size() ||
        (digits.size() > 1 && digits[0] == '0'))
        return bad("bad version number");
    std::vector<KeyPart> parts;
    if (vend != std::string_view::npos) {
        std::string_view list = rest.substr(vend + 1);
        while (true) {
            auto amp = list.find('&');
            std::string_view item = list.substr(0, amp);
            auto eq = item.find('=');
            auto name = url_unescape(item.substr(0, eq));
            if (!name) return bad("bad escape in part name");
            std::optional<std::string> value;
            if (eq != std::string_view::npos) {
                value = url_unescape(item.substr(eq + 1));
                if (!value) return bad("bad escape in part value");
            }
            parts.push_back(KeyPart{std::move(*name), std::move(value)});
            if (amp == std::string_view::npos) break;
            list.remove_prefix(amp + 1);
        }
    }
    return CacheKey(std::move(*prefix), version, std::move(parts));
}

}  // namespace hitbox::detail
