/*
 * carve: an allocator for memory its user already owns.
 *
 * The user hands carve a buffer (a static array, one mmap'd region, a shared
 * memory segment, a mapped file); carve formats it as a heap and hands out and
 * takes back blocks inside it.  Everything carve needs lives inside that
 * buffer and refers to blocks by offset, so a heap can be copied, re-mapped at
 * another address or shared between processes.
 *
 * This is the one public header.  Every function documents what it does,
 * when and how it fails, its complexity and its thread-safety.
 *
 * Conventions that hold for every function below:
 *   - "h" must be a heap returned by carve_init() or carve_attach().  A NULL h
 *     is reported as a bad argument (NULL + errno = EINVAL, or
 *     CARVE_ERR_INVALID); any other pointer that is not a heap is undefined
 *     behaviour, as for free() with a foreign pointer.
 *   - A call that fails changes nothing in the heap (except the
 *     failed_allocs counter; and an allocation that could fit once free
 *     space merged has compacted the heap before it gave up, which moves
 *     unpinned handle blocks but changes no contents or handles).
 *   - Corruption: carve validates every header it reads (a check field
 *     keyed to the header's offset) and every free-list link it follows
 *     (against the neighbour's back link), and never follows one that
 *     fails.  Status-returning calls then report CARVE_ERR_CORRUPT;
 *     pointer-returning calls return NULL with errno = EIO.
 *   - No function touches memory outside [buffer, buffer + size).
 *   - Thread-safety: without CARVE_THREADSAFE, CARVE_SHARED or lock hooks
 *     (carve_lock_hooks) a heap must be used by one thread at a time (no
 *     lock is taken: zero cost).  With any of them every function may be
 *     called from any thread at any time; "Threads" below has the rules
 *     (pins against compaction, fork(), thread caches).
 *   - Complexity is stated for the default policy (CARVE_GOOD_FIT) unless
 *     said otherwise; n is the number of blocks in the heap, k the number of
 *     free blocks in one size class.
 *
 * Copyright (c) 2026 the carve authors.  MIT licence (see LICENSE).
 */
#ifndef CARVE_H
#define CARVE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Version                                                                   */
/* ------------------------------------------------------------------------ */

#define CARVE_VERSION_MAJOR  0
#define CARVE_VERSION_MINOR  2
#define CARVE_VERSION_PATCH  0
#define CARVE_VERSION_STRING "0.2.0"
/* One number that compares: MAJOR * 10000 + MINOR * 100 + PATCH. */
#define CARVE_VERSION_NUMBER \
    (CARVE_VERSION_MAJOR * 10000 + CARVE_VERSION_MINOR * 100 + CARVE_VERSION_PATCH)

/* The version of the library actually linked ("MAJOR.MINOR.PATCH"), which may
 * differ from CARVE_VERSION_STRING when a program runs against a newer shared
 * library.  Constant time; thread-safe. */
const char *carve_version(void);

/* ------------------------------------------------------------------------ */
/* Layout facts (sizing)                                                     */
/* ------------------------------------------------------------------------ */

/* Every pointer carve returns is aligned to at least this (>= alignof(max_align_t)). */
#define CARVE_ALIGNMENT 16u
/* Bytes of metadata carve keeps per live raw block outside runs (a header
 * word before the payload).  Such a block's size is its request plus this,
 * rounded up to CARVE_ALIGNMENT, and at least CARVE_MIN_BLOCK; when what
 * would be left of the free block it is cut from is smaller than
 * CARVE_MIN_BLOCK, it takes that free block whole (up to 16 bytes more).
 * Slots in runs (see CARVE_SMALL_MAX) have no header at all. */
#define CARVE_BLOCK_OVERHEAD 8u
/* The smallest block outside runs: a request of 1..24 bytes occupies
 * exactly this much there (16 bytes in a run). */
#define CARVE_MIN_BLOCK 32u

/* ------------------------------------------------------------------------ */
/* Lifecycle                                                                 */
/* ------------------------------------------------------------------------ */

/* Opaque; it lives at the start of the caller's buffer (at the first 64-byte
 * aligned address in it). */
typedef struct carve_heap carve_heap;

/* How a heap chooses among free blocks.  All three coalesce free neighbours
 * immediately and share one segregated free index (size classes 1/16 of an
 * octave wide, found through two levels of bitmaps); they differ in which
 * block of the index they pick.
 *
 * The freed-block cache (CARVE_GOOD_FIT only): in a GOOD_FIT heap whose
 * arena is at least CARVE_GCACHE_MIN_HEAP bytes, without CARVE_POISON,
 * CARVE_SCRAMBLE or CARVE_NO_BLOCK_CACHE, a freed block under 128 KiB is not merged at once while
 * more than 3/4 of the heap is free: up to 32 per size class are kept as
 * they are, and a request at most 1/16 smaller than one of them gets it
 * back (its whole size is usable).  This spares the neighbours' cold
 * headers on both calls.  As the heap fills past 1/4, each call hands a few
 * cached blocks back to the index, so the cache costs no fill.  A cached
 * block is free to the caller in every way: freeing it again is a double
 * free, the statistics count it as free, and everything that needs exact
 * free space (statistics, walks, the map, compaction, trimming, an
 * allocation that would fail, growing a neighbour in place) hands the cached
 * blocks back first.  FIRST_FIT and BEST_FIT keep their placement: no cache. */
