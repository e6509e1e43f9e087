/*
 * index_firstfit.c: CARVE_FIRST_FIT, address-ordered first fit.
 *
 * Every class list is kept in address order, so the lowest-addressed block
 * of a class is its head.  The lowest-addressed fitting block overall is the
 * lowest of: the first fitting block of the request's own class, and the
 * heads of all non-empty classes above it (whose blocks all fit).
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

ref firstfit_find(const carve_heap *h, uint64_t g, bool *corrupt)
{
    unsigned own = class_of(g);
    ref best = 0;
    if (own / SL_COUNT >= h->fl_count) {
        return 0;
    }
    best = list_first_fit(h, own, g, corrupt);
    for (unsigned cls = class_first_nonempty(h, own + 1); cls != UINT32_MAX;
         cls = class_first_nonempty(h, cls + 1)) {
        ref head = h->heads[cls];
        if (best == 0 || head < best) {
            best = head;
        }
    }
    return best;
}
