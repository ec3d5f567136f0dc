#pragma once
/// \file
/// The definitions of <hitbox/backend/memory/detail/shard.hpp>: included by that header in a header-only build,
/// compiled once into the hitbox library with HITBOX_COMPILED_LIB=1 (hitbox/core/linkage.hpp).

#include <hitbox/backend/memory/detail/shard.hpp>

namespace hitbox::detail {

HITBOX_LIB_INLINE void Shard::configure(std::size_t share, std::size_t presize_cap, bool weighted, std::uint64_t seed,
                                        std::atomic<std::uint64_t>* total_weight, std::uint64_t total_capacity) {
    share_ = share;
    weighted_ = weighted;
    rng_ = seed | 1;
    total_weight_ = total_weight;
    total_capacity_ = total_capacity;
    // An entry bound sizes the table, sketch and ghosts up front, up to `presize_cap` entries (the store's
    // share of presize_limit: a huge bound such as max_entries(UINT64_MAX) must not allocate for it); past
    // that, inserts grow them as they do under a byte bound.
    presized_ = weighted ? 0 : std::min(share, presize_cap);
    if (!weighted) {
        table_.reserve(presized_);
        sketch_.ensure_capacity(presized_);
    }
    window_ghosts_.ensure_capacity(ghost_horizon(presized_));
    main_ghosts_.ensure_capacity(ghost_horizon(presized_));
    min_window_ = std::max<std::size_t>(weighted ? 0 : 1, share / 100);
    set_window(min_window_);
}

HITBOX_LIB_INLINE void Shard::put(NodeBase* fresh, std::int64_t now_ms, Graveyard& dead) {
    ++writes_;
    if (NodeBase* old = table_.find(fresh->key, fresh->hash)) {
        fresh->segment = old->segment;
        list_of(old->segment).replace(old, fresh);
        table_.replace(old, fresh);
        heap_.erase(old);
        fresh->accessed.store(true, std::memory_order_relaxed);  // an overwrite is an access
        const unsigned f = old->frequency.load(std::memory_order_relaxed) + 1u;
        fresh->frequency.store(static_cast<std::uint8_t>(std::min(f, 15u)), std::memory_order_relaxed);
        add_bytes(fresh->bytes, 1);
        add_bytes(old->bytes, -1);
        add_weight(static_cast<std::int64_t>(fresh->weight) - static_cast<std::int64_t>(old->weight));
        dead.add(old);
    } else {
        table_.insert(fresh);
        fresh->segment = Segment::window;
        window_.push_front(fresh);
        bump(entries_, 1);
        add_bytes(fresh->bytes, 1);
        add_weight(static_cast<std::int64_t>(fresh->weight));
        if (table_.size() > presized_) {
            sketch_.ensure_capacity(table_.size());
            window_ghosts_.ensure_capacity(ghost_horizon(table_.size()));
            main_ghosts_.ensure_capacity(ghost_horizon(table_.size()));
        }
        if (window_ghosts_.contains(fresh->hash))
            adapt_window(1, fresh->weight);
        else if (main_ghosts_.contains(fresh->hash))
            adapt_window(-1, fresh->weight);
    }
    if (fresh->expire_ms != no_expiry) heap_.push(fresh);
    expire(now_ms, write_expiry_budget, dead);
    evict_to_fit(fresh, now_ms, dead);
    maybe_age();
    note_next_expiry();
}

HITBOX_LIB_INLINE bool Shard::evict_one(std::int64_t now_ms, Graveyard& dead) {
    NodeBase* victim = main_victim();
    if (victim == nullptr) victim = window_.tail;
    if (victim == nullptr) return false;
    evict(victim, now_ms, dead);
    note_next_expiry();
    return true;
}

HITBOX_LIB_INLINE bool Shard::erase(const CacheKey& key, std::uint64_t h, std::int64_t now_ms, Graveyard& dead) {
    NodeBase* n = table_.find(key, h);
    if (n == nullptr) return false;
    const bool live = !n->expired_at(now_ms);
    drop(n, now_ms, false, dead);
    note_next_expiry();
    return live;
}

HITBOX_LIB_INLINE std::size_t Shard::expire(std::int64_t now_ms, std::size_t budget, Graveyard& dead) {
    std::size_t done = 0;
    while (done < budget && !heap_.empty() && heap_.top()->expired_at(now_ms)) {
        drop(heap_.top(), now_ms, false, dead);
        ++done;
    }
    note_next_expiry();
    return done;
}

HITBOX_LIB_INLINE void Shard::clear(Graveyard& dead) {
    table_.for_each([&](NodeBase* n) {
        sketch_.add(n->hash, n->frequency.load(std::memory_order_relaxed));
        dead.add(n);
    });
    table_.reset();
    heap_.clear();
    note_next_expiry();
    window_ = probation_ = protect_ = NodeList{};
    add_weight(-static_cast<std::int64_t>(weight_.load(std::memory_order_relaxed)));
    entries_.store(0, std::memory_order_relaxed);
    bytes_lo_.store(0, std::memory_order_relaxed);
    bytes_hi_.store(0, std::memory_order_relaxed);
}

HITBOX_LIB_INLINE void Shard::collect(MemoryStats& out) const noexcept {
    out.entries += entries_.load(std::memory_order_relaxed);
    // lo + hi * 2^32, added to what the other shards gave, saturating at UINT64_MAX.
    constexpr std::uint64_t all = std::numeric_limits<std::uint64_t>::max();
    const std::uint64_t hi = bytes_hi_.load(std::memory_order_relaxed);
    const std::uint64_t lo = bytes_lo_.load(std::memory_order_relaxed);
    std::uint64_t mine = hi > (all >> 32) ? all : hi << 32;
    mine = lo > all - mine ? all : mine + lo;
    out.weighted_bytes = mine > all - out.weighted_bytes ? all : out.weighted_bytes + mine;
    out.hits += lock.hits();
    out.misses += lock.misses();
    out.evictions += evictions_.load(std::memory_order_relaxed);
    out.expirations += expirations_.load(std::memory_order_relaxed);
    out.rejected_admissions += rejected_.load(std::memory_order_relaxed);
}

HITBOX_LIB_INLINE void Shard::drop(NodeBase* n, std::int64_t now_ms, bool for_size, Graveyard& dead) {
    if (n->segment != Segment::none) list_of(n->segment).unlink(n);
    n->segment = Segment::none;
    heap_.erase(n);
    table_.erase(n);
    if (n->expired_at(now_ms))
        bump(expirations_, 1);
    else if (for_size)
        bump(evictions_, 1);
    bump(entries_, -1);
    add_bytes(n->bytes, -1);
    add_weight(-static_cast<std::int64_t>(n->weight));
    sketch_.add(n->hash, n->frequency.load(std::memory_order_relaxed));  // its popularity outlives it
    dead.add(n);
}

HITBOX_LIB_INLINE NodeBase* Shard::window_victim() noexcept {
    NodeBase* n = window_.tail;
    while (take_access(n)) {
        window_.unlink(n);
        window_.push_front(n);
        n = window_.tail;
    }
    return n;
}

HITBOX_LIB_INLINE NodeBase* Shard::main_victim() noexcept {
    for (;;) {
        if (NodeBase* n = probation_.tail) {
            if (!take_access(n)) return n;
            probation_.unlink(n);
            n->segment = Segment::protect;
            protect_.push_front(n);
            rebalance_protected();
            continue;
        }
        if (NodeBase* n = protect_.tail) {
            if (!take_access(n)) return n;
            protect_.unlink(n);
            protect_.push_front(n);
            continue;
        }
        return nullptr;
    }
}

HITBOX_LIB_INLINE void Shard::rebalance_protected() noexcept {
    while (protect_.weight > protected_max_ && !protect_.empty()) {
        NodeBase* n = protect_.tail;
        protect_.unlink(n);
        if (take_access(n)) {
            protect_.push_front(n);
        } else {
            n->segment = Segment::probation;
            probation_.push_front(n);
        }
    }
}

HITBOX_LIB_INLINE bool Shard::admit(const NodeBase* candidate, const NodeBase* victim) noexcept {
    const unsigned c = popularity(candidate);
    const unsigned v = popularity(victim);
    if (c > v) return true;
    if (c < 6) return false;
    rng_ ^= rng_ << 13;
    rng_ ^= rng_ >> 7;
    rng_ ^= rng_ << 17;
    return (rng_ & 127) == 0;
}

HITBOX_LIB_INLINE void Shard::evict_to_fit(const NodeBase* fresh, std::int64_t now_ms, Graveyard& dead) {
    while (window_.weight > window_max_ && !window_.empty()) {
        NodeBase* candidate = window_victim();
        window_.unlink(candidate);
        candidate->segment = Segment::none;
        bool keep = true;
        while (keep && must_shrink(candidate->weight)) {
            NodeBase* victim = main_victim();
            if (victim == nullptr) {
                break;  // nothing left here to duel with: other shards make the room
            } else if (admit(candidate, victim)) {
                evict(victim, now_ms, dead);
            } else {
                bump(rejected_, 1);
                keep = false;
            }
        }
        if (keep) {
            candidate->segment = Segment::probation;
            probation_.push_front(candidate);
        } else {
            evict(candidate, now_ms, dead);
        }
    }
    // Still over (the window share shrank, or an overwrite grew an entry): evict without a duel.
    while (must_shrink(0)) {
        NodeBase* victim = main_victim();
        if (victim == nullptr) victim = window_.tail;
        if (victim == fresh) {
            // An overwrite keeps its entry's place, so the order may name it: give up the entry next to it,
            // or another list's last, instead of stopping over the bound.
            victim = fresh->prev;
            for (NodeList* l : {&window_, &probation_, &protect_})
                if (victim == nullptr && l->tail != nullptr && l->tail != fresh) victim = l->tail;
        }
        if (victim == nullptr) break;
        evict(victim, now_ms, dead);
    }
}

HITBOX_LIB_INLINE void Shard::evict(NodeBase* n, std::int64_t now_ms, Graveyard& dead) {
    const bool from_window = n->segment == Segment::window || n->segment == Segment::none;
    (from_window ? window_ghosts_ : main_ghosts_).add(n->hash);
    drop(n, now_ms, true, dead);
}

HITBOX_LIB_INLINE void Shard::maybe_age() noexcept {
    const std::uint64_t events = lock.hits() + writes_;
    if (events - aged_at_ < 10 * sketch_.words()) return;
    sketch_.halve();
    table_.for_each([](NodeBase* n) {
        n->frequency.store(static_cast<std::uint8_t>(n->frequency.load(std::memory_order_relaxed) / 2),
                           std::memory_order_relaxed);
    });
    aged_at_ = events;
}

}  // namespace hitbox::detail
