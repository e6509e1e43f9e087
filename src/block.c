/*
 * block.c: validated reads of the block chain, and poisoning.
 *
 * Nothing here follows a header it has not checked: a size or a link is used
 * only after the header it came from passed its check and points inside the
 * arena.
 */
#include "block.h"

ref block_prev_free(const carve_heap *h, ref b, hword *prev_w)
{
    if (b < h->arena_begin + bytes_of(MIN_GRANULES)) {
        return 0;
    }
    hword footer = load64(at(h, b - 8));
    uint64_t g = hdr_granules(footer);
    if (g < MIN_GRANULES || bytes_of(g) > b - h->arena_begin) {
        return 0;
    }
    ref p = b - bytes_of(g);
    hword w;
    /* A footer whose size stays inside the arena places the header it
     * names: granule-aligned, at or after the arena start. */
    if (!block_read_placed(h, p, &w) || w != footer || !hdr_is_free(w)) {
        return 0;
    }
    *prev_w = w;
    return p;
}

int block_is_boundary(const carve_heap *h, ref off)
{
    ref b = h->arena_begin;
    while (b < off) {
        hword w;
        if (!block_read(h, b, &w)) {
            return -1;
        }
        b = block_next(b, hdr_granules(w));
    }
    return b == off ? 1 : 0;
}

/* The poisoned span of a free block: after header and two links, before the
 * footer.  Empty for a minimum-size block. */
static void poison_span(ref b, uint64_t granules, ref *from, ref *to)
{
    *from = b + 24;
    *to = b + bytes_of(granules) - 8;
}

void block_poison(carve_heap *h, ref b, uint64_t granules)
{
    ref from;
    ref to;
    poison_span(b, granules, &from, &to);
    if (to > from) {
        memset(at(h, from), POISON_BYTE, (size_t)(to - from));
    }
}

bool block_poison_intact(const carve_heap *h, ref b, uint64_t granules)
{
    ref from;
    ref to;
    poison_span(b, granules, &from, &to);
    for (const unsigned char *p = at(h, from), *end = at(h, to); p < end; p++) {
        if (*p != POISON_BYTE) {
            return false;
        }
    }
    return true;
}
