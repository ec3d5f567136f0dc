// hitbox::compose(tiers..., offload) whose last argument is not an Offload.
// expect: hitbox::compose(tiers..., offload): the last argument must model hitbox::Offload
#include "compose_support.hpp"

#ifdef HITBOX_COMPILE_FAIL
auto tiers = hitbox::compose(TinyBackend{}, TinyBackend{}, TinyBackend{});
#else
auto tiers = hitbox::compose(TinyBackend{}, TinyBackend{}, TinyBackend{}, offload);
#endif
