/*
 * heap.c: the heap's life cycle and the raw-pointer calls.
 *
 * Each public entry point checks its arguments, takes the heap's lock (a
 * no-op without CARVE_THREADSAFE) and calls an *_unlocked twin; the unlocked
 * core below never knows whether a lock exists.
 *
 * Error discipline: every path that mutates the heap first validates
 * everything it will read (headers through their check field, list links
 * against their neighbours), so a failing call changes nothing.
 */
#include "compact.h"
#include "gcache.h"
#include "handles.h"
#include "heap.h"
#include "index.h"
#include "small.h"
#include "threads.h"

#include <errno.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#define KNOWN_FLAGS                                                                    \
    (CARVE_THREADSAFE | CARVE_SHARED | CARVE_POISON | CARVE_NO_RUNS | CARVE_SCRAMBLE | \
     CARVE_NO_BLOCK_CACHE)
#define CONTROL_ALIGN 64u

CARVE_EXPORT const char *carve_version(void)
{
    return CARVE_VERSION_STRING;
}

/* ---- locking ------------------------------------------------------------ */

/* The built-in lock's sections are gated so that fork() never happens in
 * the middle of one (threads.h). */
CARVE_INLINE void heap_lock(carve_heap *h)
{
    if (h->flags & HEAP_LOCKED) {
        if (h->flags & CARVE_THREADSAFE) {
            fork_gate_enter();
        }
        (void)lock_acquire(&h->lock);
        CARVE_ASSERT(lock_held_or_unknown(&h->lock));
    }
}

CARVE_INLINE void heap_unlock(carve_heap *h)
{
    if (h->flags & HEAP_LOCKED) {
        CARVE_ASSERT(lock_held_or_unknown(&h->lock));
        lock_release(&h->lock);
        if (h->flags & CARVE_THREADSAFE) {
            fork_gate_leave();
        }
    }
}

/* In test builds, every call that changed the heap is followed by the full
 * integrity walk. */
CARVE_INLINE void debug_check(carve_heap *h)
{
#if CARVE_EXPENSIVE_CHECKS
    CARVE_ASSERT(check_unlocked(h) == CARVE_OK);
#else
    (void)h;
#endif
}

/* ---- layout -------------------------------------------------------------- */

struct layout {
    uint64_t lead;         /* bytes before the control block */
    uint64_t control_size; /* control block, list heads and page map */
    uint64_t pagemap;      /* offset of the page map (0 without runs) */
    uint64_t arena_begin;  /* offset of the first header */
    uint64_t arena_end;    /* offset of the sentinel */
    uint32_t fl_count;
    bool runs_on;
    uint64_t tcaches;      /* offset of the thread caches' records (0: none) */
    uint64_t tcache_count; /* how many */
};

/* First levels of list heads that index every block of up to granules. */
static uint32_t fl_count_for(uint64_t granules)
{
    if (granules > MAX_GRANULES) {
        granules = MAX_GRANULES;
    }
    return granules < SL_COUNT ? 1u : class_of(granules) / SL_COUNT + 1u;
}

static uint64_t control_size_for(uint32_t fl_count)
{
    return (uint64_t)sizeof(carve_heap) + (uint64_t)fl_count * SL_COUNT * sizeof(ref);
}

/* The first header goes at 8 mod 16 past the control block and its heads. */
static uint64_t arena_begin_for(uint64_t control_size)
{
    return ((control_size + GRANULE - 1u) & ~(uint64_t)(GRANULE - 1u)) + HDR_SIZE;
}

/* Words of the page map that cover every run page below avail bytes. */
static uint64_t pagemap_words_for(uint64_t avail)
{
    return (avail >> RUN_SHIFT) / 64u + 1u;
}

/* The largest block size (in granules) that fl_count first levels index. */
static uint64_t granules_indexed_by(uint32_t fl_count)
{
    return (UINT64_C(1) << (fl_count + 3u)) - 1u;
}

/* One candidate layout: fl_count first levels of heads and a page map of
 * words words (it is always reserved, with or without runs, so that turning
 * runs on never shrinks the arena).  The arena is capped to what both can
 * cover.  False when not even one minimum block fits. */
static bool layout_try(uint64_t lead, uint64_t avail, uint32_t fl_count, uint64_t words,
                       struct layout *out)
{
    uint64_t pagemap = control_size_for(fl_count);
    uint64_t control = pagemap + words * 8u;
    uint64_t begin = arena_begin_for(control);
    if (avail < begin + bytes_of(MIN_GRANULES) + HDR_SIZE) {
        return false;
    }
    uint64_t granules = (avail - begin - HDR_SIZE) >> GRANULE_SHIFT;
    uint64_t mapped = words * 64u * RUN_SIZE; /* offsets the page map covers */
    uint64_t by_map = mapped > begin + HDR_SIZE ? (mapped - begin - HDR_SIZE) >> GRANULE_SHIFT : 0;
    uint64_t caps[] = {granules_indexed_by(fl_count), by_map, MAX_GRANULES};
    for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++) {
        granules = granules < caps[i] ? granules : caps[i];
    }
    if (granules < MIN_GRANULES) {
        return false;
    }
    out->lead = lead;
    out->control_size = control;
    out->pagemap = pagemap;
    out->arena_begin = begin;
    out->arena_end = begin + bytes_of(granules);
    out->fl_count = fl_count;
    out->runs_on = false;
    return true;
}

/* Thread caches' records (threads.h) sit between the control block and the
 * arena, in heaps whose arena would exceed TCACHE_MIN_ARENA: every byte
 * past it goes to records until they have room for TCACHE_MAX_RECORDS, so
 * the arena stays at TCACHE_MIN_ARENA meanwhile and never shrinks as the
 * buffer grows (bytes short of a whole record are not used). */
static void reserve_tcaches(unsigned flags, struct layout *l)
{
    uint64_t arena = l->arena_end - l->arena_begin;
    l->tcaches = 0;
    l->tcache_count = 0;
    if (!l->runs_on || !tcache_wanted(flags) || arena <= TCACHE_MIN_ARENA) {
        return;
    }
    uint64_t most = ((flags & CARVE_THREADSAFE) ? TCACHE_MAX_RECORDS : 1u) * sizeof(struct tcache);
    uint64_t room = (arena - TCACHE_MIN_ARENA) & ~(uint64_t)(GRANULE - 1u);
    room = room < most ? room : (most + GRANULE - 1u) & ~(uint64_t)(GRANULE - 1u);
    uint64_t count = room / sizeof(struct tcache);
    if (count > 0) {
        l->tcaches = l->arena_begin - HDR_SIZE; /* 16-aligned */
        l->tcache_count = count;
    }
    l->arena_begin += room;
}

/* Where everything goes for a buffer at address addr of size bytes with
 * these flags; false when it is too small to hold a heap.
 *
 * The control block grows in steps with the buffer (one more level of list
 * heads at each power of two, one more page-map word every 512 KiB).  Of
 * every level count up to the one the buffer needs, and the page-map size it
 * needs or one word less (each with the arena capped to what it can index),
 * the layout with the largest arena wins: so a larger buffer never yields a
 * smaller arena, and carve_max_alloc_size() is monotonic.  At most
 * 2 * FL_LIMIT candidates: constant time. */
