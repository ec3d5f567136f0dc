// Cache's Backend slot given a type that is not a Backend.
// expect: hitbox::Cache<Backend, Offload, Metrics, Clock>: Backend must model hitbox::Backend
#include "cache_support.hpp"

#ifdef HITBOX_COMPILE_FAIL
using Front = hitbox::Cache<NotABackend, hitbox::InlineOffload>;
#else
using Front = hitbox::Cache<Memory, hitbox::InlineOffload>;
#endif
static_assert(sizeof(Front) > 0);
