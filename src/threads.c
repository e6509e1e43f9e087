/*
 * threads.c: thread caches, and what fork() and thread exit do to them
 * (see threads.h).
 */
#define _DEFAULT_SOURCE /* syscall() */
#include "threads.h"

#include "heap.h"
#include "process.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__linux__) && defined(__GNUC__)
#include <linux/membarrier.h>
#include <sys/syscall.h>
#define CARVE_HAVE_MEMBARRIER 1
#else
#define CARVE_HAVE_MEMBARRIER 0
#endif

/* ---- entering a cache ------------------------------------------------------------
 *
 * A record's state word says who may work on it: 0 free, its tag owned and
 * idle, tag | 1 taken by one party (the owner's slow paths, or a drainer,
 * each with a compare-and-swap).  The owner's fast paths in a heap without
 * CARVE_SHARED do not touch it (enter_mru): the thread raises its own fast
 * flag, then checks tcache_quiescing and the state word.  A drainer of such
 * a heap first calls quiesce_begin: it raises tcache_quiescing, makes every
 * thread of the process execute a barrier (membarrier), and waits until no
 * listed thread's fast flag is up.  A thread that raised its flag before
 * the barrier is seen and waited for; one that raises it after sees the
 * drain and backs off to its slow path, which takes the state word and the
 * heap's lock, and so waits for the drainer.  Without membarrier (not
 * Linux, an old kernel, a sandbox that forbids it) the fast path fences
 * instead, and quiesce_begin's read-modify-write is the other fence.
 * quiesce_end lowers tcache_quiescing when the drain is done.  The flags
 * are the threads' (struct thread_mark), found through the list that
 * fork() uses, so a thread whose entry names a record that has since gone
 * to another thread only ever raises its own flag. */

_Atomic unsigned tcache_quiescing;
bool tcache_remote_barrier;

#if CARVE_HAVE_MEMBARRIER
static long membarrier_call(int cmd)
{
    return syscall(SYS_membarrier, cmd, 0u, 0);
}

/* Before main (or at dlopen, before any heap of this copy of the library
 * exists), so that every fast path sees one value of tcache_remote_barrier. */
