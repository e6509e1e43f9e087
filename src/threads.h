/*
 * threads.h: what a heap with the built-in lock needs beyond the lock itself
 * to serve many threads: per-thread caches of small slots (and the one front
 * cache of a heap without a lock), and fork() and thread-exit handling.
 *
 * Thread caches.  Two threads sharing one lock cannot go faster than one, so
 * each thread keeps, per heap, a cache of recently freed small slots (runs,
 * small.h) in front of the shared heap: a small allocation pops a slot from
 * it and a small free pushes one, without the heap's lock.  Slots move
 * between a cache and the runs in batches, under the heap's lock.
 *
 * The caches are records in an area between the control block and the
 * arena (up to TCACHE_MAX_RECORDS of them, see heap.c), so they are found
 * by every process that maps the heap and drained from any thread, and
 * their memory is never anything but cache records: a thread that still believes it owns a
 * record that was taken from it can only ever fail to enter it.  A thread
 * that finds every record taken drains every cache (tcache_drain_all
 * retires the records, those of exited threads too, waiting out a busy
 * one) and takes one; only when the records fail their check does it
 * work through the lock, asking again 1024 calls later.  A thread keeps
 * which record is its own in thread-local storage.
 *
 * Each record has a state word (struct tcache): 0 when free, its tag when
 * owned and idle, tag | 1 while someone works on it.  The owner marks it
 * busy around each pop or push; anyone else who touches it (a drain) holds
 * the heap's lock and marks it busy too.  The owner never waits for the
 * heap's lock while its record is busy, so the order is always heap lock,
 * then record: no deadlock, and a drainer waits at most for one pop or push.
 * A drain empties the record and frees it (state 0): the owner notices at
 * its next call and takes a record again.
 *
 * Accounting.  A cached slot is live in its run's bitmap and is not the
 * user's.  The heap's slot counters count user operations, but a cache's
 * pops and pushes are only counted in the cache until they are folded
 * into the heap's counters under its lock.  A pop or push adds one to ops;
 * and base[cls], the class's count at the last fold, changes only under
 * the lock, so per class base - count is the pops minus the pushes since
 * then, and the pops are (ops + that, summed) / 2.  One counter per
 * operation instead of four.  Hence:
 *
 *   live bits = heap slot_allocs - slot_frees + sum over caches and
 *               classes of base (cached slots + pops - pushes)
 *
 * which carve_check verifies without emptying any cache.  What must be
 * exact (statistics, walks, compaction, an allocation about to fail, a
 * detach) drains every cache first: its slots go back to their runs.
 *
 * A cached slot's first word holds a tag keyed to its offset, so a second
 * free of a slot that is sitting in a cache is noticed (the free then takes
 * the lock, drains every cache and finds the slot free).  Slots a refill
 * takes from their runs are marked too: every slot in a cache carries the
 * mark, so a free of one the user was never handed is caught the same way.  The slots'
 * offsets live in the cache block, never in the freed memory, so a write
 * after free cannot redirect an allocation.
 */
#ifndef CARVE_THREADS_H
#define CARVE_THREADS_H

#include "small.h"

#include <stdatomic.h>

/* Slots a cache holds per class, and how many move per transfer.  Half
 * the capacity moves, so a class's count starts a random walk in the
 * middle: the locked refills and flushes come about (CAP / 2)^2 of the
 * class's operations apart.  64 against 32: 3.5x fewer locked entries on
 * W1-like churn, 6% fewer instructions per operation (docs/threads.md). */
#define TCACHE_CAP   64u
#define TCACHE_BATCH 32u
/* Heaps whose arena would be smaller than this get no caches: the records
 * take 8.4 KiB each, and the slots they may hold up to 136 KiB per thread. */
#define TCACHE_MIN_ARENA (UINT64_C(4) << 20)
/* How many heaps one thread keeps caches for at a time.  A heap beyond
 * them gets the entry of the least recently used one once that has been
 * idle for TCACHE_IDLE_CALLS of the thread's slow-path calls, and at most
 * once per TCACHE_IDLE_CALLS such calls (threads.c, my_cache): the entry
 * of a heap that is gone is given up, and a thread that goes round more
 * heaps than it has entries for does not change caches at every turn. */
