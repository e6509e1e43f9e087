/*
 * gcache.c: the front cache of recently freed general blocks (gcache.h).
 */
#include "gcache.h"

#include "heap.h"
#include "index.h"

#include <errno.h>

bool gcache_wanted(unsigned flags, unsigned policy, uint64_t arena)
{
    return policy == CARVE_GOOD_FIT &&
           !(flags & (CARVE_POISON | CARVE_SCRAMBLE | CARVE_NO_BLOCK_CACHE)) &&
           arena >= GC_MIN_ARENA;
}

/* ---- the record ------------------------------------------------------------ */

static uint64_t record_granules(void)
{
    return (sizeof(struct gcache) + HDR_SIZE + GRANULE - 1u) >> GRANULE_SHIFT;
}

/* The record, after its block's header checks out; NULL when there is none
 * or it is damaged (then nothing is cached and carve_check reports it). */
static struct gcache *record_of(const carve_heap *h)
{
    hword w;
    if (h->gcache == 0 || !block_read(h, h->gcache, &w) || hdr_is_free(w) ||
        hdr_kind(w) != KIND_TABLE || hdr_granules(w) != record_granules()) {
        return NULL;
    }
    return (struct gcache *)block_payload(h, h->gcache);
}

/* The record, made if there is none yet.  Making it must not disturb the
 * free that asked for it: errno is kept. */
static struct gcache *record_made(carve_heap *h)
{
    if (h->gcache == 0) {
        int saved = errno;
        ref r = heap_alloc_block(h, record_granules(), KIND_TABLE);
        errno = saved;
        if (r == 0) {
            return NULL;
        }
        memset(block_payload(h, r), 0, sizeof(struct gcache));
        h->gcache = r;
    }
    return record_of(h);
}

/* Releases the record's block once no block is cached. */
static void record_release(carve_heap *h)
{
    hword w;
    if (block_read(h, h->gcache, &w) && heap_release_block(h, h->gcache, w) == CARVE_OK) {
        h->gcache = 0;
    }
}

/* The gate: the index holds more than 3/4 of the arena. */
static bool gate_open(const carve_heap *h)
{
    uint64_t arena = h->arena_end - h->arena_begin;
    return h->free_bytes > arena - arena / 4u;
}

/* The cached blocks may hold at most 1/8 of the arena. */
static bool room_for(const carve_heap *h, const struct gcache *r, uint64_t g)
{
    return r->bytes + bytes_of(g) <= (h->arena_end - h->arena_begin) / 8u;
}

/* Whether e is a cached block of class cls; its header in *w. */
static bool entry_valid(const carve_heap *h, ref e, unsigned cls, hword *w)
{
    return block_read(h, e, w) && !hdr_is_free(*w) && hdr_kind(*w) == KIND_CACHED &&
           class_of(hdr_granules(*w)) == cls;
}

/* The number of entries of class cls, or 0 when the count is damaged. */
static unsigned count_of(const struct gcache *r, unsigned cls)
{
    unsigned n = r->count[cls];
    return n <= GC_DEPTH ? n : 0u;
}

/* Takes entry i of class cls out of the record (the last one fills its
 * place: the order within a class only decides which block goes first). */
static void entry_remove(struct gcache *r, unsigned cls, unsigned i, uint64_t g)
{
    unsigned n = r->count[cls];
    r->entry[cls][i] = r->entry[cls][n - 1u];
    r->count[cls] = (uint8_t)(n - 1u);
    r->blocks--;
    r->bytes -= bytes_of(g);
}

/* Finds class cls's newest entry, leaving it in the record.  False when the
 * class is empty (a damaged count reads as empty, and is cleared); else *b
 * is the block and *w its header, or *b is 0 when the entry was damaged:
 * then it is dropped. */
