/*
 * index.h: the free-block index every policy shares.
 *
 * Free blocks sit in segregated doubly-linked lists, one per size class; a
 * two-level bitmap says which lists are non-empty, so the first non-empty
 * class at or above any size is found with two bit scans.
 *
 * Size classes, for a block of g granules:
 *   g < 16:   class g (exact: 32 B .. 240 B);
 *   g >= 16:  first level fl = msb(g) - 3, second level the next 4 bits
 *             below the msb: 16 classes per octave, each 1/16 octave wide.
 *
 * The policies differ only in how a list is ordered and which block a
 * search picks (index_goodfit.c, index_firstfit.c, index_bestfit.c):
 *   GOOD_FIT  lists are LIFO; a search rounds the request up to the next
 *             class boundary so the head of any class it finds fits: O(1).
 *             Only when that finds nothing does it scan the request's own
 *             class, so a fitting block is never missed.
 *   FIRST_FIT lists are address-ordered; the lowest-addressed fitting block
 *             over all classes wins.
 *   BEST_FIT  lists are ordered by (size, address); the first fitting block
 *             of the lowest class that has one is the smallest that fits.
 */
#ifndef CARVE_INDEX_H
#define CARVE_INDEX_H

#include "block.h"

CARVE_INLINE unsigned class_of(uint64_t g)
{
    if (g < SL_COUNT) {
        return (unsigned)g;
    }
    unsigned m = msb64(g);
    unsigned fl = m - (SL_SHIFT - 1u);
    unsigned sl = (unsigned)(g >> (m - SL_SHIFT)) & (SL_COUNT - 1u);
    return fl * SL_COUNT + sl;
}

/* The smallest size whose class holds only blocks of at least g granules. */
CARVE_INLINE uint64_t class_round_up(uint64_t g)
{
    if (g < SL_COUNT) {
        return g;
    }
    unsigned m = msb64(g);
    return g + ((UINT64_C(1) << (m - SL_SHIFT)) - 1u);
}

/* The first non-empty class at or above cls, or UINT32_MAX. */
CARVE_INLINE unsigned class_first_nonempty(const carve_heap *h, unsigned cls)
{
    unsigned fl = cls / SL_COUNT;
    unsigned sl = cls % SL_COUNT;
    if (fl >= h->fl_count) {
        return UINT32_MAX;
    }
    unsigned sl_map = (unsigned)h->sl_bitmap[fl] & (~0u << sl);
    if (sl_map == 0) {
        /* Bits past fl_count can only come from a damaged image: ignored. */
        uint64_t valid = (UINT64_C(1) << h->fl_count) - 1u;
        uint64_t fl_map = h->fl_bitmap & valid & (~UINT64_C(0) << (fl + 1));
        if (fl_map == 0) {
            return UINT32_MAX;
        }
        fl = lsb64(fl_map);
        sl_map = h->sl_bitmap[fl];
        if (sl_map == 0) {
            return UINT32_MAX;
        }
    }
    return fl * SL_COUNT + lsb64(sl_map);
}

/* ---- list primitives ---------------------------------------------------------- *
 * Inline: every allocation and free runs several of them, and a call each
 * cost the general heap about a tenth of its instructions. */

/* The two-level bitmap: class cls has blocks, or has none. */
CARVE_INLINE void class_mark_nonempty(carve_heap *h, unsigned cls)
{
    unsigned fl = cls / SL_COUNT;
    h->sl_bitmap[fl] = (uint16_t)(h->sl_bitmap[fl] | (1u << (cls % SL_COUNT)));
    h->fl_bitmap |= UINT64_C(1) << fl;
}

CARVE_INLINE void class_mark_empty(carve_heap *h, unsigned cls)
{
    unsigned fl = cls / SL_COUNT;
    h->sl_bitmap[fl] = (uint16_t)(h->sl_bitmap[fl] & ~(1u << (cls % SL_COUNT)));
    if (h->sl_bitmap[fl] == 0) {
        h->fl_bitmap &= ~(UINT64_C(1) << fl);
    }
}

/* A list neighbour is trusted only if its header checks out as a free block.
 * This is block_read without what a list step does not need: the links it
 * reads and writes are the 16 bytes after the header, which lie inside the
 * arena for any granule-aligned offset at least MIN_GRANULES granules below
 * its end (one compare of n's distance from the arena start, which also
 * rules out the sentinel), so the size field need not be trusted here.
 * Whoever goes on to use the neighbour's size reads it through block_read. */
CARVE_INLINE bool neighbour_is_free(const carve_heap *h, ref n)
{
    uint64_t rel = n - h->arena_begin; /* below the arena wraps around */
    if (rel > h->arena_end - h->arena_begin - bytes_of(MIN_GRANULES) || (rel & (GRANULE - 1u))) {
        return false;
    }
    hword w = block_header(h, n);
    return hdr_is_free(w) && hdr_valid(h, n, w);
}

