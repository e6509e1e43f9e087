/*
 * small.c: runs of equal-size slots: the slow paths (making, switching and
 * unmaking runs) and their diagnostics.  The fast paths are in small.h.
 */
#include "small.h"

/* The tables follow from the run's payload (RUN_SIZE - 8 bytes) and its
 * 32-byte header: slot0 = round_up_16(32 + 8 * ceil((payload / slot) / 64)),
 * nslots = (payload - slot0) / slot; run_geometry_holds() re-derives the
 * typed-in ones.  mult = ceil(2^32 / slot) is computed here, by SLOT_MULT. */
#define SLOT_BYTES(cls) (UINT64_C(16) * ((cls) + 1u))
#define SLOT_MULT(cls)  ((uint32_t)(((UINT64_C(1) << 32) + SLOT_BYTES(cls) - 1u) / SLOT_BYTES(cls)))
const struct run_geometry run_geom[SMALL_CLASSES] = {
    {SLOT_MULT(0), 96, 505}, {SLOT_MULT(1), 64, 253}, {SLOT_MULT(2), 64, 169},
    {SLOT_MULT(3), 48, 127}, {SLOT_MULT(4), 48, 101}, {SLOT_MULT(5), 48, 84},
    {SLOT_MULT(6), 48, 72},  {SLOT_MULT(7), 48, 63},  {SLOT_MULT(8), 48, 56},
    {SLOT_MULT(9), 48, 50},  {SLOT_MULT(10), 48, 46}, {SLOT_MULT(11), 48, 42},
    {SLOT_MULT(12), 48, 39}, {SLOT_MULT(13), 48, 36}, {SLOT_MULT(14), 48, 33},
    {SLOT_MULT(15), 48, 31},
};
const uint8_t run_words[SMALL_CLASSES] = {8, 4, 3, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1};

/* ---- the page map -------------------------------------------------------------------- */

static void page_mark(carve_heap *h, ref r, bool is_run)
{
    uint64_t page = r >> RUN_SHIFT;
    uint64_t *word = pagemap_word(h, page);
    uint64_t bit = UINT64_C(1) << (page & 63u);
    uint64_t v = *word;
    word_store(word, is_run ? v | bit : v & ~bit);
}

/* ---- partial lists ------------------------------------------------------------------- */

/* List neighbours are written only when they check out as runs of the
 * class that link back (safe unlinking, as in the free index).  A damaged
 * list is cut rather than followed; carve_check reports it. */
static bool partial_neighbour_ok(const carve_heap *h, unsigned cls, ref n)
{
    return n == 0 || run_is_trusted(h, n, cls);
}

static void partial_push(carve_heap *h, unsigned cls, ref *list, ref r)
{
    struct run *run = run_at(h, r);
    ref head = *list;
    if (!partial_neighbour_ok(h, cls, head) || (head && run_at(h, head)->prev != 0)) {
        head = 0;
    }
    run->prev = 0;
    run->next = head;
    if (head) {
        run_at(h, head)->prev = r;
    }
    *list = r;
}

static void partial_unlink(carve_heap *h, unsigned cls, ref *list, ref r)
{
    struct run *run = run_at(h, r);
    ref next = run->next;
    ref prev = run->prev;
    if (!partial_neighbour_ok(h, cls, next) || (next && run_at(h, next)->prev != r)) {
        next = 0;
    }
    if (!partial_neighbour_ok(h, cls, prev) || (prev && run_at(h, prev)->next != r)) {
        prev = 0;
    }
    if (next) {
        run_at(h, next)->prev = prev;
    }
    if (prev) {
        run_at(h, prev)->next = next;
    } else if (*list == r) {
        *list = next;
    }
    run->next = run->prev = 0;
}

/* The partial list run r belongs in: its owner's while that cache is in
 * use, else the class's (and then it has no owner). */
static ref *list_of(carve_heap *h, unsigned cls, struct run *run)
{
    if (run->owner != 0) {
        ref *mine = tcache_partial_head(h, run->owner - 1u, cls);
        if (mine != NULL) {
            return mine;
        }
        run->owner = 0;
    }
    return &h->small[cls].partial;
}