static bool layout_compute(uintptr_t addr, uint64_t size, unsigned flags, struct layout *out)
{
    uint64_t lead = (CONTROL_ALIGN - (uint64_t)(addr % CONTROL_ALIGN)) % CONTROL_ALIGN;
    if (size < lead) {
        return false;
    }
    uint64_t avail = size - lead;
    uint32_t fl_top = fl_count_for(avail >> GRANULE_SHIFT);
    uint64_t words_top = pagemap_words_for(avail);
    bool found = false;
    for (uint32_t fl = 1u; fl <= fl_top; fl++) {
        for (uint64_t words = words_top > 1u ? words_top - 1u : 1u; words <= words_top; words++) {
            struct layout l;
            if (layout_try(lead, avail, fl, words, &l) &&
                (!found || l.arena_end - l.arena_begin > out->arena_end - out->arena_begin)) {
                *out = l;
                found = true;
            }
        }
    }
    out->runs_on =
        found && !(flags & (CARVE_NO_RUNS | CARVE_POISON)) && size >= CARVE_RUNS_MIN_HEAP;
    if (found) {
        reserve_tcaches(flags, out);
    }
    return found;
}

/* Bytes a handle table of max_handles entries made at carve_init takes
 * (0 when the table is made on demand), header included. */
static uint64_t table_bytes_for(const carve_options *opt)
{
    if (!opt || opt->max_handles == 0) {
        return 0;
    }
    if (opt->max_handles > UINT32_MAX) {
        return UINT64_MAX / 2u; /* more entries than a handle can index: never fits */
    }
    uint64_t g = ((uint64_t)opt->max_handles * sizeof(struct hentry) + HDR_SIZE + GRANULE - 1u) >>
                 GRANULE_SHIFT;
    return bytes_of(g < MIN_GRANULES ? MIN_GRANULES : g);
}

/* The flags carve_init gives a heap made with opt, before HEAP_TCACHE. */
static unsigned effective_flags(const carve_options *opt)
{
    unsigned flags = opt ? opt->flags : 0u;
    if (flags & CARVE_SHARED) {
        flags |= CARVE_THREADSAFE;
    }
    if (opt && opt->lock) {
        flags = (flags & ~(unsigned)CARVE_THREADSAFE) | HEAP_USER_LOCK;
    }
    return flags;
}

/* Whether carve_init succeeds for a buffer of size bytes at every address:
 * the layout fits, and the arena holds the handle table asked for and one
 * minimum block beside it. */
static bool buffer_holds(uint64_t size, const carve_options *opt)
{
    unsigned flags = effective_flags(opt);
    uint64_t need = table_bytes_for(opt) + bytes_of(MIN_GRANULES);
    for (uintptr_t misalign = 0; misalign < CONTROL_ALIGN; misalign++) {
        struct layout l;
        if (!layout_compute(misalign, size, flags, &l) || l.arena_end - l.arena_begin < need) {
            return false;
        }
    }
    return true;
}

/* Whether carve_init accepts these options at some size: known flags, a
 * policy, and lock hooks only whole and without CARVE_SHARED. */
static bool options_acceptable(const carve_options *o)
{
    return !(o->flags & ~(unsigned)KNOWN_FLAGS) && (unsigned)o->policy <= CARVE_BEST_FIT &&
           (!o->lock || (lock_hooks_valid(o->lock) && !(o->flags & CARVE_SHARED)));
}

CARVE_EXPORT size_t carve_min_buffer_size(const carve_options *opt)
{
    if (opt && !options_acceptable(opt)) {
        return 0;
    }
    /* From a lower bound (one level of heads, one page-map word, the table
     * or a minimum block, at the worst address), step up a granule at a
     * time until every address works, then back down byte by byte: a large
     * table needs more levels of heads than the bound assumes. */
    uint64_t begin = arena_begin_for(control_size_for(1u) + 8u);
    uint64_t table = table_bytes_for(opt);
    if (table >= SIZE_MAX / 2u) {
        return 0; /* no buffer this machine can address holds the table */
    }
    uint64_t min = CONTROL_ALIGN - 1u + begin + table + bytes_of(MIN_GRANULES) + HDR_SIZE;
    while (min < SIZE_MAX / 2u && !buffer_holds(min, opt)) {
        min += GRANULE;
    }
    if (!buffer_holds(min, opt)) {
        return 0;
    }
    while (buffer_holds(min - 1u, opt)) {
        min--;
    }
    return (size_t)min;
}

CARVE_EXPORT size_t carve_max_alloc_size(size_t buffer_size, const carve_options *opt)
{
    if (opt && !options_acceptable(opt)) {
        return 0;
    }
    unsigned flags = effective_flags(opt);
    uint64_t table = table_bytes_for(opt);
    uint64_t worst = UINT64_MAX;
    for (uintptr_t misalign = 0; misalign < CONTROL_ALIGN; misalign++) {
        struct layout l;
        if (!layout_compute(misalign, buffer_size, flags, &l)) {
            return 0;
        }
        uint64_t arena = l.arena_end - l.arena_begin;
        if (arena < table + bytes_of(MIN_GRANULES)) {
            return 0; /* nothing beside the table */
        }
        uint64_t payload = arena - table - HDR_SIZE;
        worst = payload < worst ? payload : worst;
    }
    return worst > SIZE_MAX ? SIZE_MAX : (size_t)worst;
}

/* ---- the control block ---------------------------------------------------- */

uint64_t control_checksum_of(const carve_heap *h)
{
    uint64_t fields[] = {h->magic,       h->layout_version, h->control_size, h->buffer_size,
                         h->lead_pad,    h->arena_begin,    h->arena_end,    h->salt,
                         h->flags,       h->policy,         h->fl_count,     h->word_bits,
                         h->runs_on,     h->pagemap,        h->max_handles,  h->tcaches,
                         h->tcache_count};
    uint64_t sum = UINT64_C(0x6a09e667f3bcc909);
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        sum = mix64(sum ^ fields[i]);
    }
    return sum;
}

/* The immutable part of the control block is what this code would have
 * written for this buffer, and its checksum holds. */
bool control_is_valid(const carve_heap *h)
{
    struct layout l;
    uintptr_t addr = (uintptr_t)h - (uintptr_t)h->lead_pad;
    return h->magic == CARVE_MAGIC && h->layout_version == CARVE_LAYOUT_VERSION &&
           h->word_bits == 8u * sizeof(void *) && h->lead_pad < CONTROL_ALIGN &&
           layout_compute(addr, h->buffer_size, h->flags, &l) && l.lead == h->lead_pad &&
           l.control_size == h->control_size && l.arena_begin == h->arena_begin &&
           l.runs_on == (h->runs_on != 0) && l.pagemap == h->pagemap &&
           l.arena_end == h->arena_end && l.fl_count == h->fl_count && l.tcaches == h->tcaches &&
           l.tcache_count == h->tcache_count &&
           ((h->flags & HEAP_TCACHE) != 0) == (l.tcache_count != 0) &&
           ((h->flags & HEAP_GCACHE) != 0) ==
               gcache_wanted(h->flags, h->policy, l.arena_end - l.arena_begin) &&
           (h->flags & ~(uint32_t)(KNOWN_FLAGS | HEAP_INTERNAL_FLAGS)) == 0 &&
           h->policy <= CARVE_BEST_FIT && h->control_checksum == control_checksum_of(h);
}

