/*
 * Shared helpers for carve's tests (unit, model, sizes) and fuzz harnesses.
 *
 * Everything here uses only the public header.  Helpers are static inline so
 * each test program takes what it needs without unused-function warnings.
 *
 *   - tu_rng:    a small seeded PRNG (splitmix64 seeding + xoshiro256**), so
 *                every randomized run reproduces from its printed seed;
 *   - tu_region: a caller buffer placed at a chosen remainder modulo 64 inside
 *                a larger allocation, with guard zones of a known pattern on
 *                both sides.  Under ASan the guards are poisoned and under
 *                valgrind they are marked no-access, so a read or write
 *                outside [buf, buf + size) is caught where it happens, not
 *                only afterwards when the pattern is compared;
 *   - tu_fill / tu_verify: a per-block byte pattern derived from a seed and
 *                the byte's offset inside the block, so a preserved prefix
 *                stays valid across realloc (written and checked a word at a
 *                time; byte i is the same whether written alone or in a word);
 *   - tu_block_size, tu_handle_block_size: the block size the header
 *                promises for a raw or a handle request.
 */
#ifndef CARVE_TEST_UTIL_H
#define CARVE_TEST_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "carve.h"

#if defined(__SANITIZE_ADDRESS__)
#define TU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TU_ASAN 1
#endif
#endif

#ifdef TU_ASAN
#include <sanitizer/asan_interface.h>
#define TU_POISON(p, n)   ASAN_POISON_MEMORY_REGION((p), (n))
#define TU_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define TU_POISON(p, n)   ((void)(p), (void)(n))
#define TU_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#ifdef CARVE_TEST_HAVE_VALGRIND
#include <valgrind/memcheck.h>
#define TU_NOACCESS(p, n) ((void)VALGRIND_MAKE_MEM_NOACCESS((p), (n)))
#define TU_DEFINED(p, n)  ((void)VALGRIND_MAKE_MEM_DEFINED((p), (n)))
#else
#define TU_NOACCESS(p, n) ((void)(p), (void)(n))
#define TU_DEFINED(p, n)  ((void)(p), (void)(n))
#endif

/* ------------------------------------------------------------------------ */
/* PRNG                                                                      */
/* ------------------------------------------------------------------------ */

typedef struct tu_rng {
    uint64_t s[4];
} tu_rng;

static inline uint64_t tu_splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline void tu_rng_seed(tu_rng *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        r->s[i] = tu_splitmix64(&x);
}

static inline uint64_t tu_rotl(uint64_t v, int k)
{
    return (v << k) | (v >> (64 - k));
}

static inline uint64_t tu_rng_next(tu_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = tu_rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = tu_rotl(s[3], 45);
    return result;
}

/* Uniform in [0, n); n > 0.  The modulo bias is irrelevant for testing. */
static inline uint64_t tu_rng_below(tu_rng *r, uint64_t n)
{
    return tu_rng_next(r) % n;
}

/* Uniform in [lo, hi]. */
static inline size_t tu_rng_range(tu_rng *r, size_t lo, size_t hi)
{
    return lo + (size_t)tu_rng_below(r, (uint64_t)(hi - lo) + 1u);
}

/* Log-uniform in [2^lo_octave, 2^hi_octave): an octave picked uniformly, then
 * a value uniform inside it. */
static inline size_t tu_rng_log_uniform(tu_rng *r, unsigned lo_octave, unsigned hi_octave)
{
    unsigned oct = lo_octave + (unsigned)tu_rng_below(r, hi_octave - lo_octave);
    size_t base = (size_t)1 << oct;
    return base + (size_t)tu_rng_below(r, base);
}

/* ------------------------------------------------------------------------ */
/* Block sizes as the header states them                                    */
/* ------------------------------------------------------------------------ */

/* "A block's size is its request plus [CARVE_BLOCK_OVERHEAD], rounded up to
 * CARVE_ALIGNMENT, and at least CARVE_MIN_BLOCK." */
static inline size_t tu_block_size(size_t request)
{
    size_t s =
        (request + CARVE_BLOCK_OVERHEAD + CARVE_ALIGNMENT - 1) & ~(size_t)(CARVE_ALIGNMENT - 1);
    return s < CARVE_MIN_BLOCK ? CARVE_MIN_BLOCK : s;
}