typedef enum carve_policy {
    CARVE_GOOD_FIT = 0, /* default: segregated good fit (TLSF-class), O(1) but for the
                           corner carve_alloc's complexity names */
    CARVE_FIRST_FIT,    /* address-ordered first fit (the classic textbook policy) */
    CARVE_BEST_FIT      /* exact best fit (smallest free block that holds the request) */
} carve_policy;

/* carve_options.flags, OR-ed. */
enum {
    /* Every call may come from any thread of this process. */
    CARVE_THREADSAFE = 1u << 0,
    /* The buffer is shared between processes (implies CARVE_THREADSAFE). */
    CARVE_SHARED = 1u << 1,
    /* Fill freed payloads with a pattern; detect writes after free.  A debug
     * mode: every free fills, and every allocation checks, the whole free
     * block it touches (O(block size)). */
    CARVE_POISON = 1u << 2,
    /* Serve small requests from the policy's free index too (no runs). */
    CARVE_NO_RUNS = 1u << 3,
    /* For tests: after every successful allocation (carve_realloc whether
     * or not it moved, carve_hresize when it moved), every unpinned handle
     * block moves to a new place wherever the heap has a free block for it
     * (one for which there is none stays), so a missing pin shows up at
     * once instead of in the field. */
    CARVE_SCRAMBLE = 1u << 4,
    /* No freed-block cache (see carve_policy): every free of a general
     * block merges it with its free neighbours at once. */
    CARVE_NO_BLOCK_CACHE = 1u << 5,
};

/* Small requests and runs.  In a heap whose buffer is at least
 * CARVE_RUNS_MIN_HEAP bytes, requests of up to CARVE_SMALL_MAX bytes are
 * served from runs: 8 KiB pages of equal slots (16, 32, ... 256 bytes) with
 * no per-block header, so a 1..16 byte request takes 16 bytes and small
 * allocations and frees cost a few instructions.  Runs are carved from, and
 * given back to, the same free index as every other block.  CARVE_NO_RUNS
 * (and CARVE_POISON, which checks every block individually) turns them off:
 * every request then gets its own block from the policy, header included.
 * Below CARVE_RUNS_MIN_HEAP the runs' fixed cost (a partly used 8 KiB page
 * per size in use, up to 128 KiB) would outweigh the headers they save. */
#define CARVE_SMALL_MAX     256u
#define CARVE_RUNS_MIN_HEAP 1048576u /* 1 MiB */

/* The smallest arena (heap capacity) that gets the freed-block cache (see
 * carve_policy). */
#define CARVE_GCACHE_MIN_HEAP 4194304u /* 4 MiB */

/* A lock of the user's own (an RTOS mutex, an interrupt-masking critical
 * section, ...), for a heap that is not CARVE_SHARED.  carve calls lock()
 * on entry to every public function that reads or changes the heap and
 * unlock() before it returns, each with ctx; it never nests them, and while
 * holding the lock it calls nothing of the user's but the callbacks handed
 * to that call (carve_walk's visit, carve_trim's release) and, for
 * carve_dump, the stream's output functions.  held, if not NULL, returns
 * non-zero when the caller holds the lock: debug builds (NDEBUG not defined)
 * assert it inside the heap.  With hooks there are no thread caches: every
 * call takes the lock. */
typedef struct carve_lock_hooks {
    void (*lock)(void *ctx);
    void (*unlock)(void *ctx);
    int (*held)(void *ctx); /* optional */
    void *ctx;
} carve_lock_hooks;

typedef struct carve_options {
    unsigned flags;      /* CARVE_THREADSAFE | CARVE_SHARED | CARVE_POISON, or 0 */
    carve_policy policy; /* CARVE_GOOD_FIT unless set */
    size_t max_handles;  /* capacity of the handle table; 0 = a sensible default */
    /* The user's lock instead of the built-in one; NULL = none (or the
     * built-in mutex with CARVE_THREADSAFE).  The heap keeps a copy of the
     * struct (the functions and ctx must stay valid while the heap is used
     * in this process).  The copy sits in the control block, but its
     * addresses mean nothing in another process or after a restart, so a
     * heap made with hooks is reopened with carve_attach_with_lock(). */
    const carve_lock_hooks *lock;
} carve_options;

