/*
 * handles.c: the handle table, relocatable blocks and pins (see handles.h).
 */
#include "handles.h"

#include "compact.h"

#include <errno.h>

/* ---- the table ----------------------------------------------------------------- */

/* Whether the table's entries lie inside the arena, so reading any entry
 * below hcap stays inside the buffer.  (carve_check validates the table
 * block fully; this is the cheap bound every call relies on.) */
static bool table_in_bounds(const carve_heap *h)
{
    return h->htable != 0 && block_offset_plausible(h, h->htable) && h->hcap <= MAX_GRANULES &&
           h->hcap * sizeof(struct hentry) <= h->arena_end - h->htable - HDR_SIZE;
}

static struct hentry *entry_at(const carve_heap *h, uint64_t idx)
{
    return (struct hentry *)(void *)at(h, h->htable + HDR_SIZE + idx * sizeof(struct hentry));
}

/* The generation a fresh entry starts at: different per heap (it comes
 * from the heap's salt), so a handle of another heap almost never matches
 * (1 in 2^32), and never 0. */
static uint32_t first_generation(const carve_heap *h)
{
    return (uint32_t)(mix64(h->salt ^ UINT64_C(0x5851f42d4c957f2d)) >> 32) | 1u;
}

/* Lays out cap entries at table block t, entries from `from` on free and
 * chained, ending the chain with `tail` (1 + index, or 0). */
static void table_chain_free(carve_heap *h, ref t, uint64_t from, uint64_t cap, uint64_t tail)
{
    for (uint64_t i = from; i < cap; i++) {
        struct hentry *e = (struct hentry *)(void *)at(h, t + HDR_SIZE + i * sizeof(struct hentry));
        e->block = 0;
        e->gen = first_generation(h);
        e->pins = (uint32_t)(i + 1u < cap ? i + 2u : tail);
    }
}

/* A table block of cap entries, or 0 with errno. */
static ref table_block_alloc(carve_heap *h, uint64_t cap)
{
    uint64_t g;
    if (cap > UINT32_MAX ||
        !heap_request_granules(h, (size_t)(cap * sizeof(struct hentry)), 0, &g)) {
        errno = ENOMEM;
        return 0;
    }
    ref t = heap_alloc_block(h, g, KIND_TABLE);
    if (t == 0 && errno == ENOMEM && heap_compact_for(h, g)) {
        t = heap_alloc_block(h, g, KIND_TABLE);
    }
    return t;
}

bool handles_table_create(carve_heap *h, uint64_t cap)
{
    ref t = table_block_alloc(h, cap);
    if (t == 0) {
        return false;
    }
    table_chain_free(h, t, 0, cap, 0);
    h->htable = t;
    h->hcap = cap;
    h->hfree = 1;
    return true;
}

/* Doubles a growing table: a new block, the entries copied, the new half
 * chained free, the old block freed.  Entries keep their indexes, so every
 * handle stays valid. */
static bool table_grow(carve_heap *h)
{
    uint64_t cap = h->hcap * 2u;
    ref t = table_block_alloc(h, cap);
    if (t == 0) {
        return false;
    }
    memcpy(at(h, t + HDR_SIZE), at(h, h->htable + HDR_SIZE),
           (size_t)(h->hcap * sizeof(struct hentry)));
    table_chain_free(h, t, h->hcap, cap, h->hfree);
    ref old = h->htable;
    h->hfree = h->hcap + 1u;
    h->htable = t;
    h->hcap = cap;
    hword w;
    if (block_read(h, old, &w)) {
        (void)heap_release_block(h, old, w);
    }
    return true;
}

/* Makes sure the table has a free entry: made, or grown, when it has none
 * and may (max_handles 0), compacting when that could make the room.
 * False with errno = ENOMEM when it is full and may not (or cannot) grow,
 * or EIO when its place fails its check. */
