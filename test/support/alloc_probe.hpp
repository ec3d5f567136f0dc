#pragma once
// Test support: the largest single heap request (malloc, calloc, realloc, and operator new through them)
// since the last reset, counted by interposing glibc's malloc family in the test executable. Include it
// from exactly one translation unit of a test binary. Sanitizer builds bring their own allocator, so there
// the probe is inactive (`alloc_probe_active()` is false) and tests check only what does not need it.
#include <atomic>
#include <cstddef>

#include "sanitizers.hpp"

#if HITBOX_TEST_ASAN || HITBOX_TEST_TSAN
#define HITBOX_TEST_ALLOC_PROBE 0
#else
#define HITBOX_TEST_ALLOC_PROBE 1
#endif

namespace hitbox_test {

inline std::atomic<std::size_t> largest_request{0};

inline void note_request(std::size_t n) noexcept {
    std::size_t seen = largest_request.load(std::memory_order_relaxed);
    while (n > seen && !largest_request.compare_exchange_weak(seen, n, std::memory_order_relaxed)) {
    }
}

/// True when the interposed allocator counts requests in this build.
constexpr bool alloc_probe_active() noexcept { return HITBOX_TEST_ALLOC_PROBE != 0; }
/// Starts a new measurement.
inline void reset_largest_request() noexcept { largest_request.store(0, std::memory_order_relaxed); }
/// The largest single request since the last reset, in bytes.
inline std::size_t largest_request_bytes() noexcept { return largest_request.load(std::memory_order_relaxed); }

}  // namespace hitbox_test

#if HITBOX_TEST_ALLOC_PROBE
extern "C" {
void* __libc_malloc(std::size_t) noexcept;
void* __libc_calloc(std::size_t, std::size_t) noexcept;
void* __libc_realloc(void*, std::size_t) noexcept;
void __libc_free(void*) noexcept;

void* malloc(std::size_t n) noexcept {
    hitbox_test::note_request(n);
    return __libc_malloc(n);
}
void* calloc(std::size_t count, std::size_t size) noexcept {
    hitbox_test::note_request(count * size);
    return __libc_calloc(count, size);
}
void* realloc(void* p, std::size_t n) noexcept {
    hitbox_test::note_request(n);
    return __libc_realloc(p, n);
}
void free(void* p) noexcept { __libc_free(p); }
}
#endif
