#pragma once
// Test support: which sanitizer a test is built with, as 0 / 1 macros for g++ (__SANITIZE_ADDRESS__,
// __SANITIZE_THREAD__) and clang (__has_feature), and as constants in hitbox_test.

#if defined(__SANITIZE_ADDRESS__)
#define HITBOX_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HITBOX_TEST_ASAN 1
#endif
#endif
#ifndef HITBOX_TEST_ASAN
#define HITBOX_TEST_ASAN 0
#endif

#if defined(__SANITIZE_THREAD__)
#define HITBOX_TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define HITBOX_TEST_TSAN 1
#endif
#endif
#ifndef HITBOX_TEST_TSAN
#define HITBOX_TEST_TSAN 0
#endif

namespace hitbox_test {
inline constexpr bool under_asan = HITBOX_TEST_ASAN == 1;
inline constexpr bool under_tsan = HITBOX_TEST_TSAN == 1;
}  // namespace hitbox_test
