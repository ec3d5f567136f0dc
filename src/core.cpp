// The compiled-library build of hitbox's core (meson -Dcompiled_lib=true, see hitbox/core/linkage.hpp):
// the non-template parts every program with a cache uses (the offloads, the counters' snapshots of a
// composition and a cache front, the memory tier's store and shards and its default instantiation's members,
// the entry envelope, the key formats, the composition's error paths and fork, the JSON format's document
// parsing and writing, the text formats' input checks, errors' text, the Prometheus text writer and the
// built-in stats' export), defined once here. Built with HITBOX_COMPILED_LIB=1, so the definitions below are not inline.
#if !HITBOX_COMPILED_LIB
#error "src/core.cpp is the compiled library: build it with -DHITBOX_COMPILED_LIB=1"
#endif

#include <hitbox/backend/detail/byte_stats_impl.hpp>
#include <hitbox/backend/memory/detail/shard_impl.hpp>
#include <hitbox/backend/memory/detail/stats_impl.hpp>
#include <hitbox/backend/memory/detail/store_impl.hpp>
#include <hitbox/backend/memory/memory_backend.hpp>
#include <hitbox/backend/redis/detail/url_impl.hpp>
#include <hitbox/cache/stats.hpp>
#include <hitbox/codec/detail/envelope_impl.hpp>
#include <hitbox/compose/detail/compose_impl.hpp>
#include <hitbox/compose/detail/fork_impl.hpp>
#include <hitbox/compose/detail/stats_impl.hpp>
#include <hitbox/compose/stats.hpp>
#include <hitbox/core/detail/durations_impl.hpp>
#include <hitbox/core/detail/error_impl.hpp>
#include <hitbox/core/detail/prometheus_impl.hpp>
#include <hitbox/core/detail/type_name_impl.hpp>
#include <hitbox/format/detail/json_impl.hpp>
#include <hitbox/format/detail/text_guard_impl.hpp>
#include <hitbox/key_format/detail/bitcode_impl.hpp>
#include <hitbox/key_format/detail/url_encoded_impl.hpp>
#include <hitbox/offload/detail/inline_offload_impl.hpp>
#include <hitbox/offload/detail/offload_manager_impl.hpp>

namespace hitbox {

template class BasicMemoryBackend<SystemClock, DefaultWeigher>;
template class MemoryBackendBuilder<SystemClock, DefaultWeigher>;
template class AtomicStats<ComposeStats>;
template class AtomicStats<CacheCounts>;

}  // namespace hitbox