#define TCACHE_PER_THREAD 4u
#define TCACHE_IDLE_CALLS 65536u

struct tcache {
    /* 0 free; tag owned; tag | 1 busy.  Only ever accessed atomically. */
    _Atomic uint64_t state;
    uint64_t tag;    /* cache_tag(): even, never 0, unique in the heap's life */
    uint32_t pid;    /* the owning thread's process */
    uint32_t thread; /* its number in that process (threads.c), or 0 */
    /* In a CARVE_SHARED heap, the rest of that process's identity
     * (process.h), so that a record left busy by a process that died can
     * be taken over; 0 elsewhere. */
    uint64_t pid_ns;
    uint64_t pid_started;
    uint64_t pid_nonce;
    uint64_t ops; /* pops and pushes not yet folded in */
    uint16_t count[SMALL_CLASSES];
    uint16_t base[SMALL_CLASSES]; /* count at the last fold (under the lock) */
    ref slot[SMALL_CLASSES][TCACHE_CAP];
    /* The cache's own runs (small.h, "Runs of a thread's own"), per class:
     * the one in use (or 0), and the list of the others with free slots.
     * Read and written only under the heap's lock. */
    ref own[SMALL_CLASSES];
    uint64_t owns; /* 1 while its runs may be listed in partial (in use) */
    ref partial[SMALL_CLASSES];
};

/* What every count of a free record (tag 0) holds: no pop (n - 1 < CAP)
 * and no push (count < CAP) can use it, so the solo fast paths below need
 * no test of the tag.  carve_init and cache_retire() close the counts;
 * taking a record opens them. */
#define TCACHE_CLOSED UINT16_MAX

/* The most records a heap has (see reserve_tcaches() in heap.c). */
#define TCACHE_MAX_RECORDS 64u

/* Whether a heap with these flags (effective ones: THREADSAFE set by
 * SHARED, HEAP_USER_LOCK for hooks) keeps caches, room permitting: heaps
 * with the built-in lock one per thread (up to TCACHE_MAX_RECORDS), heaps
 * without a lock one. */
bool tcache_wanted(unsigned flags);

/* ---- the fast paths ----------------------------------------------------------------
 * For a heap with HEAP_TCACHE, without the heap's lock.  They are inline so
 * that carve_alloc and carve_free are one function each on the way that
 * matters; everything unusual is in the out-of-line slow paths. */

/* This thread's caches, most recently used first (threads.c keeps them). */
struct tls_cache {
    carve_heap *h;
    uint64_t salt; /* h->salt when the cache was made: another heap at h differs */
    ref c;
    uint64_t tag;
    uint64_t used; /* my_cache's count of the thread's calls when it last found it */
};
extern CARVE_THREAD_LOCAL struct tls_cache tcache_mine[TCACHE_PER_THREAD];

CARVE_INLINE struct tcache *cache_at(const carve_heap *h, ref c)
{
    return (struct tcache *)(void *)at(h, c);
}

CARVE_INLINE void cache_leave(struct tcache *c, uint64_t tag)
{
    atomic_store_explicit(&c->state, tag, memory_order_release);
}

/* A thread's entry in the list of threads that fork() and drains wait for
 * (threads.c, "threads and fork()"; this thread's is thread_self). */
struct thread_mark {
    _Atomic unsigned inside; /* 1 while in a locked section (read by fork_prepare) */
    _Atomic unsigned fast;   /* 1 while in a cache's fast path (read by quiesce_begin) */
    /* cppcheck-suppress unusedStructMember ; used through thread_self */
    unsigned depth; /* nested sections (only this thread reads it) */
    bool listed;    /* on the list: only then may its fast paths skip the state word */
    struct thread_mark *next, *prev;
};
extern CARVE_THREAD_LOCAL struct thread_mark thread_self;

