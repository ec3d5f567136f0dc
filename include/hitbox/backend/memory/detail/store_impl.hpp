#pragma once
/// \file
/// The definitions of <hitbox/backend/memory/detail/store.hpp>: included by that header in a header-only build,
/// compiled once into the hitbox library with HITBOX_COMPILED_LIB=1 (hitbox/core/linkage.hpp).

#include <hitbox/backend/memory/detail/store.hpp>

namespace hitbox::detail {

HITBOX_LIB_INLINE void Store::put(Shard& shard, NodeBase* fresh, std::int64_t now_ms, Graveyard& dead) {
    {
        std::unique_lock lock(shard.lock);
        shard.put(fresh, now_ms, dead);
    }
    if (weight_.load(std::memory_order_relaxed) > capacity_) take_room_elsewhere(shard, now_ms, dead);
    help_expire(now_ms, dead);
}

HITBOX_LIB_INLINE void Store::take_room_elsewhere(const Shard& writer, std::int64_t now_ms, Graveyard& dead) {
    while (weight_.load(std::memory_order_relaxed) > capacity_) {
        Shard* fullest = nullptr;
        std::int64_t most = 0;
        for (std::size_t i = 0; i < shard_count_; ++i) {
            Shard& s = shards_[i];
            if (&s == &writer || s.weight_hint() == 0) continue;
            auto over = static_cast<std::int64_t>(s.weight_hint()) - static_cast<std::int64_t>(s.share());
            if (fullest == nullptr || over > most) {
                fullest = &s;
                most = over;
            }
        }
        if (fullest == nullptr) return;
        std::unique_lock lock(fullest->lock);
        if (!fullest->evict_one(now_ms, dead)) continue;
    }
}

HITBOX_LIB_INLINE std::size_t Store::cleanup(std::int64_t now_ms) {
    std::size_t total = 0;
    for (std::size_t i = 0; i < shard_count_; ++i) {
        if (shards_[i].next_expiry() > now_ms) continue;  // nothing due: leave its readers alone
        Graveyard dead;
        std::unique_lock lock(shards_[i].lock);
        total += shards_[i].expire(now_ms, static_cast<std::size_t>(-1), dead);
    }
    return total;
}

HITBOX_LIB_INLINE void Store::clear() {
    for (std::size_t i = 0; i < shard_count_; ++i) {
        Graveyard dead;
        std::unique_lock lock(shards_[i].lock);
        shards_[i].clear(dead);
    }
}

HITBOX_LIB_INLINE MemoryStats Store::stats() const noexcept {
    MemoryStats out;
    for (std::size_t i = 0; i < shard_count_; ++i) shards_[i].collect(out);
    // The shards are read one after another, so under concurrent writes their sum can count both an
    // entry just stored in one shard and the victim it then evicted from another. The global weight is
    // one atomic, exact at every moment; with an entry bound it is the entry count, with a byte bound
    // the weighed bytes (an entry that weighs 0 bytes counts 1, as the bound counts it).
    if (weighted_)
        out.weighted_bytes = weight_.load(std::memory_order_relaxed);
    else
        out.entries = weight_.load(std::memory_order_relaxed);
    return out;
}

HITBOX_LIB_INLINE void Store::help_expire(std::int64_t now_ms, Graveyard& dead) {
    if (shard_count_ == 1) return;
    std::size_t i = sweep_cursor_.fetch_add(1, std::memory_order_relaxed) & (shard_count_ - 1);
    Shard& other = shards_[i];
    if (other.next_expiry() > now_ms || !other.lock.try_lock()) return;
    other.expire(now_ms, 16, dead);
    other.lock.unlock();
}

}  // namespace hitbox::detail
