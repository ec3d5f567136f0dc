// Compose's Offload slot given a type without spawn(OffloadKind, std::string, std::function<void()>).
// expect: Offload must model hitbox::Offload: it needs bool spawn(OffloadKind, std::string dedup_key
#include "compose_support.hpp"

struct NotAnOffload {
    void run(std::function<void()> f) { f(); }
};

#ifdef HITBOX_COMPILE_FAIL
NotAnOffload executor;
hitbox::Compose<TinyBackend, TinyBackend, NotAnOffload> tiers{{}, {}, executor};
#else
hitbox::Compose<TinyBackend, TinyBackend, hitbox::InlineOffload> tiers{{}, {}, offload};
#endif