/* How an owner's fast path and a drainer keep out of each other's way in a
 * heap without CARVE_SHARED (threads.c, "entering a cache"): drains of such
 * heaps in progress in this process (a fast path that sees one backs off to
 * its slow path), and whether a drainer can make every thread of the
 * process execute a memory barrier (Linux's membarrier; decided before any
 * cache exists), which spares the fast path a fence of its own. */
extern _Atomic unsigned tcache_quiescing;
extern bool tcache_remote_barrier;

/* A pop from a non-empty class of cache c (busy, or a solo cache): the
 * newest slot, counted as the user's. */
CARVE_INLINE ref cache_pop(struct tcache *c, unsigned cls, unsigned n)
{
    ref s = c->slot[cls][n - 1u];
    c->count[cls] = (uint16_t)(n - 1u);
    c->ops++;
    return s;
}

/* A push of slot p (offset s, with its mark) into a class of cache c that
 * has room, counted as the user's free. */
CARVE_INLINE void cache_push(struct tcache *c, unsigned cls, void *p, ref s, uint64_t mark)
{
    store64(p, mark);
    c->slot[cls][c->count[cls]++] = s;
    c->ops++;
}

/* A slot handed out from class cls of cache c (busy or solo, n > 0 slots):
 * its mark is wiped so a free of it is not taken for a double free.  NULL
 * when the slot no longer carries its mark: it was written after it was
 * freed, and then perhaps freed again, which a free cannot tell from a
 * first free once the mark is gone, so it was pushed twice and one copy
 * is already in use.  Either way it is not handed out (again): the pop
 * still counts, as the allocation that balances the second push, or as a
 * slot lost to the damage (the caller then takes the next one). */
CARVE_INLINE void *hand_out(const carve_heap *h, struct tcache *c, unsigned cls, unsigned n)
{
    ref s = cache_pop(c, cls, n);
    if (CARVE_UNLIKELY(!slot_is_marked(h, s))) {
        return NULL;
    }
    void *p = at(h, s);
    store64(p, 0); /* no longer marked as cached */
    return p;
}

/* The fast way into this thread's cache for h: its front entry.  NULL
 * sends the caller to its slow path, which finds, makes or replaces the
 * entry.  *tag says how to leave (fast_leave).
 *
 * A heap without CARVE_SHARED, from a thread on the list: the thread raises
 * its own fast flag, then looks for a drain in progress and checks that the
 * record is still its own (Dekker's pattern against quiesce_begin, which
 * raises tcache_quiescing and then waits for every thread's flag).  The
 * store-load barrier the pattern needs on this side comes from the
 * drainer's membarrier when the process has it, else from a fence here.
 * No atomic read-modify-write: one waits for every store before it, and
 * a free of another thread's block has just stored into a line the other
 * core holds (larson: about a quarter of the throughput).  The flag is the
 * thread's, not the record's: a record retired by a drain goes to another
 * thread while this thread's entry may still name it.
 *
 * Otherwise (a CARVE_SHARED heap, whose drainers may be other processes,
 * or a thread that could not be listed): one compare-and-swap on the
 * record's state word, as the slow paths do. */
CARVE_INLINE struct tcache *enter_mru(const carve_heap *h, uint64_t *tag)
{
    const struct tls_cache *e = &tcache_mine[0];
    if (CARVE_LIKELY(e->h == h && e->salt == h->salt)) {
        struct tcache *c = cache_at(h, e->c);
        uint64_t mine = e->tag; /* read once */
        if (CARVE_UNLIKELY((h->flags & CARVE_SHARED) || !thread_self.listed)) {
            uint64_t expected = mine;
            if (atomic_compare_exchange_strong_explicit(
                    &c->state, &expected, mine | 1u, memory_order_acquire, memory_order_relaxed)) {
                *tag = mine;
                return c;
            }
            return NULL;
        }
        atomic_store_explicit(&thread_self.fast, 1u, memory_order_relaxed);
        if (tcache_remote_barrier) {
            atomic_signal_fence(memory_order_seq_cst);
        } else {
            atomic_thread_fence(memory_order_seq_cst);
        }
        if (CARVE_LIKELY(atomic_load_explicit(&tcache_quiescing, memory_order_acquire) == 0 &&
                         atomic_load_explicit(&c->state, memory_order_relaxed) == mine)) {
            *tag = 0;
            return c;
        }
        atomic_store_explicit(&thread_self.fast, 0u, memory_order_release);
    }
    return NULL;
}

