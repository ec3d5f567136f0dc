#pragma once
/// \file
/// The memory tier's untyped core: the shards, the global weight, expiry sweeps and stats. Everything
/// that does not depend on the stored type or the clock lives here, compiled once.

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>

#include <hitbox/backend/memory/detail/shard.hpp>
#include <hitbox/backend/memory/stats.hpp>
#include <hitbox/core/linkage.hpp>

namespace hitbox::detail {

/// The largest bound and the largest entry weight, 2^56: bounds and weights above it are clamped to it, so
/// the shards' and the store's sums of weights (the bound plus what concurrent writes add before they
/// evict) cannot wrap, and the signed deltas of a weight change stay exact.
inline constexpr std::uint64_t max_weight = std::uint64_t{1} << 56;

class Store {
public:
    /// `shard_count` is a power of two; `capacity` is entries, or bytes when `weighted`.
    Store(std::size_t shard_count, std::uint64_t capacity, bool weighted)
        : shards_(std::make_unique<Shard[]>(shard_count)),
          shard_count_(shard_count),
          shard_bits_(static_cast<unsigned>(std::countr_zero(shard_count))),
          capacity_(capacity),
          weighted_(weighted) {
        for (std::size_t i = 0; i < shard_count; ++i) {
            // The remainder goes to the first shards, so the shares add up to the bound exactly.
            std::size_t share = static_cast<std::size_t>(capacity / shard_count + (i < capacity % shard_count ? 1 : 0));
            // Presizing is bounded for the whole store, not per shard (1 024 shards of a huge bound
            // would reserve for 2^30 entries).
            shards_[i].configure(share, std::max<std::size_t>(Shard::presize_limit / shard_count, 1), weighted,
                                 0x9e3779b97f4a7c15ull * (i + 1), &weight_, capacity);
        }
    }

    Shard& shard_for(std::uint64_t mixed_hash) noexcept {
        return shards_[shard_bits_ == 0 ? 0 : static_cast<std::size_t>(mixed_hash >> (64 - shard_bits_))];
    }

    std::size_t shard_count() const noexcept { return shard_count_; }
    /// The bound: entries, or bytes when weighted. One entry may weigh up to all of it.
    std::uint64_t capacity() const noexcept { return capacity_; }

    /// Inserts or replaces under the shard's exclusive lock; the nodes it displaces are freed by the caller's
    /// Graveyard after the lock is released.
    void put(Shard& shard, NodeBase* fresh, std::int64_t now_ms, Graveyard& dead);

    bool erase(Shard& shard, const CacheKey& key, std::uint64_t h, std::int64_t now_ms, Graveyard& dead) {
        std::unique_lock lock(shard.lock);
        return shard.erase(key, h, now_ms, dead);
    }

    /// Reclaims every expired entry of every shard now; returns how many.
    std::size_t cleanup(std::int64_t now_ms);

    void clear();

    MemoryStats stats() const noexcept;

private:
    /// The cache is still over the bound after a write evicted what its own shard had to give: evict from
    /// the other shard furthest above its share, one victim at a time, never holding two shard locks.
    void take_room_elsewhere(const Shard& writer, std::int64_t now_ms, Graveyard& dead);

    /// Each write also sweeps a little of another shard (round robin, skipped if that shard is busy), so
    /// expired entries are reclaimed even in shards nobody writes to.
    void help_expire(std::int64_t now_ms, Graveyard& dead);

    std::unique_ptr<Shard[]> shards_;
    std::size_t shard_count_;
    unsigned shard_bits_;
    std::uint64_t capacity_;
    bool weighted_;
    std::atomic<std::uint64_t> weight_{0};
    std::atomic<std::size_t> sweep_cursor_{0};
};

}  // namespace hitbox::detail

// The definitions: included here in a header-only build, compiled once into the hitbox library otherwise.
#if !HITBOX_COMPILED_LIB
#include <hitbox/backend/memory/detail/store_impl.hpp>
#endif