static bool newest_entry(const carve_heap *h, struct gcache *r, unsigned cls, ref *b, hword *w)
{
    unsigned n = count_of(r, cls);
    if (n == 0) {
        r->count[cls] = 0;
        return false;
    }
    *b = r->entry[cls][n - 1u];
    if (!entry_valid(h, *b, cls, w)) {
        r->count[cls] = (uint8_t)(n - 1u);
        r->blocks--;
        *b = 0;
    }
    return true;
}

/* ---- handing blocks back ------------------------------------------------------ */

/* Frees cached block b (header w, already out of the record) into the
 * index.  A block whose neighbours fail their checks stays as it is, out of
 * the record: carve_check reports it. */
static bool hand_back(carve_heap *h, ref b, hword w)
{
    if (heap_release_block(h, b, w) != CARVE_OK) {
        return false;
    }
    /* It left used_public when it was cached, and the release took it out
     * again. */
    h->used_public += bytes_of(hdr_granules(w));
    return true;
}

/* Hands back the newest block of class cls; false when the class is empty.
 * A damaged entry is dropped. */
static bool hand_back_newest(carve_heap *h, struct gcache *r, unsigned cls)
{
    ref b;
    hword w;
    if (!newest_entry(h, r, cls, &b, &w)) {
        return false;
    }
    if (b != 0) {
        entry_remove(r, cls, r->count[cls] - 1u, hdr_granules(w));
        (void)hand_back(h, b, w);
    }
    return true;
}

/* While the gate is closed: hands back up to GC_SHED blocks, and the record
 * with the last of them, so that a filling heap gets its bytes back a few
 * at a time rather than in one long call. */
static void shed(carve_heap *h, struct gcache *r)
{
    for (unsigned k = 0; k < GC_SHED && r->blocks != 0; k++) {
        unsigned cls = r->shed < GC_CLASSES ? r->shed : 0u;
        unsigned seen = 0;
        while (count_of(r, cls) == 0 && seen++ < GC_CLASSES) {
            cls = cls + 1u < GC_CLASSES ? cls + 1u : 0u;
        }
        r->shed = cls;
        if (seen > GC_CLASSES || !hand_back_newest(h, r, cls)) {
            r->blocks = 0; /* the counts say nothing is left: believe them */
        }
    }
    if (r->blocks == 0) {
        record_release(h);
    }
}

bool gcache_empty(carve_heap *h)
{
    struct gcache *r = record_of(h);
    if (r == NULL) {
        return false;
    }
    bool any = r->blocks != 0;
    for (unsigned cls = 0; cls < GC_CLASSES; cls++) {
        while (hand_back_newest(h, r, cls)) {
        }
    }
    r->blocks = 0;
    r->bytes = 0;
    record_release(h);
    return any;
}

bool gcache_return(carve_heap *h, ref b, hword w)
{
    struct gcache *r = record_of(h);
    unsigned cls = class_of(hdr_granules(w));
    if (r == NULL || cls >= GC_CLASSES) {
        return false;
    }
    unsigned n = count_of(r, cls);
    for (unsigned i = 0; i < n; i++) {
        if (r->entry[cls][i] == b) {
            entry_remove(r, cls, i, hdr_granules(w));
            if (!hand_back(h, b, w)) {
                return false;
            }
            if (r->blocks == 0) {
                record_release(h);
            }
            return true;
        }
    }
    return false;
}

/* ---- the calls on the allocation paths -------------------------------------------------- */

/* Makes cached block b (header w) live as a raw block. */
static void make_live(carve_heap *h, ref b, hword w)
{
    uint64_t g = hdr_granules(w);
    block_set_header(h, b, g, hdr_flags(w) & HDR_PREV_FREE);
    h->used_public += bytes_of(g);
    if (h->used_public > h->peak_used_bytes) {
        h->peak_used_bytes = h->used_public;
    }
    h->live_blocks++;
    h->allocs++;
}

/* The newest block of class cls if it holds g granules and at most 1/16
 * more; 0 otherwise.  A damaged entry is dropped. */
