/*
 * small.h: runs of equal-size slots for small requests.
 *
 * Real programs allocate mostly small blocks, and small blocks are where a
 * per-block header costs the most (a 16-byte request with an 8-byte header
 * takes 32 bytes).  So requests up to SMALL_MAX bytes are served from runs:
 * a run is one live general block of exactly 8 KiB that starts 8 bytes into
 * an 8 KiB page (pages are aligned relative to the heap's start), holding a
 * small header, a bitmap of live slots, and slots of one size class (16, 32,
 * ... 256 bytes).  A slot has no header at all: its run is found from the
 * page, which a bitmap of pages in the control block marks as a run.
 *
 *   run payload:  [tag | class nfree hint | next | prev][live bitmap][slots ...]
 *
 * Per class, allocation takes a slot from the class's current run; runs
 * that have free slots and are not current wait in the class's partial
 * list; full runs are in no list.  A run that becomes empty goes back to
 * the general heap at once, except the current run, which is retained (so a
 * program that allocates and frees one object does not thrash) and handed
 * back whenever the general heap runs short or statistics are read, so the
 * contract's promises about largest_free stay exact.
 *
 * Fragments.  A free general block of at most FRAGMENT_GRANULES (272
 * bytes) fits no general request but 257..264-byte ones, so without small
 * requests it would be dead space until a neighbour is freed; splitting
 * leaves many.  A small request takes one only when its general block is
 * exactly the fragment's size (a fragment is never split: that would only
 * leave a smaller one), and then:
 *   - at once, ahead of the current run, when that costs no more bytes than
 *     a slot (a request whose size is 1..8 more than a multiple of 16: its
 *     header fits in the slot's rounding); small_take() declines to hand
 *     out a slot while such a fragment exists, so the request reaches the
 *     heap (thread caches refill through small_take_many, which declines
 *     the same way), unless it has
 *     declined RUN_DECLINE_LIMIT times in a row for nothing (requests the
 *     fragment did not fit) since the class last took a fragment;
 *   - otherwise (16 bytes more than a slot) only when the current run is
 *     used up, before a partial run or a new one.
 * With these rules W4 fill (bench/README.md) went from 0.977 to 0.981 of
 * the buffer (GOOD_FIT), where any fitting fragment before a new run gave
 * 0.977, and no fragments at all 0.968.  When no run can be made (the general heap has no aligned
 * 8 KiB window), the request falls back to the general heap, so runs never
 * make an allocation fail that the general heap could serve.
 *
 * Invariants (checked by carve_check):
 *   - a page's bit is set iff a run's payload starts there;
 *   - each run's tag matches its offset and class;
 *   - nfree = nslots - popcount(live bitmap); bitmap bits past nslots are set;
 *   - no word of the live bitmap before hint has a free bit;
 *   - a run that is neither current nor in use by its owner (own) is in a
 *     partial list iff 0 < nfree: its owner's when it has one, else the
 *     class's;  no run other than a current or own one is empty;  no run
 *     is both current and own;  a run in the class's list has no owner.
 *
 * Runs of a thread's own.  With the built-in lock, each thread cache takes
 * its slots from runs that belong to it (owner): the one in use (own), and
 * its own partial list of those with free slots, which its flushes fill
 * (a thread mostly frees what it allocated).  So two threads' blocks do not
 * share runs, and their cores do not fight over the same cache lines (the
 * slots themselves, run headers, bitmaps).  A cache whose runs are used up
 * takes one from the class's list, or a new one.  When a cache is emptied
 * (a drain), its runs lose their owner and go to the class's list; a full
 * run keeps its owner number until a slot of it is freed, and then goes to
 * whichever cache has that number now (or the class's list).
 */
#ifndef CARVE_SMALL_H
#define CARVE_SMALL_H

#include "block.h"

#include <stdatomic.h>

#define RUN_SHIFT          13u
#define RUN_SIZE           (1u << RUN_SHIFT)
#define RUN_BLOCK_GRANULES (RUN_SIZE >> GRANULE_SHIFT)
/* Where a run's header sits in its page: its general block starts 8 bytes
 * into the page (headers are 8 mod 16), so the payload starts at 16 and the
 * block's last 8 bytes spill into the next page.  Runs in consecutive pages
 * therefore tile with no gap, and every slot still starts inside its page. */
#define RUN_HEAD_OFFSET 16u

