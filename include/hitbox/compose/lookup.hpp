#pragma once
/// \file
/// Traced backend calls: `hitbox::lookup<T>(backend, key)` says which tier answered, and
/// `hitbox::store(backend, key, value)` which tiers took a write. They work on any Backend: a Compose
/// answers with the label path of the tier ("cache.memory", "outer.inner.redis"), a plain tier with its
/// own label.

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <hitbox/core/concepts.hpp>
#include <hitbox/core/error.hpp>
#include <hitbox/core/key.hpp>
#include <hitbox/core/trace.hpp>
#include <hitbox/core/value.hpp>

namespace hitbox {

/// Traced read on any Backend: uses the backend's own `lookup<T>` when it has one (Compose does), and
/// otherwise its `get<T>`, naming the backend's label as the source of a hit.
///
/// \code
/// auto found = hitbox::lookup<User>(tiers, key);
/// if (found && found->hit()) std::cout << "served by " << found->source << '\n';   // "cache.memory"
/// \endcode
template <class T, class B>
Result<Lookup<T>> lookup(B& backend, const CacheKey& key) {
    if constexpr (TracedBackend<B, T>) {
        return backend.template lookup<T>(key);
    } else {
        static_assert(BackendFor<B, T>, "hitbox::lookup<T>(backend, key): backend must model hitbox::Backend");
        auto got = backend.template get<T>(key);
        if (!got) return fail(got.error().backend().empty() ? got.error().in(backend.label()) : got.error());
        Lookup<T> out;
        out.value = std::move(*got);
        if (out.value) out.source = std::string(backend.label());
        return out;
    }
}

/// Traced write on any Backend: uses the backend's own `store<T>` when it has one (Compose does), and
/// otherwise its `set<T>`, naming the backend's label as the one tier written.
template <class T, class B>
Result<StoreReport> store(B& backend, const CacheKey& key, const CacheValue<T>& value) {
    if constexpr (TracedStore<B, T>) {
        return backend.template store<T>(key, value);
    } else {
        static_assert(BackendFor<B, T>, "hitbox::store<T>(backend, key, value): backend must model hitbox::Backend");
        auto done = backend.template set<T>(key, value);
        if (!done) return fail(done.error().backend().empty() ? done.error().in(backend.label()) : done.error());
        StoreReport out;
        out.written.emplace_back(backend.label());
        return out;
    }
}

}  // namespace hitbox
