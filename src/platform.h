/*
 * platform.h: the one seam between carve's core and the compiler/OS.
 *
 * The core calls no stdio and no pthreads directly: bit scans and word
 * access are here, locks are in lock.c behind lock.h.
 */
#ifndef CARVE_PLATFORM_H
#define CARVE_PLATFORM_H

#include <stdint.h>
#include <string.h>

#if defined(__GNUC__) || defined(__clang__)
#define CARVE_LIKELY(x)   __builtin_expect(!!(x), 1)
#define CARVE_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define CARVE_INLINE      static inline __attribute__((always_inline))
/* Slow paths kept out of the fast ones, so these need few registers. */
#define CARVE_NOINLINE __attribute__((noinline, cold))
/* Out of line but not cold: a path that is hot for some heaps only. */
#define CARVE_OUTLINE __attribute__((noinline))
#define CARVE_EXPORT  __attribute__((visibility("default")))
/* Thread-local data of a library that is loaded at start-up (linked, or
 * LD_PRELOADed as the malloc shim is): the initial-exec model makes each
 * access one instruction instead of a call. */
#define CARVE_THREAD_LOCAL _Thread_local __attribute__((tls_model("initial-exec")))
#else
#define CARVE_LIKELY(x)   (x)
#define CARVE_UNLIKELY(x) (x)
#define CARVE_INLINE      static inline
#define CARVE_NOINLINE
#define CARVE_OUTLINE
#define CARVE_EXPORT
#define CARVE_THREAD_LOCAL _Thread_local
#endif

/* Index of the most significant set bit; x must not be 0. */
CARVE_INLINE unsigned msb64(uint64_t x)
{
#if defined(__GNUC__) || defined(__clang__)
    return 63u - (unsigned)__builtin_clzll(x);
#else
    unsigned r = 0;
    while (x >>= 1) {
        r++;
    }
    return r;
#endif
}

/* Index of the least significant set bit; x must not be 0. */
CARVE_INLINE unsigned lsb64(uint64_t x)
{
#if defined(__GNUC__) || defined(__clang__)
    return (unsigned)__builtin_ctzll(x);
#else
    unsigned r = 0;
    while (!(x & 1u)) {
        x >>= 1;
        r++;
    }
    return r;
#endif
}

/* Words inside the caller's buffer are read and written through memcpy:
 * the buffer's declared type may be a char array, and memcpy of a constant
 * 8 bytes compiles to one load or store. */
CARVE_INLINE uint64_t load64(const void *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

CARVE_INLINE void store64(void *p, uint64_t v)
{
    memcpy(p, &v, sizeof v);
}

/* A 64-bit mixer (splitmix64's finaliser): used for header checks, the
 * control-block checksum and the per-heap salt. */
CARVE_INLINE uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= UINT64_C(0xbf58476d1ce4e5b9);
    x ^= x >> 27;
    x *= UINT64_C(0x94d049bb133111eb);
    x ^= x >> 31;
    return x;
}

#endif /* CARVE_PLATFORM_H */