/* Leaves a cache entered by enter_mru (tag: what it set). */
CARVE_INLINE void fast_leave(struct tcache *c, uint64_t tag)
{
    if (tag != 0) {
        cache_leave(c, tag);
    } else {
        atomic_store_explicit(&thread_self.fast, 0u, memory_order_release);
    }
}

/* What a free that may go into a cache learns about p (small_owns): 1 when
 * p is a live slot (its offset, class and mark in *f); 0 when the caller
 * must take the usual path (which reports what is wrong); -1 when p carries
 * the cached mark (perhaps freed twice into a cache).  The live bit is read
 * atomically: other bits of its word may change under the lock meanwhile,
 * p's own cannot. */
struct freed_slot {
    ref s;
    unsigned cls;
    uint64_t mark;
};

CARVE_INLINE int cacheable_slot(const carve_heap *h, const void *p, struct freed_slot *f)
{
    struct slot_loc loc;
    if (CARVE_UNLIKELY(small_locate(h, p, &loc) != CARVE_OK)) {
        return 0;
    }
    const struct run *run = run_at(h, loc.run);
    /* Acquire: a slot a refill just made live already carries its mark. */
    uint64_t live = atomic_load_explicit((const _Atomic uint64_t *)&run->live[loc.index / 64u],
                                         memory_order_acquire);
    if (CARVE_UNLIKELY(!((live >> (loc.index % 64u)) & 1u))) {
        return 0;
    }
    f->s = offset_of(h, p);
    f->mark = cached_slot_mark(h, f->s);
    f->cls = loc.cls;
    return load64(p) == f->mark ? -1 : 1;
}

/* The slow paths (threads.c): the same calls when the front entry or the
 * class cannot serve at once (a refill or a flush under the heap's lock). */
void *tcache_alloc_slow(carve_heap *h, unsigned cls);
int tcache_free_slow(carve_heap *h, void *p, ref s, unsigned cls, uint64_t mark);
void *tcache_solo_refill(carve_heap *h, unsigned cls);
int tcache_solo_flush(carve_heap *h, void *p, ref s, unsigned cls, uint64_t mark);

/* A slot of class cls from this thread's cache through its front entry
 * alone, or NULL (nothing changed): the caller then calls
 * tcache_alloc_slow.  The pop alone, so that carve_alloc needs no stack
 * frame for it. */
CARVE_INLINE void *tcache_pop(carve_heap *h, unsigned cls)
{
    uint64_t tag;
    struct tcache *c = enter_mru(h, &tag);
    if (CARVE_LIKELY(c != NULL)) {
        unsigned n = c->count[cls];
        void *p = CARVE_LIKELY(n - 1u < TCACHE_CAP) ? hand_out(h, c, cls, n) : NULL;
        fast_leave(c, tag);
        return p;
    }
    return NULL;
}

/* Pushes live slot p (f: what cacheable_slot found) into this thread's
 * cache through its front entry alone: true when it did; false (nothing
 * changed) sends the caller to tcache_free_slow. */
CARVE_INLINE bool tcache_push(carve_heap *h, void *p, const struct freed_slot *f)
{
    uint64_t tag;
    struct tcache *c = enter_mru(h, &tag);
    if (CARVE_LIKELY(c != NULL)) {
        bool room = c->count[f->cls] < TCACHE_CAP;
        if (CARVE_LIKELY(room)) {
            cache_push(c, f->cls, p, f->s, f->mark);
        }
        fast_leave(c, tag);
        return room;
    }
    return false;
}

/* The same for a heap without a lock (one thread at a time): record 0 is
 * the heap's one cache (a drain frees it: tag 0, counts TCACHE_CLOSED),
 * and a refill or flush needs no lock.  tcache_solo_pop is the pop alone:
 * NULL when the class is empty or the record was freed, and the caller
 * then calls tcache_solo_refill. */