struct run {
    uint64_t tag;     /* run_tag(): validates the header */
    uint16_t cls;     /* slot size = 16 * (cls + 1); the geometry tables below */
    uint16_t nfree;   /* slots not live */
    uint8_t hint;     /* no live-bitmap word before this one has a free bit */
    uint8_t declines; /* when current: the class's refusals for nothing in a
                         row (see "Fragments" above) */
    uint8_t owner;    /* 1 + the index of the thread cache it belongs to, or 0
                         (see "Runs of a thread's own" below) */
    uint8_t own;      /* 1: its owner's run in use (its slots are taken) */
    ref next, prev;   /* the partial list it is in: its owner's, or the class's */
    uint64_t live[];  /* bit i set: slot i is live (bits past the last slot are set) */
};

/* Geometry of a run of each class: the header and bitmap come first,
 * rounded up to a granule, then as many slots as fit in RUN_SIZE.  What
 * locating a slot needs is in one 8-byte entry per class, so a free reads
 * one line of tables. */
struct run_geometry {
    uint32_t mult;   /* ceil(2^32 / slot size): see slot_at() */
    uint16_t slot0;  /* offset of slot 0 from the run header */
    uint16_t nslots; /* slots in the run */
};
extern const struct run_geometry run_geom[SMALL_CLASSES];
extern const uint8_t run_words[SMALL_CLASSES];

CARVE_INLINE unsigned small_class_of(size_t size)
{
    return (unsigned)((size - 1u) >> GRANULE_SHIFT);
}

CARVE_INLINE uint64_t slot_size_of(unsigned cls)
{
    return (uint64_t)(cls + 1u) << GRANULE_SHIFT;
}

CARVE_INLINE struct run *run_at(const carve_heap *h, ref r)
{
    return (struct run *)(void *)at(h, r);
}

/* A run's tag binds its header to its offset and class; everything else
 * about its shape comes from the class's tables. */
CARVE_INLINE uint64_t run_tag(const carve_heap *h, ref r, unsigned cls)
{
    return r ^ h->salt ^ ((uint64_t)cls << 56);
}

/* Whether r can be a run header's offset at all: in the arena, at its place
 * in a page.  Offsets from the control block (current runs, partial lists)
 * are checked with this before anything at them is read. */
CARVE_INLINE bool run_offset_plausible(const carve_heap *h, ref r)
{
    return r > h->arena_begin && r < h->arena_end && (r & (RUN_SIZE - 1u)) == RUN_HEAD_OFFSET;
}

/* Whether the run header at r (an offset known to be plausible) is a run of
 * class cls: its tag binds it to its offset and class. */
CARVE_INLINE bool run_is_valid(const carve_heap *h, ref r, unsigned cls)
{
    return cls < SMALL_CLASSES && run_at(h, r)->tag == run_tag(h, r, cls);
}

/* Both: r is a trustworthy run of class cls. */
CARVE_INLINE bool run_is_trusted(const carve_heap *h, ref r, unsigned cls)
{
    return run_offset_plausible(h, r) && run_is_valid(h, r, cls);
}

/* ---- words read without the heap's lock --------------------------------------
 * With thread caches (threads.h) a free first looks at the page map and the
 * slot's live bit without taking the heap's lock.  For a slot its caller
 * owns, its own bit cannot change meanwhile, but other bits of the same
 * word can (other threads, under the lock), so every write of these words
 * is an atomic store and the unlocked reads are atomic loads: relaxed,
 * plain moves on the machines we know.  Reads under the lock stay plain. */
CARVE_INLINE uint64_t word_load_relaxed(const uint64_t *p)
{
    return atomic_load_explicit((const _Atomic uint64_t *)p, memory_order_relaxed);
}

/* p is written, through its atomic view. */
CARVE_INLINE void word_store(uint64_t *p, uint64_t v) /* NOLINT(readability-non-const-parameter) */
{
    atomic_store_explicit((_Atomic uint64_t *)p, v, memory_order_relaxed);
}

CARVE_INLINE uint64_t *pagemap_word(const carve_heap *h, uint64_t page)
{
    return (uint64_t *)(void *)at(h, h->pagemap + (page >> 6) * 8u);
}