/* ---- making and unmaking runs ---------------------------------------------------------- */

static uint64_t run_slot_bytes(unsigned cls)
{
    return run_geom[cls].nslots * slot_size_of(cls);
}

static ref run_create(carve_heap *h, unsigned cls)
{
    ref b = heap_claim_run_block(h);
    if (b == 0) {
        return 0;
    }
    ref r = b + HDR_SIZE;
    unsigned nslots = run_geom[cls].nslots;
    unsigned words = run_words[cls];
    struct run *run = run_at(h, r);
    run->cls = (uint16_t)cls;
    run->nfree = (uint16_t)nslots;
    run->hint = 0;
    run->declines = 0;
    run->owner = 0;
    run->own = 0;
    run->next = run->prev = 0;
    for (unsigned w = 0; w < words; w++) {
        word_store(&run->live[w], 0);
    }
    if (nslots % 64u) {
        word_store(&run->live[words - 1u], ~UINT64_C(0) << (nslots % 64u)); /* past the last slot */
    }
    run->tag = run_tag(h, r, cls);
    page_mark(h, r, true);
    h->runs++;
    h->run_slots += nslots;
    h->used_public -= run_slot_bytes(cls); /* its slots are free bytes */
    return r;
}

/* An empty run goes back to the general heap. */
static void run_destroy(carve_heap *h, ref r, unsigned cls)
{
    run_at(h, r)->tag = 0;
    page_mark(h, r, false);
    h->runs--;
    h->run_slots -= run_geom[cls].nslots;
    h->used_public += run_slot_bytes(cls); /* release_block takes the whole block off */
    heap_release_run_block(h, r - HDR_SIZE);
}

ref small_refill(carve_heap *h, unsigned cls)
{
    ref r = h->small[cls].partial;
    if (r) {
        if (!run_is_trusted(h, r, cls) || run_at(h, r)->nfree == 0) {
            return 0; /* damaged: carve_check reports it; the caller falls back */
        }
        partial_unlink(h, cls, &h->small[cls].partial, r);
    } else {
        r = run_create(h, cls);
    }
    /* The count of refusals for nothing belongs to the class: it carries
     * over, and only a fragment taken resets it (small.h). */
    ref old = h->small[cls].current;
    if (r != 0) { /* 0: no run could be made */
        run_at(h, r)->declines = run_is_trusted(h, old, cls) ? run_at(h, old)->declines : 0u;
    }
    /* The old current run is full and stays in no list until a slot of it
     * is freed. */
    h->small[cls].current = r;
    return r;
}

void small_free_transition(carve_heap *h, ref r, unsigned cls)
{
    struct run *run = run_at(h, r);
    if (r == h->small[cls].current || run->own) {
        return; /* the current run and runs in use are retained, even empty */
    }
    ref *list = list_of(h, cls, run);
    if (run->nfree == 1u) {
        partial_push(h, cls, list, r); /* it was full */
    }
    if (run->nfree == run_geom[cls].nslots) {
        partial_unlink(h, cls, list, r);
        run_destroy(h, r, cls);
    }
}

unsigned small_take_from(carve_heap *h, ref r, unsigned cls, ref *out, unsigned n)
{
    struct run *run = run_at(h, r);
    unsigned words = run_words[cls];
    unsigned nslots = run_geom[cls].nslots;
    ref first = r + run_geom[cls].slot0;
    uint64_t slot = slot_size_of(cls);
    unsigned want = n < run->nfree ? n : run->nfree;
    unsigned got = 0;
    unsigned w = run->hint;
    bool damaged = false;
    while (got < want && w < words) {
        uint64_t live = run->live[w];
        uint64_t free_bits = ~live;
        while (free_bits != 0 && got < want) {
            unsigned bit = lsb64(free_bits);
            uint64_t i = (uint64_t)w * 64u + bit;
            if (i >= nslots) {
                damaged = true; /* a cleared bit past the last slot; carve_check says so */
                break;
            }
            live |= UINT64_C(1) << bit;
            free_bits &= free_bits - 1u;
            out[got] = first + i * slot;
            store64(at(h, out[got]), cached_slot_mark(h, out[got]));
            got++;
        }
        atomic_store_explicit((_Atomic uint64_t *)&run->live[w], live, memory_order_release);
        if (damaged || free_bits != 0 || w + 1u == words) {
            break;
        }
        w++; /* this word is full now: the hint moves past it */
    }
    /* Every word before w is full: the hint's invariant holds. */
    run->hint = (uint8_t)w;
    run->nfree = (uint16_t)(run->nfree - got);
    return got;
}