/* Formats [buffer, buffer + size) as an empty heap and returns it.  The buffer
 * may start at any address; carve aligns what it needs inside it.  opt NULL
 * means all defaults (CARVE_GOOD_FIT, no flags).
 *
 * With opt->max_handles set, the handle table (16 bytes per entry) is made
 * here, inside the heap, and never grows.
 *
 * Returns NULL with errno = EINVAL when buffer is NULL, size is smaller than
 * carve_min_buffer_size(opt) allows at that address (the heap must hold its
 * handle table, if one is asked for, and one block), flags has an unknown
 * bit, policy is not one of carve_policy, max_handles exceeds 2^32 - 1, or
 * opt->lock is set but lacks lock or unlock, or comes with CARVE_SHARED (a
 * function of one process cannot guard another).  With CARVE_THREADSAFE or
 * CARVE_SHARED it may also fail with the errno of the lock's
 * initialisation.
 *
 * The heap's blocks can span up to 8 TiB; the rest of a larger buffer is
 * not used.  The control block (counters, free-list heads, the bitmap of run
 * pages) takes about 870 bytes in the smallest buffer, 2 to 3 KiB up to
 * 4 MiB, and 16 KiB more per GiB of buffer beyond (about 20 KiB at 1 GiB,
 * 260 KiB at 16 GiB); heaps with thread caches also set aside their records
 * (see "Threads" above).
 * carve_max_alloc_size() tells what is left.
 *
 * Complexity: it writes the control block, not the buffer: O(size / 512 KiB)
 * for zeroing the bitmap of run pages, plus O(max_handles) to lay out the
 * handle table.  With CARVE_POISON it also fills every free byte with the
 * pattern: O(size).
 * Thread-safety: the buffer must not be in use by anyone during the call. */
carve_heap *carve_init(void *buffer, size_t size, const carve_options *opt);

/* Reopens a heap that carve_init() formatted in this memory earlier, possibly
 * at another address (a copy, a file mapped again, another process's
 * mapping).  The new address must have the same remainder modulo 64 as the one
 * the heap was created at (page-aligned mappings always qualify).  It validates
 * the control block (magic, layout version, size, placement, checksum) and
 * returns NULL with errno = EINVAL when the memory does not hold a carve heap
 * of exactly this size.  Block contents are validated lazily, as each call
 * reaches them, and fully by carve_check().
 *
 * Complexity: O(1), except for a private heap with the built-in lock that
 * has thread caches: their records are retired and the run counters
 * recounted from the runs, O(n); and for a heap without a lock that has
 * its front cache (4 MiB or more): the cache is checked, O(the blocks it
 * holds), and, should it fail, emptied with the same recount.  Thread-safety: for a CARVE_SHARED
 * heap, any number of processes may attach while others use the heap; attaching never disturbs
 * them.  For other heaps, nobody may use the memory during the call.
 * A heap made with lock hooks is refused with EINVAL: see
 * carve_attach_with_lock().  A private heap with the built-in lock may also
 * fail with the errno of its lock's initialisation. */
carve_heap *carve_attach(void *buffer, size_t size);

/* carve_attach() for a heap that was made with lock hooks: they are not in
 * the buffer, so they are given again here (plain carve_attach() refuses
 * such a heap with EINVAL).  NULL with errno = EINVAL as carve_attach(), or
 * when hooks is NULL or lacks lock or unlock, or the heap was not made with
 * hooks.  Complexity: O(1).  Thread-safety: nobody may use the memory
 * during the call. */
carve_heap *carve_attach_with_lock(void *buffer, size_t size, const carve_lock_hooks *hooks);

/* This process is done with the heap for now: the thread caches of this
 * process's threads in it go back to the heap (see "Threads").  The heap
 * itself stays whole in the buffer, and carve_attach() reopens it.  Never
 * required: caches are handed back whenever something must be exact, and
 * the buffer may be released at any time once no call is using it.  It is
 * useful before handing a CARVE_SHARED heap over to other processes, or to
 * give back what this process's threads hold.  CARVE_OK, or
 * CARVE_ERR_INVALID when h is NULL or its control block fails its check.
 * Complexity: O(cached blocks).  Thread-safety: as any call; caches that
 * other threads of the process were using are taken back, and those
 * threads make new ones at their next call. */
int carve_detach(carve_heap *h);

/* ------------------------------------------------------------------------ */
/* Threads                                                                   */
/* ------------------------------------------------------------------------ */

