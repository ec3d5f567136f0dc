// Compose's Write slot given a type that is not a write policy (here: a read policy).
// expect: Write must model hitbox::WritePolicy (SequentialWrite, OptimisticParallelWrite, RaceWrite or DynamicWrite)
#include "compose_support.hpp"

#ifdef HITBOX_COMPILE_FAIL
hitbox::Compose<TinyBackend, TinyBackend, hitbox::InlineOffload, hitbox::SequentialRead, hitbox::ParallelRead> tiers{
    {}, {}, offload};
#else
hitbox::Compose<TinyBackend, TinyBackend, hitbox::InlineOffload, hitbox::SequentialRead, hitbox::RaceWrite> tiers{
    {}, {}, offload};
#endif