unsigned small_take_many(carve_heap *h, unsigned cls, ref *out, unsigned n)
{
    ref r = h->small[cls].current;
    if (!run_is_trusted(h, r, cls)) {
        return 0; /* none, or damaged (carve_check reports it) */
    }
    const struct run *run = run_at(h, r);
    if (run->nfree != 0 && run_declines(h, run, cls)) {
        return 0; /* the request goes to the heap, which knows its size */
    }
    return small_take_from(h, r, cls, out, n);
}

/* ---- runs of a thread's own ------------------------------------------------------------- */

bool small_own_is_valid(const carve_heap *h, ref r, unsigned cls, unsigned owner)
{
    return run_offset_plausible(h, r) && page_is_run(h, r) && run_is_valid(h, r, cls) &&
           run_at(h, r)->own == 1u && run_at(h, r)->owner == owner;
}

/* Whether list member r can be taken off it: trusted, with free slots. */
static bool listed_run_ok(const carve_heap *h, ref r, unsigned cls)
{
    return run_offset_plausible(h, r) && page_is_run(h, r) && run_is_valid(h, r, cls) &&
           run_at(h, r)->nfree != 0 && run_at(h, r)->own == 0;
}

/* Takes the head of list *list off it for an owner; 0 when the list is
 * empty or its head fails a check (carve_check reports that). */
static ref own_from_list(carve_heap *h, unsigned cls, ref *list)
{
    ref r = *list;
    if (r == 0 || !listed_run_ok(h, r, cls)) {
        return 0;
    }
    partial_unlink(h, cls, list, r);
    return r;
}

ref small_own_next(carve_heap *h, unsigned cls, unsigned owner, ref *mine)
{
    ref r = own_from_list(h, cls, mine);
    ref cur = h->small[cls].current;
    if (r == 0 && run_is_trusted(h, cur, cls) && run_at(h, cur)->nfree != 0) {
        /* The class's current run, which nobody owns: taking it keeps a
         * heap used by one thread as compact as without caches. */
        h->small[cls].current = 0;
        r = cur;
    }
    if (r == 0 && (r = own_from_list(h, cls, &h->small[cls].partial)) == 0 &&
        (r = run_create(h, cls)) == 0) {
        return 0;
    }
    struct run *run = run_at(h, r);
    run->owner = (uint8_t)owner;
    run->own = 1;
    return r;
}

void small_own_done(carve_heap *h, ref r, unsigned cls, ref *mine)
{
    struct run *run = run_at(h, r);
    run->own = 0;
    if (mine == NULL) {
        run->owner = 0;
        mine = &h->small[cls].partial;
    }
    if (run->nfree == run_geom[cls].nslots) {
        if (mine == &h->small[cls].partial && !run_is_trusted(h, h->small[cls].current, cls)) {
            h->small[cls].current = r; /* kept, as a class's current run is */
            run->declines = 0;
        } else {
            run_destroy(h, r, cls);
        }
    } else if (run->nfree != 0) {
        partial_push(h, cls, mine, r);
    }
}

void small_own_release(carve_heap *h, unsigned cls, ref *mine)
{
    /* Bounded by the number of runs, in case the list was damaged. */
    uint64_t budget = h->runs;
    for (ref r = *mine; r != 0 && budget-- > 0;) {
        if (!listed_run_ok(h, r, cls)) {
            break; /* damaged: the rest stays unlisted; carve_check reports it */
        }
        struct run *run = run_at(h, r);
        ref next = run->next;
        run->owner = 0;
        partial_push(h, cls, &h->small[cls].partial, r);
        r = next;
    }
    *mine = 0;
}