static bool table_make_room(carve_heap *h)
{
    if (h->htable == 0 && (h->max_handles != 0 || !handles_table_create(h, HANDLE_TABLE_FIRST))) {
        errno = ENOMEM;
        return false;
    }
    if (!table_in_bounds(h)) {
        errno = CARVE_ERRNO_CORRUPT;
        return false;
    }
    if (h->hfree == 0 && (h->max_handles != 0 || !table_grow(h))) {
        errno = ENOMEM;
        return false;
    }
    return true;
}

/* The index of a free entry, taken off the free chain (the table made or
 * grown first when it has none); UINT64_MAX with errno as table_make_room,
 * or EIO when the chain is damaged. */
static uint64_t entry_take(carve_heap *h)
{
    if (!table_make_room(h)) {
        return UINT64_MAX;
    }
    uint64_t idx = h->hfree - 1u;
    if (idx >= h->hcap || entry_at(h, idx)->block != 0) {
        errno = CARVE_ERRNO_CORRUPT;
        return UINT64_MAX;
    }
    h->hfree = entry_at(h, idx)->pins;
    return idx;
}

/* Puts entry idx back at the head of the free chain, retiring its handle
 * when it had been handed out (retire: the generation moves on). */
static void entry_put(carve_heap *h, uint64_t idx, bool retire)
{
    struct hentry *e = entry_at(h, idx);
    e->block = 0;
    if (retire) {
        e->gen = e->gen == UINT32_MAX ? 1u : e->gen + 1u; /* never 0 */
    }
    e->pins = (uint32_t)h->hfree;
    h->hfree = idx + 1u;
}

/* ---- handle blocks ---------------------------------------------------------------- */

static uint64_t trailer_of(const carve_heap *h, ref b, hword w)
{
    return load64(at(h, b + bytes_of(hdr_granules(w)) - HANDLE_TRAILER));
}

/* Writes the entry index into the last word of handle block b, wherever
 * its end is now (an allocation may hand out a little more than asked). */
static void trailer_set(carve_heap *h, ref b, uint64_t idx)
{
    store64(at(h, b + bytes_of(hdr_granules(block_header(h, b))) - HANDLE_TRAILER), idx);
}

static uint64_t handle_usable(hword w)
{
    return bytes_of(hdr_granules(w)) - HDR_SIZE - HANDLE_TRAILER;
}

struct hentry *handle_entry_of_block(const carve_heap *h, ref b, hword w)
{
    if (!table_in_bounds(h) || hdr_kind(w) != KIND_HANDLE) {
        return NULL;
    }
    uint64_t idx = trailer_of(h, b, w);
    if (idx >= h->hcap || entry_at(h, idx)->block != b) {
        return NULL;
    }
    return entry_at(h, idx);
}

unsigned handle_pins_of_block(const carve_heap *h, ref b, hword w)
{
    const struct hentry *e = handle_entry_of_block(h, b, w);
    return e ? e->pins : 0u;
}

/* The live entry and block a handle names, validated all the way: the
 * index is inside the table, the generation matches, and the block is a
 * handle block whose trailer names the entry back.  A status says why not
 * (a bad or stale handle is NOT_OWNED, as is any handle before the table
 * exists; a table whose place or size fails its check, or a damaged block,
 * CORRUPT). */
static int handle_resolve(const carve_heap *h, carve_handle hd, struct hentry **eo, hword *wo)
{
    uint64_t idx = (hd & UINT32_MAX) - 1u;
    if (hd == 0 || (hd & UINT32_MAX) == 0 || h->htable == 0) {
        return CARVE_ERR_NOT_OWNED;
    }
    if (!table_in_bounds(h)) {
        return CARVE_ERR_CORRUPT;
    }
    if (idx >= h->hcap) {
        return CARVE_ERR_NOT_OWNED;
    }
    struct hentry *e = entry_at(h, idx);
    if (e->block == 0 || e->gen != (uint32_t)(hd >> 32)) {
        return CARVE_ERR_NOT_OWNED;
    }
    hword w;
    if (!block_read(h, e->block, &w) || hdr_is_free(w) || hdr_kind(w) != KIND_HANDLE ||
        trailer_of(h, e->block, w) != idx) {
        return CARVE_ERR_CORRUPT;
    }
    *eo = e;
    *wo = w;
    return CARVE_OK;
}

