/*
 * index.c: the segregated lists and bitmaps every policy shares, and the
 * dispatch to the policy's own ordering and search.
 */
#include "index.h"

static void class_mark_nonempty(carve_heap *h, unsigned cls)
{
    unsigned fl = cls / SL_COUNT;
    h->sl_bitmap[fl] = (uint16_t)(h->sl_bitmap[fl] | (1u << (cls % SL_COUNT)));
    h->fl_bitmap |= UINT64_C(1) << fl;
}

static void class_mark_empty(carve_heap *h, unsigned cls)
{
    unsigned fl = cls / SL_COUNT;
    h->sl_bitmap[fl] = (uint16_t)(h->sl_bitmap[fl] & ~(1u << (cls % SL_COUNT)));
    if (h->sl_bitmap[fl] == 0) {
        h->fl_bitmap &= ~(UINT64_C(1) << fl);
    }
}

/* A list neighbour is trusted only if its header checks out as a free block. */
CARVE_INLINE bool neighbour_is_free(const carve_heap *h, ref n)
{
    hword w;
    return block_read(h, n, &w) && hdr_is_free(w);
}

void list_insert_after(carve_heap *h, unsigned cls, ref after, ref b)
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

void list_unlink(carve_heap *h, unsigned cls, ref b)
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

bool list_links_valid(const carve_heap *h, ref b, unsigned cls)
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

void index_remove(carve_heap *h, ref b, uint64_t g)
{
    list_unlink(h, class_of(g), b);
    h->free_blocks--;
    h->free_bytes -= bytes_of(g);
}

ref index_find(const carve_heap *h, uint64_t g, bool *corrupt)
{
    switch ((carve_policy)h->policy) {
    case CARVE_FIRST_FIT:
        return firstfit_find(h, g, corrupt);
    case CARVE_BEST_FIT:
        return bestfit_find(h, g, corrupt);
    case CARVE_GOOD_FIT:
    default:
        return goodfit_find(h, g, corrupt);
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
