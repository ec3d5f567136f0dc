// Compose's Refill slot given a type that is not a refill policy.
// expect: Refill must model hitbox::RefillPolicy (RefillAlways, RefillNever or DynamicRefill)
#include "compose_support.hpp"

#ifdef HITBOX_COMPILE_FAIL
hitbox::Compose<TinyBackend, TinyBackend, hitbox::InlineOffload, hitbox::SequentialRead,
                hitbox::OptimisticParallelWrite, bool>
    tiers{{}, {}, offload};
#else
hitbox::Compose<TinyBackend, TinyBackend, hitbox::InlineOffload, hitbox::SequentialRead,
                hitbox::OptimisticParallelWrite, hitbox::RefillNever>
    tiers{{}, {}, offload};
#endif
