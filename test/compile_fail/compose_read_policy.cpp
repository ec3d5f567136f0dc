// Compose's Read slot given a type that is not a read policy (here: a write policy).
// expect: Read must model hitbox::ReadPolicy (SequentialRead, RaceRead, ParallelRead or DynamicRead)
#include "compose_support.hpp"

#ifdef HITBOX_COMPILE_FAIL
hitbox::Compose<TinyBackend, TinyBackend, hitbox::InlineOffload, hitbox::SequentialWrite> tiers{{}, {}, offload};
#else
hitbox::Compose<TinyBackend, TinyBackend, hitbox::InlineOffload, hitbox::RaceRead> tiers{{}, {}, offload};
#endif
