/*
 * heap.h: the general heap's internal interface.  heap.c owns the blocks of
 * the free index; small.c (runs), handles.c (the handle table and handle
 * blocks) and compact.c build on these calls.  None of them locks: the
 * public entry points do (heap_enter / heap_leave).
 */
#ifndef CARVE_HEAP_H
#define CARVE_HEAP_H

#include "block.h"

#include <errno.h>

/* An allocation failed with errno set: failed_allocs counts the requests
 * that found no room (ENOMEM), not those refused because the metadata
 * they met failed a check (EIO). */
CARVE_INLINE void heap_count_failure(carve_heap *h)
{
    if (errno == ENOMEM) {
        h->failed_allocs++;
    }
}

/* The errno of a pointer-returning call refused with status st (not
 * CARVE_OK): EIO for damage (carve.h, "Corruption"), EINVAL for a bad
 * argument (a pointer or handle that is not a live one of this heap). */
CARVE_INLINE int heap_errno_of(int st)
{
    return st == CARVE_ERR_CORRUPT ? CARVE_ERRNO_CORRUPT : EINVAL;
}

/* The test builds' full check after a change (heap_enter and heap_leave,
 * the lock every public entry point takes, are in internal.h). */
void heap_debug_check(carve_heap *h);

/* Granules of a block that holds size bytes plus extra bytes of carve's own
 * (besides the header); false when no block of this heap could. */
bool heap_request_granules(const carve_heap *h, size_t size, uint64_t extra, uint64_t *g);

/* A live block of g granules and this kind from the free index, or 0 with
 * errno (ENOMEM, or EIO for damage).  Retained empty runs are handed back
 * and the search retried before it gives up; it never compacts. */
ref heap_alloc_block(carve_heap *h, uint64_t g, unsigned kind);

/* Frees live block b (header w, as block_read validated it or as the heap
 * just wrote it: its size is trusted to end inside the arena), merging it
 * with its free neighbours: CARVE_OK, or CARVE_ERR_CORRUPT (nothing
 * changed). */
int heap_release_block(carve_heap *h, ref b, hword w);

/* Whether heap_release_block(h, b, w) would pass its checks now (b's next
 * header, and the list links of its free neighbours).  Reads only: callers
 * that must free b after changing something else ask first, so that damage
 * is reported before anything changes. */
bool heap_release_would_succeed(const carve_heap *h, ref b, hword w);

/* With CARVE_POISON: quarantines free block b (g granules, still in the
 * index) when its poison was overwritten; true when it did.  False, and
 * nothing done, without CARVE_POISON or when the poison is intact. */
bool heap_quarantine_if_damaged(carve_heap *h, ref b, uint64_t g);

/* In-place resizing of live block b (header w) to want granules: shrinking
 * gives the tail back when it is a block's worth; growing takes from a free
 * next block and returns false when it cannot.  A cached next block goes
 * back to the index first (it is free to the user), and that may change
 * b's PREV_FREE bit (the cache's record may be released, and lie just
 * before b): *w is b's header as it is when the call returns. */
void heap_shrink_in_place(carve_heap *h, ref b, hword w, uint64_t want);
bool heap_grow_in_place(carve_heap *h, ref b, hword *w, uint64_t want);

/* Hands back what sits in front of the free index: thread caches' slots
 * (first, since that can empty runs), retained empty runs and cached
 * general blocks.  True if anything came back. */
bool heap_reclaim_cached(carve_heap *h);

/* After an allocation of g granules failed for want of room: when the
 * free bytes would hold g and something can move (an unpinned handle
 * block, or the handle table, which sits between free blocks as a barrier
 * of its own even when no handle is live), compacts and returns true, and
 * the caller tries again; false, changing nothing, otherwise.  A full
 * compaction when a handle block can move; else only the table slides
 * down, which is all a full one could do then, in O(the table's size). */
bool heap_compact_for(carve_heap *h, uint64_t g);

/* Whether a fragment (small.h) is free that some request of class cls
 * would take: small requests use them before a run moves on, and a cache's
 * refill then leaves the request to the heap. */
bool heap_fragment_serves(const carve_heap *h, unsigned cls);

#endif /* CARVE_HEAP_H */
