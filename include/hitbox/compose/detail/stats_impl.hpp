#pragma once
/// \file
/// The definition of <hitbox/compose/stats.hpp>'s Prometheus export (hitbox_write_stats): included by that header
/// in a header-only build, compiled once into the hitbox library with HITBOX_COMPILED_LIB=1
/// (hitbox/core/linkage.hpp).

#include <string_view>

#include <hitbox/compose/stats.hpp>

namespace hitbox {

HITBOX_LIB_INLINE void hitbox_write_stats(PrometheusWriter& out, std::string_view backend, const ComposeStats& s) {
    const PrometheusWriter::Labels labels = {{"backend", backend}};
    out.counter("hitbox_compose_refills_total", "L2 hits written back to L1, per composition.", labels, s.refills);
    out.counter("hitbox_compose_refills_dropped_total", "Offloaded refills the offload refused.", labels,
                s.refills_dropped);
    out.counter("hitbox_compose_unavailable_total", "Calls that failed in every tier, per composition.", labels,
                s.unavailable);
    out.counter("hitbox_compose_superseded_total",
                "Refills and Race write losers not written, or taken back, because a write of the key came.", labels,
                s.superseded);
}

}  // namespace hitbox
