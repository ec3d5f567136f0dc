#pragma once
/// \file
/// The definition of <hitbox/backend/byte_stats.hpp>'s Prometheus export (hitbox_write_stats): included by that header
/// in a header-only build, compiled once into the hitbox library with HITBOX_COMPILED_LIB=1
/// (hitbox/core/linkage.hpp).

#include <string_view>

#include <hitbox/backend/byte_stats.hpp>

namespace hitbox {

HITBOX_LIB_INLINE void hitbox_write_stats(PrometheusWriter& out, std::string_view backend, const ByteStats& s) {
    const PrometheusWriter::Labels labels = {{"backend", backend}};
    out.counter("hitbox_backend_read_total", "Reads (key lookups) per backend.", labels, s.reads);
    out.counter("hitbox_backend_write_total", "Writes per backend.", labels, s.writes);
    out.counter("hitbox_backend_read_bytes_total", "Stored bytes read per backend.", labels, s.bytes_in);
    out.counter("hitbox_backend_write_bytes_total", "Stored bytes written per backend.", labels, s.bytes_out);
    out.counter("hitbox_backend_hits_total", "Reads that found an entry, per backend.", labels, s.hits);
    out.counter("hitbox_backend_misses_total", "Reads that found no entry, per backend.", labels, s.misses);
    for (std::size_t k = 0; k < s.errors.size(); ++k) {
        if (s.errors[k] == 0) continue;
        out.counter("hitbox_backend_errors_total", "Failed backend operations by error kind.",
                    {{"backend", backend}, {"kind", to_string(static_cast<ErrorKind>(k))}}, s.errors[k]);
    }
}

}  // namespace hitbox
