/*
 * internal.h: the heap's control block, configuration and assertion tiers.
 *
 * Layout of a caller's buffer (every position is an offset from the control
 * block, so the bytes work at any address with the same remainder mod 64):
 *
 *   buffer  [lead pad < 64][control block | list heads][gap][blocks ...][sentinel][tail]
 *                           ^ heap (64-aligned)              ^ arena_begin  ^ arena_end
 *
 * Blocks tile [arena_begin, arena_end) exactly.  arena_begin is 8 mod 16, so
 * every payload (header + 8) is 16-aligned.  The sentinel is an 8-byte
 * header of a permanently used, empty block at arena_end: the last block's
 * "next" always exists and never merges.
 */
#ifndef CARVE_INTERNAL_H
#define CARVE_INTERNAL_H

#include "carve.h"
#include "platform.h"

#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lock.h"

/* ---- assertion tiers ------------------------------------------------------
 * CARVE_ASSERT: cheap invariants, on in debug builds (NDEBUG off).
 * CARVE_EXPENSIVE_CHECKS: when defined to 1 (test builds), every public call
 * that changes the heap runs the full carve_check walk afterwards. */
#ifndef CARVE_ASSERT
#define CARVE_ASSERT(x) assert(x)
#endif
#ifndef CARVE_EXPENSIVE_CHECKS
#define CARVE_EXPENSIVE_CHECKS 0
#endif

/* ---- sizes ---------------------------------------------------------------- */
#define GRANULE       16u /* block sizes and payload alignment */
#define GRANULE_SHIFT 4u
#define HDR_SIZE      8u /* header word before each payload */
#define MIN_GRANULES  2u /* 32 bytes: header, two links, footer */
#define SL_SHIFT      4u /* 16 second-level classes per octave */
#define SL_COUNT      (1u << SL_SHIFT)
#define FL_LIMIT      40u /* first levels the control block has room for */
#define SIZE_BITS     39u /* block size field, in granules: 8 TiB */
#define MAX_GRANULES  ((UINT64_C(1) << SIZE_BITS) - 1u)

#define SMALL_MAX            256u /* requests up to this come from runs of slots */
#define SMALL_CLASSES        (SMALL_MAX / GRANULE)
#define CARVE_MAGIC          UINT64_C(0x3170616568657663) /* "cvehea p1" */
#define CARVE_LAYOUT_VERSION 12u
#define POISON_BYTE          0xdbu

/* Bits of carve_heap.flags that are not public flags (set by carve_init,
 * covered by the control block's checksum). */
#define HEAP_USER_LOCK      (1u << 30) /* the lock is the user's carve_lock_hooks */
#define HEAP_TCACHE         (1u << 29) /* threads keep caches of small slots (threads.h) */
#define HEAP_GCACHE         (1u << 28) /* freed general blocks may be cached (gcache.h) */
#define HEAP_INTERNAL_FLAGS (HEAP_USER_LOCK | HEAP_TCACHE | HEAP_GCACHE)
/* Public calls take the heap's lock. */
#define HEAP_LOCKED (CARVE_THREADSAFE | HEAP_USER_LOCK)

typedef uint64_t ref;   /* byte offset from the control block; 0 = none */
typedef uint64_t hword; /* a block header */

/* ---- the control block ---------------------------------------------------- */
struct carve_heap {
    /* Immutable after carve_init; covered by control_checksum. */
    uint64_t magic;
    uint32_t layout_version;
    uint32_t control_size; /* bytes of control block + list heads */
    uint64_t buffer_size;  /* size given to carve_init */
    uint64_t lead_pad;     /* heap - buffer */
    uint64_t arena_begin;  /* offset of the first block header */
    uint64_t arena_end;    /* offset of the sentinel header */
    uint64_t salt;         /* keys the header checks to this heap */
    uint32_t flags;
    uint32_t policy;
    uint32_t fl_count;  /* first-level classes in use */
    uint32_t word_bits; /* 8 * sizeof(void *) of the creator */
    uint32_t runs_on;   /* small requests come from runs (small.h) */
    uint32_t reserved0;
    uint64_t pagemap;     /* offset of the bitmap of run pages */
    uint64_t max_handles; /* carve_options.max_handles: 0 = the table grows */
    uint64_t control_checksum;

    /* Counters (see carve_stats). */
    uint64_t used_bytes, free_bytes;
    uint64_t live_blocks, free_blocks, quarantined_blocks;
    uint64_t live_handles, pinned_handles;
    uint64_t peak_used_bytes;
    uint64_t allocs, frees, failed_allocs, compactions, bytes_moved;

    /* Runs of small slots (small.h).  used_bytes counts a run's whole
     * block; used_public counts only its overhead and live slots, so
     * used_bytes - used_public is the bytes of free slots.  The number of
     * live slots is slot_allocs - slot_frees. */
    uint64_t used_public;
    uint64_t runs, run_slots, slot_allocs, slot_frees;
    struct small_class {
        ref current; /* the run slots are taken from, or 0 */
        ref partial; /* runs with free slots, not current */
    } small[SMALL_CLASSES];

    /* The handle table (handles.c): a block of kind TABLE holding hcap
     * entries, or 0 before the first handle; hfree is 1 + the index of the
     * first free entry (0: none). */
    ref htable;
    uint64_t hcap;
    uint64_t hfree;

    /* Where the next carve_compact resumes (compact.c): a block offset, or 0
     * for the arena's start.  Invariant: 0 or a block's header (erasing a
     * header resets it, block.h), so resuming never reads a payload.  In a
     * damaged heap it is still checked for a valid header before use. */
    ref compact_cursor;

    /* The thread caches (threads.h): tcache_count records in one block
     * made at carve_init, at tcaches (its payload); 0 without caches. */
    ref tcaches;
    uint64_t tcache_count;
    uint64_t tcache_serial; /* caches handed out so far: makes each tag unique */

    /* The general blocks' cache (gcache.h): its record's block, or 0. */
    ref gcache;

    /* The free index: bitmaps over the segregated lists.  Bit fl of
     * fl_bitmap is set iff sl_bitmap[fl] != 0; bit sl of sl_bitmap[fl] is set
     * iff heads[fl * SL_COUNT + sl] != 0. */
    uint64_t fl_bitmap;
    uint16_t sl_bitmap[FL_LIMIT];

    carve_lock lock;

    /* fl_count * SL_COUNT list heads follow (offsets of free blocks). */
    ref heads[];
};

/* ---- addresses ---------------------------------------------------------------
 * Everything below takes offsets; these two are the only conversions. */
CARVE_INLINE unsigned char *at(const carve_heap *h, ref off)
{
    return (unsigned char *)h + (size_t)off;
}

CARVE_INLINE ref offset_of(const carve_heap *h, const void *p)
{
    return (ref)((const unsigned char *)p - (const unsigned char *)h);
}

/* ---- errors inside the core ---------------------------------------------- */
/* Pointer-returning calls report a metadata check failure with this errno. */
#define CARVE_ERRNO_CORRUPT EIO

/* ---- heap.c ------------------------------------------------------------- */
uint64_t control_checksum_of(const carve_heap *h);
bool control_is_valid(const carve_heap *h);

/* The public entry points' locking, for diag.c's entries. */
void heap_enter(carve_heap *h);
void heap_leave(carve_heap *h);

/* ---- diag.c ------------------------------------------------------------- */
int check_unlocked(carve_heap *h);

#endif /* CARVE_INTERNAL_H */