/* A salt that differs between heaps of different shapes; it keys header
 * checks so a header copied from another heap or offset is not valid. */
static uint64_t salt_for(const struct layout *l, uint64_t size, const carve_options *o,
                         const void *buffer)
{
    /* A process-wide count makes heaps of the same shape differ within a
     * process; the time, the process and the buffer's address make them
     * differ from run to run (a heap file made by an earlier run of the
     * same program).  So a handle or header of one heap is not valid in
     * another, and the cached-slot mark cannot be known in advance. */
    static atomic_uint_fast64_t heaps_made = 0;
    uint64_t nth = (uint64_t)atomic_fetch_add(&heaps_made, 1u);
    struct timespec now = {0, 0};
    (void)timespec_get(&now, TIME_UTC);
    uint64_t run = mix64(((uint64_t)now.tv_sec << 30) ^ (uint64_t)now.tv_nsec ^
                         ((uint64_t)getpid() << 40) ^ mix64((uint64_t)(uintptr_t)buffer));
    return mix64(size ^ (l->lead << 56) ^ ((uint64_t)o->policy << 48) ^ ((uint64_t)o->flags << 40) ^
                 mix64(nth + UINT64_C(0x243f6a8885a308d3)) ^ run);
}

/* Undoes a carve_init that failed after it wrote the control block. */
static carve_heap *unmake(carve_heap *h)
{
    if (h->flags & CARVE_THREADSAFE) {
        lock_destroy(&h->lock);
    }
    h->magic = 0;
    return NULL;
}

CARVE_EXPORT carve_heap *carve_init(void *buffer, size_t size, const carve_options *opt)
{
    carve_options o = {0, CARVE_GOOD_FIT, 0, NULL};
    if (opt) {
        o = *opt;
    }
    struct layout l;
    if (!buffer || !options_acceptable(&o)) {
        errno = EINVAL;
        return NULL;
    }
    o.flags = effective_flags(&o);
    if (!layout_compute((uintptr_t)buffer, size, o.flags, &l) ||
        l.arena_end - l.arena_begin < table_bytes_for(&o) + bytes_of(MIN_GRANULES)) {
        errno = EINVAL;
        return NULL;
    }
    if (l.tcache_count != 0) {
        o.flags |= HEAP_TCACHE;
    }
    if (gcache_wanted(o.flags, (unsigned)o.policy, l.arena_end - l.arena_begin)) {
        o.flags |= HEAP_GCACHE;
    }
    carve_heap *h = (carve_heap *)((unsigned char *)buffer + l.lead);
    memset(h, 0, (size_t)l.control_size);
    h->magic = CARVE_MAGIC;
    h->layout_version = CARVE_LAYOUT_VERSION;
    h->control_size = (uint32_t)l.control_size;
    h->buffer_size = size;
    h->lead_pad = l.lead;
    h->arena_begin = l.arena_begin;
    h->arena_end = l.arena_end;
    h->salt = salt_for(&l, size, &o, buffer);
    h->flags = o.flags;
    h->policy = (uint32_t)o.policy;
    h->fl_count = l.fl_count;
    h->word_bits = 8u * (uint32_t)sizeof(void *);
    h->runs_on = l.runs_on;
    h->pagemap = l.pagemap;
    h->tcaches = l.tcaches;
    h->tcache_count = l.tcache_count;
    tcache_init_records(h);
    if (o.flags & CARVE_THREADSAFE) {
        int err = lock_init(&h->lock, o.flags);
        if (err != 0) {
            h->magic = 0;
            errno = err;
            return NULL;
        }
    } else if (o.lock) {
        lock_set_hooks(&h->lock, o.lock);
    }
    uint64_t granules = (l.arena_end - l.arena_begin) >> GRANULE_SHIFT;
    block_make_free(h, l.arena_begin, granules);
    store64(at(h, l.arena_end), hdr_make(h, l.arena_end, 0, HDR_PREV_FREE));
    if (o.flags & CARVE_POISON) {
        block_poison(h, l.arena_begin, granules);
    }
    index_insert(h, l.arena_begin, granules);
    h->max_handles = o.max_handles;
    h->control_checksum = control_checksum_of(h);
    if (o.max_handles != 0 && !handles_table_create(h, o.max_handles)) {
        errno = EINVAL; /* too small for the table it was asked to hold */
        return unmake(h);
    }
    return h;
}

/* The heap carve_init() formatted in [buffer, buffer + size), validated;
 * NULL (errno EINVAL) when there is none. */
static carve_heap *find_heap(void *buffer, size_t size)
{
    if (!buffer) {
        errno = EINVAL;
        return NULL;
    }
    uint64_t lead = (CONTROL_ALIGN - (uint64_t)((uintptr_t)buffer % CONTROL_ALIGN)) % CONTROL_ALIGN;
    if ((uint64_t)size < lead + sizeof(carve_heap)) {
        errno = EINVAL;
        return NULL;
    }
    carve_heap *h = (carve_heap *)((unsigned char *)buffer + lead);
    /* control_is_valid reads only fields that never change after init, so
     * it is safe while other processes use a shared heap. */
    if (h->buffer_size != size || h->lead_pad != lead || !control_is_valid(h)) {
        errno = EINVAL;
        return NULL;
    }
    return h;
}

CARVE_EXPORT carve_heap *carve_attach(void *buffer, size_t size)
{
    carve_heap *h = find_heap(buffer, size);
    if (!h) {
        return NULL;
    }
    if (h->flags & HEAP_USER_LOCK) {
        errno = EINVAL; /* its lock is not in the buffer: carve_attach_with_lock */
        return NULL;
    }
    if (h->flags & CARVE_SHARED) {
        heap_lock(h); /* the lock is live: never re-created */
        heap_unlock(h);
    } else if (h->flags & CARVE_THREADSAFE) {
        /* A copied or re-mapped private heap: nobody else can hold its lock,
         * and the copied mutex bytes may say otherwise.  Caches of threads
         * of wherever it came from are gone with them. */
        int err = lock_init(&h->lock, h->flags);
        if (err != 0) {
            errno = err;
            return NULL;
        }
        tcache_disown_all(h);
    } else {
        tcache_attach_solo(h);
    }
    return h;
}

CARVE_EXPORT carve_heap *carve_attach_with_lock(void *buffer, size_t size,
                                                const carve_lock_hooks *hooks)
{
    carve_heap *h = find_heap(buffer, size);
    if (!h) {
        return NULL;
    }
    if (!lock_hooks_valid(hooks) || !(h->flags & HEAP_USER_LOCK)) {
        errno = EINVAL;
        return NULL;
    }
    lock_set_hooks(&h->lock, hooks);
    return h;
}

CARVE_EXPORT int carve_detach(carve_heap *h)
{
    if (!h || h->magic != CARVE_MAGIC || !control_is_valid(h)) {
        return CARVE_ERR_INVALID;
    }
    tcache_detach(h);
    return CARVE_OK;
}