/* Whether the page holding offset off is a run (its block starts in it). */
CARVE_INLINE bool page_is_run(const carve_heap *h, ref off)
{
    uint64_t page = off >> RUN_SHIFT;
    return (word_load_relaxed(pagemap_word(h, page)) >> (page & 63u)) & 1u;
}

/* Whether p, a pointer a caller handed in, lies in a run of a heap known
 * to have runs (one with caches: HEAP_TCACHE implies runs_on, which
 * carve_attach's validation checks). */
CARVE_INLINE bool small_owns_with_runs(const carve_heap *h, const void *p)
{
    /* One unsigned compare: below the heap wraps around to a huge offset.
     * Offsets below the arena need no test of their own: the page map
     * covers them, and no run page starts before the arena (a run's block
     * header precedes its page), so their bits are clear. */
    uint64_t off = (uint64_t)((uintptr_t)p - (uintptr_t)h);
    return off < h->arena_end && page_is_run(h, off);
}

/* Whether p, a pointer a caller handed in, lies in a run of this heap. */
CARVE_INLINE bool small_owns(const carve_heap *h, const void *p)
{
    return h->runs_on && small_owns_with_runs(h, p);
}

/* Whether rel, the byte offset of a pointer in run r's page from slot 0
 * of r (class cls), is the start of one of its slots; if so its index is
 * in *i.  One multiply answers both the division and the remainder: with d
 * the slot size and m = ceil(2^32 / d) = (2^32 + e) / d (0 <= e < d),
 * rel = q * d + t gives
 *   rel * m = q * 2^32 + t * 2^32 / d + rel * e / d,
 * where the last term is below rel < RUN_SIZE.  So the low 32 bits are
 * below RUN_SIZE exactly when t = 0 (else they are at least
 * 2^32 / 256 = 2^24), and the bits above them are q.  A pointer in the
 * run's header is up to 112 bytes before slot 0: rel wraps around to
 * 2^32 - k (k <= 112), and as k * m < 7 * 2^32, q is over m - 8 >= 2^24 - 8, past every
 * run's last slot.  So the slot count test rules it out too. */
CARVE_INLINE bool slot_at(uint64_t rel, uint64_t cls, uint64_t *i)
{
    const struct run_geometry g = run_geom[cls];
    uint64_t x = (rel & UINT32_MAX) * g.mult;
    *i = x >> 32;
    return (x & UINT32_MAX) < RUN_SIZE && *i < g.nslots;
}

CARVE_INLINE void count_slot(carve_heap *h, unsigned cls, bool allocated)
{
    if (allocated) {
        h->slot_allocs++;
        h->used_public += slot_size_of(cls);
        if (h->used_public > h->peak_used_bytes) {
            h->peak_used_bytes = h->used_public;
        }
    } else {
        h->slot_frees++;
        h->used_public -= slot_size_of(cls);
    }
}

/* ---- small.c: the slow paths -------------------------------------------------- */

/* Makes a run with a free slot current for cls and returns it; 0 when none
 * can be had. */
ref small_refill(carve_heap *h, unsigned cls);
/* After a free made run r of cls go from full to one free slot, or empty. */
void small_free_transition(carve_heap *h, ref r, unsigned cls);

/* ---- the fast paths ---------------------------------------------------------------- */

/* The largest fragment, in granules: the general block of a SMALL_MAX
 * request. */
#define FRAGMENT_GRANULES ((SMALL_MAX + HDR_SIZE + GRANULE - 1u) >> GRANULE_SHIFT)

/* Whether the free index holds a block of exactly cls + 1 granules: the
 * general block of a request of class cls whose size is 1..8 more than a
 * multiple of 16, which then costs no more than its slot.  (For class 0
 * that is one granule, never a block.)  Bits 0..31 of the class bitmaps are
 * the exact classes of 0..31 granules. */
CARVE_INLINE bool fragment_as_cheap_as_slot(const carve_heap *h, unsigned cls)
{
    uint32_t exact = (uint32_t)h->sl_bitmap[0] | ((uint32_t)h->sl_bitmap[1] << SL_COUNT);
    return (exact >> (cls + 1u)) & 1u;
}

/* How many times in a row a class may send a request to the heap for a
 * fragment that the request then cannot use (its size is in the other half
 * of the class).  This bounds what a program pays whose requests of a class
 * all have such sizes: without it, a fragment nobody takes would send every
 * one of them past the thread cache, one at a time. */
#define RUN_DECLINE_LIMIT 16u