/* A handle block "costs CARVE_HANDLE_OVERHEAD bytes": its request plus that,
 * rounded up to CARVE_ALIGNMENT, and at least CARVE_MIN_BLOCK. */
static inline size_t tu_handle_block_size(size_t request)
{
    size_t s =
        (request + CARVE_HANDLE_OVERHEAD + CARVE_ALIGNMENT - 1) & ~(size_t)(CARVE_ALIGNMENT - 1);
    return s < CARVE_MIN_BLOCK ? CARVE_MIN_BLOCK : s;
}

static inline int tu_is_aligned(const void *p, size_t a)
{
    return ((uintptr_t)p & (uintptr_t)(a - 1)) == 0;
}

/* ------------------------------------------------------------------------ */
/* Content patterns                                                          */
/* ------------------------------------------------------------------------ */

/* Word i of a block's pattern: cheap (one multiply), different for every
 * seed and position, so a lost, shifted or swapped byte shows. */
static inline uint64_t tu_pattern_word(uint64_t seed, size_t word_index)
{
    uint64_t v = (seed + (uint64_t)word_index) * 0x9E3779B97F4A7C15ull;
    return v ^ (v >> 29);
}

/* Byte i of the pattern is byte i % 8 of word i / 8 in host order, so the
 * fill and the check can move whole words. */
static inline unsigned char tu_pattern_byte(uint64_t seed, size_t i)
{
    uint64_t w = tu_pattern_word(seed, i / 8);
    unsigned char b[8];
    memcpy(b, &w, 8);
    return b[i % 8];
}

/* Writes pattern bytes [from, to) of a block starting at p. */
static inline void tu_fill_range(void *p, uint64_t seed, size_t from, size_t to)
{
    unsigned char *b = (unsigned char *)p;
    size_t i = from;
    while (i < to && (i % 8) != 0) {
        b[i] = tu_pattern_byte(seed, i);
        i++;
    }
    for (; i + 8 <= to; i += 8) {
        uint64_t w = tu_pattern_word(seed, i / 8);
        memcpy(b + i, &w, 8);
    }
    for (; i < to; i++)
        b[i] = tu_pattern_byte(seed, i);
}

static inline void tu_fill(void *p, uint64_t seed, size_t n)
{
    tu_fill_range(p, seed, 0, n);
}

/* Returns the index of the first byte in [0, n) that differs from the
 * pattern, or n when all match. */
static inline size_t tu_verify(const void *p, uint64_t seed, size_t n)
{
    const unsigned char *b = (const unsigned char *)p;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w = tu_pattern_word(seed, i / 8), got;
        memcpy(&got, b + i, 8);
        if (got != w)
            break;
    }
    for (; i < n; i++)
        if (b[i] != tu_pattern_byte(seed, i))
            return i;
    return n;
}

static inline int tu_all_zero(const void *p, size_t n)
{
    const unsigned char *b = (const unsigned char *)p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != 0)
            return 0;
    return 1;
}

/* ------------------------------------------------------------------------ */
/* Guarded regions                                                           */
/* ------------------------------------------------------------------------ */

#define TU_GUARD_BYTE(i) ((unsigned char)(0xA5u ^ (unsigned)((i)*29u)))

typedef struct tu_region {
    unsigned char *base; /* what we allocated */
    size_t total;        /* its size */
    unsigned char *buf;  /* the caller buffer handed to carve */
    size_t size;         /* its size */
    size_t guard;        /* bytes of guard on each side (at least) */
} tu_region;

/* Makes a buffer of `size` bytes at an address with remainder `misalign`
 * modulo 64 (and a fixed one modulo 4096), with at least `guard` bytes of
 * pattern on both sides.  The buffer's own bytes are filled with `fill`.
 * Returns 0 on success. */