/* ---- sizes ------------------------------------------------------------------ */

bool heap_request_granules(const carve_heap *h, size_t size, uint64_t extra, uint64_t *g)
{
    if ((uint64_t)size > h->arena_end - h->arena_begin) {
        return false; /* which also rules out overflow below */
    }
    uint64_t n = ((uint64_t)size + extra + HDR_SIZE + GRANULE - 1u) >> GRANULE_SHIFT;
    *g = n < MIN_GRANULES ? MIN_GRANULES : n;
    return true;
}

/* Granules of the block that holds a raw request of size bytes. */
static bool request_granules(const carve_heap *h, size_t size, uint64_t *g)
{
    return heap_request_granules(h, size, 0, g);
}

/* ---- counters ------------------------------------------------------------------ */

/* Bytes of general blocks going live (delta > 0) or free (delta < 0). */
static void count_used(carve_heap *h, int64_t delta)
{
    h->used_bytes = (uint64_t)((int64_t)h->used_bytes + delta);
    h->used_public = (uint64_t)((int64_t)h->used_public + delta);
}

/* peak_used_bytes follows the public used bytes: free slots in runs are free. */
static void note_peak(carve_heap *h)
{
    if (h->used_public > h->peak_used_bytes) {
        h->peak_used_bytes = h->used_public;
    }
}

/* ---- quarantine (CARVE_POISON) ------------------------------------------------ */

/* A free block whose poison was overwritten: taken out of the index and
 * kept as a dead live block, never handed out again.  b is already out of
 * the index. */
static void quarantine(carve_heap *h, ref b, uint64_t g)
{
    block_set_header(h, b, g, (uint64_t)KIND_QUARANTINE << HDR_KIND_SHIFT);
    ref n = block_next(b, g);
    hword nw;
    if (block_read(h, n, &nw)) {
        block_set_prev_free(h, n, false);
    }
    count_used(h, (int64_t)bytes_of(g));
    h->quarantined_blocks++;
}

bool heap_quarantine_if_damaged(carve_heap *h, ref b, uint64_t g)
{
    if (!(h->flags & CARVE_POISON) || block_poison_intact(h, b, g)) {
        return false;
    }
    index_remove(h, b, g);
    quarantine(h, b, g);
    return true;
}

/* ---- allocation ---------------------------------------------------------------- */

/* Validates b, a free block of at least g granules that a search found, and
 * takes it out of the index (*bg: its size).  1: taken; 0: it failed a
 * check (errno EIO, nothing changed); -1: its poison was damaged, so it was
 * quarantined and the caller searches again. */
CARVE_INLINE int take_found_block(carve_heap *h, ref b, uint64_t g, uint64_t *bg)
{
    hword w;
    if (!block_read(h, b, &w) || !hdr_is_free(w) || hdr_granules(w) < g ||
        !list_links_valid(h, b, class_of(hdr_granules(w)))) {
        errno = CARVE_ERRNO_CORRUPT;
        return 0;
    }
    *bg = hdr_granules(w);
    index_remove_hot(h, b, *bg);
    if ((h->flags & CARVE_POISON) && !block_poison_intact(h, b, *bg)) {
        quarantine(h, b, *bg);
        return -1;
    }
    return 1;
}

/* Finds, validates and removes from the index a free block of at least g
 * granules.  Returns 0 and sets errno (ENOMEM, or EIO for metadata that
 * failed a check) when there is none. */
CARVE_INLINE ref claim_free_block(carve_heap *h, uint64_t g, uint64_t *bg)
{
    for (;;) {
        bool corrupt = false;
        ref b = index_find(h, g, &corrupt);
        if (b == 0) {
            errno = corrupt ? CARVE_ERRNO_CORRUPT : ENOMEM;
            return 0;
        }
        int taken = take_found_block(h, b, g, bg);
        if (taken >= 0) {
            return taken ? b : 0;
        }
    }
}

/* Turns b (bg granules, out of the index) into a live block of g granules
 * of this kind; a remainder of at least the minimum block goes back to the
 * index.  prev_free says whether the block before b is free.  Returns false
 * (with b back in the index) when the block after b fails its check. */
CARVE_INLINE bool carve_out(carve_heap *h, ref b, uint64_t bg, uint64_t g, unsigned kind,
                            bool prev_free)
{
    uint64_t flags = ((uint64_t)kind << HDR_KIND_SHIFT) | (prev_free ? HDR_PREV_FREE : 0);
    uint64_t rest = bg - g;
    if (rest >= MIN_GRANULES) {
        /* The block after the remainder keeps PREV_FREE: untouched. */
        ref r = block_next(b, g);
        block_set_header(h, b, g, flags);
        block_make_free(h, r, rest);
        index_insert_hot(h, r, rest);
    } else {
        ref n = block_next(b, bg);
        hword nw;
        if (!block_read_placed(h, n, &nw)) {
            index_insert(h, b, bg);
            errno = CARVE_ERRNO_CORRUPT;
            return false;
        }
        g = bg;
        block_set_header(h, b, g, flags);
        block_set_prev_free(h, n, false);
    }
    count_used(h, (int64_t)bytes_of(g));
    if (kind_is_users(kind)) {
        h->live_blocks++;
        h->allocs++;
    }
    if (kind != KIND_RUN) { /* a run's slots count as they are handed out */
        note_peak(h);
    }
    return true;
}

/* carve_out out of line, for the aligned path: the plain allocation paths
 * have it inline. */
static CARVE_OUTLINE bool carve_out_call(carve_heap *h, ref b, uint64_t bg, uint64_t g,
                                         unsigned kind, bool prev_free)
{
    return carve_out(h, b, bg, g, kind, prev_free);
}

/* claim_free_block out of line: for the aligned and retry paths, so that the
 * library keeps one other copy of it beside heap_alloc_block's. */
static CARVE_OUTLINE ref claim_free_block_call(carve_heap *h, uint64_t g, uint64_t *bg)
{
    return claim_free_block(h, g, bg);
}

bool heap_reclaim_cached(carve_heap *h)
{
    bool drained = (h->flags & HEAP_TCACHE) && tcache_drain_all(h);
    bool reclaimed = small_reclaim(h);
    bool emptied = (h->flags & HEAP_GCACHE) && gcache_empty(h);
    return drained || reclaimed || emptied;
}

/* After claim_free_block found nothing: when that was for want of space,
 * hands back what the caches and retained empty runs hold and, if anything
 * came back, searches again (so they never make an allocation fail). */
static CARVE_NOINLINE ref claim_after_reclaim(carve_heap *h, uint64_t g, uint64_t *bg)
{
    if (errno != ENOMEM || !heap_reclaim_cached(h)) {
        return 0;
    }
    return claim_free_block_call(h, g, bg);
}

/* A live general block of g granules, or 0 with errno set. */
ref heap_alloc_block(carve_heap *h, uint64_t g, unsigned kind)
{
    uint64_t bg;
    ref b = claim_free_block(h, g, &bg);
    if (CARVE_UNLIKELY(b == 0)) {
        b = claim_after_reclaim(h, g, &bg);
    }
    return b && carve_out(h, b, bg, g, kind, false) ? b : 0;
}