static carve_handle handle_value(const struct hentry *e, uint64_t idx)
{
    return ((uint64_t)e->gen << 32) | (idx + 1u);
}

/* A HANDLE block of g granules; compacts and retries when that could help. */
static ref handle_block_alloc(carve_heap *h, uint64_t g)
{
    ref b = heap_alloc_block(h, g, KIND_HANDLE);
    if (b == 0 && errno == ENOMEM && heap_compact_for(h, g)) {
        b = heap_alloc_block(h, g, KIND_HANDLE);
    }
    return b;
}

void scramble_unlocked(carve_heap *h)
{
    if (!table_in_bounds(h)) {
        return;
    }
    int saved = errno; /* a block that finds no new place just stays */
    /* The moves are the heap's, not the user's: the allocation and the
     * free each makes are not counted, nor the peak of the moment when a
     * block is in both places. */
    uint64_t allocs = h->allocs;
    uint64_t frees = h->frees;
    uint64_t peak = h->peak_used_bytes;
    for (uint64_t idx = 0; idx < h->hcap; idx++) {
        struct hentry *e = entry_at(h, idx);
        hword w;
        if (e->block == 0 || e->pins != 0 || !block_read(h, e->block, &w) ||
            hdr_kind(w) != KIND_HANDLE) {
            continue;
        }
        ref b = e->block;
        uint64_t g = hdr_granules(w);
        /* Ask for a minimum block more, then split back to exactly g: a move
         * never changes a handle's usable size. */
        ref nb = heap_alloc_block(h, g + MIN_GRANULES, KIND_HANDLE);
        if (nb == 0) {
            continue;
        }
        heap_shrink_in_place(h, nb, block_header(h, nb), g);
        memcpy(block_payload(h, nb), block_payload(h, b), (size_t)handle_usable(w));
        trailer_set(h, nb, idx);
        e->block = nb;
        hword now; /* the allocation may have changed b's PREV_FREE */
        if (block_read(h, b, &now)) {
            (void)heap_release_block(h, b, now);
        }
    }
    h->allocs = allocs;
    h->frees = frees;
    h->peak_used_bytes = peak;
    errno = saved;
}

/* Takes back block b, allocated for a handle that then got no table entry:
 * it never was the user's, nor was the peak it made (peak: the one before). */
static void block_unmake(carve_heap *h, ref b, uint64_t peak)
{
    (void)heap_release_block(h, b, block_header(h, b));
    h->allocs--;
    h->frees--;
    h->peak_used_bytes = peak;
}

/* ---- the calls, unlocked ------------------------------------------------------------ */

static carve_handle halloc_unlocked(carve_heap *h, size_t size)
{
    uint64_t g;
    if (!heap_request_granules(h, size, HANDLE_TRAILER, &g)) {
        errno = ENOMEM;
        h->failed_allocs++;
        return 0;
    }
    if (h->htable != 0 && h->hfree == 0 && h->max_handles != 0) {
        errno = ENOMEM; /* the table is full and may not grow */
        h->failed_allocs++;
        return 0;
    }
    /* The block first, then the entry: if the table then cannot be made or
     * grow, the block goes back and nothing has changed.  But until its
     * entry names it the new block cannot move, so the compaction that
     * making the table may run flows around it, and it may split the free
     * space the table needed: then the other way round, the table first
     * (which stays made or grown if the block then finds no room). */
    uint64_t peak = h->peak_used_bytes;
    ref b = handle_block_alloc(h, g);
    uint64_t idx = b != 0 ? entry_take(h) : UINT64_MAX;
    if (b != 0 && idx == UINT64_MAX && errno == ENOMEM && h->max_handles == 0) {
        block_unmake(h, b, peak);
        b = table_make_room(h) ? handle_block_alloc(h, g) : 0;
        idx = b != 0 ? entry_take(h) : UINT64_MAX;
    }
    if (idx == UINT64_MAX) {
        if (b != 0) {
            int err = errno;
            block_unmake(h, b, peak);
            errno = err;
        }
        heap_count_failure(h);
        return 0;
    }
    trailer_set(h, b, idx);
    struct hentry *e = entry_at(h, idx);
    e->block = b;
    e->pins = 0;
    h->live_handles++;
    return handle_value(e, idx);
}

