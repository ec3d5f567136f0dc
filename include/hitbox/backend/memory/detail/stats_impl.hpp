#pragma once
/// \file
/// The definition of <hitbox/backend/memory/stats.hpp>'s Prometheus export (hitbox_write_stats): included by that header
/// in a header-only build, compiled once into the hitbox library with HITBOX_COMPILED_LIB=1
/// (hitbox/core/linkage.hpp).

#include <string_view>

#include <hitbox/backend/memory/stats.hpp>

namespace hitbox {

HITBOX_LIB_INLINE void hitbox_write_stats(PrometheusWriter& out, std::string_view backend, const MemoryStats& s) {
    const PrometheusWriter::Labels labels = {{"backend", backend}};
    out.counter("hitbox_backend_read_total", "Reads (key lookups) per backend.", labels, s.hits + s.misses);
    out.counter("hitbox_backend_hits_total", "Reads that found an entry, per backend.", labels, s.hits);
    out.counter("hitbox_backend_misses_total", "Reads that found no entry, per backend.", labels, s.misses);
    out.gauge("hitbox_backend_entries", "Entries held by an in-process tier.", labels, static_cast<double>(s.entries));
    out.counter("hitbox_backend_evictions_total", "Entries evicted to honour the bound.", labels, s.evictions);
    out.counter("hitbox_backend_expirations_total", "Expired entries reclaimed.", labels, s.expirations);
}

}  // namespace hitbox
