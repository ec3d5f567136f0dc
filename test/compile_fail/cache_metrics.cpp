// Cache's Metrics slot given a type that is not a MetricsPolicy (no record_upstream).
// expect: hitbox::Cache<Backend, Offload, Metrics, Clock>: Metrics must model hitbox::MetricsPolicy
#include "cache_support.hpp"

#ifdef HITBOX_COMPILE_FAIL
using Front = hitbox::Cache<Memory, hitbox::InlineOffload, NotMetrics>;
#else
using Front = hitbox::Cache<Memory, hitbox::InlineOffload, hitbox::CountingMetrics>;
#endif
static_assert(sizeof(Front) > 0);
