/*
 * index_bestfit.c: CARVE_BEST_FIT, exact best fit.
 *
 * Every class list is ordered by (size, address).  The smallest fitting
 * block is the first fitting block of the request's own class, or else the
 * head of the next non-empty class.  Ties go to the lower address.
 * Cost: O(k) in the own class; inserting keeps the order, O(k).
 */
#include "index.h"

ref bestfit_insert_point(const carve_heap *h, ref b, uint64_t g, unsigned cls)
{
    ref after = 0;
    bool bad = false;
    for (ref n = list_step(h, 0, cls, &bad); n; n = list_step(h, n, cls, &bad)) {
        uint64_t ng = hdr_granules(block_header(h, n));
        if (ng > g || (ng == g && n > b)) {
            break;
        }
        after = n;
    }
    return bad ? 0 : after;
}

ref bestfit_find(const carve_heap *h, uint64_t g, bool *corrupt)
{
    unsigned own = class_of(g);
    if (own / SL_COUNT >= h->fl_count) {
        return 0;
    }
    ref b = list_first_fit(h, own, g, corrupt);
    if (b) {
        return b;
    }
    unsigned cls = class_first_nonempty(h, own + 1);
    return cls == UINT32_MAX ? 0 : h->heads[cls];
}
