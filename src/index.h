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

/* ---- list primitives (index.c) ------------------------------------------------ */

/* Links b, a free block of class cls, after `after` (0 = at the head). */
void list_insert_after(carve_heap *h, unsigned cls, ref after, ref b);
/* Unlinks b, a free block of class cls. */
void list_unlink(carve_heap *h, unsigned cls, ref b);
/* Whether b's links agree with its neighbours' (safe unlinking). */
bool list_links_valid(const carve_heap *h, ref b, unsigned cls);
/* The next node of a list walk after b, validated (header checked, free, of
 * class cls); 0 at the end; sets *bad and returns 0 on a bad node. */
ref list_step(const carve_heap *h, ref node, unsigned cls, bool *bad);

/* The first block of class cls's list (in the list's order) holding at
 * least g granules; 0 when none.  *corrupt is set when a bad node was met. */
ref list_first_fit(const carve_heap *h, unsigned cls, uint64_t g, bool *corrupt);

/* ---- the policy interface ------------------------------------------------------ */

/* Puts a free block of g granules (header and footer written) in the index. */
void index_insert(carve_heap *h, ref b, uint64_t g);
/* Takes a free block out of the index.  Its links must be valid. */
void index_remove(carve_heap *h, ref b, uint64_t g);
/* A free block of at least g granules chosen by the heap's policy, still in
 * the index; 0 when none.  *corrupt is set when a bad node was met. */
ref index_find(const carve_heap *h, uint64_t g, bool *corrupt);
/* The size in granules of the largest free block (0 when none). */
uint64_t index_largest(const carve_heap *h);

/* Per-policy parts, called by index.c's dispatch. */
ref goodfit_find(const carve_heap *h, uint64_t g, bool *corrupt);
ref firstfit_find(const carve_heap *h, uint64_t g, bool *corrupt);
ref firstfit_insert_point(const carve_heap *h, ref b, unsigned cls);
ref bestfit_find(const carve_heap *h, uint64_t g, bool *corrupt);
ref bestfit_insert_point(const carve_heap *h, ref b, uint64_t g, unsigned cls);

#endif /* CARVE_INDEX_H */
