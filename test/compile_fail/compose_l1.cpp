// Compose's L1 slot given a type that is not a Backend.
// expect: L1 must model hitbox::Backend: it needs get<T>, set<T>, remove, label()
#include "compose_support.hpp"

#ifdef HITBOX_COMPILE_FAIL
hitbox::Compose<HalfBackend, TinyBackend, hitbox::InlineOffload> tiers{{}, {}, offload};
#else
hitbox::Compose<TinyBackend, TinyBackend, hitbox::InlineOffload> tiers{{}, {}, offload};
#endif
