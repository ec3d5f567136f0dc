#pragma once
/// \file
/// The one header to include for the Redis tier (needs hiredis): RedisBackend and its builder, the
/// connection modes and policies, and the entry envelope.
///
/// \code
/// #include <hitbox/backend/redis.hpp>
/// auto redis = hitbox::RedisBackend<>::builder()
///                  .connection(hitbox::ConnectionMode::single("redis://localhost:6379/"))
///                  .build();   // Result<RedisBackend<Bitcode, BinaryFormat, PassthroughCompressor,
///                  SingleNode>>
/// \endcode

#include <hitbox/backend/redis/any_connection.hpp>
#include <hitbox/backend/redis/cluster.hpp>
#include <hitbox/backend/redis/connection_mode.hpp>
#include <hitbox/backend/redis/redis_backend.hpp>
#include <hitbox/backend/redis/single_node.hpp>
#include <hitbox/codec/entry_codec.hpp>
#include <hitbox/codec/envelope.hpp>
