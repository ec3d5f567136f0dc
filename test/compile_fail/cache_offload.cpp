// Cache's Offload slot given a type that is not an Offload.
// expect: hitbox::Cache<Backend, Offload, Metrics, Clock>: Offload must model hitbox::Offload
#include "cache_support.hpp"

#ifdef HITBOX_COMPILE_FAIL
using Front = hitbox::Cache<Memory, NotAnOffload>;
#else
using Front = hitbox::Cache<Memory, hitbox::InlineOffload>;
#endif
static_assert(sizeof(Front) > 0);
