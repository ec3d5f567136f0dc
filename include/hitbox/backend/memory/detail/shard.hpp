#pragma once
/// \file
/// One shard of the memory tier: a hash table of nodes under a reader-writer lock, and a W-TinyLFU
/// eviction policy over that shard's entries.
///
/// Bound: the store keeps one global weight; each shard has a nominal share (bound / shards) that sizes
/// its policy segments. A write evicts from its own shard while the cache is over the bound and the shard
/// is over its share; the store then evicts from the fullest other shard if the cache is still over (a
/// shard below its share, or one large entry, borrows room from the others).
///
/// Policy: new entries enter an LRU "window"; entries leaving the window become candidates for the main
/// space (segmented LRU: probation and protected, protected holding up to 80%). When the main space is
/// full, a candidate is admitted only if its estimated popularity (accesses counted in its node while
/// stored, plus the frequency sketch's history of earlier stays) beats that of the probation
/// victim, so a scan of one-time keys cannot flush the hot set. Readers never reorder lists (that would
/// need the exclusive lock): a hit sets the node's `accessed` flag and bumps its frequency, and the policy
/// applies the flags lazily, CLOCK-style, when a node reaches the cold end of its list (window: back to the
/// MRU end; probation: promotion to protected; protected: back to its MRU end).
///
/// Window size: adapted per shard from "ghost" hits, as ARC adapts its recency/frequency split. The shard
/// remembers the hashes of the last few dropped candidates (window ghosts) and of the last few evicted
/// main-space victims (main ghosts), a tenth of the share each. When a key is inserted again while it is a
/// window ghost, a slightly larger window would have kept it: the window grows by that entry's weight; a
/// main ghost shrinks the window instead. So a recency-heavy load whose reuse distance is within the ghosts'
/// horizon drifts towards plain LRU (a window of the whole share) within about one share of misses, and a
/// frequency-heavy one towards a 1% window; a shift to a new loop longer than the horizon is taken in by
/// the ageing of the counts (doc/memory.md).

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include <hitbox/backend/memory/detail/frequency_sketch.hpp>
#include <hitbox/backend/memory/detail/node.hpp>
#include <hitbox/backend/memory/detail/rw_lock.hpp>
#include <hitbox/backend/memory/stats.hpp>
#include <hitbox/core/linkage.hpp>

namespace hitbox::detail {

/// Store from the single writer of a counter (the holder of the exclusive lock); readers load relaxed.
inline void bump(std::atomic<std::uint64_t>& counter, std::int64_t delta) noexcept {
    counter.store(counter.load(std::memory_order_relaxed) + static_cast<std::uint64_t>(delta),
                  std::memory_order_relaxed);
}

/// Recently evicted keys by hash, forgetting them after `horizon` newer ones. Lossy on purpose: a slot
/// collision forgets the older key. No deletion, no allocation after sizing.
class GhostList {
public:
    void ensure_capacity(std::size_t entries) {
        horizon_ = std::max<std::size_t>(entries, 16);
        const std::size_t want = std::bit_ceil(2 * horizon_);
        if (want > slots_.size()) slots_.assign(want, Slot{});
    }

    void add(std::uint64_t h) noexcept { slots_[slot(h)] = Slot{h, ++sequence_}; }

    bool contains(std::uint64_t h) const noexcept {
        const Slot& s = slots_[slot(h)];
        return s.sequence != 0 && s.hash == h && sequence_ - s.sequence < horizon_;
    }

private:
    struct Slot {
        std::uint64_t hash = 0;
        std::uint64_t sequence = 0;
    };

    std::size_t slot(std::uint64_t h) const noexcept { return static_cast<std::size_t>(h >> 20) & (slots_.size() - 1); }

    std::vector<Slot> slots_;
    std::uint64_t sequence_ = 0;
    std::size_t horizon_ = 16;
};

class alignas(64) Shard {
public:
    /// Readers take it shared (and count their hits and misses in their slot of it), writers exclusive.
    mutable RwLock lock;

    Shard() = default;
    Shard(const Shard&) = delete;
    Shard& operator=(const Shard&) = delete;
    ~Shard() {
        table_.for_each([](NodeBase* n) { n->destroy(n); });
    }

    /// Sets this shard's nominal share of the bound (entries, or bytes when `weighted`), how many entries
    /// it may reserve room for up front, and the store's global weight and bound. Call before first use.
    void configure(std::size_t share, std::size_t presize_cap, bool weighted, std::uint64_t seed,
                   std::atomic<std::uint64_t>* total_weight, std::uint64_t total_capacity);

    /// The entries a whole store reserves room for at most before any insert.
    static constexpr std::size_t presize_limit = std::size_t{1} << 20;

    /// Current size of the admission window, in weight units.
    std::size_t window_max() const noexcept { return window_max_; }