/* The full, validating pin: the path every call takes when the fast check
 * below refuses (a bad, stale or free handle, a pin count at its limit, a
 * damaged table), so that it can say why; and the reference the fast path
 * must agree with on a sound heap. */
static CARVE_NOINLINE void *pin_unlocked(carve_heap *h, carve_handle hd)
{
    struct hentry *e;
    hword w;
    int st = handle_resolve(h, hd, &e, &w);
    if (st != CARVE_OK) {
        errno = heap_errno_of(st);
        return NULL;
    }
    if (e->pins == UINT32_MAX) {
        errno = EOVERFLOW;
        return NULL;
    }
    if (e->pins++ == 0) {
        h->pinned_handles++;
    }
    return block_payload(h, e->block);
}

static CARVE_NOINLINE int unpin_unlocked(carve_heap *h, carve_handle hd)
{
    struct hentry *e;
    hword w;
    int st = handle_resolve(h, hd, &e, &w);
    if (st != CARVE_OK) {
        return st;
    }
    if (e->pins == 0) {
        return CARVE_ERR_INVALID;
    }
    if (--e->pins == 0) {
        h->pinned_handles--;
    }
    return CARVE_OK;
}

/* ---- pins: the fast path ----------------------------------------------------------
 *
 * pin + unpin is the access path of every handle block, so it is kept to
 * what the guarantees need: on a heap without a lock, one flags test, the
 * table's capacity and offset and the arena's end (the bound that keeps a
 * damaged control block from sending a read outside the buffer), then the
 * entry's two words, checked together and updated with one store.  The
 * handle block's own header is not read: on a sound heap the entry's
 * generation and block are all a handle needs (carve_check and the slow
 * path still verify the block back-references its entry).  Whatever the
 * fast check refuses goes to the full, validating pin_unlocked /
 * unpin_unlocked, which tell a bad handle from a damaged one. */

/* An entry's generation and pin count, which sit side by side, read and
 * written as one native word (memcpy: a character access, so it aliases the
 * struct fields the slow paths use; one load or store once compiled). */
#define HENTRY_STATE offsetof(struct hentry, gen)
_Static_assert(offsetof(struct hentry, pins) == offsetof(struct hentry, gen) + 4u &&
                   sizeof(struct hentry) == 16u,
               "gen and pins form the entry's second word");
#if defined(__BYTE_ORDER__) && defined(__ORDER_BIG_ENDIAN__) && \
    __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define HSTATE_ONE_PIN UINT64_C(1) /* gen in the high half, pins in the low */
#else
#define HSTATE_ONE_PIN (UINT64_C(1) << 32) /* gen in the low half, pins in the high */
#endif

/* The state word as pins | (gen ^ the handle's generation) << 32, whatever
 * the byte order: the handle's generation matches and the entry has p pins
 * exactly when the result is p (< 2^32), so one comparison checks both. */
CARVE_INLINE uint64_t hstate_key(uint64_t state, carve_handle hd)
{
#if defined(__BYTE_ORDER__) && defined(__ORDER_BIG_ENDIAN__) && \
    __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    return state ^ (hd & ~(uint64_t)UINT32_MAX);
#else
    uint64_t x = state ^ (hd >> 32);
    return (x >> 32) | (x << 32);
#endif
}