bool small_own_list_is_sound(const carve_heap *h, unsigned cls, ref head, unsigned owner,
                             uint64_t *count)
{
    ref prev = 0;
    uint64_t budget = h->runs;
    for (ref r = head; r != 0; r = run_at(h, r)->next) {
        if (budget-- == 0 || !listed_run_ok(h, r, cls) || run_at(h, r)->owner != owner ||
            run_at(h, r)->prev != prev || r == h->small[cls].current) {
            return false;
        }
        prev = r;
        ++*count;
    }
    return true;
}

bool small_class_has_free_slot(const carve_heap *h, unsigned cls)
{
    ref cur = h->small[cls].current;
    ref part = h->small[cls].partial;
    return (run_is_trusted(h, part, cls) && run_at(h, part)->nfree > 0) ||
           (run_is_trusted(h, cur, cls) && run_at(h, cur)->nfree > 0);
}

void *small_alloc_larger(carve_heap *h, size_t size)
{
    for (unsigned cls = small_class_of(size) + 1u; cls < SMALL_CLASSES; cls++) {
        if (!small_class_has_free_slot(h, cls)) {
            continue;
        }
        size_t slot = (size_t)slot_size_of(cls);
        void *p = small_alloc_any(h, slot);
        if (!p && h->small[cls].partial && small_refill(h, cls)) {
            p = small_alloc_any(h, slot);
        }
        if (p) {
            return p;
        }
    }
    return NULL;
}

bool small_reclaim(carve_heap *h)
{
    bool any = false;
    for (unsigned cls = 0; cls < SMALL_CLASSES; cls++) {
        ref r = h->small[cls].current;
        if (run_is_trusted(h, r, cls) && run_at(h, r)->nfree == run_geom[cls].nslots) {
            h->small[cls].current = 0;
            run_destroy(h, r, cls);
            any = true;
        }
    }
    return any;
}

/* ---- diagnostics ------------------------------------------------------------------- */

static unsigned popcount64(uint64_t x)
{
    unsigned n = 0;
    while (x) {
        x &= x - 1u;
        n++;
    }
    return n;
}

/* The tables are what the formula in the comment above them gives. */
static bool run_geometry_holds(unsigned cls)
{
    uint64_t slot = slot_size_of(cls);
    uint64_t payload = RUN_SIZE - HDR_SIZE;
    uint64_t words = (payload / slot + 63u) / 64u;
    uint64_t slot0 = (sizeof(struct run) + words * 8u + GRANULE - 1u) & ~(uint64_t)(GRANULE - 1u);
    uint64_t nslots = (payload - slot0) / slot;
    return run_geom[cls].slot0 == slot0 && run_geom[cls].nslots == nslots &&
           run_words[cls] == (nslots + 63u) / 64u && run_words[cls] <= words;
}

bool small_run_is_sound(const carve_heap *h, ref b, struct slot_totals *t)
{
    ref r = b + HDR_SIZE;
    const struct run *run = run_at(h, r);
    unsigned cls = run->cls;
    if ((r & (RUN_SIZE - 1u)) != RUN_HEAD_OFFSET || !h->runs_on || !page_is_run(h, r) ||
        !run_is_valid(h, r, cls) || !run_geometry_holds(cls)) {
        return false;
    }
    unsigned nslots = run_geom[cls].nslots;
    unsigned words = run_words[cls];
    unsigned live = 0;
    for (unsigned w = 0; w < words; w++) {
        live += popcount64(run->live[w]);
        if (w < run->hint && run->live[w] != ~UINT64_C(0)) {
            return false;
        }
    }
    unsigned past_end = words * 64u - nslots;
    if (run->nfree > nslots || run->hint >= words || live != nslots - run->nfree + past_end ||
        (past_end &&
         (run->live[words - 1u] >> (64u - past_end)) != (UINT64_C(1) << past_end) - 1u)) {
        return false;
    }
    bool current = h->small[cls].current == r;
    bool held = current || run->own != 0;
    if (run->own > 1u || (current && run->own) || (run->own && run->owner == 0) ||
        (!held && run->nfree == nslots)) {
        return false; /* an empty run that is neither current nor in use should be gone */
    }
    t->runs++;
    t->slots += nslots;
    t->live_slots += nslots - run->nfree;
    t->free_slot_bytes += run->nfree * slot_size_of(cls);
    t->partial += (!held && run->nfree > 0) ? 1u : 0u;
    t->own += run->own;
    return true;
}

