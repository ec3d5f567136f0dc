#pragma once
/// \file
/// The definitions of ConnectionMode's factories (see hitbox/core/linkage.hpp): connection_mode.hpp includes
/// this file in a header-only build; src/redis_connection.cpp compiles it once for HITBOX_COMPILED_LIB.

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <hitbox/backend/redis/connection_mode.hpp>
#include <hitbox/core/linkage.hpp>

namespace hitbox {

HITBOX_LIB_INLINE AnyMode ConnectionMode::any(SingleNodeMode mode) { return AnyMode{std::move(mode)}; }

HITBOX_LIB_INLINE AnyMode ConnectionMode::any(ClusterMode mode) { return AnyMode{std::move(mode)}; }

HITBOX_LIB_INLINE Result<AnyMode> ConnectionMode::parse(std::string_view name, std::vector<std::string> urls,
                                                        bool read_from_replicas) {
    if (name == "single") {
        if (urls.size() != 1)
            return fail(ErrorKind::config,
                        "Redis mode \"single\" takes exactly one URL, got " + std::to_string(urls.size()));
        return any(single(std::move(urls.front())));
    }
    if (name == "cluster") return any(cluster(std::move(urls), read_from_replicas));
    return fail(ErrorKind::config, "unknown Redis mode \"" + std::string(name) + "\"; valid: single, cluster");
}

}  // namespace hitbox