/* A live block of g granules whose payload address minus origin is phase
 * more than a multiple of alignment (a power of two above GRANULE; phase a
 * multiple of GRANULE below it), or 0 with errno. */
static ref alloc_aligned_block(carve_heap *h, uint64_t g, uint64_t alignment, uint64_t phase,
                               uintptr_t origin, unsigned kind)
{
    /* Room for the worst lead: up to alignment - 16 bytes, or alignment + 16
     * when the natural lead (16) is too small to be a free block of its own. */
    uint64_t lead_room = (alignment >> GRANULE_SHIFT) + 1u;
    uint64_t bg;
    if (alignment > h->arena_end - h->arena_begin) {
        errno = ENOMEM;
        return 0;
    }
    ref b = claim_free_block_call(h, g + lead_room, &bg);
    if (b == 0) {
        b = claim_after_reclaim(h, g + lead_room, &bg);
    }
    if (b == 0) {
        return 0;
    }
    uint64_t payload = (uint64_t)((uintptr_t)block_payload(h, b) - origin);
    uint64_t lead = (alignment + phase - payload % alignment) % alignment;
    if (lead != 0 && lead < bytes_of(MIN_GRANULES)) {
        lead += alignment;
    }
    uint64_t lead_g = lead >> GRANULE_SHIFT;
    hword nw;
    if (bg - lead_g - g < MIN_GRANULES && !block_read_placed(h, block_next(b, bg), &nw)) {
        /* carve_out would take the whole rest, and it checks the block
         * after b first: checked here, before the lead is split off, so
         * that a failure leaves b as it was (back in the index). */
        index_insert(h, b, bg);
        errno = CARVE_ERRNO_CORRUPT;
        return 0;
    }
    if (lead_g) {
        /* The slack in front goes back to the index as a free block; the
         * block before b is live (free blocks never touch). */
        block_make_free(h, b, lead_g);
        if (h->flags & CARVE_POISON) {
            block_poison(h, b, lead_g);
        }
        index_insert(h, b, lead_g);
    }
    ref a = b + lead;
    return carve_out_call(h, a, bg - lead_g, g, kind, lead_g != 0) ? a : 0;
}

/* Whether the index holds a fragment (small.h) of exactly g granules.  The
 * classes of fewer than 2 * SL_COUNT granules are exact, one size each. */
static bool fragment_is_free(const carve_heap *h, uint64_t g)
{
    return g <= FRAGMENT_GRANULES && g / SL_COUNT < h->fl_count &&
           (((unsigned)h->sl_bitmap[g / SL_COUNT] >> (g % SL_COUNT)) & 1u);
}

bool heap_fragment_serves(const carve_heap *h, unsigned cls)
{
    /* The class's requests need blocks of cls + 1 or cls + 2 granules; the
     * first is also what makes small_take decline, so a cache's refill
     * that small_take declined always ends here, never in a new run. */
    return fragment_as_cheap_as_slot(h, cls) || fragment_is_free(h, cls + 2u);
}

/* The fragment of exactly g granules at the head of its class, made a live
 * raw block; NULL when it fails a check (the general path then meets the
 * damage and reports it).  Taken whatever the policy: any fitting block
 * of another size would be split or leave bytes unused. */
static void *alloc_fragment(carve_heap *h, uint64_t g)
{
    ref b = h->heads[class_of(g)];
    uint64_t bg;
    if (b == 0 || take_found_block(h, b, g, &bg) <= 0) {
        return NULL;
    }
    return carve_out(h, b, bg, g, KIND_RAW, false) ? block_payload(h, b) : NULL;
}

/* A small request (see small.h, "Fragments"): a fragment of exactly its
 * block's size when that costs no more than a slot; else a slot of the
 * current run; else such a fragment at 16 bytes more; else a slot of a
 * refilled run.  NULL sends the request to the general heap. */
static void *alloc_small(carve_heap *h, size_t size)
{
    void *p = small_alloc(h, size);
    if (CARVE_LIKELY(p != NULL)) {
        return p;
    }
    unsigned cls = small_class_of(size);
    uint64_t g;
    if (!request_granules(h, size, &g)) {
        return NULL;
    }
    bool fragment = fragment_is_free(h, g);
    bool declined = small_declines(h, cls);
    if (fragment && bytes_of(g) == slot_size_of(cls)) {
        small_note_decline(h, cls, false);
        return alloc_fragment(h, g);
    }
    if (declined) {
        small_note_decline(h, cls, true);
    }
    p = small_alloc_any(h, size);
    if (p == NULL && fragment) {
        return alloc_fragment(h, g);
    }
    if (p == NULL && small_refill(h, cls)) {
        p = small_alloc_any(h, size);
    }
    return p;
}

/* A general block of g granules for a raw request from the index; when
 * the index has no room but compaction could make it, the heap compacts
 * and tries again. */
static ref alloc_raw_block(carve_heap *h, uint64_t g)
{
    ref b = heap_alloc_block(h, g, KIND_RAW);
    if (b == 0 && errno == ENOMEM && heap_compact_for(h, g)) {
        b = heap_alloc_block(h, g, KIND_RAW);
    }
    return b;
}

/* A raw request of size bytes (g granules) that neither a run nor the
 * freed-block cache served: the index, then (for a small request the
 * index could not serve) a slot of a larger class. */
static void *alloc_uncached(carve_heap *h, size_t size, uint64_t g)
{
    ref b = alloc_raw_block(h, g);
    if (b != 0) {
        return block_payload(h, b);
    }
    if (size <= SMALL_MAX && h->runs_on && errno == ENOMEM) {
        void *p = small_alloc_larger(h, size);
        if (p) {
            return p;
        }
    }
    heap_count_failure(h);
    return NULL;
}

/* A raw request as a general block: the freed-block cache, then the rest. */
CARVE_INLINE void *alloc_general(carve_heap *h, size_t size)
{
    uint64_t g;
    ref b;
    if (!request_granules(h, size, &g)) {
        errno = ENOMEM;
        h->failed_allocs++;
        return NULL;
    }
    if ((h->flags & HEAP_GCACHE) && (b = gcache_take(h, g)) != 0) {
        return block_payload(h, b);
    }
    return alloc_uncached(h, size, g);
}

static void *alloc_unlocked(carve_heap *h, size_t size)
{
    if (size <= SMALL_MAX && h->runs_on) {
        void *p = alloc_small(h, size);
        if (CARVE_LIKELY(p != NULL)) {
            return p;
        }
    }
    return alloc_general(h, size);
}

static void *aligned_alloc_unlocked(carve_heap *h, size_t alignment, size_t size)
{
    uint64_t g;
    ref b;
    if (!request_granules(h, size, &g)) {
        errno = ENOMEM;
    } else if ((b = alloc_aligned_block(h, g, alignment, 0, 0, KIND_RAW)) != 0) {
        return block_payload(h, b);
    } else if (errno == ENOMEM && heap_compact_for(h, g + (alignment >> GRANULE_SHIFT) + 1u)) {
        if ((b = alloc_aligned_block(h, g, alignment, 0, 0, KIND_RAW)) != 0) {
            return block_payload(h, b);
        }
    }
    heap_count_failure(h);
    return NULL;
}

