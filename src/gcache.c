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

/* The record for the allocation paths; NULL when there is none or it is
 * damaged (then nothing is cached and carve_check reports it).  The
 * header's check bits are left to record_checked.  Why that is enough
 * here: the record's offset is still range-checked and its header must
 * still read exactly as a table block of the record's size (garbage passes
 * that 1 time in 2^43), nothing in the record is trusted without a check of
 * its own (counts are bounded, every entry's block header is checked in
 * full before it is used), and carve_check still checks the header in
 * full.  It saves a multiply chain on every general allocation and free.
 * The record's size: what it asked for, or up to MIN_GRANULES - 1 more
 * (the allocation hands out a block whole when what is left of it would
 * be too small to be a block of its own). */
_Static_assert(MIN_GRANULES == 2u, "a record block is its size or one granule more");
CARVE_INLINE struct gcache *record_of(const carve_heap *h)
{
    hword w;
    if (h->gcache == 0 ||
        (!block_reads_as(h, h->gcache, live_low_bits(record_granules(), KIND_TABLE), &w) &&
         !block_reads_as(h, h->gcache, live_low_bits(record_granules() + 1u, KIND_TABLE), &w))) {
        return NULL;
    }
    return (struct gcache *)block_payload(h, h->gcache);
}

/* The record, after its block's header checks out in full (record_of, and
 * the check bits too).  For carve_check and the calls that empty the
 * cache. */
static struct gcache *record_checked(const carve_heap *h)
{
    struct gcache *r = record_of(h);
    return r != NULL && hdr_valid(h, h->gcache, block_header(h, h->gcache)) ? r : NULL;
}

/* Makes the record, on the first free that caches.  Making it must not
 * disturb the free that asked for it: errno is kept. */
static CARVE_NOINLINE struct gcache *record_make(carve_heap *h)
{
    int saved = errno;
    ref r = heap_alloc_block(h, record_granules(), KIND_TABLE);
    errno = saved;
    if (r == 0) {
        return NULL;
    }
    memset(block_payload(h, r), 0, sizeof(struct gcache));
    h->gcache = r;
    return record_checked(h);
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
CARVE_INLINE bool gate_open(const carve_heap *h)
{
    uint64_t arena = h->arena_end - h->arena_begin;
    return h->free_bytes > arena - arena / 4u;
}

/* The cached blocks may hold at most 1/8 of the arena. */
CARVE_INLINE bool room_for(const carve_heap *h, const struct gcache *r, uint64_t g)
{
    return r->bytes + bytes_of(g) <= (h->arena_end - h->arena_begin) / 8u;
}

/* Whether block b is a cached block of g granules, as its entry says; its
 * header in *w. */
CARVE_INLINE bool entry_valid(const carve_heap *h, ref b, uint64_t g, hword *w)
{
    return g >= MIN_GRANULES && block_read_expecting(h, b, live_low_bits(g, KIND_CACHED), w);
}

/* The number of entries of class cls; a damaged count (over GC_DEPTH)
 * reads as 0 and is cleared. */
CARVE_INLINE unsigned count_of(struct gcache *r, unsigned cls)
{
    unsigned n = r->count[cls];
    if (n > GC_DEPTH) {
        r->count[cls] = 0;
        return 0;
    }
    return n;
}

/* Takes entry i of class cls out of the record (the last one fills its
 * place: the order within a class only decides which block goes first). */
CARVE_INLINE void entry_remove(struct gcache *r, unsigned cls, unsigned i)
{
    unsigned n = r->count[cls];
    r->bytes -= bytes_of(r->size[cls][i]);
    r->entry[cls][i] = r->entry[cls][n - 1u];
    r->size[cls][i] = r->size[cls][n - 1u];
    r->count[cls] = (uint8_t)(n - 1u);
    r->blocks--;
}

/* Takes entry i of class cls out of the record and returns its block, with
 * its header in *w; 0 when the block is not what the entry says (a damaged
 * entry is dropped: carve_check then reports the block it lost). */
CARVE_INLINE ref entry_take(const carve_heap *h, struct gcache *r, unsigned cls, unsigned i,
                            hword *w)
{
    ref b = r->entry[cls][i];
    uint64_t g = r->size[cls][i];
    entry_remove(r, cls, i);
    return entry_valid(h, b, g, w) ? b : 0;
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
    unsigned n = count_of(r, cls);
    if (n == 0) {
        return false;
    }
    hword w;
    ref b = entry_take(h, r, cls, n - 1u, &w);
    if (b != 0) {
        (void)hand_back(h, b, w);
    }
    return true;
}

/* While the gate is closed: hands back up to GC_SHED blocks, and the record
 * with the last of them, so that a filling heap gets its bytes back a few
 * at a time rather than in one long call. */
static CARVE_NOINLINE void shed(carve_heap *h, struct gcache *r)
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
    struct gcache *r = record_checked(h);
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
    /* The record's own block came back too (it may have held no block, see
     * gcache.h), and its bytes may be what a failing allocation needs. */
    return any || h->gcache == 0;
}