static inline int tu_region_make(tu_region *r, size_t size, size_t misalign, size_t guard, int fill)
{
    r->base = NULL;
    r->buf = NULL;
    guard = (guard + 63u) & ~(size_t)63u;
    if (guard < 64)
        guard = 64;
    misalign %= 64u;
    r->guard = guard;
    r->size = size;
    r->total = guard + 64u + size + guard;
    r->total = (r->total + 4095u) & ~(size_t)4095u;
    /* Page-aligned, so the buffer's address modulo every alignment up to 4 KiB
     * is the same from run to run: aligned allocations, and so whole
     * randomized runs, reproduce from their seed. */
    r->base = (unsigned char *)aligned_alloc(4096, r->total);
    if (r->base == NULL)
        return -1;
    r->buf = r->base + guard + misalign;
    for (size_t i = 0; i < (size_t)(r->buf - r->base); i++)
        r->base[i] = TU_GUARD_BYTE(i);
    memset(r->buf, fill, size);
    unsigned char *end = r->buf + size;
    size_t tail = (size_t)(r->base + r->total - end);
    for (size_t i = 0; i < tail; i++)
        end[i] = TU_GUARD_BYTE(i);
    TU_POISON(r->base, (size_t)(r->buf - r->base));
    TU_POISON(end, tail);
    TU_NOACCESS(r->base, (size_t)(r->buf - r->base));
    TU_NOACCESS(end, tail);
    return 0;
}

/* 1 when both guard zones still hold their pattern. */
static inline int tu_region_guards_ok(const tu_region *r)
{
    size_t head = (size_t)(r->buf - r->base);
    unsigned char *end = r->buf + r->size;
    size_t tail = (size_t)(r->base + r->total - end);
    int ok = 1;
    TU_UNPOISON(r->base, head);
    TU_UNPOISON(end, tail);
    TU_DEFINED(r->base, head);
    TU_DEFINED(end, tail);
    for (size_t i = 0; i < head && ok; i++)
        ok = r->base[i] == TU_GUARD_BYTE(i);
    for (size_t i = 0; i < tail && ok; i++)
        ok = end[i] == TU_GUARD_BYTE(i);
    TU_POISON(r->base, head);
    TU_POISON(end, tail);
    TU_NOACCESS(r->base, head);
    TU_NOACCESS(end, tail);
    return ok;
}

static inline void tu_region_free(tu_region *r)
{
    if (r->base == NULL)
        return;
    TU_UNPOISON(r->base, r->total);
    TU_DEFINED(r->base, r->total);
    free(r->base);
    r->base = NULL;
    r->buf = NULL;
}

/* 1 when [p, p + n) lies inside the region's buffer. */
static inline int tu_region_contains(const tu_region *r, const void *p, size_t n)
{
    uintptr_t a = (uintptr_t)p, lo = (uintptr_t)r->buf, hi = (uintptr_t)(r->buf + r->size);
    return a >= lo && a <= hi && n <= (size_t)(hi - a);
}

/* ------------------------------------------------------------------------ */
/* Stats                                                                     */
/* ------------------------------------------------------------------------ */

/* The name of the first field that differs, or NULL when equal.  With
 * ignore_counters, allocs/frees/failed_allocs/peak are not compared (they
 * legitimately move in some comparisons). */
static inline const char *tu_stats_diff(const carve_stats *a, const carve_stats *b,
                                        int ignore_counters)
{
#define TU_CMP(f)     \
    if (a->f != b->f) \
        return #f;
    TU_CMP(capacity)
    TU_CMP(used_bytes)
    TU_CMP(free_bytes)
    TU_CMP(largest_free)
    TU_CMP(live_blocks)
    TU_CMP(free_blocks)
    TU_CMP(live_handles)
    TU_CMP(pinned_handles)
    TU_CMP(compactions)
    TU_CMP(bytes_moved)
    if (!ignore_counters) {
        TU_CMP(peak_used_bytes)
        TU_CMP(allocs)
        TU_CMP(frees)
        TU_CMP(failed_allocs)
    }
#undef TU_CMP
    return NULL;
}

/* Same as tu_stats_diff, but failed_allocs may differ (a failed call may
 * count itself there and change nothing else). */
static inline const char *tu_stats_diff_but_failed(const carve_stats *a, const carve_stats *b)
{
    const char *d = tu_stats_diff(a, b, 1);
    if (d != NULL)
        return d;
    if (a->allocs != b->allocs)
        return "allocs";
    if (a->frees != b->frees)
        return "frees";
    if (a->peak_used_bytes != b->peak_used_bytes)
        return "peak_used_bytes";
    return NULL;
}

/* Reads an unsigned count from the environment or returns dflt. */
static inline unsigned long long tu_env_ull(const char *name, unsigned long long dflt)
{
    const char *v = getenv(name);
    if (v == NULL || *v == '\0')
        return dflt;
    return strtoull(v, NULL, 0);
}

#endif /* CARVE_TEST_UTIL_H */