/* ---- run blocks (small.c) ---------------------------------------------------------- */

ref heap_claim_run_block(carve_heap *h)
{
    int saved = errno; /* a run that cannot be made is not an error yet */
    ref b = alloc_aligned_block(h, RUN_BLOCK_GRANULES, RUN_SIZE, RUN_HEAD_OFFSET, (uintptr_t)h,
                                KIND_RUN);
    errno = saved;
    return b;
}

/* ---- finding a live block from a pointer --------------------------------------- */

/* The live raw block whose payload starts at p, or a status saying why not. */
CARVE_INLINE int locate_live(const carve_heap *h, const void *p, ref *bo, hword *wo)
{
    uintptr_t a = (uintptr_t)p;
    uintptr_t base = (uintptr_t)h;
    if (a < base + (uintptr_t)h->arena_begin + HDR_SIZE || a >= base + (uintptr_t)h->arena_end) {
        return CARVE_ERR_NOT_OWNED;
    }
    ref b = (ref)(a - base) - HDR_SIZE;
    if ((b - h->arena_begin) & (GRANULE - 1u)) {
        return CARVE_ERR_NOT_OWNED;
    }
    hword w;
    if (!block_read_placed(h, b, &w)) {
        /* An interior pointer, or a real block whose header was overwritten:
         * only the chain can tell which. */
        return block_is_boundary(h, b) == 0 ? CARVE_ERR_NOT_OWNED : CARVE_ERR_CORRUPT;
    }
    /* Every free tests only "live and raw"; the rest says why not.  Free,
     * cached and quarantined blocks were freed by the user (a quarantined
     * one then failed its poison check), so a free of one is a second free;
     * any other kind is not a raw block of the user's. */
    if (CARVE_UNLIKELY(hdr_is_free(w) || hdr_kind(w) != KIND_RAW)) {
        bool freed = hdr_is_free(w) || hdr_kind(w) == KIND_CACHED || hdr_kind(w) == KIND_QUARANTINE;
        return freed ? CARVE_ERR_DOUBLE_FREE : CARVE_ERR_NOT_OWNED;
    }
    *bo = b;
    *wo = w;
    return CARVE_OK;
}

/* ---- freeing -------------------------------------------------------------------- */

/* What freeing live block b reads of its neighbours: the free block before
 * it (p, header pw; p is 0 when b's predecessor is live) and the block
 * after it (n, header nw). */
struct release_view {
    ref p, n;
    hword pw, nw;
};

/* Reads and checks b's neighbourhood (b's header w) for heap_release_block:
 * false when the next header or a free neighbour's list links fail a check.
 * Reads only. */
static bool release_view_read(const carve_heap *h, ref b, hword w, struct release_view *v)
{
    ref n = block_next(b, hdr_granules(w));
    v->p = 0;
    v->n = n;
    v->pw = 0;
    if (!block_read_placed(h, n, &v->nw)) {
        return false;
    }
    if (hdr_prev_free(w)) {
        v->p = block_prev_free(h, b, &v->pw);
        if (v->p == 0 || !list_links_valid(h, v->p, class_of(hdr_granules(v->pw)))) {
            return false;
        }
    }
    return !hdr_is_free(v->nw) || list_links_valid(h, n, class_of(hdr_granules(v->nw)));
}

bool heap_release_would_succeed(const carve_heap *h, ref b, hword w)
{
    struct release_view v;
    return release_view_read(h, b, w, &v);
}

int heap_release_block(carve_heap *h, ref b, hword w)
{
    uint64_t g = hdr_granules(w);
    struct release_view v;
    if (!release_view_read(h, b, w, &v)) {
        return CARVE_ERR_CORRUPT;
    }
    ref p = v.p, n = v.n;
    hword pw = v.pw, nw = v.nw;
    bool next_free = hdr_is_free(nw);
    /* Validated; from here on nothing fails. */
    if (p && heap_quarantine_if_damaged(h, p, hdr_granules(pw))) {
        p = 0; /* quarantine() cleared b's PREV_FREE */
    }
    if (next_free && heap_quarantine_if_damaged(h, n, hdr_granules(nw))) {
        next_free = false;
    }
    ref start = b;
    uint64_t total = g;
    if (p) {
        uint64_t pg = hdr_granules(pw);
        index_remove_hot(h, p, pg);
        block_erase_header(h, b);
        start = p;
        total += pg;
    }
    if (next_free) {
        uint64_t ng = hdr_granules(nw);
        index_remove_hot(h, n, ng);
        block_erase_header(h, n);
        total += ng;
    } else {
        block_set_prev_free(h, n, true);
    }
    block_make_free(h, start, total);
    if (h->flags & CARVE_POISON) {
        block_poison(h, start, total);
    }
    index_insert_hot(h, start, total);
    count_used(h, -(int64_t)bytes_of(g));
    if (kind_is_users(hdr_kind(w))) {
        h->live_blocks--;
        h->frees++;
    }
    return CARVE_OK;
}

/* Frees ptr, which is not a slot: a general block, or a bad pointer. */
CARVE_INLINE int free_general_unlocked(carve_heap *h, void *ptr)
{
    ref b;
    hword w;
    int st = locate_live(h, ptr, &b, &w);
    if (st != CARVE_OK) {
        return st;
    }
    if (!(h->flags & HEAP_GCACHE)) {
        return heap_release_block(h, b, w);
    }
    if (gcache_put(h, b, &w)) {
        return CARVE_OK;
    }
    st = heap_release_block(h, b, w);
    gcache_shed(h);
    return st;
}

static int free_unlocked(carve_heap *h, void *ptr)
{
    if (small_owns(h, ptr)) {
        return small_free(h, ptr);
    }
    return free_general_unlocked(h, ptr);
}

void heap_release_run_block(carve_heap *h, ref b)
{
    hword w;
    if (block_read(h, b, &w) && !hdr_is_free(w) && hdr_kind(w) == KIND_RUN) {
        (void)heap_release_block(h, b, w);
    }
}

/* ---- realloc --------------------------------------------------------------------- */

/* Gives the tail of live block b beyond want granules back to the index
 * (merged with the next block if that is free).  Does nothing when the tail
 * is smaller than a block or the next header fails its check. */
void heap_shrink_in_place(carve_heap *h, ref b, hword w, uint64_t want)
{
    uint64_t g = hdr_granules(w);
    if (g - want < MIN_GRANULES) {
        return;
    }
    ref n = block_next(b, g);
    hword nw;
    if (!block_read(h, n, &nw) ||
        (hdr_is_free(nw) && !list_links_valid(h, n, class_of(hdr_granules(nw))))) {
        return;
    }
    uint64_t tail = g - want;
    if (hdr_is_free(nw) && !heap_quarantine_if_damaged(h, n, hdr_granules(nw))) {
        index_remove(h, n, hdr_granules(nw));
        block_erase_header(h, n);
        tail += hdr_granules(nw);
    } else {
        block_set_prev_free(h, n, true);
    }
    block_set_header(h, b, want, hdr_flags(w));
    ref t = block_next(b, want);
    block_make_free(h, t, tail);
    if (h->flags & CARVE_POISON) {
        block_poison(h, t, tail);
    }
    index_insert(h, t, tail);
    count_used(h, -(int64_t)bytes_of(g - want));
}