/* The rules for a heap that many threads use (CARVE_THREADSAFE,
 * CARVE_SHARED, or lock hooks):
 *
 *   - Every function may be called from any thread at any time.  Each call
 *     is atomic: it happens entirely before or after any other call on the
 *     same heap.  A block may be freed by a thread other than the one that
 *     allocated it.
 *   - Pins and compaction: carve_pin returns an address only once the block
 *     is pinned, and compaction (carve_compact, an allocation that compacts
 *     by itself, CARVE_SCRAMBLE) never moves, reads or writes a pinned
 *     block.  So between carve_pin and the matching carve_unpin any thread
 *     may use the address, whatever other threads do to the heap; after
 *     carve_unpin the address must not be used (the block may move at
 *     once).  An unpinned handle block may be moved by another thread's
 *     call at any moment: reach it only through carve_pin.  Accesses to a
 *     block's contents are the user's to synchronise, as with malloc.
 *   - Thread caches (CARVE_THREADSAFE or CARVE_SHARED, not with lock hooks,
 *     CARVE_NO_RUNS, CARVE_POISON or CARVE_SCRAMBLE, in heaps whose blocks would span more
 *     than 4 MiB by at least one record, 8.4 KiB): each thread keeps a small
 *     cache of freed small blocks (up to 256 bytes), so that most small
 *     allocations and frees take no lock and two threads run nearly twice
 *     as fast as one.  A heap without a lock (and without lock hooks,
 *     CARVE_NO_RUNS, CARVE_POISON or CARVE_SCRAMBLE) of that size keeps one such cache for
 *     its one user, on the same terms.  A cache holds at most 64 blocks of
 *     each of the 16 small sizes (136 KiB at most).  The heap sets aside room
 *     for the caches' bookkeeping between its control block and its blocks:
 *     every byte past 4 MiB of arena, up to 64 records of 8.4 KiB (535 KiB),
 *     so carve_max_alloc_size() stays at 4 MiB for buffers 4 to 4.52 MiB
 *     long.  A thread that finds all 64 records taken empties every cache
 *     (which frees the records, those of threads that have exited too)
 *     and takes one, so with more than 64 threads using the heap at once
 *     the records pass from thread to thread, each pass costing one such
 *     emptying.  A thread holds cache entries for at most 4 heaps; in
 *     another heap it works without a cache, through the lock, until it
 *     has made 65,536 calls without one: then it gives up the entry it has
 *     used least recently (if that one has been idle as long; at most one
 *     per 65,536 such calls) and takes a cache in this heap.  Giving an
 *     entry up does not touch its heap, which may be gone: the record there
 *     keeps its blocks until the thread comes back to that heap and takes
 *     it again (not in a CARVE_SHARED heap), or until that heap empties
 *     every cache.  It also works
 *     through the lock when the records fail their check, asking again
 *     1024 calls later.
 *     Cached blocks are not the user's and not free to
 *     others: whatever must be exact (carve_get_stats, carve_walk,
 *     carve_dump, carve_compact, carve_trim, an allocation that would
 *     otherwise fail, carve_detach) first hands every thread's cached
 *     blocks back to the heap.  carve_check checks the caches without
 *     emptying them, and reports a write after free over a cached block's
 *     first word (where carve keeps a mark).  Such a block is never handed
 *     out again (its slot stays out of use); if the program frees it again,
 *     that free cannot be told from a first one once the mark is gone
 *     (CARVE_OK), but the block is still not handed out twice.  A thread's cache is not emptied
 * when the thread exits (carve cannot know the heap is still there): its blocks come back at the
 * next of the events above, and its record is reused. peak_used_bytes is updated when a cache
 * exchanges blocks with the heap, so it may miss a peak by up to the caches' contents.  A second
 *     free of a block that sits in a cache is still reported as
 *     CARVE_ERR_DOUBLE_FREE.  On Linux the library registers with
 *     membarrier(2) when it is loaded, and emptying the caches of a heap
 *     without CARVE_SHARED makes every thread of the process execute a
 *     memory barrier, which lets the cached paths skip an atomic
 *     instruction; where membarrier is missing or forbidden, or with
 *     CARVE_NO_MEMBARRIER=1 in the environment, they fence instead.
 *   - fork(): for heaps with the built-in lock, fork() waits until no
 *     thread is inside a locked part of any heap, so the child gets every
 *     heap consistent and its lock free.  The parent's threads' caches are
 *     handed back in the child at its first call that must be exact (or
 *     carve_check); a thread that was in the middle of a lock-free cache
 *     operation at the fork may leave one small block allocated in the
 *     child.  A CARVE_SHARED heap is the same memory in both processes: the
 *     child goes on using it with caches of its own.  With lock hooks,
 *     fork() is the user's business, as with any lock of theirs.
 *   - A process of a CARVE_SHARED heap that dies (SIGKILL, a crash) in the
 *     middle of a lock-free cache operation leaves its cache marked busy.
 *     The next call that empties the caches (or carve_check) waits about a
 *     millisecond, then, finding the owner's process gone, takes the cache
 *     over: its blocks go back, and the one small block the interrupted
 *     operation was moving may stay allocated.  "Gone" is decided on Linux
 *     by /proc (no such process, a zombie with no thread left, or another
 *     process under the same id), only between processes of one pid and
 *     time namespace; anywhere else the call waits for the owner for ever.  A process that dies
 * holding the lock leaves it usable (a robust mutex), but the operation it was in the middle of is
 * not repaired: carve_check may then report CARVE_ERR_CORRUPT. */

