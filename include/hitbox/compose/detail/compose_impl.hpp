#pragma once
/// \file
/// The definitions of <hitbox/compose/compose.hpp>: included by that header in a header-only build,
/// compiled once into the hitbox library with HITBOX_COMPILED_LIB=1 (hitbox/core/linkage.hpp).

#include <hitbox/compose/compose.hpp>

namespace hitbox::detail {

HITBOX_LIB_INLINE std::string join_path(std::string_view outer, std::string_view inner) {
    if (outer.empty()) return std::string(inner);
    if (inner.empty()) return std::string(outer);
    std::string out;
    out.reserve(outer.size() + 1 + inner.size());
    out.append(outer).append(".").append(inner);
    return out;
}

/// What both fork tasks do: run slot i unless the composition is gone (then cancel it).
inline void run_slot_if_open(ComposeShared& shared, Fork& fork, int i) {
    GatePass pass(shared.gate);
    if (pass)
        fork.run(i);
    else
        fork.cancel(i);
}

HITBOX_LIB_INLINE std::function<void()> fork_slot_task(std::shared_ptr<void> keep, Fork& fork, int i,
                                                       std::shared_ptr<ComposeShared> shared) {
    auto slot = std::make_shared<SlotTask>(std::move(keep), fork, i);
    return [slot = std::move(slot), f = &fork, shared = std::move(shared), i] { run_slot_if_open(*shared, *f, i); };
}

HITBOX_LIB_INLINE std::function<void()> fork_loser_task(std::shared_ptr<void> keep, Fork& fork, int loser,
                                                        std::shared_ptr<ComposeShared> shared) {
    return [keep = std::move(keep), f = &fork, shared = std::move(shared), loser] {
        run_slot_if_open(*shared, *f, loser);
    };
}

HITBOX_LIB_INLINE void prefix_errors(std::vector<Error>& errors, std::string_view label) {
    if (label.empty()) return;
    for (auto& e : errors) e = e.in(label);
}

HITBOX_LIB_INLINE Error composed_failure(std::string_view label, std::string_view what,
                                         const std::vector<Error>& errors, bool every) {
    if (errors.size() == 1) return errors.front();
    std::string message = (every ? std::string("every tier") : std::to_string(errors.size()) + " tiers") +
                          " failed to " + std::string(what) + ": ";
    for (std::size_t i = 0; i < errors.size(); ++i) {
        if (i) message += "; ";
        message += errors[i].what();
    }
    return Error(ErrorKind::unavailable, std::move(message), std::string(label));
}

}  // namespace hitbox::detail
