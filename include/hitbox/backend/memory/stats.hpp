#pragma once
/// \file
/// hitbox::MemoryStats: the counters of the in-process tier, as a plain struct.

#include <cstdint>

namespace hitbox {

/// A snapshot of a MemoryBackend's counters (summed over its shards; each field is read on its own, so a
/// snapshot taken under load is consistent per field, not across fields).
struct MemoryStats {
    std::uint64_t entries = 0;              ///< stored entries, including expired ones not yet reclaimed
    std::uint64_t weighted_bytes = 0;       ///< sum of the weigher's figure over stored entries
    std::uint64_t hits = 0;                 ///< get() that returned a value
    std::uint64_t misses = 0;               ///< get() that returned nothing (absent, expired, or type mismatch)
    std::uint64_t evictions = 0;            ///< entries dropped to honour the bound, rejected candidates included
    std::uint64_t expirations = 0;          ///< expired entries reclaimed (by writes, cleanup() or the reaper)
    std::uint64_t rejected_admissions = 0;  ///< new entries TinyLFU dropped in favour of a more popular one

    friend bool operator==(const MemoryStats&, const MemoryStats&) = default;
};

}  // namespace hitbox