/* The smallest buffer size for which carve_init(buffer, size, opt) succeeds
 * at every buffer address (opt NULL = defaults); 0 when carve_init refuses
 * opt at every size (unknown flags, a policy out of range, lock hooks
 * without lock or unlock or with CARVE_SHARED, or a max_handles whose
 * table no buffer here can hold).  Time: a few microseconds, growing with
 * max_handles' table; thread-safe. */
size_t carve_min_buffer_size(const carve_options *opt);

/* The largest request carve_alloc() can satisfy in a freshly initialised heap
 * made from a buffer of this size, at the least favourable buffer address;
 * 0 if size is below carve_min_buffer_size(opt) or carve_init refuses opt
 * at every size.  It never decreases as
 * buffer_size grows, so a buffer can be sized by searching over it.
 * Constant time (a few microseconds: it tries every address remainder);
 * thread-safe. */
size_t carve_max_alloc_size(size_t buffer_size, const carve_options *opt);

/* ------------------------------------------------------------------------ */
/* Allocation with raw pointers (never moved)                                */
/* ------------------------------------------------------------------------ */

/* Like malloc: returns a block of at least size bytes, aligned to
 * CARVE_ALIGNMENT, or NULL with errno = ENOMEM (it does not fit; counted in
 * failed_allocs) or EINVAL (size 0, or h NULL).  When no free block is
 * large enough but the free bytes could hold the request once merged, and
 * something can move (an unpinned handle block, or the handle table), the
 * heap compacts and retries before it reports ENOMEM.
 * Complexity: O(1) for CARVE_GOOD_FIT, except when no size class above the
 * request's own holds a free block: then the request's own class is
 * scanned for one that fits, O(k), so that every request up to
 * largest_free succeeds.  O(k) for the other policies (one size class is
 * scanned).  A compaction adds carve_compact's cost.  Thread-safety: see
 * the conventions above. */
void *carve_alloc(carve_heap *h, size_t size);

/* Like calloc: count x size bytes, zeroed.  NULL with errno = ENOMEM when the
 * product overflows or does not fit, EINVAL when it is 0 or h is NULL.
 * Complexity: carve_alloc's plus O(bytes) for the zeroing. */
void *carve_calloc(carve_heap *h, size_t count, size_t size);

/* Like realloc.  carve_realloc(h, NULL, n) is carve_alloc(h, n);
 * carve_realloc(h, p, 0) frees p and returns NULL (errno unchanged).  The
 * block shrinks in place, grows in place when the block after it is free and
 * large enough, and otherwise moves (allocate, copy, free).  Returns NULL with
 * errno = ENOMEM when it does not fit, EINVAL when ptr is not a live block of
 * this heap, or EIO when the heap's metadata around it fails a check; in
 * every case the old block is untouched and still valid.
 * Complexity: O(1) in place; carve_alloc's plus O(size) for a move. */
void *carve_realloc(carve_heap *h, void *ptr, size_t size);

/* Like C11 aligned_alloc, without the requirement that size be a multiple of
 * alignment.  alignment must be a power of two (any, up to the heap's size);
 * alignments up to CARVE_ALIGNMENT cost nothing extra.  The slack in front of
 * the aligned block goes back to the free index, so at most alignment bytes
 * are spent on alignment.  NULL with errno = EINVAL (alignment 0 or not a
 * power of two, size 0) or ENOMEM.  Complexity: as carve_alloc. */
void *carve_aligned_alloc(carve_heap *h, size_t alignment, size_t size);

/* Like free, but it reports what it found (a carve_status):
 *   CARVE_OK               ptr was freed, or ptr is NULL;
 *   CARVE_ERR_DOUBLE_FREE  ptr names a block that is already free (or that
 *                          was freed and then quarantined: CARVE_POISON);
 *   CARVE_ERR_NOT_OWNED    ptr is not the start of a live raw block of this
 *                          heap (outside the heap, misaligned, an interior
 *                          pointer, a block freed and since merged, or a
 *                          handle block's payload: free those by handle);
 *   CARVE_ERR_CORRUPT      the block's header or a neighbour's failed its
 *                          check (overwritten); nothing is followed;
 *   CARVE_ERR_INVALID      h is NULL.
 * On any error nothing changes.  Detection of interior and foreign pointers
 * inside the heap relies on a 20-bit check in each header: data that happens
 * to look like a valid header at exactly that address (about 1 in 10^6 for
 * random bytes) is not recognised.
 * In a GOOD_FIT heap with the freed-block cache (see carve_policy) the block
 * may be kept for reuse instead of merged at once; it is free all the same.
 * Such a free checks the block's own header but not its neighbours' (that
 * is what makes it cheap): a neighbour's damage is found when the block
 * goes back to the index, which then leaves it out of use rather than
 * follow the damage, and by carve_check, which reports it.
 * Complexity: O(1) for CARVE_GOOD_FIT; O(k) for the others (sorted insert).
 * A pointer inside the heap that is not a block's start, or a block whose
 * header fails its check, costs a walk of the blocks before it, O(n): only
 * the chain tells an interior pointer (NOT_OWNED) from damage (CORRUPT). */