/* Grows live block b into the free block after it, if that holds enough.
 * Returns false (nothing changed) when it cannot. */
bool heap_grow_in_place(carve_heap *h, ref b, hword *bw, uint64_t want)
{
    hword w = *bw;
    uint64_t g = hdr_granules(w);
    ref n = block_next(b, g);
    hword nw;
    hword after_w;
    if (!block_read(h, n, &nw)) {
        return false;
    }
    /* A cached neighbour is free to the user: it goes back to the index
     * (merging with what follows it), and the growth looks again.  Handing
     * it back may release the cache's record, and when that lies just
     * before b, b's PREV_FREE bit changes: b's header is read again too. */
    if (hdr_kind(nw) == KIND_CACHED && (h->flags & HEAP_GCACHE) && gcache_return(h, n, nw)) {
        *bw = w = block_header(h, b);
        if (!block_read(h, n, &nw)) {
            return false;
        }
    }
    if (!hdr_is_free(nw) || g + hdr_granules(nw) < want) {
        return false;
    }
    uint64_t ng = hdr_granules(nw);
    ref after = block_next(n, ng);
    if (!list_links_valid(h, n, class_of(ng)) || !block_read(h, after, &after_w) ||
        heap_quarantine_if_damaged(h, n, ng)) {
        return false;
    }
    index_remove(h, n, ng);
    block_erase_header(h, n);
    uint64_t total = g + ng;
    uint64_t rest = total - want;
    if (rest >= MIN_GRANULES) {
        ref r = block_next(b, want);
        block_set_header(h, b, want, hdr_flags(w));
        block_make_free(h, r, rest);
        index_insert(h, r, rest);
        total = want;
    } else {
        block_set_header(h, b, total, hdr_flags(w));
        block_set_prev_free(h, after, false);
    }
    count_used(h, (int64_t)bytes_of(total - g));
    note_peak(h);
    return true;
}

/* realloc of a slot in a run: it stays while the new size fits the slot,
 * and moves otherwise. */
static void *realloc_slot(carve_heap *h, void *ptr, size_t size)
{
    struct slot_loc loc;
    int st = small_locate(h, ptr, &loc);
    if (st != CARVE_OK || !slot_is_live(run_at(h, loc.run), loc.index)) {
        errno = heap_errno_of(st);
        return NULL;
    }
    uint64_t slot = slot_size_of(loc.cls);
    if ((uint64_t)size <= slot) {
        return ptr;
    }
    void *q = alloc_unlocked(h, size);
    if (q) {
        memcpy(q, ptr, (size_t)slot);
        (void)small_free(h, ptr);
    }
    return q;
}

static void *realloc_unlocked(carve_heap *h, void *ptr, size_t size)
{
    if (small_owns(h, ptr)) {
        if (tcache_may_hold(h, ptr)) {
            (void)tcache_drain_all(h); /* a freed slot in a cache is free, not live */
            if (!small_owns(h, ptr)) {
                errno = EINVAL; /* and its run, emptied, went back: as a freed block */
                return NULL;
            }
        }
        return realloc_slot(h, ptr, size);
    }
    ref b;
    hword w;
    int st = locate_live(h, ptr, &b, &w);
    if (st != CARVE_OK) {
        errno = heap_errno_of(st);
        return NULL;
    }
    uint64_t want;
    if (!request_granules(h, size, &want)) {
        h->failed_allocs++;
        errno = ENOMEM;
        return NULL;
    }
    uint64_t g = hdr_granules(w);
    if (want <= g) {
        heap_shrink_in_place(h, b, w, want);
        return ptr;
    }
    if (heap_grow_in_place(h, b, &w, want)) {
        return ptr;
    }
    /* Moving frees b after the copy: if b's neighbourhood fails the checks
     * that free makes, say so now, before anything changes, rather than
     * hand out a copy and leave b allocated for good. */
    if (!heap_release_would_succeed(h, b, w)) {
        errno = CARVE_ERRNO_CORRUPT;
        return NULL;
    }
    void *q = alloc_unlocked(h, size);
    if (!q) {
        return NULL;
    }
    memcpy(q, ptr, (size_t)(bytes_of(g) - HDR_SIZE));
    /* The allocation may have changed b's PREV_FREE bit: read it again.
     * Only the heap's own writes touched b's neighbours since the check
     * above, so the release passes its checks. */
    hword now;
    if (block_read(h, b, &now)) {
        (void)heap_release_block(h, b, now);
    }
    return q;
}

/* ---- public entry points ---------------------------------------------------------- */

/* CARVE_SCRAMBLE: after every allocation that succeeded, every unpinned
 * handle block moves (after, so the allocation itself sees the heap that
 * the statistics described). */
static void after_allocation(carve_heap *h, bool allocated)
{
    if (CARVE_UNLIKELY(h->flags & CARVE_SCRAMBLE) && allocated) {
        scramble_unlocked(h);
    }
}

/* carve_alloc's locked path: every request a cache does not serve, and
 * every bad argument. */
static CARVE_OUTLINE void *alloc_locked(carve_heap *h, size_t size)
{
    if (!h || size == 0) {
        errno = EINVAL;
        return NULL;
    }
    heap_lock(h);
    void *p = alloc_unlocked(h, size);
    after_allocation(h, p != NULL);
    debug_check(h);
    heap_unlock(h);
    return p;
}

/* carve_alloc of a small request in a heap with caches whose front pop
 * found nothing: this thread's cache the slow way (CARVE_THREADSAFE) or a
 * refill of the solo cache, then the locked path.  Out of line, so that
 * the pop needs no stack frame. */
static CARVE_OUTLINE void *alloc_cached(carve_heap *h, size_t size)
{
    unsigned cls = small_class_of(size);
    void *p =
        (h->flags & CARVE_THREADSAFE) ? tcache_alloc_slow(h, cls) : tcache_solo_refill(h, cls);
    return CARVE_LIKELY(p != NULL) ? p : alloc_locked(h, size);
}

/* carve_alloc of a request above SMALL_MAX in a heap with the freed-block
 * cache and no lock: alloc_unlocked's general part, with no layer between
 * the entry point and the cache.  (Such heaps never scramble.) */
static CARVE_OUTLINE void *alloc_general_solo(carve_heap *h, size_t size)
{
    CARVE_ASSERT(!(h->flags & CARVE_SCRAMBLE));
    void *p = alloc_general(h, size);
    debug_check(h);
    return p;
}

CARVE_EXPORT void *carve_alloc(carve_heap *h, size_t size)
{
    /* size - 1 < SMALL_MAX: 1 <= size <= SMALL_MAX (0 wraps around). */
    if (CARVE_LIKELY(h != NULL && (h->flags & HEAP_TCACHE) && size - 1u < SMALL_MAX)) {
        unsigned cls = small_class_of(size);
        void *p = (h->flags & CARVE_THREADSAFE) ? tcache_pop(h, cls) : tcache_solo_pop(h, cls);
        if (CARVE_LIKELY(p != NULL)) {
            return p;
        }
        return alloc_cached(h, size);
    }
    if (h != NULL && (h->flags & (HEAP_GCACHE | HEAP_LOCKED)) == HEAP_GCACHE && size > SMALL_MAX) {
        return alloc_general_solo(h, size);
    }
    return alloc_locked(h, size);
}

