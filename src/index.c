/*
 * index.c: the segregated lists and bitmaps every policy shares, and the
 * dispatch to the policy's own ordering and search.
 */
#include "index.h"

ref list_step(const carve_heap *h, ref node, unsigned cls, bool *bad)
{
    ref next = node ? free_next(h, node) : h->heads[cls];
    if (next == 0) {
        return 0;
    }
    hword w;
    /* The back link must name the node we came from: that also rules out
     * cycles, so every walk ends. */
    if (!block_read(h, next, &w) || !hdr_is_free(w) || class_of(hdr_granules(w)) != cls ||
        free_prev(h, next) != node) {
        *bad = true;
        return 0;
    }
    return next;
}

ref list_first_fit(const carve_heap *h, unsigned cls, uint64_t g, bool *corrupt)
{
    for (ref b = list_step(h, 0, cls, corrupt); b; b = list_step(h, b, cls, corrupt)) {
        if (hdr_granules(block_header(h, b)) >= g) {
            return b;
        }
    }
    return 0;
}

void index_insert(carve_heap *h, ref b, uint64_t g)
{
    index_insert_hot(h, b, g);
}

void index_remove(carve_heap *h, ref b, uint64_t g)
{
    index_remove_hot(h, b, g);
}

ref index_find_call(const carve_heap *h, uint64_t g, bool *corrupt)
{
    switch ((carve_policy)h->policy) {
    case CARVE_FIRST_FIT:
        return firstfit_find(h, g, corrupt);
    case CARVE_BEST_FIT:
        return bestfit_find(h, g, corrupt);
    case CARVE_GOOD_FIT:
    default:
        return goodfit_find_own(h, g, corrupt); /* index_find tried the head */
    }
}

uint64_t index_largest(const carve_heap *h)
{
    uint64_t fl_map = h->fl_bitmap & ((UINT64_C(1) << h->fl_count) - 1u);
    if (fl_map == 0) {
        return 0;
    }
    unsigned fl = msb64(fl_map);
    if (h->sl_bitmap[fl] == 0) {
        return 0;
    }
    unsigned cls = fl * SL_COUNT + msb64(h->sl_bitmap[fl]);
    uint64_t largest = 0;
    bool bad = false;
    for (ref b = list_step(h, 0, cls, &bad); b; b = list_step(h, b, cls, &bad)) {
        uint64_t g = hdr_granules(block_header(h, b));
        largest = g > largest ? g : largest;
    }
    return largest;
}