int carve_free(carve_heap *h, void *ptr);

/* The usable size of a live raw block (>= what was asked), like
 * malloc_usable_size.  0 when ptr is NULL or not a live raw block of this
 * heap (a handle block's size is carve_hsize's).  Complexity: O(1), or
 * O(n) for a pointer that is not a block's start, as for carve_free. */
size_t carve_usable_size(carve_heap *h, const void *ptr);

/* ------------------------------------------------------------------------ */
/* Relocatable blocks: handles, pinning, compaction                          */
/* ------------------------------------------------------------------------ */

/* A handle names a block the heap may move whenever it is not pinned: the
 * way out of fragmentation that no non-moving allocator has (Robson: a
 * non-moving allocator can be forced to need about M log2(n) bytes for M
 * live bytes).  A handle is an index into the heap's handle table plus a
 * 32-bit generation, so a freed handle is never valid again (until the same
 * table entry has been reused 2^32 times).  Each heap starts its generations
 * at its own value, so a handle of another heap is refused too, except with
 * a chance of 1 in 2^32.  0 is never a valid handle.
 *
 * Handle blocks come from the general free index (never from runs) and
 * cost CARVE_HANDLE_OVERHEAD bytes each: the block header and a reference
 * back to the table entry, which is what lets compaction move a block
 * without searching.  The table lives in the heap too, as a block of its
 * own: with max_handles set it is made at carve_init with that many entries
 * and never grows; with max_handles 0 it is made at the first carve_halloc
 * and doubles when full.  An entry costs 16 bytes. */
typedef uint64_t carve_handle;

#define CARVE_HANDLE_OVERHEAD 16u

/* Allocates a relocatable block of at least size bytes.  Returns its
 * handle, or 0 with errno = EINVAL (size 0, h NULL), ENOMEM (no room, or
 * the handle table is full: max_handles reached, or it cannot grow) or EIO
 * (the free block or table it reached failed a check).  When
 * the free bytes could hold the request once merged (with the table's
 * growth, when it must grow), the heap compacts and retries before it
 * reports ENOMEM.  A call that fails leaves the handles as they were; it
 * may have compacted, and when the table had to grow and the block then
 * found no room, the table stays grown.  Complexity: as carve_alloc, plus
 * a compaction when that is needed. */
carve_handle carve_halloc(carve_heap *h, size_t size);

/* Pins the block and returns its current address (16-aligned); it stays
 * there until the matching carve_unpin.  Pins nest: a block pinned n times
 * needs n unpins.  NULL with errno = EINVAL for 0, a stale handle, or one
 * that is not of this heap (a stale handle never reaches another block; a
 * handle of another heap is refused except with a chance of 1 in 2^32),
 * EIO when the handle table's metadata fails a check, EOVERFLOW when the
 * block is already pinned 2^32 - 1 times.  A pin reads the handle's entry
 * only, not the block's header: damage there is found by carve_check and by
 * the calls that free, resize or move the block.  Complexity: O(1), a few
 * dozen instructions without a lock. */
void *carve_pin(carve_heap *h, carve_handle hd);

/* Ends one pin.  CARVE_OK; CARVE_ERR_INVALID when the block is not pinned
 * (or h is NULL); CARVE_ERR_NOT_OWNED for a bad or stale handle;
 * CARVE_ERR_CORRUPT when the handle table's place fails its check, or when
 * there is no pin to end and the handle's block fails its header check (an
 * unpin that ends a pin reads the entry only, as carve_pin does).  O(1). */
int carve_unpin(carve_heap *h, carve_handle hd);

/* Frees the block and retires the handle.  CARVE_OK; CARVE_ERR_PINNED when
 * it is pinned (nothing changes); CARVE_ERR_NOT_OWNED for a bad or stale
 * handle; CARVE_ERR_CORRUPT when its metadata fails a check;
 * CARVE_ERR_INVALID when h is NULL.  Complexity: as carve_free. */
int carve_hfree(carve_heap *h, carve_handle hd);

/* Resizes the block, keeping min(old usable size, new size) bytes of its
 * contents: in place when it can (shrinking always can; growing when the
 * block after it is free and large enough), else by moving it, which a
 * pinned block cannot.
 * CARVE_OK; CARVE_ERR_INVALID for size 0 (or h NULL); CARVE_ERR_PINNED
 * when it is pinned and would have to move; CARVE_ERR_NOMEM when it does
 * not fit (after compacting); CARVE_ERR_NOT_OWNED for a bad or stale
 * handle; CARVE_ERR_CORRUPT.  On any error nothing changes.
 * Complexity: O(1) in place; an allocation and an O(size) copy otherwise. */
int carve_hresize(carve_heap *h, carve_handle hd, size_t size);

/* The usable size of the handle's block (>= what was asked), or 0 for a bad
 * or stale handle, or when the table's place or the block's header fails
 * its check.  O(1). */
