// The compiled-library build of hitbox's Redis connection code (meson -Dcompiled_lib=true, see
// hitbox/core/linkage.hpp): the members of the connection policies, defined once here, and with them the
// connection, cluster routing, socket, TLS and URL code they use. Built with HITBOX_COMPILED_LIB=1, so the
// definitions below are not inline.
#if !HITBOX_COMPILED_LIB
#error "src/redis_connection.cpp is the compiled library: build it with -DHITBOX_COMPILED_LIB=1"
#endif

#include <hitbox/backend/redis/detail/any_connection_impl.hpp>
#include <hitbox/backend/redis/detail/cluster_impl.hpp>
#include <hitbox/backend/redis/detail/connection_mode_impl.hpp>
#include <hitbox/backend/redis/detail/key_commands_impl.hpp>
#include <hitbox/backend/redis/detail/resp_impl.hpp>
#include <hitbox/backend/redis/detail/single_node_impl.hpp>

namespace hitbox::detail {

template class KeyCommands<SingleNode>;
template class KeyCommands<Cluster>;

}  // namespace hitbox::detail
