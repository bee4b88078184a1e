// Compile-time configuration of mslab. Every knob is #ifndef-guarded so that a
// build (CMake option) or a test can override it. Depends on nothing.
//
//   MSLAB_CHECK_LEVEL   0 off   : no input validation beyond what costs nothing
//                       1 cheap : O(1) checks on every free (foreign pointer,
//                                 interior pointer, double free). Default.
//                       2 full  : also the expensive checks and the validate()
//                                 walks; CI's sanitizer builds use it.
//   MSLAB_MAX_CACHES    cache ids (each owns a slot in every thread's cache
//                       table); the first 64 are given only on request
//                       (CacheOptions::reserved_id). Default 4096.
//   MSLAB_ARENA_SHIFT   log2 of the chunk arena's size (alloc/arena.h), the
//                       bound on all page-allocator memory. Default 38
//                       (256 GiB of address space), 34 … 44.
#pragma once

#ifndef MSLAB_CHECK_LEVEL
#define MSLAB_CHECK_LEVEL 1
#endif

#ifndef MSLAB_MAX_CACHES
#define MSLAB_MAX_CACHES 4096
#endif

#ifndef MSLAB_ARENA_SHIFT
#define MSLAB_ARENA_SHIFT 38
#endif

// Which sanitizer the build runs under (g++ defines __SANITIZE_*__, clang
// answers __has_feature): MSLAB_ASAN, MSLAB_TSAN. The one place that asks.
#if defined(__SANITIZE_ADDRESS__)
#define MSLAB_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MSLAB_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define MSLAB_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define MSLAB_TSAN 1
#endif
#endif

#if defined(__GNUC__)
#define MSLAB_LIKELY(x) __builtin_expect(!!(x), 1)
#define MSLAB_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define MSLAB_NOINLINE __attribute__((noinline))
#define MSLAB_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define MSLAB_LIKELY(x) (x)
#define MSLAB_UNLIKELY(x) (x)
#define MSLAB_NOINLINE
#define MSLAB_ALWAYS_INLINE inline
#endif

namespace mslab {

inline constexpr int kCheckLevel = MSLAB_CHECK_LEVEL;
inline constexpr bool kCheapChecks = kCheckLevel >= 1;
inline constexpr bool kFullChecks = kCheckLevel >= 2;

}  // namespace mslab
