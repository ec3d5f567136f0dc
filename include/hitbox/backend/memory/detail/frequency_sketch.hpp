#pragma once
/// \file
/// The TinyLFU popularity estimate of the memory tier: a count-min sketch of 4-bit counters with periodic
/// halving ("aging"), so the estimate follows recent popularity instead of all-time counts.

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <memory>

namespace hitbox::detail {

/// Finalizer of a 64-bit hash (splitmix64): spreads FNV output so any bit range is usable.
inline std::uint64_t mix_hash(std::uint64_t h) noexcept {
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebull;
    h ^= h >> 31;
    return h;
}

/// The popularity history of keys that are not (or no longer) stored; a stored entry counts its own
/// accesses in its node, and that count is added here when the entry leaves. Each key owns one 64-bit
/// word (16 nibbles) and, in it, one counter in each of the four groups of four nibbles: a count-min
/// sketch of depth 4 whose counters all live in one cache line. Additions are conservative (only the
/// smallest counters grow), which keeps the overestimate of count-min low. Used under the shard's
/// exclusive lock only.
class FrequencySketch {
public:
    FrequencySketch() { resize(min_words); }

    /// Sizes the table for a cache of `entries` entries: two words per entry, rounded up to a power of
    /// two; drops counts. The keys worth counting are more than the stored ones (the candidates competing
    /// for the last places), and the owner ages the sketch after a number of events proportional to its
    /// size, so a larger table also lets the counts of keys near the cache boundary grow apart before
    /// halving (on hitbox-hitratio's Zipf 0.99 traces, one word per entry gave 0.4 to 0.5 points less).
    void ensure_capacity(std::size_t entries) {
        std::size_t want = std::bit_ceil(std::clamp<std::size_t>(2 * entries, min_words, max_words));
        if (want > words_) resize(want);
    }

    /// Adds `count` accesses of the key with mixed hash `h` (counters saturate at 15).
    void add(std::uint64_t h, unsigned count) noexcept {
        std::uint64_t& word = table_[index(h)];
        unsigned shifts[4];
        offsets(h, shifts);
        for (unsigned step = 0; step < count; ++step) {
            unsigned least = 15;
            for (unsigned s : shifts) least = std::min(least, static_cast<unsigned>((word >> s) & 15u));
            if (least == 15) return;
            for (unsigned s : shifts)
                if (((word >> s) & 15u) == least) word += std::uint64_t{1} << s;
        }
    }

    /// Estimated recent access count of the key, 0..15.
    unsigned estimate(std::uint64_t h) const noexcept {
        const std::uint64_t word = table_[index(h)];
        unsigned shifts[4];
        offsets(h, shifts);
        unsigned least = 15;
        for (unsigned s : shifts) least = std::min(least, static_cast<unsigned>((word >> s) & 15u));
        return least;
    }

    /// Halves every counter: the aging step of TinyLFU.
    void halve() noexcept {
        for (std::size_t i = 0; i < words_; ++i) table_[i] = (table_[i] >> 1) & 0x7777777777777777ull;
    }

    std::size_t words() const noexcept { return words_; }

private:
    static constexpr std::size_t min_words = 16;
    static constexpr std::size_t max_words = std::size_t{1} << 24;

    std::size_t index(std::uint64_t h) const noexcept {
        return static_cast<std::size_t>((h * 0x9e3779b97f4a7c15ull) >> 32) & (words_ - 1);
    }

    /// Bit offsets of the key's four nibbles, one per group of four.
    static void offsets(std::uint64_t h, unsigned (&shifts)[4]) noexcept {
        for (unsigned g = 0; g < 4; ++g) shifts[g] = (g * 4 + static_cast<unsigned>((h >> (8 + 2 * g)) & 3u)) * 4;
    }

    void resize(std::size_t words) {
        table_ = std::make_unique<std::uint64_t[]>(words);  // value-initialized: zero
        words_ = words;
    }

    std::unique_ptr<std::uint64_t[]> table_;
    std::size_t words_ = 0;
};

}  // namespace hitbox::detail