__attribute__((constructor)) static void remote_barrier_setup(void)
{
    /* The fence in every fast path instead, on request: how the tests run
     * the other half of the pattern on a machine that has membarrier. */
    const char *off = getenv("CARVE_NO_MEMBARRIER");
    if (off != NULL && off[0] == '1') {
        return;
    }
    long cmds = membarrier_call(MEMBARRIER_CMD_QUERY);
    tcache_remote_barrier = cmds > 0 && (cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED) != 0 &&
                            membarrier_call(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0;
}

/* Every running thread of the process executes a full barrier.  The
 * registration is the process's: a child of fork() makes its own. */
static void remote_barrier(void)
{
    if (membarrier_call(MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0) {
        return;
    }
    if (membarrier_call(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0 &&
        membarrier_call(MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0) {
        return;
    }
    /* Fast paths skip their fence on the promise of this barrier: going on
     * without it could hand a slot out twice. */
    abort();
}
#else
static void remote_barrier(void) {}
#endif

/* Around a drainer's work on other threads' records of h (heap lock held);
 * defined with the list of threads below. */
static void quiesce_begin(const carve_heap *h);
static void quiesce_end(const carve_heap *h);

/* ---- the state word ------------------------------------------------------------ */

/* How a drainer got into a record (cache_enter_to_drain). */
enum drain_entry {
    DRAIN_ENTERED,   /* marked busy by the drainer */
    DRAIN_GONE,      /* freed or handed to another thread meanwhile */
    DRAIN_TAKEN_OVER /* busy for good: its process died mid-operation */
};

/* Spins between two looks at whether a busy record's process is gone:
 * about a millisecond of yields, long next to any pop or push. */
#define DEAD_OWNER_SPINS 1024u

/* Whether record c (busy) of CARVE_SHARED heap h belongs to a process that
 * has died: nobody will ever leave it then. */
static bool owner_is_gone(const carve_heap *h, const struct tcache *c)
{
    if (h == NULL || !(h->flags & CARVE_SHARED)) {
        return false; /* one process: an orphan of fork() is retire_orphans' */
    }
    struct process_id owner = {c->pid, c->pid_nonce, c->pid_ns, c->pid_started};
    return process_is_gone(&owner);
}

/* Marks cache c busy if it is still the cache tagged tag (DRAIN_ENTERED);
 * DRAIN_GONE when it was freed or handed to another thread since (then
 * nothing was written).  Waits while someone else works on it: owners and
 * drainers hold it for a handful of instructions.
 *
 * In a heap without a lock (h set) nobody else can be in the record, and
 * a busy one is damage: DRAIN_GONE at once.  A drainer (h set, heap lock
 * held) may meet a record that a process of a CARVE_SHARED heap left busy
 * when it died in a pop or push:
 * after waiting a while it asks whether the owner's process is gone, and
 * then takes the record over as it is (still busy, now the drainer's).  Its
 * counts may be one off then, as an orphan's of fork() (retire_orphans):
 * the caller retires it and recounts once every record is empty. */
static enum drain_entry cache_enter_to_drain(const carve_heap *h, struct tcache *c, uint64_t tag)
{
    for (unsigned spins = 0;; spins++) {
        uint64_t expected = tag;
        if (atomic_compare_exchange_weak_explicit(&c->state, &expected, tag | 1u,
                                                  memory_order_acquire, memory_order_relaxed)) {
            return DRAIN_ENTERED;
        }
        if (expected != (tag | 1u) && expected != tag) {
            return DRAIN_GONE;
        }
        if (h != NULL && !(h->flags & CARVE_THREADSAFE)) {
            return DRAIN_GONE; /* one user, who is here: busy is damage */
        }
        if (spins >= 64u) {
            sched_yield();
        }
        if (spins % DEAD_OWNER_SPINS == DEAD_OWNER_SPINS - 1u && expected == (tag | 1u) &&
            owner_is_gone(h, c)) {
            return DRAIN_TAKEN_OVER;
        }
    }
}

/* cache_enter_to_drain for the record's owner, whose own record cannot
 * have been left busy by a dead process. */
static bool cache_enter(struct tcache *c, uint64_t tag)
{
    return cache_enter_to_drain(NULL, c, tag) == DRAIN_ENTERED;
}

/* A tag no other cache of this heap has had: the heap's salt, the block's
 * offset, the heap's count of caches made and this process's, mixed; even
 * and never 0.  The heap's count alone repeats when a copy of the buffer
 * is put back where it was (carve_attach): a thread of this process may
 * still hold a tag from after the copy was taken, and the new record must
 * not match it.  The process's count never repeats in the process. */
static uint64_t cache_tag(const carve_heap *h, ref c, uint64_t serial)
{
    static atomic_uint_fast64_t made_here = 0;
    uint64_t nth = (uint64_t)atomic_fetch_add(&made_here, 1u);
    return (mix64(h->salt ^ (c << 7) ^ mix64(serial + 1u) ^
                  mix64(nth + UINT64_C(0x452821e638d01377))) &
            ~UINT64_C(1)) |
           2u;
}

bool tcache_may_hold(const carve_heap *h, const void *p)
{
    return (h->flags & HEAP_TCACHE) && slot_is_marked(h, offset_of(h, p));
}

bool tcache_wanted(unsigned flags)
{
    return !(flags & (HEAP_USER_LOCK | CARVE_POISON | CARVE_SCRAMBLE));
}

/* ---- moving slots between a cache and the runs (heap lock held) ----------------------- */

/* Folds the cache's user operations into the heap's counters (cache busy):
 * per class, base - count is the pops minus the pushes since the last fold
 * (threads.h, "Accounting").  Every change of a count other than a pop or
 * push comes after a fold and moves base with it (cache_set_count). */
static void cache_fold(carve_heap *h, struct tcache *c)
{
    uint64_t net = 0, net_bytes = 0; /* modular: may be negative */
    for (unsigned cls = 0; cls < SMALL_CLASSES; cls++) {
        uint64_t d = (uint64_t)c->base[cls] - c->count[cls];
        net += d;
        net_bytes += d * slot_size_of(cls);
        c->base[cls] = c->count[cls];
    }
    uint64_t pops = (c->ops + net) / 2u; /* ops + net = 2 * pops */
    h->slot_allocs += pops;
    h->slot_frees += c->ops - pops;
    h->used_public += net_bytes;
    if (h->used_public > h->peak_used_bytes) {
        h->peak_used_bytes = h->used_public;
    }
    c->ops = 0;
}

/* Class cls of cache c (busy, just folded) holds n slots after a trade
 * with the runs, which is no user operation. */
static void cache_set_count(struct tcache *c, unsigned cls, unsigned n)
{
    c->count[cls] = (uint16_t)n;
    c->base[cls] = (uint16_t)n;
}

/* A record freed: no solo fast path may use it (TCACHE_CLOSED). */
static void cache_close_counts(struct tcache *c)
{
    for (unsigned cls = 0; cls < SMALL_CLASSES; cls++) {
        c->count[cls] = TCACHE_CLOSED;
        c->base[cls] = TCACHE_CLOSED;
    }
}

/* A record taken into use: nothing cached, nothing to fold. */
static void cache_reset_counts(struct tcache *c)
{
    memset(c->count, 0, sizeof c->count);
    memset(c->base, 0, sizeof c->base);
    c->ops = 0;
}

/* Hands n slots (offsets a cache held) back to their runs.  A slot whose
 * run fails its check or that is not live is left alone: carve_check
 * reports the damage.  The slots usually come from few runs: a run checked
 * for one slot is trusted for the next ones of the same run (no second
 * page-map look-up and tag check) until handing a slot back may have
 * unmade it.  Each slot is still checked to be a live slot's start.  Its
 * mark stays until its live bit is clear: a free of it in another thread,
 * without the lock, that still finds the bit set must find the mark too
 * and go to the lock, where it is a double free (small_alloc wipes a stale
 * mark when the slot is handed out again without a cache).
 *
 * A slot without its mark stays live, counted as the user's, as hand_out
 * does: it was written after it was freed, and perhaps freed again, which
 * a free cannot tell from a first free once the mark is gone, so it sat in
 * the cache twice and the other copy may be in use.  Freeing it here would
 * hand that block out again while its holder still has it. */
static void give_back_many(carve_heap *h, const ref *slots, unsigned n)
{
    ref trusted = 0;
    unsigned cls = 0;
    for (unsigned k = 0; k < n; k++) {
        ref s = slots[k];
        ref r = (s & ~(ref)(RUN_SIZE - 1u)) + RUN_HEAD_OFFSET;
        if (r != trusted) {
            /* The range first: at() of an offset far outside is undefined. */
            if (s <= h->arena_begin || s >= h->arena_end || !small_owns(h, at(h, s))) {
                continue;
            }
            cls = run_at(h, r)->cls;
            if (!run_is_valid(h, r, cls)) {
                continue;
            }
            trusted = r;
        }
        uint64_t i;
        if (!slot_at(s - r - run_geom[cls].slot0, cls, &i) || !slot_is_live(run_at(h, r), i)) {
            continue;
        }
        if (CARVE_UNLIKELY(!slot_is_marked(h, s))) {
            count_slot(h, cls, true);
            continue;
        }
        struct run *run = run_at(h, r);
        bool may_unmake = run->nfree + 1u >= run_geom[cls].nslots; /* small_put may empty it */
        small_put(h, r, i, cls);
        if (may_unmake) {
            trusted = 0;
        }
    }
}

/* The owner number (1 + index) of record c. */
static unsigned owner_of(const carve_heap *h, const struct tcache *c)
{
    return (unsigned)((offset_of(h, c) - h->tcaches) / sizeof(struct tcache)) + 1u;
}

/* take_slots for cache c (under the heap's lock, not entered): from its
 * run in use of class cls; when that is used up, it goes to c's list and
 * the next of c's runs comes in use (after a fragment, as below). */
static unsigned take_own_slots(carve_heap *h, struct tcache *c, unsigned cls, ref *out, unsigned n)
{
    if (small_declines(h, cls)) {
        return 0; /* as small_take_many: the caller's locked path decides */
    }
    unsigned owner = owner_of(h, c);
    ref r = c->own[cls];
    if (r != 0 && !small_own_is_valid(h, r, cls, owner)) {
        r = c->own[cls] = 0; /* damaged: carve_check reports it */
    }
    unsigned got = r != 0 ? small_take_from(h, r, cls, out, n) : 0u;
    if (got == 0) {
        if (r != 0) {
            c->own[cls] = 0;
            small_own_done(h, r, cls, &c->partial[cls]);
        }
        if (!heap_fragment_serves(h, cls) &&
            (r = small_own_next(h, cls, owner, &c->partial[cls])) != 0) {
            c->own[cls] = r;
            got = small_take_from(h, r, cls, out, n);
        }
    }
    return got;
}

/* Gives back cache c's runs (under the heap's lock): they lose their owner. */
static void own_runs_release(carve_heap *h, struct tcache *c)
{
    unsigned owner = owner_of(h, c);
    for (unsigned cls = 0; cls < SMALL_CLASSES; cls++) {
        ref r = c->own[cls];
        c->own[cls] = 0;
        if (r != 0 && small_own_is_valid(h, r, cls, owner)) {
            small_own_done(h, r, cls, NULL);
        }
        small_own_release(h, cls, &c->partial[cls]);
    }
}

static unsigned take_slots(carve_heap *h, unsigned cls, ref *out, unsigned n)
{
    unsigned got = small_take_many(h, cls, out, n);
    /* Nothing taken: the class's run is used up, or it declined because a
     * fragment of the general heap would serve (small.h, "Fragments").  As
     * for a request without a cache, such a fragment comes before another
     * run: the caller's locked path, which knows the request's size,
     * decides. */
    if (got == 0 && !heap_fragment_serves(h, cls) && small_refill(h, cls)) {
        got = small_take_many(h, cls, out, n);
    }
    return got;
}

/* Empties cache c (busy) into the runs. */
static void cache_empty(carve_heap *h, struct tcache *c)
{
    cache_fold(h, c);
    c->owns = 0; /* runs that get a free slot from now on go to the class's list */
    for (unsigned cls = 0; cls < SMALL_CLASSES; cls++) {
        unsigned n = c->count[cls] <= TCACHE_CAP ? c->count[cls] : 0u;
        give_back_many(h, c->slot[cls], n);
        cache_set_count(c, cls, 0);
    }
    /* After the slots: a run they empty is kept as its class's current
     * when there is none, as it would have been without caches. */
    own_runs_release(h, c);
}

/* Empties cache c (busy) and frees its record.  Its owner finds out by the
 * state word. */
static void cache_retire(carve_heap *h, struct tcache *c)
{
    cache_empty(h, c);
    cache_close_counts(c);
    c->tag = 0;
    atomic_store_explicit(&c->state, 0, memory_order_release);
}

/* Whether the control block's record area is usable (it is validated with
 * the control block; this guards against a damaged count). */
static bool records_in_place(const carve_heap *h)
{
    return h->tcaches != 0 && h->tcache_count <= TCACHE_MAX_RECORDS;
}

static struct tcache *record(const carve_heap *h, uint64_t i)
{
    return cache_at(h, h->tcaches + i * sizeof(struct tcache));
}

void tcache_init_records(carve_heap *h)
{
    memset(at(h, h->tcaches), 0, (size_t)(h->tcache_count * sizeof(struct tcache)));
    for (uint64_t i = 0; i < h->tcache_count; i++) {
        cache_close_counts(record(h, i));
    }
}

/* Whether free record c is closed to the solo fast paths. */
static bool counts_closed(const struct tcache *c)
{
    for (unsigned cls = 0; cls < SMALL_CLASSES; cls++) {
        if (c->count[cls] != TCACHE_CLOSED) {
            return false;
        }
    }
    return true;
}

ref *tcache_partial_head(carve_heap *h, uint64_t k, unsigned cls)
{
    if (!records_in_place(h) || k >= h->tcache_count) {
        return NULL;
    }
    /* owns, not tag: the tag shares a cache line with the state word its
     * owner writes at every operation. */
    struct tcache *c = record(h, k);
    return c->owns != 0 ? &c->partial[cls] : NULL;
}

/* Whether offset s, held by a cache in class cls, is a live slot of a run
 * of that class that carries the cached mark (a write after free over the
 * mark is damage: a second free of that slot would go unnoticed). */
static bool slot_is_cached_soundly(const carve_heap *h, ref s, unsigned cls)
{
    struct slot_loc loc;
    if (s <= h->arena_begin || s >= h->arena_end) {
        return false; /* checked before at(): a pointer far outside is undefined */
    }
    void *p = at(h, s);
    return small_owns(h, p) && small_locate(h, p, &loc) == CARVE_OK && loc.cls == cls &&
           slot_is_live(run_at(h, loc.run), loc.index) && slot_is_marked(h, s);
}

/* Retires every record this process can enter (all of them, once the
 * orphans are taken over), other threads' fast paths kept out; true if
 * one was in use. */
static bool retire_records(carve_heap *h)
{
    bool any = false;
    bool taken_over = false;
    quiesce_begin(h);
    for (uint64_t i = 0; i < h->tcache_count; i++) {
        struct tcache *c = record(h, i);
        uint64_t tag = c->tag;
        enum drain_entry how = tag != 0 ? cache_enter_to_drain(h, c, tag) : DRAIN_GONE;
        if (how != DRAIN_GONE) {
            cache_retire(h, c);
            any = true;
            taken_over = taken_over || how == DRAIN_TAKEN_OVER;
        }
    }
    quiesce_end(h);
    if (taken_over) {
        small_recount(h); /* every record is empty now */
    }
    return any;
}

/* Retires the records of another process's threads (a fork() child's
 * inheritance of its parent's); true if there was one.  Then the run
 * counters must be recounted once no cache holds a slot. */
static bool retire_orphans(carve_heap *h)
{
    if (h->flags & CARVE_SHARED) {
        return false; /* other processes' records are live there */
    }
    uint32_t me = (uint32_t)getpid();
    bool any = false;
    for (uint64_t i = 0; i < h->tcache_count; i++) {
        struct tcache *c = record(h, i);
        uint64_t tag = c->tag;
        if (tag == 0 || c->pid == me || c->pid == 0) {
            continue;
        }
        uint64_t expected = tag;
        if (!atomic_compare_exchange_strong_explicit(&c->state, &expected, tag | 1u,
                                                     memory_order_acquire, memory_order_relaxed)) {
            atomic_store_explicit(&c->state, tag | 1u, memory_order_relaxed);
        }
        /* Its thread may have stopped mid-operation at the fork, in a slow
         * path (the state word says so) or in a fast path (nothing in the
         * record says so): the counts are redone either way. */
        cache_retire(h, c);
        any = true;
    }
    return any;
}

bool tcache_adopt_orphans(carve_heap *h)
{
    if (!(h->flags & HEAP_TCACHE) || !records_in_place(h) || !retire_orphans(h)) {
        return false;
    }
    /* The recount takes every live bit for a user's block, so no cache may
     * hold a slot then: this process's caches (a fork() child may have
     * made its own before this call) are emptied first. */
    (void)retire_records(h);
    small_recount(h);
    return true;
}

void tcache_disown_all(carve_heap *h)
{
    if (!(h->flags & HEAP_TCACHE) || !records_in_place(h)) {
        return;
    }
    for (uint64_t i = 0; i < h->tcache_count; i++) {
        struct tcache *c = record(h, i);
        if (c->tag != 0) {
            atomic_store_explicit(&c->state, c->tag | 1u, memory_order_relaxed);
            cache_retire(h, c);
        }
        c->owns = 0;
    }
    small_recount(h);
}

void tcache_attach_solo(carve_heap *h)
{
    struct tcache_sums sums;
    if ((h->flags & HEAP_TCACHE) && records_in_place(h) && tcache_sums(h, &sums) != 1) {
        tcache_disown_all(h);
    }
}

bool tcache_drain_all(carve_heap *h)
{
    if (!(h->flags & HEAP_TCACHE) || !records_in_place(h)) {
        return false; /* never followed when damaged; carve_check reports it */
    }
    bool adopted = retire_orphans(h);
    bool retired = retire_records(h);
    if (adopted) {
        small_recount(h); /* as tcache_adopt_orphans: every cache is empty now */
    }
    return adopted || retired;
}

/* What records_sum found. */
enum records_verdict { RECORDS_SOUND, RECORDS_DAMAGED, RECORDS_OWNER_DIED };

/* tcache_sums over the records, other threads' fast paths kept out.  A
 * record whose process died in the middle of an operation is retired on
 * the spot (RECORDS_OWNER_DIED: the sums are incomplete, and the run
 * counters must be recounted once every record is empty). */
static enum records_verdict records_sum(carve_heap *h, struct tcache_sums *out)
{
    for (uint64_t i = 0; i < h->tcache_count; i++) {
        struct tcache *c = record(h, i);
        uint64_t tag = c->tag;
        if (tag == 0) {
            if (c->owns != 0 || !counts_closed(c)) {
                return RECORDS_DAMAGED; /* a free record that would take runs or slots */
            }
            continue;
        }
        enum drain_entry how = cache_enter_to_drain(h, c, tag);
        if (how == DRAIN_GONE) {
            return RECORDS_DAMAGED;
        }
        if (how == DRAIN_TAKEN_OVER) {
            cache_retire(h, c);
            return RECORDS_OWNER_DIED;
        }
        bool sound = true;
        for (unsigned cls = 0; cls < SMALL_CLASSES && sound; cls++) {
            sound = c->count[cls] <= TCACHE_CAP;
            for (unsigned k = 0; sound && k < c->count[cls]; k++) {
                sound = slot_is_cached_soundly(h, c->slot[cls][k], cls);
            }
            out->slots += c->base[cls];
            out->bytes += c->base[cls] * slot_size_of(cls);
            unsigned owner = owner_of(h, c);
            if (sound && c->own[cls] != 0) {
                sound = small_own_is_valid(h, c->own[cls], cls, owner);
                out->own++;
            }
            sound = sound && small_own_list_is_sound(h, cls, c->partial[cls], owner, &out->listed);
        }
        cache_leave(c, tag);
        if (!sound) {
            return RECORDS_DAMAGED;
        }
    }
    return RECORDS_SOUND;
}

int tcache_sums(carve_heap *h, struct tcache_sums *out)
{
    memset(out, 0, sizeof *out);
    if (!(h->flags & HEAP_TCACHE)) {
        return 1;
    }
    if (!records_in_place(h)) {
        return 0;
    }
    quiesce_begin(h);
    enum records_verdict v = records_sum(h, out);
    quiesce_end(h);
    if (v == RECORDS_OWNER_DIED) {
        /* The dead process's record is retired; the others follow, and
         * then the runs are recounted. */
        (void)retire_records(h);
        small_recount(h);
        return -1;
    }
    return v == RECORDS_SOUND ? 1 : 0;
}

/* ---- threads and fork() ------------------------------------------------------------------
 *
 * Before fork(), no thread may be inside a heap's locked section: the child
 * would find the lock held by a thread it does not have, and the metadata
 * half-changed.  Every locked section of a heap with the built-in lock is
 * therefore bracketed by fork_gate_enter/leave, which mark this thread as
 * inside; fork_prepare raises fork_pending and waits until every listed
 * thread is outside, and new entrants wait for the fork to finish.  The
 * marks are per thread (no line shared between threads), and the ordering
 * is Dekker's: each side stores its own flag, fences, then reads the other.
 *
 * The lock-free cache paths are not gated (that would cost them an atomic
 * operation each).  A child therefore inherits records of its parent's
 * threads, possibly one per thread in the middle of a pop or push.  In a
 * private heap they are recognised by their process id: a drain in the
 * child retires them, forcing its way into a busy one, and then recounts
 * the run counters from the bitmaps, since an interrupted pop or push may
 * have left its record's counts one off (its slot stays live: a small block
 * leaked in the child).  A CARVE_SHARED heap is the same memory in both
 * processes: its records belong to live threads of the parent, and the
 * child only forgets its own thread's entries.
 *
 * The list of threads holds thread-local blocks, valid until each thread's
 * exit removes it: it never refers to a heap, so a heap's buffer may be
 * released at any time. */

static pthread_mutex_t threads_mutex = PTHREAD_MUTEX_INITIALIZER;
/* Held, after threads_mutex, by whoever changes the list, and alone by
 * quiesce_begin's walk: fork_prepare holds threads_mutex while it waits for
 * threads in locked sections, and a drainer is in one. */
static pthread_mutex_t fast_list_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t fork_mutex = PTHREAD_MUTEX_INITIALIZER;
static struct thread_mark *threads_list;
static _Atomic int fork_pending;
static pthread_once_t threads_once = PTHREAD_ONCE_INIT;
static pthread_key_t exit_key;
static bool exit_key_made;

/* This thread's caches (threads.h). */
CARVE_THREAD_LOCAL struct tls_cache tcache_mine[TCACHE_PER_THREAD];
CARVE_THREAD_LOCAL struct thread_mark thread_self;
/* After every record was found taken, calls to wait before looking again. */
static CARVE_THREAD_LOCAL unsigned my_record_backoff;
/* Calls to my_cache by this thread: the clock that entries' idleness is
 * read on (struct tls_cache, used). */
static CARVE_THREAD_LOCAL uint64_t my_cache_calls;
/* my_cache_calls when this thread last gave up an entry. */
static CARVE_THREAD_LOCAL uint64_t my_last_eviction;
/* This thread's place in the process's count of threads (my_thread_number),
 * or 0 before it has one. */
static CARVE_THREAD_LOCAL uint64_t my_number;

static void thread_exit(void *mark)
{
    struct thread_mark *m = mark;
    pthread_mutex_lock(&threads_mutex);
    pthread_mutex_lock(&fast_list_mutex);
    if (m->listed) {
        if (m->prev) {
            m->prev->next = m->next;
        } else {
            threads_list = m->next;
        }
        if (m->next) {
            m->next->prev = m->prev;
        }
        m->listed = false;
    }
    pthread_mutex_unlock(&fast_list_mutex);
    pthread_mutex_unlock(&threads_mutex);
}

static void fork_prepare(void)
{
    pthread_mutex_lock(&fork_mutex);
    pthread_mutex_lock(&threads_mutex);
    atomic_store_explicit(&fork_pending, 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst);
    for (struct thread_mark *t = threads_list; t; t = t->next) {
        while (atomic_load_explicit(&t->inside, memory_order_acquire) != 0) {
            sched_yield();
        }
    }
}

static void fork_parent(void)
{
    atomic_store_explicit(&fork_pending, 0, memory_order_release);
    pthread_mutex_unlock(&threads_mutex);
    pthread_mutex_unlock(&fork_mutex);
}

static void fork_child(void)
{
    atomic_store_explicit(&fork_pending, 0, memory_order_relaxed);
    pthread_mutex_init(&threads_mutex, NULL);
    pthread_mutex_init(&fast_list_mutex, NULL);
    pthread_mutex_init(&fork_mutex, NULL);
    /* Only this thread exists now. */
    threads_list = thread_self.listed ? &thread_self : NULL;
    thread_self.next = thread_self.prev = NULL;
    memset(tcache_mine, 0, sizeof tcache_mine);
}

static void threads_init_once(void)
{
    exit_key_made = pthread_key_create(&exit_key, thread_exit) == 0;
    (void)pthread_atfork(fork_prepare, fork_parent, fork_child);
}

/* Puts this thread on the list fork_prepare waits for.  Without the exit
 * hook it stays off the list (its block would outlive it there). */
static void thread_list_me(void)
{
    pthread_once(&threads_once, threads_init_once);
    if (!exit_key_made || pthread_setspecific(exit_key, &thread_self) != 0) {
        return;
    }
    pthread_mutex_lock(&threads_mutex);
    pthread_mutex_lock(&fast_list_mutex);
    thread_self.prev = NULL;
    thread_self.next = threads_list;
    if (threads_list) {
        threads_list->prev = &thread_self;
    }
    threads_list = &thread_self;
    thread_self.listed = true;
    pthread_mutex_unlock(&fast_list_mutex);
    pthread_mutex_unlock(&threads_mutex);
}

void fork_gate_enter(void)
{
    if (thread_self.depth++ != 0) {
        return;
    }
    if (CARVE_UNLIKELY(!thread_self.listed)) {
        thread_list_me();
    }
    for (;;) {
        atomic_store_explicit(&thread_self.inside, 1u, memory_order_relaxed);
        atomic_thread_fence(memory_order_seq_cst);
        if (CARVE_LIKELY(atomic_load_explicit(&fork_pending, memory_order_relaxed) == 0)) {
            return;
        }
        atomic_store_explicit(&thread_self.inside, 0u, memory_order_release);
        pthread_mutex_lock(&fork_mutex); /* held until the fork is done */
        pthread_mutex_unlock(&fork_mutex);
    }
}

void fork_gate_leave(void)
{
    if (--thread_self.depth == 0) {
        atomic_store_explicit(&thread_self.inside, 0u, memory_order_release);
    }
}

static void quiesce_begin(const carve_heap *h)
{
    if (h->flags & CARVE_SHARED) {
        return; /* its fast paths take the state word */
    }
    atomic_fetch_add_explicit(&tcache_quiescing, 1u, memory_order_seq_cst);
    if (tcache_remote_barrier) {
        remote_barrier();
    }
    pthread_mutex_lock(&fast_list_mutex);
    for (const struct thread_mark *t = threads_list; t != NULL; t = t->next) {
        for (unsigned spins = 0; atomic_load_explicit(&t->fast, memory_order_acquire) != 0;
             spins++) {
            if (spins >= 64u) {
                sched_yield(); /* it was descheduled in the middle of one */
            }
        }
    }
    pthread_mutex_unlock(&fast_list_mutex);
}

static void quiesce_end(const carve_heap *h)
{
    if (!(h->flags & CARVE_SHARED)) {
        atomic_fetch_sub_explicit(&tcache_quiescing, 1u, memory_order_release);
    }
}

void tcache_detach(carve_heap *h)
{
    if (!(h->flags & HEAP_TCACHE) || !records_in_place(h)) {
        return;
    }
    heap_enter(h);
    if (h->flags & CARVE_SHARED) {
        /* Only this process's records: the others' are live.  By the
         * nonce, not the id alone: a dead process of another namespace, or
         * one this process's id was reused from, may have left a record
         * busy under that id, and only a drain may take it over. */
        struct process_id me = process_self();
        quiesce_begin(h);
        for (uint64_t i = 0; i < h->tcache_count; i++) {
            struct tcache *c = record(h, i);
            uint64_t tag = c->tag;
            if (tag != 0 && c->pid == me.pid && c->pid_nonce == me.nonce && cache_enter(c, tag)) {
                cache_retire(h, c);
            }
        }
        quiesce_end(h);
    } else {
        /* Every record is this process's, or, in a fork() child, its
         * parent's, which may have stopped mid-operation: a drain retires
         * those without waiting for them and recounts the runs. */
        (void)tcache_drain_all(h);
    }
    heap_leave(h);
    for (unsigned i = 0; i < TCACHE_PER_THREAD; i++) {
        if (tcache_mine[i].h == h) {
            memset(&tcache_mine[i], 0, sizeof tcache_mine[i]);
        }
    }
}

/* ---- this thread's cache ---------------------------------------------------------------- */

/* Whether some record of h is free. */
static bool record_free(const carve_heap *h)
{
    for (uint64_t i = 0; i < h->tcache_count; i++) {
        if (record(h, i)->tag == 0) {
            return true;
        }
    }
    return false;
}

/* This thread's number in its process, which its records carry (struct
 * tcache), so that it can find a record of its own again after it gave up
 * its entry for the heap (entry_to_fill).  Numbers are never reused: past
 * 2^32 - 1 threads a thread gets 0, which no record is found by. */
static uint32_t my_thread_number(void)
{
    static _Atomic uint64_t numbers_given;
    if (my_number == 0) {
        my_number = atomic_fetch_add_explicit(&numbers_given, 1u, memory_order_relaxed) + 1u;
    }
    return my_number <= UINT32_MAX ? (uint32_t)my_number : 0u;
}

/* Notes record i of h (taken, tag c->tag) in entry e. */
static void entry_set(carve_heap *h, struct tls_cache *e, uint64_t i, const struct tcache *c)
{
    e->h = h;
    e->salt = h->salt;
    e->c = h->tcaches + i * sizeof(struct tcache);
    e->tag = c->tag;
}

/* Takes back a record of h this thread gave its entry up for, with the
 * slots and runs it still holds, instead of making another.  Under the
 * heap's lock, so no drainer is in it; its owner is this thread, which
 * is not in it either, so it is idle (state == tag) unless something
 * overwrote it.  In a private heap (one process) a number and the process
 * id are those of one live thread at a time: a record found by them is
 * this thread's, or one whose thread exited, which nobody else can be
 * using either.  Not in a CARVE_SHARED heap: processes of two pid
 * namespaces may map it with the same pid, and a record that two live
 * threads used would break the cache's one-owner rules (a refill appends
 * to counts only its owner raises), so a record given up there waits for
 * a drain. */
static bool cache_take_back(carve_heap *h, struct tls_cache *e)
{
    if (h->flags & CARVE_SHARED) {
        return false;
    }
    uint32_t me = my_thread_number();
    uint32_t pid = (uint32_t)getpid();
    for (uint64_t i = 0; me != 0 && records_in_place(h) && i < h->tcache_count; i++) {
        struct tcache *c = record(h, i);
        uint64_t tag = c->tag;
        if (tag != 0 && c->thread == me && c->pid == pid &&
            atomic_load_explicit(&c->state, memory_order_acquire) == tag) {
            entry_set(h, e, i, c);
            return true;
        }
    }
    return false;
}

/* Gives this thread a record of h, its own from before or a free one, and
 * notes it in e (a free entry); false when every record is taken. */
static bool cache_create(carve_heap *h, struct tls_cache *e)
{
    heap_enter(h);
    bool made = cache_take_back(h, e);
    if (!made && records_in_place(h) && !record_free(h)) {
        /* Records of threads that exited stay taken until a drain. */
        (void)tcache_drain_all(h);
    }
    for (uint64_t i = 0; !made && records_in_place(h) && i < h->tcache_count; i++) {
        struct tcache *c = record(h, i);
        if (c->tag != 0) {
            continue;
        }
        cache_reset_counts(c);
        memset(c->own, 0, sizeof c->own);
        memset(c->partial, 0, sizeof c->partial);
        c->owns = 1;
        struct process_id me = {(uint32_t)getpid(), 0, 0, 0};
        if (h->flags & CARVE_SHARED) {
            me = process_self();
        }
        c->pid = me.pid;
        c->pid_nonce = me.nonce;
        c->pid_ns = me.ns;
        c->pid_started = me.started;
        c->thread = my_thread_number();
        c->tag = cache_tag(h, h->tcaches + i * sizeof(struct tcache), h->tcache_serial++);
        atomic_store_explicit(&c->state, c->tag, memory_order_release);
        entry_set(h, e, i, c);
        made = true;
    }
    heap_leave(h);
    return made;
}

/* Moves entry e to the front, where the fast paths look (enter_mru), and
 * returns it there.  The others keep their order, so the entries run from
 * the most to the least recently used, and the last is the one to give up. */
static struct tls_cache *most_recent(struct tls_cache *e)
{
    if (e != &tcache_mine[0]) {
        struct tls_cache t = *e;
        memmove(&tcache_mine[1], &tcache_mine[0], (size_t)(e - tcache_mine) * sizeof *e);
        tcache_mine[0] = t;
    }
    return &tcache_mine[0];
}

/* An entry for a new cache: a free one, else the least recently used once
 * it has been idle for TCACHE_IDLE_CALLS calls (NULL before that).  Without
 * this a thread that had used TCACHE_PER_THREAD heaps, even heaps long
 * released, would work through the lock in every heap after them.
 *
 * Giving up an entry only forgets it: its heap is not touched (it may be
 * gone), so its record stays taken, with the slots and runs it holds,
 * until this thread comes back and takes it again (cache_take_back) or a
 * drain there retires it, as it does a record of a thread that exited.
 *
 * At most one entry is given up per TCACHE_IDLE_CALLS calls.  A new cache
 * costs about 5 us (a record, refills from runs of its own), so a thread
 * that goes round more heaps than it has entries spends under 1% of its
 * time changing caches, against about 20 ns per call through the lock,
 * whatever its pattern; giving an entry up at once made such rounds 10 to
 * 25 times slower. */
static struct tls_cache *entry_to_fill(struct tls_cache *empty)
{
    struct tls_cache *oldest = &tcache_mine[TCACHE_PER_THREAD - 1u];
    if (empty == NULL && my_cache_calls - oldest->used >= TCACHE_IDLE_CALLS &&
        my_cache_calls - my_last_eviction >= TCACHE_IDLE_CALLS) {
        my_last_eviction = my_cache_calls;
        memset(oldest, 0, sizeof *oldest);
        empty = oldest;
    }
    return empty;
}

/* This thread's cache entry for h, making one if it has none; NULL when
 * it cannot (then every call takes the lock). */
static struct tls_cache *my_cache(carve_heap *h)
{
    my_cache_calls++;
    struct tls_cache *empty = NULL;
    for (unsigned i = 0; i < TCACHE_PER_THREAD; i++) {
        struct tls_cache *e = &tcache_mine[i];
        if (e->h == h) {
            if (CARVE_LIKELY(e->salt == h->salt)) {
                e->used = my_cache_calls;
                return most_recent(e);
            }
            memset(e, 0, sizeof *e); /* another heap now lives at h */
        }
        if (e->h == NULL && empty == NULL) {
            empty = e;
        }
    }
    if (my_record_backoff > 0) {
        my_record_backoff--;
        return NULL;
    }
    struct tls_cache *e = entry_to_fill(empty);
    if (e == NULL) {
        return NULL;
    }
    if (!cache_create(h, e)) {
        my_record_backoff = 1024u; /* every record is taken: do not ask on every call */
        return NULL;
    }
    e->used = my_cache_calls;
    return most_recent(e);
}

/* Enters this thread's cache for h: its entry, with the cache busy; NULL
 * when there is none.  A retired cache is replaced once. */
static struct tls_cache *my_cache_enter(carve_heap *h)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        struct tls_cache *e = my_cache(h);
        if (e == NULL) {
            return NULL;
        }
        if (CARVE_LIKELY(cache_enter(cache_at(h, e->c), e->tag))) {
            return e;
        }
        memset(e, 0, sizeof *e); /* drained and retired by someone else */
    }
    return NULL;
}

/* ---- the fast paths ----------------------------------------------------------------------- */

/* Refills class cls of the cache in e (not busy) under the heap's lock;
 * returns with the cache busy and the class non-empty, or NULL. */
static struct tcache *refill(carve_heap *h, struct tls_cache *e, unsigned cls)
{
    ref got[TCACHE_BATCH];
    heap_enter(h);
    struct tcache *c = cache_at(h, e->c);
    if (c->tag != e->tag) { /* drained since: perhaps someone else's now */
        heap_leave(h);
        memset(e, 0, sizeof *e);
        return NULL;
    }
    /* Taken before the cache is entered: making a run may drain caches. */
    unsigned n = take_own_slots(h, c, cls, got, TCACHE_BATCH);
    if (!cache_enter(c, e->tag)) {
        /* Drained meanwhile: nothing stays the cache's. */
        give_back_many(h, got, n);
        own_runs_release(h, c);
        heap_leave(h);
        memset(e, 0, sizeof *e);
        return NULL;
    }
    /* Only the owner adds slots, so there is room for the batch. */
    cache_fold(h, c);
    unsigned have = c->count[cls];
    for (unsigned k = n; k-- > 0;) { /* lowest address on top */
        c->slot[cls][have++] = got[k];
    }
    cache_set_count(c, cls, have);
    heap_leave(h);
    if (have == 0) {
        cache_leave(c, e->tag);
        return NULL;
    }
    return c;
}

void *tcache_alloc_slow(carve_heap *h, unsigned cls)
{
    struct tls_cache *e = my_cache_enter(h);
    if (CARVE_UNLIKELY(e == NULL)) {
        return NULL;
    }
    struct tcache *c = cache_at(h, e->c);
    unsigned n = c->count[cls];
    if (n == 0 || n > TCACHE_CAP) {
        cache_leave(c, e->tag);
        if (n != 0 || (c = refill(h, e, cls)) == NULL) {
            return NULL;
        }
        n = c->count[cls];
    }
    void *p = hand_out(h, c, cls, n);
    cache_leave(c, e->tag);
    return p;
}

/* Moves the oldest (up to) TCACHE_BATCH slots of class cls out of cache c
 * (busy) into out, folding first; returns how many. */
static unsigned cache_take_oldest(carve_heap *h, struct tcache *c, unsigned cls, ref *out)
{
    cache_fold(h, c);
    unsigned have = c->count[cls];
    unsigned n = have < TCACHE_BATCH ? have : TCACHE_BATCH;
    memcpy(out, c->slot[cls], n * sizeof(ref));
    memmove(c->slot[cls], c->slot[cls] + n, (have - n) * sizeof(ref));
    cache_set_count(c, cls, have - n);
    return n;
}

/* Hands the oldest TCACHE_BATCH slots of class cls back to the runs, under
 * the heap's lock. */
static bool flush(carve_heap *h, struct tls_cache *e, unsigned cls)
{
    ref out[TCACHE_BATCH];
    heap_enter(h);
    struct tcache *c = cache_at(h, e->c);
    if (!cache_enter(c, e->tag)) {
        heap_leave(h);
        memset(e, 0, sizeof *e);
        return false;
    }
    unsigned n = cache_take_oldest(h, c, cls, out);
    cache_leave(c, e->tag);
    give_back_many(h, out, n);
    heap_leave(h);
    return true;
}

uint64_t tcache_usable(const carve_heap *h, const void *p)
{
    struct freed_slot f;
    return cacheable_slot(h, p, &f) == 1 ? slot_size_of(f.cls) : 0;
}

int tcache_free_slow(carve_heap *h, void *p, ref s, unsigned cls, uint64_t mark)
{
    struct tls_cache *e = my_cache_enter(h);
    if (CARVE_UNLIKELY(e == NULL)) {
        return 0;
    }
    struct tcache *c = cache_at(h, e->c);
    if (c->count[cls] >= TCACHE_CAP) {
        cache_leave(c, e->tag);
        if (!flush(h, e, cls) || (e = my_cache_enter(h)) == NULL) {
            return 0;
        }
        c = cache_at(h, e->c);
        if (c->count[cls] >= TCACHE_CAP) {
            cache_leave(c, e->tag);
            return 0;
        }
    }
    cache_push(c, cls, p, s, mark);
    cache_leave(c, e->tag);
    return 1;
}

/* ---- a heap without a lock: one cache, record 0 -------------------------------------------
 * A heap used by one thread at a time gets the same front cache: the lock
 * it does not have is not what makes caching pay, the short path is (a pop
 * or push of an offset instead of a bitmap search or update).  Record 0 is
 * the cache; nobody can be working on it concurrently, so its state word
 * only says whether it is in use. */

/* The one cache, claimed again after a drain freed it. */
static struct tcache *solo_cache(carve_heap *h)
{
    struct tcache *c = record(h, 0);
    if (CARVE_UNLIKELY(c->tag == 0)) {
        cache_reset_counts(c);
        memset(c->own, 0, sizeof c->own);
        memset(c->partial, 0, sizeof c->partial);
        c->owns = 0;
        c->pid = 0;
        c->pid_nonce = 0;
        c->pid_ns = 0;
        c->pid_started = 0;
        c->thread = 0;
        c->tag = cache_tag(h, h->tcaches, h->tcache_serial++);
        atomic_store_explicit(&c->state, c->tag, memory_order_relaxed);
    }
    return c;
}

/* Class cls of the solo cache is empty (or damaged): a batch from the runs. */
void *tcache_solo_refill(carve_heap *h, unsigned cls)
{
    struct tcache *c = solo_cache(h);
    unsigned n = c->count[cls];
    if (n != 0) {
        return n <= TCACHE_CAP ? hand_out(h, c, cls, n)
                               : NULL; /* damaged: carve_check reports it */
    }
    ref got[TCACHE_BATCH];
    n = take_slots(h, cls, got, TCACHE_BATCH);
    if (n == 0 || (c = solo_cache(h))->count[cls] != 0) {
        give_back_many(h, got, n); /* making a run drained the cache: start over */
        return NULL;
    }
    for (unsigned k = 0; k < n; k++) {
        c->slot[cls][k] = got[n - 1u - k]; /* lowest address on top */
    }
    cache_fold(h, c);
    cache_set_count(c, cls, n);
    return hand_out(h, c, cls, n);
}

/* Class cls of the solo cache is full: its oldest batch goes back, then p
 * goes in.  CARVE_OK. */
int tcache_solo_flush(carve_heap *h, void *p, ref s, unsigned cls, uint64_t mark)
{
    struct tcache *c = solo_cache(h);
    if (c->count[cls] >= TCACHE_CAP) {
        ref out[TCACHE_BATCH];
        unsigned n = cache_take_oldest(h, c, cls, out);
        give_back_many(h, out, n);
        c = solo_cache(h);
    }
    cache_push(c, cls, p, s, mark);
    return CARVE_OK;
}
