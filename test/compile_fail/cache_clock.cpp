// Cache's Clock slot given a type that is not a ClockSource.
// expect: hitbox::Cache<Backend, Offload, Metrics, Clock>: Clock must model hitbox::ClockSource
#include "cache_support.hpp"

#ifdef HITBOX_COMPILE_FAIL
using Front = hitbox::Cache<Memory, hitbox::InlineOffload, hitbox::NoMetrics, NotAClock>;
#else
using Front = hitbox::Cache<Memory, hitbox::InlineOffload, hitbox::NoMetrics, hitbox::ManualClock>;
#endif
static_assert(sizeof(Front) > 0);