/* Links b, a free block of class cls, after `after` (0 = at the head). */
CARVE_INLINE void list_insert_after(carve_heap *h, unsigned cls, ref after, ref b)
{
    ref next = after ? free_next(h, after) : h->heads[cls];
    if (next && (!neighbour_is_free(h, next) || free_prev(h, next) != after)) {
        next = 0; /* a damaged list is cut, never written through */
    }
    free_set_prev(h, b, after);
    free_set_next(h, b, next);
    if (next) {
        free_set_prev(h, next, b);
    }
    if (after) {
        free_set_next(h, after, b);
    } else {
        if (!next) {
            class_mark_nonempty(h, cls);
        }
        h->heads[cls] = b;
    }
}

/* Unlinks b, a free block of class cls. */
CARVE_INLINE void list_unlink(carve_heap *h, unsigned cls, ref b)
{
    ref next = free_next(h, b);
    ref prev = free_prev(h, b);
    if (next) {
        free_set_prev(h, next, prev);
    }
    if (prev) {
        free_set_next(h, prev, next);
    } else {
        CARVE_ASSERT(h->heads[cls] == b);
        h->heads[cls] = next;
        if (!next) {
            class_mark_empty(h, cls);
        }
    }
}

/* Whether b's links agree with its neighbours' (safe unlinking). */
CARVE_INLINE bool list_links_valid(const carve_heap *h, ref b, unsigned cls)
{
    ref next = free_next(h, b);
    ref prev = free_prev(h, b);
    if (prev == 0) {
        if (h->heads[cls] != b) {
            return false;
        }
    } else if (!neighbour_is_free(h, prev) || free_next(h, prev) != b) {
        return false;
    }
    if (next != 0 && (!neighbour_is_free(h, next) || free_prev(h, next) != b)) {
        return false;
    }
    return true;
}

/* The next node of a list walk after b, validated (header checked, free, of
 * class cls); 0 at the end; sets *bad and returns 0 on a bad node. */
ref list_step(const carve_heap *h, ref node, unsigned cls, bool *bad);

/* The first block of class cls's list (in the list's order) holding at
 * least g granules; 0 when none.  *corrupt is set when a bad node was met. */
ref list_first_fit(const carve_heap *h, unsigned cls, uint64_t g, bool *corrupt);

/* ---- the policy interface ------------------------------------------------------ */

/* The size in granules of the largest free block (0 when none). */
uint64_t index_largest(const carve_heap *h);

/* Per-policy parts, called by index.c's dispatch. */
ref goodfit_find_own(const carve_heap *h, uint64_t g, bool *corrupt);
ref firstfit_find(const carve_heap *h, uint64_t g, bool *corrupt);
ref firstfit_insert_point(const carve_heap *h, ref b, unsigned cls);
ref bestfit_find(const carve_heap *h, uint64_t g, bool *corrupt);
ref bestfit_insert_point(const carve_heap *h, ref b, uint64_t g, unsigned cls);

/* Puts a free block of g granules (header and footer written) in the index.
 * index_insert_hot is the inline form, for the allocation and free paths
 * alone; every other caller calls index_insert, so that the library does not
 * carry a copy of the list code at each of them. */
void index_insert(carve_heap *h, ref b, uint64_t g);
CARVE_INLINE void index_insert_hot(carve_heap *h, ref b, uint64_t g)
{
    unsigned cls = class_of(g);
    ref after = 0;
    switch ((carve_policy)h->policy) {
    case CARVE_FIRST_FIT:
        after = firstfit_insert_point(h, b, cls);
        break;
    case CARVE_BEST_FIT:
        after = bestfit_insert_point(h, b, g, cls);
        break;
    case CARVE_GOOD_FIT:
    default:
        break;
    }
    list_insert_after(h, cls, after, b);
    h->free_blocks++;
    h->free_bytes += bytes_of(g);
}

/* Takes a free block out of the index.  Its links must be valid.
 * index_remove_hot: the inline form, as for index_insert_hot. */
void index_remove(carve_heap *h, ref b, uint64_t g);
CARVE_INLINE void index_remove_hot(carve_heap *h, ref b, uint64_t g)
{
    list_unlink(h, class_of(g), b);
    h->free_blocks--;
    h->free_bytes -= bytes_of(g);
}

/* GOOD_FIT's constant-time step (index_goodfit.c): the head of the first
 * non-empty class at or above g rounded up to its class's upper bound, so
 * that any block there fits; 0 when there is none (goodfit_find_own then
 * looks at g's own class).  Inline, like index_find, for the allocation path. */
CARVE_INLINE ref goodfit_head_fit(const carve_heap *h, uint64_t g)
{
    unsigned cls = class_first_nonempty(h, class_of(class_round_up(g)));
    return cls != UINT32_MAX ? h->heads[cls] : 0;
}

/* A free block of at least g granules chosen by the heap's policy, still in
 * the index; 0 when none.  *corrupt is set when a bad node was met.
 * GOOD_FIT's usual case is answered here; the rest goes to index_find_call. */
ref index_find_call(const carve_heap *h, uint64_t g, bool *corrupt);
CARVE_INLINE ref index_find(const carve_heap *h, uint64_t g, bool *corrupt)
{
    if (CARVE_LIKELY(h->policy == CARVE_GOOD_FIT)) {
        ref b = goodfit_head_fit(h, g);
        if (CARVE_LIKELY(b != 0)) {
            return b;
        }
    }
    return index_find_call(h, g, corrupt);
}

#endif /* CARVE_INDEX_H */