/* Whether run (the current run of cls, trusted, with a free slot) declines
 * to hand out a slot: a fragment as cheap as a slot is free and the class
 * has not yet declined RUN_DECLINE_LIMIT times in a row for nothing. */
CARVE_INLINE bool run_declines(const carve_heap *h, const struct run *run, unsigned cls)
{
    return CARVE_UNLIKELY(fragment_as_cheap_as_slot(h, cls)) && run->declines < RUN_DECLINE_LIMIT;
}

/* A slot of class cls from the class's current run, not yet counted as the
 * user's; NULL when it has none (the caller then refills or falls back), or
 * when may_decline and the run declines (run_declines): the caller then
 * goes to the heap, which knows the request's size (see "Fragments"). */
CARVE_INLINE void *small_take_slot(carve_heap *h, unsigned cls, bool may_decline)
{
    ref r = h->small[cls].current;
    if (CARVE_UNLIKELY(!run_is_trusted(h, r, cls) || run_at(h, r)->nfree == 0)) {
        return NULL; /* none, used up, or damaged (carve_check reports it) */
    }
    struct run *run = run_at(h, r);
    if (may_decline && run_declines(h, run, cls)) {
        return NULL;
    }
    unsigned words = run_words[cls];
    unsigned w = run->hint;
    while (w < words && run->live[w] == ~UINT64_C(0)) {
        w++;
    }
    if (CARVE_UNLIKELY(w >= words)) {
        return NULL; /* nfree disagrees with the bitmap: damaged; carve_check says so */
    }
    unsigned bit = lsb64(~run->live[w]);
    uint64_t i = (uint64_t)w * 64u + bit;
    if (CARVE_UNLIKELY(i >= run_geom[cls].nslots)) {
        return NULL; /* a cleared bit past the last slot: damaged */
    }
    word_store(&run->live[w], run->live[w] | (UINT64_C(1) << bit));
    run->hint = (uint8_t)w;
    run->nfree--;
    return at(h, r + run_geom[cls].slot0 + i * slot_size_of(cls));
}

/* What a slot sitting in a thread's or the solo cache (threads.h) holds
 * in its first word. */
CARVE_INLINE uint64_t cached_slot_mark(const carve_heap *h, ref s)
{
    return h->salt ^ (s * UINT64_C(0x9e3779b97f4a7c15));
}

/* Whether the slot at offset s carries that mark: it sits in a cache,
 * unless a write after free changed its first word. */
CARVE_INLINE bool slot_is_marked(const carve_heap *h, ref s)
{
    return load64(at(h, s)) == cached_slot_mark(h, s);
}

/* Up to n slots of class cls from the class's current run (offsets into
 * out, in address order), for a cache: each gets the cached mark before
 * its live bit is set (a release store), so a free that reads the bit
 * without the lock and finds it set also finds the mark.  Not yet counted
 * as the user's: small_take n
 * times, but each bitmap word is read and written once.  Returns how many
 * (0 as small_take's NULL, including when the run declines). */
unsigned small_take_many(carve_heap *h, unsigned cls, ref *out, unsigned n);

/* ---- runs of a thread's own (threads.c; under the heap's lock) ----------------------- */

/* The same as small_take_many from run r (trusted): never declines. */
unsigned small_take_from(carve_heap *h, ref r, unsigned cls, ref *out, unsigned n);

/* The partial list head of thread cache k (0-based) for class cls, or NULL
 * when record k is not in use (threads.c). */
ref *tcache_partial_head(carve_heap *h, uint64_t k, unsigned cls);

/* Whether r is the run in use of owner (1 + cache index) for class cls. */
bool small_own_is_valid(const carve_heap *h, ref r, unsigned cls, unsigned owner);

/* The next run for owner (whose partial list is *mine) to use: the head of
 * its list, else of the class's list, else a new run; 0 when none. */
ref small_own_next(carve_heap *h, unsigned cls, unsigned owner, ref *mine);

/* Run r (small_own_is_valid) stops being in use: into *mine with free
 * slots (NULL: it loses its owner and goes to the class's list), back to
 * the general heap when empty, in no list when full. */
void small_own_done(carve_heap *h, ref r, unsigned cls, ref *mine);

/* Every run of list *mine loses its owner and goes to the class's list. */
void small_own_release(carve_heap *h, unsigned cls, ref *mine);

