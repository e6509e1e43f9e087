/*
 * index_firstfit.c: CARVE_FIRST_FIT, address-ordered first fit.
 *
 * Every class list is kept in address order, so the lowest-addressed block
 * of a class is its head.  The lowest-addressed fitting block overall is the
 * lowest of: the first fitting block of the request's own class, and the
 * heads of all non-empty classes above it (whose blocks all fit); the walk
 * of the own class stops at the lowest of those heads.
 * Cost: O(k) in the own class plus one step per non-empty class above it;
 * inserting keeps the order, O(k).  Johnstone and Wilson (1998) found this
 * policy among the least fragmenting on real programs.
 */
#include "index.h"

ref firstfit_insert_point(const carve_heap *h, ref b, unsigned cls)
{
    ref after = 0;
    bool bad = false;
    for (ref n = list_step(h, 0, cls, &bad); n && n < b; n = list_step(h, n, cls, &bad)) {
        after = n;
    }
    /* A bad node: insert at the head rather than follow it; carve_check
     * reports the damage. */
    return bad ? 0 : after;
}

/* The lowest head among the non-empty classes above own (0: none).  Every
 * block of those classes fits, and each list's head is its lowest.  The
 * classes are visited straight off the bitmaps, one bit each; bits past
 * fl_count can only come from a damaged image and are ignored. */
static ref lowest_head_above(const carve_heap *h, unsigned own)
{
    unsigned fl = own / SL_COUNT;
    uint64_t valid = (UINT64_C(1) << h->fl_count) - 1u;
    uint64_t fl_map = h->fl_bitmap & valid & (~UINT64_C(0) << (fl + 1u));
    unsigned sl_map = (unsigned)h->sl_bitmap[fl] & (~0u << (own % SL_COUNT + 1u));
    ref best = 0;
    for (;;) {
        while (sl_map != 0) {
            ref head = h->heads[fl * SL_COUNT + lsb64(sl_map)];
            sl_map &= sl_map - 1u;
            if (head != 0 && (best == 0 || head < best)) {
                best = head;
            }
        }
        if (fl_map == 0) {
            return best;
        }
        fl = lsb64(fl_map);
        fl_map &= fl_map - 1u;
        sl_map = h->sl_bitmap[fl];
    }
}

ref firstfit_find(const carve_heap *h, uint64_t g, bool *corrupt)
{
    unsigned own = class_of(g);
    if (own / SL_COUNT >= h->fl_count) {
        return 0;
    }
    ref best = lowest_head_above(h, own);
    /* The own class is in address order too: once its walk passes best,
     * nothing further in it can be lower, so it stops there (the walk is
     * what costs: every step reads a block that may be cold). */
    for (ref b = list_step(h, 0, own, corrupt); b && (best == 0 || b < best);
         b = list_step(h, b, own, corrupt)) {
        if (hdr_granules(block_header(h, b)) >= g) {
            return b;
        }
    }
    return best;
}
