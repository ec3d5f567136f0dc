#pragma once
/// \file
/// The definition of <hitbox/core/durations.hpp>'s Prometheus export (hitbox_write_stats): included by that header
/// in a header-only build, compiled once into the hitbox library with HITBOX_COMPILED_LIB=1
/// (hitbox/core/linkage.hpp).

#include <string_view>

#include <hitbox/core/durations.hpp>

namespace hitbox {

HITBOX_LIB_INLINE void hitbox_write_stats(PrometheusWriter& out, std::string_view backend, const DurationStats& s) {
    if (!s.enabled) return;
    out.histogram("hitbox_backend_read_duration_seconds", "Duration of backend reads (one per round trip) in seconds.",
                  {{"backend", backend}}, s[TierStage::read]);
    out.histogram("hitbox_backend_write_duration_seconds",
                  "Duration of backend writes (one per round trip) in seconds.", {{"backend", backend}},
                  s[TierStage::write]);
    if (!s.format.empty()) {
        out.histogram("hitbox_backend_serialize_duration_seconds", "Duration of value serialization in seconds.",
                      {{"backend", backend}, {"format", s.format}}, s[TierStage::serialize]);
        out.histogram("hitbox_backend_deserialize_duration_seconds", "Duration of value deserialization in seconds.",
                      {{"backend", backend}, {"format", s.format}}, s[TierStage::deserialize]);
    }
    if (!s.compressor.empty()) {
        out.histogram("hitbox_backend_compress_duration_seconds", "Duration of payload compression in seconds.",
                      {{"backend", backend}, {"compressor", s.compressor}}, s[TierStage::compress]);
        out.histogram("hitbox_backend_decompress_duration_seconds", "Duration of payload decompression in seconds.",
                      {{"backend", backend}, {"compressor", s.compressor}}, s[TierStage::decompress]);
    }
}

}  // namespace hitbox
