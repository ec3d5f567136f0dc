#pragma once
/// \file
/// The definitions of <hitbox/codec/envelope.hpp>: included by that header in a header-only build,
/// compiled once into the hitbox library with HITBOX_COMPILED_LIB=1 (hitbox/core/linkage.hpp).

#include <hitbox/codec/envelope.hpp>

namespace hitbox {

HITBOX_LIB_INLINE Result<EnvelopeView> parse_envelope(std::string_view in) {
    auto bad = [](const std::string& what) { return fail(ErrorKind::decode, "envelope: " + what); };
    if (in.size() < detail::envelope_fixed_size) return bad("truncated (" + std::to_string(in.size()) + " bytes)");
    if (static_cast<unsigned char>(in[0]) != detail::envelope_magic0 ||
        static_cast<unsigned char>(in[1]) != detail::envelope_magic1)
        return bad("bad magic (not written by hitbox)");
    auto version = static_cast<std::uint8_t>(in[2]);
    if (version != detail::envelope_version) return bad("unknown version " + std::to_string(version));
    EnvelopeView v;
    v.header.format_id = static_cast<std::uint8_t>(in[3]);
    v.header.compressor_id = static_cast<std::uint8_t>(in[4]);
    auto flags = static_cast<std::uint8_t>(in[5]);
    if (flags & ~(detail::envelope_has_stale | detail::envelope_has_expire | detail::envelope_has_retain))
        return bad("unknown flags " + std::to_string(flags));
    if ((flags & detail::envelope_has_retain) && !(flags & detail::envelope_has_expire))
        return bad("a retention time without an expiry");
    std::size_t need = detail::envelope_fixed_size + ((flags & detail::envelope_has_stale) ? 8 : 0) +
                       ((flags & detail::envelope_has_expire) ? 8 : 0) +
                       ((flags & detail::envelope_has_retain) ? 8 : 0);
    if (in.size() < need) return bad("truncated header");
    v.header.created = from_unix_ms(detail::get_i64_le(in.data() + 6));
    std::size_t pos = detail::envelope_fixed_size;
    if (flags & detail::envelope_has_stale) {
        v.header.stale = from_unix_ms(detail::get_i64_le(in.data() + pos));
        pos += 8;
    }
    if (flags & detail::envelope_has_expire) {
        v.header.expire = from_unix_ms(detail::get_i64_le(in.data() + pos));
        pos += 8;
    }
    if (flags & detail::envelope_has_retain) {
        v.header.retain = from_unix_ms(detail::get_i64_le(in.data() + pos));
        pos += 8;
    }
    v.payload = in.substr(pos);
    return v;
}

HITBOX_LIB_INLINE std::string seal_entry(const EnvelopeHeader& header, std::string_view payload) {
    std::string out;
    out.reserve(detail::envelope_fixed_size + 24 + payload.size());
    detail::write_envelope_header(out, header);
    out.append(payload);
    return out;
}

HITBOX_LIB_INLINE Result<EnvelopeView> open_entry(std::string_view bytes, const EntryPolicies& expect) {
    auto env = parse_envelope(bytes);
    if (!env) return env;
    const auto& h = env->header;
    if (h.format_id != expect.format_id)
        return fail(ErrorKind::decode, "envelope: value format id " + std::to_string(h.format_id) +
                                           ", this codec reads " + std::string(expect.format_name) + " (id " +
                                           std::to_string(expect.format_id) + ")");
    if (h.compressor_id != expect.compressor_id)
        return fail(ErrorKind::decode, "envelope: compressor id " + std::to_string(h.compressor_id) +
                                           ", this codec uses " + std::string(expect.compressor_name) + " (id " +
                                           std::to_string(expect.compressor_id) + ")");
    return env;
}

}  // namespace hitbox