bool small_lists_are_sound(const carve_heap *h, const struct slot_totals *t, uint64_t owners_listed)
{
    uint64_t listed = 0;
    for (unsigned cls = 0; cls < SMALL_CLASSES; cls++) {
        ref cur = h->small[cls].current;
        if (cur && (!run_is_trusted(h, cur, cls) || !page_is_run(h, cur))) {
            return false;
        }
        ref prev = 0;
        for (ref r = h->small[cls].partial; r; r = run_at(h, r)->next) {
            if (!run_is_trusted(h, r, cls) || !page_is_run(h, r) || run_at(h, r)->prev != prev ||
                r == cur || run_at(h, r)->owner != 0 || run_at(h, r)->own != 0 ||
                ++listed > t->partial) {
                return false;
            }
            prev = r;
        }
    }
    uint64_t marked = 0;
    for (ref page = 0; page <= (h->arena_end >> RUN_SHIFT); page++) {
        marked += page_is_run(h, page << RUN_SHIFT) ? 1u : 0u;
    }
    return listed + owners_listed == t->partial && marked == t->runs;
}

int small_walk_run(carve_heap *h, ref b, int (*visit)(const carve_block *b, void *ctx), void *ctx)
{
    ref r = b + HDR_SIZE;
    const struct run *run = run_at(h, r);
    unsigned cls = run->cls;
    uint64_t slot = slot_size_of(cls);
    ref first = r + run_geom[cls].slot0;
    ref slots_end = first + run_geom[cls].nslots * slot;
    carve_block piece = {(size_t)b, (size_t)(first - b), 0, NULL, CARVE_BLOCK_META, 0};
    int rc = visit(&piece, ctx);
    for (uint64_t i = 0; rc == 0 && i < run_geom[cls].nslots; i++) {
        ref s = first + i * slot;
        bool live = slot_is_live(run, i);
        carve_block sb = {(size_t)s,
                          (size_t)slot,
                          live ? (size_t)slot : 0,
                          live ? at(h, s) : NULL,
                          live ? CARVE_BLOCK_RAW : CARVE_BLOCK_FREE,
                          0};
        rc = visit(&sb, ctx);
    }
    if (rc == 0) {
        carve_block tail = {(size_t)slots_end,
                            (size_t)(b + bytes_of(RUN_BLOCK_GRANULES) - slots_end),
                            0,
                            NULL,
                            CARVE_BLOCK_META,
                            0};
        rc = visit(&tail, ctx);
    }
    return rc;
}

void small_recount(carve_heap *h)
{
    struct slot_totals t;
    memset(&t, 0, sizeof t);
    uint64_t cached_bytes = 0; /* general blocks in their cache (gcache.h) */
    for (ref b = h->arena_begin; b < h->arena_end;) {
        hword w;
        if (!block_read(h, b, &w)) {
            return; /* damaged: carve_check reports it */
        }
        if (!hdr_is_free(w) && hdr_kind(w) == KIND_RUN && !small_run_is_sound(h, b, &t)) {
            return;
        }
        if (!hdr_is_free(w) && hdr_kind(w) == KIND_CACHED) {
            cached_bytes += bytes_of(hdr_granules(w));
        }
        b = block_next(b, hdr_granules(w));
    }
    h->slot_frees = h->slot_allocs - t.live_slots;
    h->used_public = h->used_bytes - t.free_slot_bytes - cached_bytes;
}