/* The offset of the entry hd's index names, or 0 when the index is not
 * below the table's capacity (0 before the table exists; handle index 0
 * wraps to a huge idx) or the entry would not lie inside the arena.  The
 * last test costs no load the caller does not make anyway, and holds even
 * when htable or hcap were overwritten. */
CARVE_INLINE ref entry_offset(const carve_heap *h, carve_handle hd)
{
    uint64_t idx = (hd & UINT32_MAX) - 1u;
    if (CARVE_UNLIKELY(idx >= h->hcap)) {
        return 0;
    }
    ref off = h->htable + HDR_SIZE + idx * sizeof(struct hentry);
    if (CARVE_UNLIKELY(off > h->arena_end - sizeof(struct hentry))) {
        return 0;
    }
    return off;
}

/* Pins the block hd names when its entry is live, of hd's generation and
 * below the pin limit, and returns its payload; NULL (nothing changed)
 * otherwise.  On a sound heap it returns exactly what pin_unlocked would. */
CARVE_INLINE void *pin_fast(carve_heap *h, carve_handle hd)
{
    ref off = entry_offset(h, hd);
    if (CARVE_UNLIKELY(off == 0)) {
        return NULL;
    }
    unsigned char *e = at(h, off);
    uint64_t state = load64(e + HENTRY_STATE);
    ref b = load64(e);
    uint64_t pins = hstate_key(state, hd);
    /* b in [1, arena_end): a live entry (a free one has block 0), and the
     * address handed out lies inside the buffer whatever the entry holds. */
    if (CARVE_UNLIKELY(pins >= UINT32_MAX || b - 1u >= h->arena_end - 1u)) {
        return NULL;
    }
    store64(e + HENTRY_STATE, state + HSTATE_ONE_PIN);
    if (pins == 0) {
        h->pinned_handles++;
    }
    return at(h, b + HDR_SIZE);
}

/* Ends one pin of the block hd names when its entry is live, of hd's
 * generation and pinned; false (nothing changed) otherwise. */
CARVE_INLINE bool unpin_fast(carve_heap *h, carve_handle hd)
{
    ref off = entry_offset(h, hd);
    if (CARVE_UNLIKELY(off == 0)) {
        return false;
    }
    unsigned char *e = at(h, off);
    uint64_t state = load64(e + HENTRY_STATE);
    uint64_t pins = hstate_key(state, hd);
    /* pins in [1, 2^32 - 1]; and a live entry: a free one keeps its free
     * chain link where the pin count would be. */
    if (CARVE_UNLIKELY(pins - 1u >= UINT32_MAX || load64(e) == 0)) {
        return false;
    }
    store64(e + HENTRY_STATE, state - HSTATE_ONE_PIN);
    if (pins == 1) {
        h->pinned_handles--;
    }
    return true;
}

/* The locked heaps' pin and unpin: the same fast check under the lock. */
static CARVE_OUTLINE void *pin_locked(carve_heap *h, carve_handle hd)
{
    heap_enter(h);
    void *p = pin_fast(h, hd);
    if (p == NULL) {
        p = pin_unlocked(h, hd);
    }
    heap_leave(h);
    return p;
}

static CARVE_OUTLINE int unpin_locked(carve_heap *h, carve_handle hd)
{
    heap_enter(h);
    int st = unpin_fast(h, hd) ? CARVE_OK : unpin_unlocked(h, hd);
    heap_leave(h);
    return st;
}

static CARVE_NOINLINE void *pin_refused(void)
{
    errno = EINVAL;
    return NULL;
}

static int hfree_unlocked(carve_heap *h, carve_handle hd)
{
    struct hentry *e;
    hword w;
    int st = handle_resolve(h, hd, &e, &w);
    if (st != CARVE_OK) {
        return st;
    }
    if (e->pins != 0) {
        return CARVE_ERR_PINNED;
    }
    st = heap_release_block(h, e->block, w);
    if (st != CARVE_OK) {
        return st;
    }
    entry_put(h, (hd & UINT32_MAX) - 1u, true);
    h->live_handles--;
    return CARVE_OK;
}