    /// The node of `key`, expired or not; shared lock held.
    const NodeBase* find(const CacheKey& key, std::uint64_t h) const noexcept { return table_.find(key, h); }

    /// Notes a hit on `n`; shared lock held through `slot`. Touches only the node and the reader's slot.
    static void record_hit(const NodeBase* n, RwLock::Slot& slot) noexcept {
        n->count_access();
        slot.hits.fetch_add(1, std::memory_order_relaxed);
    }

    static void record_miss(RwLock::Slot& slot) noexcept { slot.misses.fetch_add(1, std::memory_order_relaxed); }

    /// A recorded hit whose copy out failed: counted as a miss instead.
    static void hit_was_miss(RwLock::Slot& slot) noexcept {
        slot.hits.fetch_sub(1, std::memory_order_relaxed);
        slot.misses.fetch_add(1, std::memory_order_relaxed);
    }

    std::size_t share() const noexcept { return share_; }
    /// This shard's weight; readable without the lock.
    std::uint64_t weight_hint() const noexcept { return weight_.load(std::memory_order_relaxed); }
    std::uint64_t writes() const noexcept { return writes_; }

    /// Inserts `fresh` (ownership passes to the shard) or replaces the node of the same key, keeping its
    /// recency position; then reclaims expired nodes and evicts down to the bound. Exclusive lock held.
    void put(NodeBase* fresh, std::int64_t now_ms, Graveyard& dead);

    /// Earliest expiry in this shard (Unix ms, no_expiry when none); readable without the lock, so sweeps
    /// can skip shards with nothing to reclaim instead of taking their lock.
    std::int64_t next_expiry() const noexcept { return next_expiry_.load(std::memory_order_relaxed); }

    /// Evicts this shard's policy victim (for the store, when other shards need room); false when empty.
    /// Exclusive lock held.
    bool evict_one(std::int64_t now_ms, Graveyard& dead);

    /// Removes the node of `key`; true when it existed and had not expired. Exclusive lock held.
    bool erase(const CacheKey& key, std::uint64_t h, std::int64_t now_ms, Graveyard& dead);

    /// Reclaims up to `budget` expired nodes, soonest first; returns how many. Exclusive lock held.
    std::size_t expire(std::int64_t now_ms, std::size_t budget, Graveyard& dead);

    /// Drops every node (not counted as evictions). Exclusive lock held.
    void clear(Graveyard& dead);

    /// Adds this shard's counters to `out`; no lock needed.
    void collect(MemoryStats& out) const noexcept;

private:
    static constexpr std::size_t write_expiry_budget = 64;

    /// How many recent drops each ghost list remembers: a tenth of the entries. A ghost hit should mean
    /// "a few more entries on this side would have kept it", the marginal value of moving the boundary;
    /// ghosts of a whole share measure the value of doubling a side instead, which on Zipf loads favours
    /// the window (the rejected tail comes back within a share of drops) and grew it to a third of the
    /// share, costing 0.5 to 2 points against a fixed 1% window (hitbox-hitratio).
    static std::size_t ghost_horizon(std::size_t entries) noexcept { return entries / 10; }

    NodeList& list_of(Segment s) noexcept {
        return s == Segment::window ? window_ : s == Segment::probation ? probation_ : protect_;
    }

    void note_next_expiry() noexcept {
        next_expiry_.store(heap_.empty() ? no_expiry : heap_.top()->expire_ms, std::memory_order_relaxed);
    }

    std::size_t local_weight() const noexcept { return window_.weight + probation_.weight + protect_.weight; }
    std::size_t main_max() const noexcept { return share_ - window_max_; }

    /// Adds (sign +1) or removes (-1) an entry's reported bytes. The sum is kept as two words, the bytes
    /// below 2^32 of each entry and the rest shifted down by 32, so that it cannot wrap before 2^32 entries
    /// of 2^56 bytes each (weights clamp there): a weigher that claims huge sizes under `max_entries` makes
    /// `weighted_bytes` saturate, never wrap (collect()).
    void add_bytes(std::size_t bytes, std::int64_t sign) noexcept {
        bump(bytes_lo_, sign * static_cast<std::int64_t>(bytes & 0xffffffffu));
        bump(bytes_hi_, sign * static_cast<std::int64_t>(static_cast<std::uint64_t>(bytes) >> 32));
    }

    void add_weight(std::int64_t delta) noexcept {
        bump(weight_, delta);
        total_weight_->fetch_add(static_cast<std::uint64_t>(delta), std::memory_order_relaxed);
    }

    /// The cache is over the bound and this shard holds more than its share (plus `floating`, a node
    /// taken out of the lists but still stored).
    bool must_shrink(std::size_t floating) const noexcept {
        return total_weight_->load(std::memory_order_relaxed) > total_capacity_ && local_weight() + floating > share_;
    }