/* Whether owner's list from head is sound (each run trusted, of the class,
 * owner's, not in use, with free slots, linked both ways); adds its length
 * to *count. */
bool small_own_list_is_sound(const carve_heap *h, unsigned cls, ref head, unsigned owner,
                             uint64_t *count);

/* A slot that may be declined: how thread caches and small requests take
 * slots. */
CARVE_INLINE void *small_take(carve_heap *h, unsigned cls)
{
    return small_take_slot(h, cls, true);
}

/* A slot even while a fragment would serve part of the class. */
CARVE_INLINE void *small_take_any(carve_heap *h, unsigned cls)
{
    return small_take_slot(h, cls, false);
}

/* Whether small_take declines for class cls now. */
CARVE_INLINE bool small_declines(const carve_heap *h, unsigned cls)
{
    ref r = h->small[cls].current;
    return run_is_trusted(h, r, cls) && run_at(h, r)->nfree != 0 &&
           run_declines(h, run_at(h, r), cls);
}

/* What became of a request of class cls that small_take declined: wasted
 * when it could not use the fragment after all.  The count belongs to the
 * class (small_refill carries it to the next current run); only a
 * fragment taken resets it. */
CARVE_INLINE void small_note_decline(carve_heap *h, unsigned cls, bool wasted)
{
    ref r = h->small[cls].current;
    if (run_is_trusted(h, r, cls)) {
        struct run *run = run_at(h, r);
        run->declines = wasted ? (uint8_t)(run->declines + 1u) : 0u;
    }
}

/* Slot p of class cls, just taken from its run, handed to the user.  In a
 * heap with caches it may still carry the mark of a cache it sat in before
 * a drain (threads.c, give_back_many): wiped, or a free of it, unwritten,
 * would look cached and empty every cache to find out. */
CARVE_INLINE void *slot_to_user(carve_heap *h, unsigned cls, void *p)
{
    if (h->flags & HEAP_TCACHE) {
        store64(p, 0);
    }
    count_slot(h, cls, true);
    return p;
}

/* A slot for size bytes (1..SMALL_MAX) from small_take (any: from
 * small_take_any), counted as the user's; NULL as they return it. */
CARVE_INLINE void *small_alloc(carve_heap *h, size_t size)
{
    unsigned cls = small_class_of(size);
    void *p = small_take(h, cls);
    return CARVE_LIKELY(p != NULL) ? slot_to_user(h, cls, p) : NULL;
}

CARVE_INLINE void *small_alloc_any(carve_heap *h, size_t size)
{
    unsigned cls = small_class_of(size);
    void *p = small_take_any(h, cls);
    return p != NULL ? slot_to_user(h, cls, p) : NULL;
}

/* Where a slot pointer lies: its run, its index there and the run's class. */
struct slot_loc {
    ref run;
    uint64_t index;
    unsigned cls;
};

/* The class the header of run r (an offset known to be plausible) names,
 * through its tag alone: the tag is r ^ salt ^ cls << 56, so with r and
 * the salt taken out only the class may be left, below SMALL_CLASSES.
 * false when anything else is (a damaged header, or no run at all).  The
 * mask is written out rather than checked through run_tag(): that form
 * costs the small free path a register spill (4.5 instructions a W1 step). */
CARVE_INLINE bool run_class_from_tag(const carve_heap *h, ref r, uint64_t *cls)
{
    uint64_t x = run_at(h, r)->tag ^ r ^ h->salt;
    /* Four bits of class: every one of them names a class. */
    _Static_assert(SMALL_CLASSES == 16u, "the class mask below keeps four bits");
    if (CARVE_UNLIKELY((x & ~(UINT64_C(0xf) << 56)) != 0)) {
        return false;
    }
    *cls = x >> 56;
    return true;
}

/* Where p lies (small_owns(h, p) holds); a status when p is not a slot's
 * start or the run's header fails its check.  The class comes from the
 * tag (run_class_from_tag), which carve_check holds equal to the header's
 * cls field. */
CARVE_INLINE int small_locate(const carve_heap *h, const void *p, struct slot_loc *loc)
{
    ref off = offset_of(h, p);
    ref r = (off & ~(ref)(RUN_SIZE - 1u)) + RUN_HEAD_OFFSET;
    uint64_t cls;
    if (CARVE_UNLIKELY(!run_class_from_tag(h, r, &cls))) {
        return CARVE_ERR_CORRUPT;
    }
    if (CARVE_UNLIKELY(!slot_at(off - r - run_geom[cls].slot0, cls, &loc->index))) {
        return CARVE_ERR_NOT_OWNED;
    }
    loc->run = r;
    loc->cls = (unsigned)cls;
    return CARVE_OK;
}