CARVE_INLINE void *tcache_solo_pop(carve_heap *h, unsigned cls)
{
    struct tcache *c = cache_at(h, h->tcaches);
    unsigned n = c->count[cls];
    /* n - 1 wraps for 0: one comparison rules out an empty class, a freed
     * record and a damaged count. */
    if (CARVE_LIKELY(n - 1u < TCACHE_CAP)) {
        return hand_out(h, c, cls, n);
    }
    return NULL;
}

/* Pushes live slot p (f: what cacheable_slot found) into the solo cache,
 * flushing the oldest batch of its class first when the class is full;
 * CARVE_OK (carve_free's status for it). */
CARVE_INLINE int tcache_solo_push(carve_heap *h, void *p, struct freed_slot f)
{
    struct tcache *c = cache_at(h, h->tcaches);
    if (CARVE_LIKELY(c->count[f.cls] < TCACHE_CAP)) { /* not for a freed record */
        cache_push(c, f.cls, p, f.s, f.mark);
        return CARVE_OK;
    }
    return tcache_solo_flush(h, p, f.s, f.cls, f.mark);
}

/* Whether slot p (small_owns) is marked as sitting in a cache: the locked
 * paths that take a slot pointer drain the caches first when it is. */
bool tcache_may_hold(const carve_heap *h, const void *p);

/* The slot size of p (small_owns) when it is a live slot that is not
 * marked as cached, read without the heap's lock; 0 otherwise (the caller
 * then takes the locked path). */
uint64_t tcache_usable(const carve_heap *h, const void *p);

/* Under the heap's lock.  Empties every cache of the heap into its runs
 * and frees its record; true if a cache was in use.  A record that a
 * process of a CARVE_SHARED heap left busy when it died (process.h) is
 * taken over after a wait of about a millisecond, and the runs are then
 * recounted. */
bool tcache_drain_all(carve_heap *h);
/* carve_init's: the count records of a new heap start free (TCACHE_CLOSED). */
void tcache_init_records(carve_heap *h);
/* What carve_check needs, summed over the records in use: the slots and
 * bytes they account for (base: cached + pops - pushes).  1 when the
 * records are sound; 0 when one is damaged (a bad tag, a count over
 * TCACHE_CAP, a slot that is not live, a run in use or listed that is not
 * the cache's); -1 when the record of a process of a CARVE_SHARED heap
 * that died mid-operation was met: every record has been retired and the
 * runs recounted (the heap changed: the caller starts over). */
struct tcache_sums {
    uint64_t slots, bytes;
    uint64_t own;    /* runs in use by a cache */
    uint64_t listed; /* runs in the caches' own lists */
};
int tcache_sums(carve_heap *h, struct tcache_sums *out);

/* The fork() gate around every locked section of a heap with the built-in
 * lock (see threads.c). */
void fork_gate_enter(void);
void fork_gate_leave(void);

/* Under the heap's lock: takes over the records of threads of another
 * process in a private heap (a fork() child's inheritance, threads.c),
 * forcing its way into one left busy, and retires them; recounts the run
 * counters when one was busy.  True if any was retired. */
bool tcache_adopt_orphans(carve_heap *h);

/* carve_attach of a private heap (a copy, or a file mapped again): no
 * thread of wherever it came from is running, whatever the records say;
 * every record is retired, busy or not, and the run counters recounted. */
void tcache_disown_all(carve_heap *h);

/* carve_attach of a heap without a lock: its one cache is used again as it
 * is, so its record is checked first (as carve_check does, O(its slots and
 * runs)), and retired with a recount of the runs, O(n), when it fails:
 * the record lies outside the control block's checksum, and the solo fast
 * paths follow its offsets unchecked. */
void tcache_attach_solo(carve_heap *h);

/* carve_detach's work: this process's caches in h go back. */
void tcache_detach(carve_heap *h);

#endif /* CARVE_THREADS_H */