size_t carve_hsize(carve_heap *h, carve_handle hd);

/* Moves unpinned handle blocks toward the start of the heap, each into the
 * free block just before it, so that free space merges; raw blocks, runs
 * and pinned blocks never move, and free space flows around them.  Every
 * block keeps its contents and every handle its identity.  Returns the
 * bytes it moved, never more than max_bytes_moved (SIZE_MAX = all the
 * way); moving a block costs its size minus 8 (the header stays, its
 * payload and back reference move).  A budgeted call stops at the first
 * block that costs more than what is left of its budget, and a later call
 * starts there, so a real-time caller can compact a slice per frame: each
 * call leaves the heap fully consistent and visits the blocks from where
 * the last one stopped up to where its budget runs out.  A call that
 * reaches the end with budget left wraps around to the start, so once few
 * holes are left a call may walk most of the heap (and the last one, which
 * finds nothing to move, all of it).  A block costing more than the whole
 * budget is passed over: only a call with a larger budget moves it.
 * Counted in the compactions and bytes_moved statistics.  0 when h is
 * NULL, and 0 only when no block a call with this budget could move is
 * left.  Damage stops it: at a header that fails its check, or a move
 * whose neighbourhood does (the block after it, the free block it would
 * take), it returns what it moved so far and changes nothing there;
 * carve_check reports the damage.
 * Complexity: O(blocks visited + bytes moved). */
size_t carve_compact(carve_heap *h, size_t max_bytes_moved);

/* ------------------------------------------------------------------------ */
/* Giving memory back                                                        */
/* ------------------------------------------------------------------------ */

/* For a heap in memory whose pages cost only while they are touched (an
 * mmap'd region): calls release(addr, len, ctx) for every run of whole
 * pages that lies inside a free block of at least min_block bytes, past the
 * block's own metadata (its first and last page_size bytes are never
 * included), so the caller can hand them back (madvise MADV_DONTNEED, say).
 * From then on carve relies on nothing in those bytes: they may read back as
 * anything, zeros included.  A free block that was released and has not
 * changed since is not released again.  page_size must be a power of two of
 * at least 4096.  Returns the bytes passed to release; 0 when h or release
 * is NULL, page_size is not valid, or the heap has CARVE_POISON (whose
 * freed bytes must keep their pattern).  What the heap holds back for
 * reuse (thread caches, the freed-block cache, empty runs kept for a
 * size) is free to the caller, as the statistics say: it is handed back to
 * the free blocks first.  The handle table outlives its handles (a freed
 * handle must never be valid again); when no handle is live, a trim first
 * moves the table down into the free block before it (counted as a
 * compaction), so the free space on both sides merges.  So after every
 * block is freed a trim releases what it would on a fresh heap, less the
 * handle table's pages if a handle was ever made.
 * Complexity: O(free blocks of at least min_block bytes) plus the release
 * calls, plus the blocks held back, plus the table's size when it moves.  Thread-safety: as any
 * call; release runs with the heap's lock held and must not call carve. */
size_t carve_trim(carve_heap *h, size_t page_size, size_t min_block,
                  void (*release)(void *addr, size_t len, void *ctx), void *ctx);

/* ------------------------------------------------------------------------ */
/* Status codes                                                              */
/* ------------------------------------------------------------------------ */

typedef enum carve_status {
    CARVE_OK = 0,
    CARVE_ERR_INVALID,     /* bad argument */
    CARVE_ERR_NOMEM,       /* does not fit */
    CARVE_ERR_NOT_OWNED,   /* pointer or handle does not name a live block of this heap */
    CARVE_ERR_DOUBLE_FREE, /* the block was already free */
    CARVE_ERR_PINNED,      /* freeing or resizing a handle that is pinned */
    CARVE_ERR_CORRUPT      /* the heap's metadata failed a check */
} carve_status;

/* A constant English sentence for a carve_status ("unknown status" for any
 * other value).  Constant time; thread-safe. */
const char *carve_strerror(int status);

/* ------------------------------------------------------------------------ */
/* Diagnostics                                                               */
/* ------------------------------------------------------------------------ */

typedef struct carve_stats {
    size_t capacity;     /* bytes of the buffer that hold blocks: used_bytes + free_bytes, always */
    size_t used_bytes;   /* bytes in live blocks, their headers included */
    size_t free_bytes;   /* bytes in free blocks, their headers included */
    size_t largest_free; /* the largest request that would succeed now without compaction;
                            every carve_alloc of at most this many bytes succeeds now */
    /* The user's blocks, raw and handle (a free slot in a run is a free
     * block); pinned_handles counts handles, not pins. */
    size_t live_blocks, free_blocks, live_handles, pinned_handles;
    size_t peak_used_bytes;
    /* failed_allocs: requests that found no room (ENOMEM, CARVE_ERR_NOMEM)
     * from carve_alloc, calloc, aligned_alloc, realloc, halloc and hresize.
     * compactions: calls, manual or automatic, that moved something (a trim
     * that moved the handle table included).  The handle table's own block
     * counts in used_bytes, not in live_blocks. */
    uint64_t allocs, frees, failed_allocs, compactions, bytes_moved;
} carve_stats;