bool gcache_return(carve_heap *h, ref b, hword w)
{
    struct gcache *r = record_checked(h);
    unsigned cls = class_of(hdr_granules(w));
    if (r == NULL || cls >= GC_CLASSES) {
        return false;
    }
    unsigned n = count_of(r, cls);
    for (unsigned i = 0; i < n; i++) {
        if (r->entry[cls][i] == b && r->size[cls][i] == hdr_granules(w)) {
            entry_remove(r, cls, i);
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
CARVE_INLINE void make_live(carve_heap *h, ref b, hword w)
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

/* The newest entry of class cls whose block holds g granules and at most
 * g/16 more, or GC_DEPTH when there is none.  It reads the record alone
 * (the class's sizes sit together). */
CARVE_INLINE unsigned fitting_entry(struct gcache *r, unsigned cls, uint64_t g)
{
    uint64_t surplus = g / 16u;
    for (unsigned i = count_of(r, cls); i-- > 0;) {
        if ((uint64_t)r->size[cls][i] - g <= surplus) { /* wraps when smaller than g */
            return i;
        }
    }
    return GC_DEPTH;
}

ref gcache_take(carve_heap *h, uint64_t g)
{
    unsigned cls = class_of(g);
    struct gcache *r;
    if (cls >= GC_CLASSES || (r = record_of(h)) == NULL) {
        return 0;
    }
    unsigned i = fitting_entry(r, cls, g);
    if (i == GC_DEPTH && cls + 1u < GC_CLASSES) {
        i = fitting_entry(r, ++cls, g);
    }
    ref b = 0;
    hword w;
    /* Only the chosen block's header is read: checked, then rewritten. */
    if (i < GC_DEPTH && (b = entry_take(h, r, cls, i, &w)) != 0) {
        make_live(h, b, w);
    }
    if (CARVE_UNLIKELY(!gate_open(h))) {
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

bool gcache_put(carve_heap *h, ref b, hword *bw)
{
    hword w = *bw;
    uint64_t g = hdr_granules(w);
    unsigned cls = class_of(g);
    if (cls >= GC_CLASSES) {
        return false;
    }
    if (!gate_open(h)) {
        return false;
    }
    struct gcache *r;
    if (h->gcache != 0) {
        r = record_of(h);
    } else {
        r = record_make(h);
        *bw = w = block_header(h, b); /* the allocation may have changed PREV_FREE */
    }
    if (r == NULL || !room_for(h, r, g)) {
        return false;
    }
    unsigned n = r->count[cls];
    if (n >= GC_DEPTH) {
        return false;
    }
    block_set_header(h, b, g, ((uint64_t)KIND_CACHED << HDR_KIND_SHIFT) | (w & HDR_PREV_FREE));
    r->entry[cls][n] = b;
    r->size[cls][n] = (uint16_t)g; /* below 2^13: cls < GC_CLASSES */
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
        uint64_t g = r->size[cls][i];
        if (class_of(g) != cls || !entry_valid(h, r->entry[cls][i], g, &w)) {
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
    const struct gcache *r = record_checked(h);
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