CARVE_EXPORT void *carve_calloc(carve_heap *h, size_t count, size_t size)
{
    if (!h || count == 0 || size == 0) {
        errno = EINVAL;
        return NULL;
    }
    if (count > SIZE_MAX / size) {
        heap_lock(h);
        h->failed_allocs++;
        heap_unlock(h);
        errno = ENOMEM;
        return NULL;
    }
    void *p = carve_alloc(h, count * size);
    if (p) {
        memset(p, 0, count * size);
    }
    return p;
}

CARVE_EXPORT void *carve_aligned_alloc(carve_heap *h, size_t alignment, size_t size)
{
    if (!h || size == 0 || alignment == 0 || (alignment & (alignment - 1u)) != 0) {
        errno = EINVAL;
        return NULL;
    }
    if (alignment <= GRANULE) {
        return carve_alloc(h, size);
    }
    heap_lock(h);
    void *p = aligned_alloc_unlocked(h, alignment, size);
    after_allocation(h, p != NULL);
    debug_check(h);
    heap_unlock(h);
    return p;
}

/* carve_free's locked path; cached < 0 when ptr carries the mark of a
 * cached slot (it may sit in a cache: then it is free). */
static CARVE_OUTLINE int free_locked(carve_heap *h, void *ptr, int cached)
{
    if (!h) {
        return CARVE_ERR_INVALID;
    }
    if (!ptr) {
        return CARVE_OK;
    }
    heap_lock(h);
    if (cached < 0) {
        (void)tcache_drain_all(h);
    }
    /* ptr was a live slot's start, marked as cached: when emptying the
     * caches released its run (which then had no live slot), it sat in a
     * cache, so it was free. */
    int st = cached < 0 && !small_owns(h, ptr) ? CARVE_ERR_DOUBLE_FREE : free_unlocked(h, ptr);
    debug_check(h);
    heap_unlock(h);
    return st;
}

/* carve_free of a pointer that is not in a run page, in a heap with caches
 * (so with runs): a general block, NULL, or nothing of this heap's, so the
 * locked path need not ask small_owns again. */
static CARVE_OUTLINE int free_general_locked(carve_heap *h, void *ptr)
{
    if (!ptr) {
        return CARVE_OK;
    }
    heap_lock(h);
    int st = free_general_unlocked(h, ptr);
    debug_check(h);
    heap_unlock(h);
    return st;
}

/* carve_free of live slot ptr (f: what cacheable_slot found) in a heap
 * with the built-in lock, when the front entry could not take it: this
 * thread's cache the slow way, else the locked path.  Out of line, so that
 * the push needs no stack frame. */
static CARVE_OUTLINE int free_cached(carve_heap *h, void *ptr, struct freed_slot f)
{
    return tcache_free_slow(h, ptr, f.s, f.cls, f.mark) > 0 ? CARVE_OK : free_locked(h, ptr, 0);
}

CARVE_EXPORT int carve_free(carve_heap *h, void *ptr)
{
    if (CARVE_LIKELY(h != NULL && (h->flags & HEAP_TCACHE))) {
        if (!small_owns_with_runs(h, ptr)) { /* NULL included: below the heap */
            return free_general_locked(h, ptr);
        }
        struct freed_slot f;
        int cached = cacheable_slot(h, ptr, &f);
        if (CARVE_LIKELY(cached > 0)) {
            if (h->flags & CARVE_THREADSAFE) {
                if (CARVE_LIKELY(tcache_push(h, ptr, &f))) {
                    return CARVE_OK;
                }
                return free_cached(h, ptr, f);
            }
            /* Every call left is a tail call: no stack frame. */
            return tcache_solo_push(h, ptr, f);
        }
        return free_locked(h, ptr, cached);
    }
    return free_locked(h, ptr, 0);
}

/* realloc of live slot ptr (f: what cacheable_slot found) in a heap with
 * a solo cache: it stays while size fits the slot; otherwise the new block
 * comes from carve_alloc and the old slot goes into the cache, as the same
 * program's malloc and free would. */
static void *realloc_solo_slot(carve_heap *h, void *ptr, size_t size, struct freed_slot f)
{
    uint64_t slot = slot_size_of(f.cls);
    if ((uint64_t)size <= slot) {
        return ptr;
    }
    void *q = carve_alloc(h, size);
    if (q) {
        memcpy(q, ptr, (size_t)slot);
        /* The allocation may have drained the cache or made a run, but ptr
         * is still a live slot of its run that no cache holds: f holds. */
        (void)tcache_solo_push(h, ptr, f);
        debug_check(h);
    }
    return q;
}

CARVE_EXPORT void *carve_realloc(carve_heap *h, void *ptr, size_t size)
{
    if (!h) {
        errno = EINVAL;
        return NULL;
    }
    if (!ptr) {
        return carve_alloc(h, size);
    }
    if (size == 0) {
        /* Exactly carve_free, whose checks know a freed slot that sits in a
         * thread cache (it is free, so this is a double free). */
        int saved = errno;
        int st = carve_free(h, ptr);
        errno = st == CARVE_OK ? saved : heap_errno_of(st);
        return NULL;
    }
    if ((h->flags & (HEAP_TCACHE | CARVE_THREADSAFE)) == HEAP_TCACHE && small_owns(h, ptr)) {
        struct freed_slot f;
        if (cacheable_slot(h, ptr, &f) == 1) {
            return realloc_solo_slot(h, ptr, size, f);
        }
    }
    heap_lock(h);
    void *q = realloc_unlocked(h, ptr, size);
    after_allocation(h, q != NULL);
    debug_check(h);
    heap_unlock(h);
    return q;
}

CARVE_EXPORT size_t carve_usable_size(carve_heap *h, const void *ptr)
{
    if (!h || !ptr) {
        return 0;
    }
    if ((h->flags & HEAP_TCACHE) && small_owns(h, ptr)) {
        size_t n = (size_t)tcache_usable(h, ptr);
        if (CARVE_LIKELY(n != 0)) {
            return n; /* a live slot, found without the lock */
        }
    }
    heap_lock(h);
    ref b;
    hword w;
    size_t n = 0;
    if (small_owns(h, ptr)) {
        if (tcache_may_hold(h, ptr)) {
            (void)tcache_drain_all(h);
        }
        n = (size_t)small_usable(h, ptr);
    } else if (locate_live(h, ptr, &b, &w) == CARVE_OK) {
        n = (size_t)(bytes_of(hdr_granules(w)) - HDR_SIZE);
    }
    heap_unlock(h);
    return n;
}

/* The public entry points of diag.c, handles.c and compact.c lock the same
 * way as these. */
void heap_enter(carve_heap *h)
{
    heap_lock(h);
}

void heap_leave(carve_heap *h)
{
    heap_unlock(h);
}

void heap_debug_check(carve_heap *h)
{
    debug_check(h);
}
