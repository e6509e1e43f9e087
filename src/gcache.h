/*
 * gcache.h: the front cache of recently freed general blocks.
 *
 * Why: a general free merges the block with its neighbours and files the
 * result in the index, and the next allocation splits a block found there:
 * each touches headers and list links on cold lines far from the block the
 * program is using (docs/design.md, "Where the general heap's time goes").
 * While a heap is mostly free that care buys nothing, so a GOOD_FIT heap
 * keeps up to GC_DEPTH freed raw blocks per size class, untouched, and an
 * allocation of nearly the same size takes one back as it is.
 *
 * When: only while the index's free bytes exceed 3/4 of the arena (the
 * gate).  Blocks handed out from the cache are up to 1/16 larger than their
 * request; on a heap that fills up such surplus would cost fill, so the
 * gate closes as the heap fills, and then every general call hands back a
 * few cached blocks until none is left.  Heaps get a cache only with
 * GOOD_FIT, an arena of GC_MIN_ARENA or more, and none of CARVE_POISON,
 * CARVE_SCRAMBLE (whose users want every free to take effect at once) and
 * CARVE_NO_BLOCK_CACHE: HEAP_GCACHE.
 *
 * Invariants:
 *   - A cached block has a header of kind KIND_CACHED (never free, so no
 *     neighbour merges with it, and a second free of it is a double free).
 *     Every cached block is in the record exactly once, under its class,
 *     and every record entry is a cached block of that class, of the size
 *     the entry records (so an allocation picks a block by reading the
 *     record alone, and then reads that one block's header, to check it).
 *   - The record is the payload of one KIND_TABLE block at h->gcache, made
 *     on the first free that caches, or 0.  Handing blocks back (shedding,
 *     emptying, a neighbour's return) releases it with the last block; a
 *     take that empties it keeps it, since the next free that caches would
 *     make it again at once.  So a record may hold no block, and its own
 *     block is then all that emptying the cache gives back.
 *   - A cached block counts as freed (not in live_blocks; in frees) and is
 *     not in used_public; it is in used_bytes until it goes back to the
 *     index.  So statistics read as if it were free, and those that must be
 *     exact (largest_free) empty the cache first, as walks, compaction,
 *     trimming and a failing allocation do.
 *
 * Nothing here locks: callers hold the heap's lock.
 */
#ifndef CARVE_GCACHE_H
#define CARVE_GCACHE_H

#include "block.h"

#define GC_CLASSES   160u /* classes below 8192 granules: blocks under 128 KiB */
#define GC_DEPTH     32u  /* blocks per class (see docs/design.md for why 32) */
#define GC_SHED      2u   /* blocks each call hands back while the gate is closed */
#define GC_MIN_ARENA ((uint64_t)CARVE_GCACHE_MIN_HEAP)

/* The record (in the buffer, so every field is checked before it is used). */
struct gcache {
    uint64_t bytes;  /* bytes of the cached blocks */
    uint64_t blocks; /* how many there are */
    uint32_t shed;   /* the class where handing back looks first */
    uint32_t reserved;
    uint8_t count[GC_CLASSES];
    uint16_t size[GC_CLASSES][GC_DEPTH]; /* each entry's granules (classes end below 2^13) */
    ref entry[GC_CLASSES][GC_DEPTH];     /* each class's blocks, newest last */
};

/* Whether a heap with these flags, policy and arena gets a cache. */
bool gcache_wanted(unsigned flags, unsigned policy, uint64_t arena);

/* A cached block for a raw request of g granules, made live (its header
 * rewritten as KIND_RAW, counted as an allocation); 0 when none fits: the
 * newest block of g's class that holds g granules, else the newest of the
 * next class that holds at most g/16 more.  While the gate is closed it
 * also hands back GC_SHED blocks.  O(GC_DEPTH). */
ref gcache_take(carve_heap *h, uint64_t g);

/* Caches live raw block b (header *w) instead of freeing it, when the gate
 * is open and its class has room; false when it did not (then the caller
 * frees it).  O(1) (making the record is one allocation).  Making the
 * record may change b's PREV_FREE bit (the allocation may take the free
 * block before b, or, failing, hand back caches that free it): *w is b's
 * header as it is when the call returns. */
bool gcache_put(carve_heap *h, ref b, hword *w);

/* While the gate is closed: hands back GC_SHED cached blocks (and the
 * record with the last of them).  The free path calls it after its own
 * release, since handing a block back may rewrite a neighbour's header. */
void gcache_shed(carve_heap *h);

/* Hands every cached block back to the index and releases the record; true
 * if anything came back (a cached block, or the record's own block: see
 * the invariants).  O(cached blocks). */
bool gcache_empty(carve_heap *h);

/* Hands cached block b (header w) back to the index on its own, so that a
 * neighbour growing in place can take it; false when it is not in the
 * record or its neighbours fail a check (nothing changed then).  O(GC_DEPTH). */
bool gcache_return(carve_heap *h, ref b, hword w);

/* carve_check's part: the record and the blocks the chain walk found of
 * kind KIND_CACHED (blocks of them, bytes in all) agree, as the invariants
 * above say; record_blocks is 1 when the record's block exists. */
bool gcache_is_sound(const carve_heap *h, uint64_t blocks, uint64_t bytes, uint64_t *record_blocks);

#endif /* CARVE_GCACHE_H */