/* Fills *out with the heap's counters (nothing happens if h or out is NULL).
 * largest_free is exact: carve_alloc of any size up to it succeeds now.  An
 * alignment above CARVE_ALIGNMENT is never served from a run's slots and
 * needs a free block of size + alignment + 32 bytes, which largest_free
 * promises only when it is above CARVE_SMALL_MAX (not a slot).
 * Free slots in runs count as free bytes and free blocks.  To keep
 * largest_free exact it first hands every thread cache's blocks and any
 * retained empty run back to the free index, so it writes to the heap (do
 * not call it on a read-only mapping).  Complexity: O(k) for the largest
 * size class in use, plus O(cached blocks).
 * Thread-safety: see the conventions; with a lock the snapshot is
 * consistent. */
void carve_get_stats(carve_heap *h, carve_stats *out);

/* What one block is, as carve_walk() reports it. */
typedef enum carve_block_kind {
    CARVE_BLOCK_FREE = 0,    /* in the free index */
    CARVE_BLOCK_RAW,         /* live, handed out by carve_alloc and friends */
    CARVE_BLOCK_HANDLE,      /* live, owned by a handle (relocatable) */
    CARVE_BLOCK_QUARANTINED, /* with CARVE_POISON: a free block written after it was
                                freed; kept out of use for good */
    CARVE_BLOCK_META         /* carve's own bytes: a run's header and tail (runs
                                report their slots as blocks), or the handle table */
} carve_block_kind;

typedef struct carve_block {
    size_t offset;         /* where the block starts, in bytes from the heap pointer
                              (the carve_heap *, not the buffer's first byte) */
    size_t size;           /* the whole block, header included */
    size_t usable;         /* payload bytes (0 for a free block) */
    void *payload;         /* address of the payload (NULL for a free block) */
    carve_block_kind kind; /* free, raw, handle, quarantined or meta */
    unsigned pinned;       /* pin count of a handle block (0 otherwise) */
} carve_block;

/* Full integrity walk: the control block's checksum, every block header's
 * check field, boundary tags that agree, no two adjacent free blocks, the
 * free index and the block chain listing the same blocks in the right
 * classes and order, the counters agreeing with what the walk finds, every
 * small block sitting in a thread's cache still holding the mark carve
 * wrote into its first word (a write after free there is damage), and
 * (with CARVE_POISON) every free payload still holding its pattern.
 * Returns CARVE_OK, or CARVE_ERR_CORRUPT at the first violation;
 * CARVE_ERR_INVALID when h is NULL.  Complexity: O(n).  It changes no
 * block and no counter, but it is not read-only: it marks each thread
 * cache's record busy while it reads it (and, in a fork() child, first
 * hands the parent's caches back), so do not call it on a read-only
 * mapping of a heap with thread caches. */
int carve_check(carve_heap *h);

/* Calls visit for every block in address order.  A run reports each of its
 * slots as a block (raw or free) and its own header and tail as
 * CARVE_BLOCK_META blocks, so the sizes visited add up to capacity.  A visit
 * that returns non-zero stops the walk and carve_walk returns that value
 * (use values above CARVE_ERR_CORRUPT to tell your stop from an error); a
 * complete walk returns CARVE_OK.  CARVE_ERR_CORRUPT when a header fails its
 * check (the walk stops there), CARVE_ERR_INVALID when h or visit is NULL.
 * visit must not call into the same heap.  Complexity: O(n). */
int carve_walk(carve_heap *h, int (*visit)(const carve_block *b, void *ctx), void *ctx);

/* Prints the human-readable map of the heap to out: a summary (capacity,
 * used, free, largest free, fragmentation = 1 - largest_free / free_bytes),
 * a one-line picture of the buffer, then one line per block.  Complexity:
 * O(n).  Does nothing when h or out is NULL. */
void carve_dump(carve_heap *h, FILE *out);

/* carve_dump_ex flags, OR-ed. */
enum {
    /* One line per block (carve_dump sets it). */
    CARVE_DUMP_BLOCKS = 1u << 0,
    /* Each live block's bytes in hex, like a memory viewer. */
    CARVE_DUMP_HEX = 1u << 1,
};

/* carve_dump with a choice of sections: the summary and picture always,
 * then whatever flags asks for.  carve_dump(h, out) is
 * carve_dump_ex(h, out, CARVE_DUMP_BLOCKS).  Complexity: O(n), plus O(bytes)
 * with CARVE_DUMP_HEX. */
void carve_dump_ex(carve_heap *h, FILE *out, unsigned flags);

#ifdef __cplusplus
}
#endif

#endif /* CARVE_H */