CARVE_INLINE bool slot_is_live(const struct run *run, uint64_t i)
{
    return (run->live[i / 64u] >> (i % 64u)) & 1u;
}

/* Clears live slot i of run r (of class cls), not counting it as a user's
 * free (a thread cache hands slots back this way). */
CARVE_INLINE void small_put(carve_heap *h, ref r, uint64_t i, unsigned cls)
{
    struct run *run = run_at(h, r);
    unsigned w = (unsigned)(i / 64u);
    word_store(&run->live[w], run->live[w] & ~(UINT64_C(1) << (i % 64u)));
    if (w < run->hint) {
        run->hint = (uint8_t)w;
    }
    unsigned nfree = ++run->nfree;
    if (CARVE_UNLIKELY(nfree == 1u || nfree == run_geom[cls].nslots)) {
        small_free_transition(h, r, cls);
    }
}

/* Frees a slot in a run (small_owns(h, p) holds): CARVE_OK,
 * CARVE_ERR_DOUBLE_FREE, CARVE_ERR_NOT_OWNED or CARVE_ERR_CORRUPT. */
CARVE_INLINE int small_free(carve_heap *h, void *p)
{
    struct slot_loc loc;
    int st = small_locate(h, p, &loc);
    if (CARVE_UNLIKELY(st != CARVE_OK)) {
        return st;
    }
    if (CARVE_UNLIKELY(!slot_is_live(run_at(h, loc.run), loc.index))) {
        return CARVE_ERR_DOUBLE_FREE;
    }
    count_slot(h, loc.cls, false);
    small_put(h, loc.run, loc.index, loc.cls);
    return CARVE_OK;
}

/* The slot size of a live slot, or 0 when p is not one. */
CARVE_INLINE uint64_t small_usable(const carve_heap *h, const void *p)
{
    struct slot_loc loc;
    if (small_locate(h, p, &loc) != CARVE_OK || !slot_is_live(run_at(h, loc.run), loc.index)) {
        return 0;
    }
    return slot_size_of(loc.cls);
}

/* ---- small.c: the rest ---------------------------------------------------------- */

/* Whether some run of class cls has a free slot. */
bool small_class_has_free_slot(const carve_heap *h, unsigned cls);
/* A slot of a class above the one size needs, from a run that already has
 * a free one (no run is made): the last resort of a small request, so that
 * every request up to largest_free succeeds.  NULL when there is none. */
void *small_alloc_larger(carve_heap *h, size_t size);
/* Hands every retained empty run back to the general heap; true if any. */
bool small_reclaim(carve_heap *h);

/* For diag.c: validates run block b (its header word w) and adds its slots
 * to the totals; false on any violation. */
struct slot_totals {
    uint64_t runs, slots, live_slots, free_slot_bytes;
    uint64_t partial; /* runs that belong in a partial list */
    uint64_t own;     /* runs in use by their owner */
};
bool small_run_is_sound(const carve_heap *h, ref b, struct slot_totals *t);
/* Whether every class's current run and partial list, and the page map,
 * agree with what the chain walk found (owners_listed: the runs in the
 * thread caches' own lists, found sound by tcache_sums). */
bool small_lists_are_sound(const carve_heap *h, const struct slot_totals *t,
                           uint64_t owners_listed);
/* Calls visit for a run's pieces in address order: its overhead as one
 * CARVE_BLOCK_META block, then each slot (raw or free), then its tail. */
int small_walk_run(carve_heap *h, ref b, int (*visit)(const carve_block *b, void *ctx), void *ctx);

/* Sets the slot counters from the runs' bitmaps, when no cache holds a
 * slot: the repair after a record interrupted mid-operation by fork() was
 * taken over (threads.c).  Leaves them alone if a run fails its check. */
void small_recount(carve_heap *h);

/* From heap.c: a run's general block, and giving it back. */
ref heap_claim_run_block(carve_heap *h);
void heap_release_run_block(carve_heap *h, ref b);

#endif /* CARVE_SMALL_H */
