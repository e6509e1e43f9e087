/*
 * trim.c: handing the pages of large free blocks back to whoever owns the
 * buffer's memory (carve_trim).
 *
 * Why this is safe: the heap reads nothing inside a free block but its
 * header, its two links, its footer and (with CARVE_POISON, which trim
 * refuses) its pattern.  The header and links sit in the block's first
 * page and the footer in its last, so the whole pages strictly between
 * them may be dropped (MADV_DONTNEED) and read back as anything.  When the
 * block is handed out again, those bytes are the user's, whose contents
 * malloc never promised.
 *
 * Released marks: a block released once is not released again while it
 * stays unchanged.  The header's KIND bits are free while a block is free,
 * but carve_check insists they read KIND_RAW there, so the mark lives in
 * the block's payload instead, in the two pages that are never released:
 * the word after the links (offset 24) and the word before the footer
 * (offset size - 16) both hold trim_mark(offset, granules), a hash keyed
 * by the heap's salt.  Every change to a free block changes its offset or
 * its size, or takes it out of the index:
 *   - split (an allocation carved from it, an aligned allocation's lead):
 *     the remainder is smaller and, for the tail, starts elsewhere;
 *   - merge (a neighbour freed, a shrink, compaction into a hole): the
 *     block grows or starts earlier;
 *   - allocation of the whole block: it leaves the index, and trim only
 *     looks at blocks in the index.
 * So a mark matches only a block with exactly the offset and size it was
 * released with.  A stale mark (the same block allocated, freed again with
 * the same offset and size, and both mark words never written by its user)
 * costs only a missed release, never correctness: the mark is consulted
 * for nothing else, and a mark left in a live block's payload is just data.
 */
#include "compact.h"
#include "heap.h"
#include "index.h"

/* The released mark of the free block at b of g granules. */
CARVE_INLINE uint64_t trim_mark(const carve_heap *h, ref b, uint64_t g)
{
    return mix64(mix64(b ^ h->salt) ^ (g * UINT64_C(0x9e3779b97f4a7c15)) ^
                 UINT64_C(0x7472696d6d656421)); /* "trimmed!" */
}

/* Offsets of the two mark words inside a free block (see above). */
CARVE_INLINE ref mark_front(ref b)
{
    return b + 24u;
}

CARVE_INLINE ref mark_back(ref b, uint64_t g)
{
    return b + bytes_of(g) - 16u;
}

CARVE_INLINE bool block_marked_released(const carve_heap *h, ref b, uint64_t g)
{
    uint64_t m = trim_mark(h, b, g);
    return load64(at(h, mark_front(b))) == m && load64(at(h, mark_back(b, g))) == m;
}

CARVE_INLINE void block_mark_released(carve_heap *h, ref b, uint64_t g)
{
    uint64_t m = trim_mark(h, b, g);
    store64(at(h, mark_front(b)), m);
    store64(at(h, mark_back(b, g)), m);
}

struct trim_request {
    uintptr_t page; /* page size, a power of two >= 4096 */
    uint64_t min_g; /* the smallest block looked at, in granules */
    void (*release)(void *addr, size_t len, void *ctx);
    void *ctx;
};

/* The whole pages of the block at b (g granules) past its first and last
 * page_size bytes: [*from, *to) in addresses; false when there is none. */
static bool releasable_span(const carve_heap *h, ref b, uint64_t g, uintptr_t page, uintptr_t *from,
                            uintptr_t *to)
{
    uintptr_t start = (uintptr_t)at(h, b);
    uintptr_t end = start + (uintptr_t)bytes_of(g);
    if (end - start < 3u * page) {
        return false;
    }
    *from = (start + page + (page - 1u)) & ~(page - 1u);
    *to = (end - page) & ~(page - 1u);
    return *to > *from;
}

/* Releases one free block unless it is too small, has no whole page past
 * its metadata, or was released unchanged before.  Returns the bytes
 * passed to release. */
static size_t trim_block(carve_heap *h, ref b, const struct trim_request *rq)
{
    uint64_t g = hdr_granules(block_header(h, b));
    uintptr_t from;
    uintptr_t to;
    if (g < rq->min_g || !releasable_span(h, b, g, rq->page, &from, &to) ||
        block_marked_released(h, b, g)) {
        return 0;
    }
    /* The mark words are outside [from, to): written before or after the
     * release, they survive it. */
    block_mark_released(h, b, g);
    rq->release((void *)from, (size_t)(to - from), rq->ctx);
    return (size_t)(to - from);
}

/* Every class that can hold a block of min_g granules or more, each list
 * walked with validated steps; a damaged list is left where the damage
 * starts (carve_check reports it). */
static size_t trim_unlocked(carve_heap *h, const struct trim_request *rq)
{
    size_t released = 0;
    (void)heap_reclaim_cached(h); /* what the caches and empty runs hold is free to the user */
    if (h->live_handles == 0) {
        /* The table outlives its handles (a freed handle must never name
         * an entry again); with none live, moving it down lets the free
         * space around it merge, as it would be on a heap that never had
         * handles. */
        (void)compact_table_down(h);
    }
    unsigned cls = class_first_nonempty(h, class_of(rq->min_g));
    while (cls != UINT32_MAX) {
        bool bad = false;
        for (ref b = list_step(h, 0, cls, &bad); b != 0; b = list_step(h, b, cls, &bad)) {
            released += trim_block(h, b, rq);
        }
        cls = class_first_nonempty(h, cls + 1u);
    }
    return released;
}

CARVE_EXPORT size_t carve_trim(carve_heap *h, size_t page_size, size_t min_block,
                               void (*release)(void *addr, size_t len, void *ctx), void *ctx)
{
    if (!h || !release || page_size < 4096u || (page_size & (page_size - 1u)) != 0 ||
        (h->flags & CARVE_POISON)) {
        return 0;
    }
    /* No block below three pages has a whole page past its first and last
     * page_size bytes, so smaller min_block values change nothing. */
    size_t floor_bytes = page_size <= SIZE_MAX / 3u ? 3u * page_size : SIZE_MAX;
    size_t want = min_block > floor_bytes ? min_block : floor_bytes;
    uint64_t min_g = (uint64_t)(want / GRANULE) + (want % GRANULE != 0 ? 1u : 0u);
    if (min_g > MAX_GRANULES) {
        return 0;
    }
    struct trim_request rq = {(uintptr_t)page_size, min_g, release, ctx};
    heap_enter(h);
    size_t released = trim_unlocked(h, &rq);
    heap_leave(h);
    return released;
}