    /// Moves the window size by `weight` times a step that grows by one with each ghost hit in the same
    /// direction and falls back to one on a reversal: a workload that keeps asking for one side gets it
    /// quickly, a balanced one stays put.
    void adapt_window(int direction, std::size_t weight) noexcept {
        step_ = direction == direction_ ? std::min<std::size_t>(step_ + 1, max_step) : 1;
        direction_ = direction;
        const std::size_t move = weight * step_;
        if (direction > 0)
            set_window(window_max_ + std::min(move, share_ - window_max_));
        else
            set_window(window_max_ - std::min(move, window_max_ - min_window_));
    }

    void set_window(std::size_t w) noexcept {
        window_max_ = std::min(std::max(w, min_window_), share_);
        protected_max_ = static_cast<std::size_t>(static_cast<double>(main_max()) * 0.8);
    }

    /// Unlinks a node from everything and hands it to `dead`, counting why it left.
    void drop(NodeBase* n, std::int64_t now_ms, bool for_size, Graveyard& dead);

    static bool take_access(const NodeBase* n) noexcept {
        if (!n->accessed.load(std::memory_order_relaxed)) return false;
        n->accessed.store(false, std::memory_order_relaxed);
        return true;
    }

    /// The window's LRU node, after giving accessed nodes a second chance.
    NodeBase* window_victim() noexcept;

    /// The main space's victim: the probation LRU node (accessed ones are promoted on the way), or the
    /// protected LRU node when probation is empty. nullptr when the main space is empty.
    NodeBase* main_victim() noexcept;

    /// Demotes protected LRU nodes to probation while protected is over its share.
    void rebalance_protected() noexcept;

    /// TinyLFU: the candidate replaces the victim only when it is more popular; a warm candidate also gets
    /// a small random chance, so an attacker cannot pin a victim by inflating its count.
    bool admit(const NodeBase* candidate, const NodeBase* victim) noexcept;

    /// Moves the window's overflow into the main space and then enforces the bound. While the bound has
    /// room a candidate simply joins probation; once full, it must beat (by frequency) every victim it
    /// would displace, or it is dropped itself. `fresh` (just written) is never evicted without a duel:
    /// if the shard has nothing else to give, the store takes room from other shards.
    void evict_to_fit(const NodeBase* fresh, std::int64_t now_ms, Graveyard& dead);

    /// Drops a node to honour the bound, remembering it as a ghost of the part of the cache it left
    /// (a node in no list is a candidate that just left the window).
    void evict(NodeBase* n, std::int64_t now_ms, Graveyard& dead);

    /// Accesses while stored plus the history from earlier stays, 0..15.
    unsigned popularity(const NodeBase* n) const noexcept {
        return std::min(15u, n->frequency.load(std::memory_order_relaxed) + sketch_.estimate(n->hash));
    }

    /// Halves all counts (sketch and stored entries) after ten events (hits and writes) per sketch word,
    /// 20 to 40 per entry of the share, so old popularity fades. Shorter periods keep 4-bit counts too low
    /// to tell the keys near the cache boundary apart (a key read once per period halves to nothing).
    void maybe_age() noexcept;

    NodeTable table_;
    FrequencySketch sketch_;
    NodeList window_;
    NodeList probation_;
    NodeList protect_;
    ExpiryHeap heap_;
    std::size_t share_ = 1;
    std::atomic<std::uint64_t>* total_weight_ = nullptr;
    std::uint64_t total_capacity_ = 1;
    std::size_t window_max_ = 1;
    std::size_t min_window_ = 1;
    std::size_t step_ = 0;
    int direction_ = 0;
    static constexpr std::size_t max_step = 16;
    GhostList window_ghosts_;
    GhostList main_ghosts_;
    std::size_t protected_max_ = 0;
    bool weighted_ = false;
    std::size_t presized_ = 0;
    std::uint64_t writes_ = 0;
    std::uint64_t aged_at_ = 0;
    std::uint64_t rng_ = 1;
    std::atomic<std::uint64_t> weight_{0};
    std::atomic<std::int64_t> next_expiry_{no_expiry};
    std::atomic<std::uint64_t> entries_{0};
    std::atomic<std::uint64_t> bytes_lo_{0};  ///< add_bytes()
    std::atomic<std::uint64_t> bytes_hi_{0};
    std::atomic<std::uint64_t> evictions_{0};
    std::atomic<std::uint64_t> expirations_{0};
    std::atomic<std::uint64_t> rejected_{0};
};

}  // namespace hitbox::detail

// The definitions: included here in a header-only build, compiled once into the hitbox library otherwise.
#if !HITBOX_COMPILED_LIB
#include <hitbox/backend/memory/detail/shard_impl.hpp>
#endif
