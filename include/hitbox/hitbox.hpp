#pragma once
/// \file
/// The umbrella header: core types, key and value formats, the passthrough compressor, the entry codec,
/// the byte-tier host (ByteBackend), the memory tier, compositions, offloads, the cache front
/// (get_or_compute, memoize) and metrics.
/// Nothing here needs hiredis, zstd or zlib: include <hitbox/backend/redis.hpp>,
/// <hitbox/compress/zstd.hpp> or <hitbox/compress/gzip.hpp> for those.

#include <boost/hana/adapt_struct.hpp>
#include <boost/hana/define_struct.hpp>

#include <hitbox/backend/byte_backend.hpp>
#include <hitbox/backend/memory/memory_backend.hpp>
#include <hitbox/cache.hpp>
#include <hitbox/codec/entry_codec.hpp>
#include <hitbox/compose/compose.hpp>
#include <hitbox/compose/lookup.hpp>
#include <hitbox/compose/policies.hpp>
#include <hitbox/compress/passthrough.hpp>
#include <hitbox/core/clock.hpp>
#include <hitbox/core/concepts.hpp>
#include <hitbox/core/durations.hpp>
#include <hitbox/core/error.hpp>
#include <hitbox/core/key.hpp>
#include <hitbox/core/metrics.hpp>
#include <hitbox/core/value.hpp>
#include <hitbox/format/binary.hpp>
#include <hitbox/format/json.hpp>
#include <hitbox/format/raw.hpp>
#include <hitbox/format/xml.hpp>
#include <hitbox/key_format/bitcode.hpp>
#include <hitbox/key_format/url_encoded.hpp>
#include <hitbox/offload/inline_offload.hpp>
#include <hitbox/offload/offload_manager.hpp>
#include <hitbox/resilience/circuit_breaker.hpp>
