#pragma once
/// \file
/// The answers of traced calls: hitbox::Lookup<T> (which tier answered a read) and hitbox::StoreReport
/// (which tiers took a write). Tiers that trace their own calls (Compose, AnyBackend) return them; the
/// free functions hitbox::lookup / hitbox::store (compose/lookup.hpp) give them for any Backend.

#include <optional>
#include <string>
#include <vector>

#include <hitbox/core/error.hpp>
#include <hitbox/core/value.hpp>

namespace hitbox {

/// The answer of a traced read.
template <class T>
struct Lookup {
    /// The value, or nullopt on a miss.
    std::optional<CacheValue<T>> value;
    /// Label path of the tier that answered ("cache.redis"); empty on a miss.
    std::string source;
    /// Errors of tiers that failed while the read as a whole succeeded (a failing tier counts as a miss),
    /// and of a refill that could not be written; each attributed to its tier's label path.
    std::vector<Error> errors;

    /// True when a tier answered.
    bool hit() const noexcept { return value.has_value(); }
};

/// The answer of a traced write that succeeded (in at least one tier, as the write policy allows).
struct StoreReport {
    /// Label paths of the tiers that took the write, in tier order (for Race: the tiers known to have
    /// taken it when the call returned).
    std::vector<std::string> written;
    /// Errors of tiers that failed while the write as a whole succeeded.
    std::vector<Error> errors;
};

}  // namespace hitbox
