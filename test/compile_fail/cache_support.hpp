// Shared by the cache_* compile-fail cases: a cache front over a memory tier, and types that are not
// the policies Cache's slots take.
#pragma once
#include <chrono>
#include <hitbox/backend/memory/memory_backend.hpp>
#include <hitbox/cache.hpp>
#include <hitbox/offload/inline_offload.hpp>

/// Has get but nothing else: not a Backend.
struct NotABackend {
    template <class T>
    hitbox::Result<std::optional<hitbox::CacheValue<T>>> get(const hitbox::CacheKey&) {
        return std::optional<hitbox::CacheValue<T>>{};
    }
};

/// Runs tasks, but under another name: not an Offload.
struct NotAnOffload {
    bool run(std::function<void()> f) { return f(), true; }
};

/// Counts, but has no record_upstream: not a MetricsPolicy.
struct NotMetrics {
    static constexpr bool enabled = true;
    std::size_t source_id(std::string_view) { return 0; }
    void record(hitbox::CacheStatus, std::size_t, std::chrono::nanoseconds) noexcept {}
};

/// now() in seconds since start, not a hitbox::TimePoint: not a ClockSource.
struct NotAClock {
    long now() const { return 0; }
};

using Memory = hitbox::MemoryBackend;