/* Grows entry idx's block (unpinned, header w, its neighbourhood checked;
 * it cannot grow in place now) to g granules: into a new block, or, when
 * no free block is that large but the free bytes would hold the growth,
 * after a compaction, which slides the block down next to the free space
 * after it: in place, else into a new block.  *moved says whether it moved
 * to a new block (an allocation happened). */
static int hresize_grow_elsewhere(carve_heap *h, uint64_t idx, hword w, uint64_t g, bool *moved)
{
    ref nb = heap_alloc_block(h, g, KIND_HANDLE);
    if (nb == 0 && errno == ENOMEM && heap_compact_for(h, g - hdr_granules(w))) {
        /* The compaction may have moved the block and the table: read
         * both again through the table. */
        ref b = entry_at(h, idx)->block;
        if (!block_read(h, b, &w) || !heap_release_would_succeed(h, b, w)) {
            return CARVE_ERR_CORRUPT;
        }
        if (heap_grow_in_place(h, b, &w, g)) {
            trailer_set(h, b, idx);
            return CARVE_OK;
        }
        nb = heap_alloc_block(h, g, KIND_HANDLE);
    }
    if (nb == 0) {
        return errno == ENOMEM ? CARVE_ERR_NOMEM : CARVE_ERR_CORRUPT;
    }
    struct hentry *e = entry_at(h, idx);
    ref b = e->block;
    memcpy(block_payload(h, nb), block_payload(h, b), (size_t)handle_usable(w));
    trailer_set(h, nb, idx);
    hword now; /* the allocation may have changed b's PREV_FREE */
    if (block_read(h, b, &now)) {
        /* b's neighbourhood was checked, and only the heap's own writes
         * (the allocation, a compaction) touched it since. */
        (void)heap_release_block(h, b, now);
    }
    e->block = nb;
    *moved = true;
    return CARVE_OK;
}

/* *moved says whether the block had to move (an allocation happened). */
static int hresize_unlocked(carve_heap *h, carve_handle hd, size_t size, bool *moved)
{
    *moved = false;
    struct hentry *e;
    hword w;
    int st = handle_resolve(h, hd, &e, &w);
    if (st != CARVE_OK) {
        return st;
    }
    uint64_t idx = (hd & UINT32_MAX) - 1u;
    uint64_t want;
    if (!heap_request_granules(h, size, HANDLE_TRAILER, &want)) {
        return CARVE_ERR_NOMEM;
    }
    uint64_t g = hdr_granules(w);
    if (want <= g) {
        heap_shrink_in_place(h, e->block, w, want);
    } else if (!heap_grow_in_place(h, e->block, &w, want)) {
        if (e->pins != 0) {
            return CARVE_ERR_PINNED;
        }
        /* The move frees the old block last: damage around it is reported
         * now, before anything changes (see carve_realloc). */
        if (!heap_release_would_succeed(h, e->block, w)) {
            return CARVE_ERR_CORRUPT;
        }
        return hresize_grow_elsewhere(h, idx, w, want, moved);
    }
    /* In place: the trailer moves to the block's new end. */
    trailer_set(h, e->block, idx);
    return CARVE_OK;
}

/* ---- public entry points --------------------------------------------------------------- */

CARVE_EXPORT carve_handle carve_halloc(carve_heap *h, size_t size)
{
    if (!h || size == 0) {
        errno = EINVAL;
        return 0;
    }
    heap_enter(h);
    carve_handle hd = halloc_unlocked(h, size);
    if (hd && (h->flags & CARVE_SCRAMBLE)) {
        scramble_unlocked(h);
    }
    heap_debug_check(h);
    heap_leave(h);
    return hd;
}

/* Without a lock: one flags test, then the fast path; anything it refuses
 * takes the full check (tail calls: the fast path needs no stack frame). */
