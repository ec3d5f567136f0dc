// Compose's L2 slot given a type that is not a Backend.
// expect: L2 must model hitbox::Backend: it needs get<T>, set<T>, remove, label()
#include "compose_support.hpp"

#ifdef HITBOX_COMPILE_FAIL
hitbox::Compose<TinyBackend, HalfBackend, hitbox::InlineOffload> tiers{{}, {}, offload};
#else
hitbox::Compose<TinyBackend, TinyBackend, hitbox::InlineOffload> tiers{{}, {}, offload};
#endif