static ref fitting_newest(carve_heap *h, struct gcache *r, unsigned cls, uint64_t g)
{
    ref b;
    hword w;
    if (!newest_entry(h, r, cls, &b, &w) || b == 0) {
        return 0;
    }
    uint64_t bg = hdr_granules(w);
    if (bg < g || bg - g > g / 16u) {
        return 0;
    }
    entry_remove(r, cls, r->count[cls] - 1u, bg);
    make_live(h, b, w);
    return b;
}

ref gcache_take(carve_heap *h, uint64_t g)
{
    unsigned cls = class_of(g);
    if (h->gcache == 0 || cls >= GC_CLASSES) {
        return 0;
    }
    struct gcache *r = record_of(h);
    if (r == NULL) {
        return 0;
    }
    ref b = fitting_newest(h, r, cls, g);
    if (b == 0 && cls + 1u < GC_CLASSES) {
        b = fitting_newest(h, r, cls + 1u, g);
    }
    if (!gate_open(h)) {
        shed(h, r);
    }
    return b;
}

void gcache_shed(carve_heap *h)
{
    struct gcache *r = h->gcache != 0 && !gate_open(h) ? record_of(h) : NULL;
    if (r != NULL) {
        shed(h, r);
    }
}

bool gcache_put(carve_heap *h, ref b, hword w)
{
    uint64_t g = hdr_granules(w);
    unsigned cls = class_of(g);
    if (cls >= GC_CLASSES) {
        return false;
    }
    if (!gate_open(h)) {
        return false;
    }
    struct gcache *r = record_made(h);
    if (r == NULL || !room_for(h, r, g)) {
        return false;
    }
    unsigned n = r->count[cls];
    if (n >= GC_DEPTH) {
        return false;
    }
    block_set_header(h, b, g, ((uint64_t)KIND_CACHED << HDR_KIND_SHIFT) | (w & HDR_PREV_FREE));
    r->entry[cls][n] = b;
    r->count[cls] = (uint8_t)(n + 1u);
    r->blocks++;
    r->bytes += bytes_of(g);
    h->used_public -= bytes_of(g);
    h->live_blocks--;
    h->frees++;
    return true;
}

/* ---- carve_check ------------------------------------------------------------------------ */

/* Whether class cls's entries are distinct cached blocks of that class;
 * adds their bytes to *bytes. */
static bool class_is_sound(const carve_heap *h, const struct gcache *r, unsigned cls,
                           uint64_t *bytes)
{
    unsigned n = r->count[cls];
    for (unsigned i = 0; i < n; i++) {
        hword w;
        if (!entry_valid(h, r->entry[cls][i], cls, &w)) {
            return false;
        }
        for (unsigned j = 0; j < i; j++) {
            if (r->entry[cls][j] == r->entry[cls][i]) {
                return false;
            }
        }
        *bytes += bytes_of(hdr_granules(w));
    }
    return true;
}

bool gcache_is_sound(const carve_heap *h, uint64_t blocks, uint64_t bytes, uint64_t *record_blocks)
{
    *record_blocks = 0;
    if (h->gcache == 0) {
        return blocks == 0;
    }
    const struct gcache *r = record_of(h);
    if (r == NULL || !(h->flags & HEAP_GCACHE)) {
        return false;
    }
    *record_blocks = 1;
    uint64_t listed = 0;
    uint64_t listed_bytes = 0;
    for (unsigned cls = 0; cls < GC_CLASSES; cls++) {
        if (r->count[cls] > GC_DEPTH || !class_is_sound(h, r, cls, &listed_bytes)) {
            return false;
        }
        listed += r->count[cls];
    }
    /* Every entry is a distinct cached block (classes differ across lists),
     * so equal counts mean every cached block is listed. */
    return listed == blocks && r->blocks == blocks && listed_bytes == bytes && r->bytes == bytes;
}