CARVE_EXPORT void *carve_pin(carve_heap *h, carve_handle hd)
{
    if (CARVE_UNLIKELY(!h)) {
        return pin_refused();
    }
    if (CARVE_UNLIKELY(h->flags & HEAP_LOCKED)) {
        return pin_locked(h, hd);
    }
    void *p = pin_fast(h, hd);
    if (CARVE_LIKELY(p != NULL)) {
        return p;
    }
    return pin_unlocked(h, hd);
}

CARVE_EXPORT int carve_unpin(carve_heap *h, carve_handle hd)
{
    if (CARVE_UNLIKELY(!h)) {
        return CARVE_ERR_INVALID;
    }
    if (CARVE_UNLIKELY(h->flags & HEAP_LOCKED)) {
        return unpin_locked(h, hd);
    }
    if (CARVE_LIKELY(unpin_fast(h, hd))) {
        return CARVE_OK;
    }
    return unpin_unlocked(h, hd);
}

CARVE_EXPORT int carve_hfree(carve_heap *h, carve_handle hd)
{
    if (!h) {
        return CARVE_ERR_INVALID;
    }
    heap_enter(h);
    int st = hfree_unlocked(h, hd);
    heap_debug_check(h);
    heap_leave(h);
    return st;
}

CARVE_EXPORT int carve_hresize(carve_heap *h, carve_handle hd, size_t size)
{
    if (!h || size == 0) {
        return CARVE_ERR_INVALID;
    }
    heap_enter(h);
    bool moved;
    int st = hresize_unlocked(h, hd, size, &moved);
    if (st == CARVE_ERR_NOMEM) {
        h->failed_allocs++; /* a request that found no room, as carve_realloc's */
    }
    if (moved && (h->flags & CARVE_SCRAMBLE)) {
        scramble_unlocked(h); /* it allocated: a shrink or an in-place grow does not */
    }
    heap_debug_check(h);
    heap_leave(h);
    return st;
}

CARVE_EXPORT size_t carve_hsize(carve_heap *h, carve_handle hd)
{
    if (!h) {
        return 0;
    }
    heap_enter(h);
    struct hentry *e;
    hword w;
    size_t n = handle_resolve(h, hd, &e, &w) == CARVE_OK ? (size_t)handle_usable(w) : 0;
    heap_leave(h);
    return n;
}

/* ---- diagnostics ---------------------------------------------------------------------- */

bool handles_are_sound(const carve_heap *h, uint64_t handle_blocks, uint64_t table_blocks)
{
    if (h->htable == 0) {
        return handle_blocks == 0 && table_blocks == 0 && h->live_handles == 0 &&
               h->pinned_handles == 0 && h->hcap == 0 && h->hfree == 0;
    }
    hword w;
    if (table_blocks != 1 || !table_in_bounds(h) || !block_read(h, h->htable, &w) ||
        hdr_kind(w) != KIND_TABLE || hdr_is_free(w)) {
        return false;
    }
    uint64_t live = 0;
    uint64_t pinned = 0;
    for (uint64_t i = 0; i < h->hcap; i++) {
        const struct hentry *e = entry_at(h, i);
        if (e->block == 0) {
            continue;
        }
        hword bw;
        if (!block_read(h, e->block, &bw) || hdr_kind(bw) != KIND_HANDLE ||
            trailer_of(h, e->block, bw) != i || e->gen == 0) {
            return false;
        }
        live++;
        pinned += e->pins ? 1u : 0u;
    }
    uint64_t chained = 0;
    for (uint64_t f = h->hfree; f != 0; f = entry_at(h, f - 1u)->pins) {
        if (f > h->hcap || entry_at(h, f - 1u)->block != 0 || ++chained > h->hcap) {
            return false;
        }
    }
    return live == handle_blocks && live == h->live_handles && pinned == h->pinned_handles &&
           chained == h->hcap - live;
}
