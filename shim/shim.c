/*
 * shim.c: libcarve-malloc.so, the whole malloc family on one carve heap.
 *
 *   LD_PRELOAD=libcarve-malloc.so program ...
 *
 * One heap (CARVE_THREADSAFE, the default policy) over one mapping of
 * CARVE_HEAP_SIZE bytes reserved with MAP_NORESERVE: untouched pages cost
 * nothing, so the default is generous.  The heap is made by the first call
 * of the process (lazily: constructors of other libraries may call malloc
 * before ours runs), guarded by an atomic state so that concurrent first
 * calls wait for one initialiser; anything the initialiser itself allocates
 * (nothing today; a libc function it calls might) comes from a small static
 * bootstrap area that free() ignores.
 *
 * Inside every malloc-family call: no stdio, no dlsym, no getenv, nothing
 * that allocates (shim.h).  Messages go through write(2); a bad free (double
 * free, a pointer carve never handed out) prints a line and aborts, as glibc
 * does.
 *
 * Free pages go back to the OS: after every CARVE_TRIM_THRESHOLD bytes freed
 * (16 MiB by default) one call of carve_trim hands the whole pages inside
 * free blocks of at least 256 KiB to madvise(MADV_DONTNEED), so resident
 * memory follows live memory; carve_trim skips blocks it released before
 * that have not changed since, so a trim costs the large free blocks, not
 * the heap.
 *
 * fork(): the library makes heaps with the built-in lock fork-safe; the
 * shim looks after its trace lock (trace.c) and its trim flag (at_fork_child).
 */
#define _GNU_SOURCE /* MAP_ANONYMOUS, MAP_NORESERVE, MADV_DONTNEED, mincore, environ */

#include "carve.h"
#include "shim.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define SHIM_EXPORT __attribute__((visibility("default")))

/* ---- configuration ----------------------------------------------------------- */

/* 64 GiB of address space on 64-bit systems (reserved, not committed); 1 GiB
 * where addresses are 32 bits. */
#define DEFAULT_HEAP_SIZE (sizeof(void *) >= 8 ? ((size_t)64 << 30) : ((size_t)1 << 30))
/* Without CARVE_HEAP_SIZE, a refused reservation is retried at half the size
 * down to this (a ulimit -v or strict overcommit); with it, it aborts. */
#define MIN_FALLBACK_HEAP_SIZE ((size_t)256 << 20)
#define DEFAULT_TRIM_THRESHOLD ((size_t)16 << 20)
#define TRIM_MIN_BLOCK         ((size_t)256 << 10)
/* From this size calloc leaves the pages the program never touched alone
 * (calloc_zero), as glibc does for requests it serves with fresh mmap'd
 * pages (its default mmap threshold, 128 KiB).  Below it, memset. */
#define CALLOC_RELEASE_MIN ((size_t)128 << 10)
/* Pages whose residency one mincore call asks (a vector of this many bytes
 * on the stack): 4 MiB of 4 KiB pages. */
#define CALLOC_MINCORE_PAGES 1024u
/* Where the shim's own descriptors go (shim_dup_high): far above the 3, 4,
 * 5 ... that programs dup2 onto or reopen after closing a range, and below
 * the usual soft RLIMIT_NOFILE of 1024. */
#define SHIM_HIGH_FD 512

/* ---- the heap ------------------------------------------------------------------ */

enum { HEAP_NONE = 0, HEAP_INITIALISING = 1, HEAP_READY = 2 };

static _Atomic int g_state;
static carve_heap *g_heap;
static uintptr_t g_region_lo; /* the mapping: [lo, lo + size) */
static size_t g_region_size;  /* 0 until the heap is ready */
static SHIM_TLS int t_initialising;

static size_t g_page_size = 4096;
static size_t g_trim_threshold = DEFAULT_TRIM_THRESHOLD; /* 0: never trim */
static _Atomic size_t g_freed_since_trim;
static _Atomic int g_trimming;
static _Atomic uint64_t g_trims, g_trimmed_bytes;
static int g_print_stats;
/* Where the exit line goes: a copy of stderr taken at start-up, since
 * programs such as coreutils' close their stderr before the destructors
 * run (close-on-exec: a program this one runs does not inherit it).  It
 * sits at a high number and is used only while it still names the file it
 * was copied from; otherwise the line goes to fd 2 (print_stats). */
static int g_stats_fd = STDERR_FILENO;
static shim_file_id g_stats_id;

/* The bootstrap area: allocations made while the heap is being made, by the
 * thread making it.  Each has a 16-byte header holding its size.  Never
 * reused; free() of these pointers does nothing. */
#define BOOT_SIZE 65536u
static _Alignas(64) unsigned char g_boot[BOOT_SIZE];
static size_t g_boot_used;

/* ---- helpers that never allocate ----------------------------------------------------- */

void shim_write_all(int fd, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return;
        }
        s += w;
        n -= (size_t)w;
    }
}

int shim_cancel_off(void)
{
    int old = PTHREAD_CANCEL_ENABLE;
    (void)pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
    return old;
}

void shim_cancel_restore(int old_state)
{
    int ignored;
    (void)pthread_setcancelstate(old_state, &ignored);
}

int shim_dup_high(int fd)
{
    int min = SHIM_HIGH_FD;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        rl.rlim_cur <= (rlim_t)min) {
        min = (int)(rl.rlim_cur / 2u);
    }
    /* F_DUPFD takes the lowest free number from min up: when [min, limit)
     * is full, try half as high, down to 3 (the identity check still guards
     * a low copy). */
    for (;;) {
        int copy = fcntl(fd, F_DUPFD_CLOEXEC, min > 3 ? min : 3);
        if (copy >= 0 || min <= 3) {
            return copy;
        }
        min /= 2;
    }
}

bool shim_file_id_of(int fd, shim_file_id *out)
{
    struct stat st;
    if (fstat(fd, &st) != 0) {
        return false;
    }
    out->dev = st.st_dev;
    out->ino = st.st_ino;
    return true;
}

bool shim_same_file(int fd, const shim_file_id *id)
{
    shim_file_id now;
    return shim_file_id_of(fd, &now) && now.dev == id->dev && now.ino == id->ino;
}

size_t shim_utoa(char *buf, uint64_t v)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10u);
        v /= 10u;
    } while (v != 0);
    for (size_t i = 0; i < n; i++) {
        buf[i] = tmp[n - 1 - i];
    }
    return n;
}

/* A message assembled in a stack buffer (truncated when it does not fit). */
typedef struct msg {
    char buf[512];
    size_t n;
} msg;

static void msg_str(msg *m, const char *s)
{
    while (*s && m->n < sizeof m->buf) {
        m->buf[m->n++] = *s++;
    }
}

static void msg_num(msg *m, uint64_t v)
{
    char d[24];
    size_t k = shim_utoa(d, v);
    for (size_t i = 0; i < k && m->n < sizeof m->buf; i++) {
        m->buf[m->n++] = d[i];
    }
}

static void msg_ptr(msg *m, const void *p)
{
    static const char hex[] = "0123456789abcdef";
    uintptr_t v = (uintptr_t)p;
    msg_str(m, "0x");
    int started = 0;
    for (int shift = (int)(sizeof v * 8u) - 4; shift >= 0; shift -= 4) {
        unsigned d = (unsigned)(v >> (unsigned)shift) & 15u;
        if (d != 0 || started || shift == 0) {
            started = 1;
            if (m->n < sizeof m->buf) {
                m->buf[m->n++] = hex[d];
            }
        }
    }
}

/* Every message is followed by abort(): cancellation stays off, so that a
 * cancel pending at the write cannot turn the abort into a thread exit. */
static void msg_emit(msg *m)
{
    (void)shim_cancel_off();
    shim_write_all(STDERR_FILENO, m->buf, m->n);
}

void shim_die(const char *what, const void *ptr)
{
    msg m = {.n = 0};
    msg_str(&m, "carve-malloc: ");
    msg_str(&m, what);
    msg_str(&m, " ");
    msg_ptr(&m, ptr);
    msg_str(&m, "\n");
    msg_emit(&m);
    abort();
}

static SHIM_NORETURN void die_config(const char *what, const char *value, int err)
{
    msg m = {.n = 0};
    msg_str(&m, "carve-malloc: ");
    msg_str(&m, what);
    if (value) {
        msg_str(&m, value);
    }
    if (err) { /* the number: strerror may allocate for some values */
        msg_str(&m, " (errno ");
        msg_num(&m, (uint64_t)err);
        msg_str(&m, ")");
    }
    msg_str(&m, "\n");
    msg_emit(&m);
    abort();
}

char *shim_env(const char *name)
{
    size_t len = strlen(name);
    if (environ == NULL) {
        return NULL;
    }
    for (char **e = environ; *e != NULL; e++) {
        if (strncmp(*e, name, len) == 0 && (*e)[len] == '=') {
            return *e + len + 1;
        }
    }
    return NULL;
}

/* "123", "64G", "512m", "1T": decimal bytes with an optional binary suffix
 * (K, M, G, T, either case).  -1 when s is not such a size or overflows. */
static int parse_size(const char *s, size_t *out)
{
    uint64_t v = 0;
    if (*s < '0' || *s > '9') {
        return -1;
    }
    for (; *s >= '0' && *s <= '9'; s++) {
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10u) {
            return -1;
        }
        v = v * 10u + d;
    }
    unsigned shift = 0;
    switch (*s) {
    case 'k':
    case 'K':
        shift = 10;
        break;
    case 'm':
    case 'M':
        shift = 20;
        break;
    case 'g':
    case 'G':
        shift = 30;
        break;
    case 't':
    case 'T':
        shift = 40;
        break;
    default:
        break;
    }
    s += shift != 0;
    if (*s != '\0' || v > (uint64_t)(SIZE_MAX >> shift)) {
        return -1;
    }
    *out = (size_t)(v << shift);
    return 0;
}

/* ---- making the heap ------------------------------------------------------------------ */

static void *reserve(size_t size)
{
    return mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1,
                0);
}

/* A fork() may come while another thread holds g_trimming (the library's
 * fork handler even holds such a thread at the heap's lock until the fork
 * is done): the child has no such thread, and would keep the flag claimed,
 * never trimming again.  No trim is under way in the child, and the heap
 * is whole (the library forks only outside its locked sections), so the
 * flag is simply cleared.  The parent needs nothing: its trimming thread
 * carries on and clears the flag itself. */
static void at_fork_child(void)
{
    atomic_store(&g_trimming, 0);
}

static void heap_init(void)
{
    carve_options opt;
    memset(&opt, 0, sizeof opt);
    opt.flags = CARVE_THREADSAFE;
    opt.policy = CARVE_GOOD_FIT;

    size_t size = DEFAULT_HEAP_SIZE;
    const char *asked = shim_env("CARVE_HEAP_SIZE");
    bool fixed = asked != NULL && *asked != '\0';
    if (fixed && (parse_size(asked, &size) != 0 || size < carve_min_buffer_size(&opt))) {
        die_config("CARVE_HEAP_SIZE is not a usable heap size (bytes, or a number with K, M, G "
                   "or T): ",
                   asked, 0);
    }
    void *m = reserve(size);
    while (m == MAP_FAILED && !fixed && size / 2 >= MIN_FALLBACK_HEAP_SIZE) {
        size /= 2;
        m = reserve(size);
    }
    if (m == MAP_FAILED) {
        die_config(fixed ? "cannot reserve CARVE_HEAP_SIZE=" : "cannot reserve a heap of 256 MiB",
                   fixed ? asked : NULL, errno);
    }
    g_heap = carve_init(m, size, &opt);
    if (g_heap == NULL) {
        die_config("carve_init failed on the reserved mapping", NULL, errno);
    }

    long page = sysconf(_SC_PAGESIZE);
    if (page >= 4096 && (page & (page - 1)) == 0) {
        g_page_size = (size_t)page;
    }
    const char *thr = shim_env("CARVE_TRIM_THRESHOLD");
    if (thr != NULL && *thr != '\0' && parse_size(thr, &g_trim_threshold) != 0) {
        die_config("CARVE_TRIM_THRESHOLD is not a size: ", thr, 0);
    }
    const char *stats = shim_env("CARVE_STATS");
    g_print_stats = stats != NULL && *stats != '\0' && strcmp(stats, "0") != 0;
    if (g_print_stats) {
        int fd = shim_dup_high(STDERR_FILENO);
        if (fd >= 0 && shim_file_id_of(fd, &g_stats_id)) {
            g_stats_fd = fd;
        } else if (fd >= 0) {
            close(fd);
        }
    }

    /* Here rather than at every fork: registered once, by the initialiser
     * (what pthread_atfork may allocate comes from the bootstrap area). */
    (void)pthread_atfork(NULL, NULL, at_fork_child);

    g_region_lo = (uintptr_t)m;
    trace_init(g_region_lo);
    g_region_size = size;
}

static carve_heap *heap_slow(void)
{
    if (t_initialising) {
        return NULL; /* the initialiser's own calls: the bootstrap area */
    }
    int expected = HEAP_NONE;
    if (atomic_compare_exchange_strong(&g_state, &expected, HEAP_INITIALISING)) {
        /* The trace's open, read and write are cancellation points: a
         * thread cancelled there would leave the state INITIALISING and
         * every other thread waiting for it. */
        int cancel = shim_cancel_off();
        t_initialising = 1;
        heap_init();
        t_initialising = 0;
        shim_cancel_restore(cancel);
        atomic_store_explicit(&g_state, HEAP_READY, memory_order_release);
        return g_heap;
    }
    while (atomic_load_explicit(&g_state, memory_order_acquire) != HEAP_READY) {
        sched_yield();
    }
    return g_heap;
}

/* The heap, made on the first call; NULL only inside its own making. */
static inline carve_heap *heap(void)
{
    if (SHIM_LIKELY(atomic_load_explicit(&g_state, memory_order_acquire) == HEAP_READY)) {
        return g_heap;
    }
    return heap_slow();
}

static inline bool in_region(const void *p)
{
    return (uintptr_t)p - g_region_lo < g_region_size;
}

static inline bool in_boot(const void *p)
{
    return (uintptr_t)p - (uintptr_t)g_boot < BOOT_SIZE;
}

static void *boot_alloc(size_t alignment, size_t size)
{
    if (alignment < 16) {
        alignment = 16;
    }
    size_t at = (g_boot_used + 16u + alignment - 1u) & ~(alignment - 1u);
    if (alignment > BOOT_SIZE || size > BOOT_SIZE || at > BOOT_SIZE - size) {
        errno = ENOMEM;
        return NULL;
    }
    memcpy(g_boot + at - 16u, &size, sizeof size);
    g_boot_used = at + size;
    return g_boot + at;
}

static size_t boot_size(const void *p)
{
    size_t n;
    memcpy(&n, (const unsigned char *)p - 16, sizeof n);
    return n;
}

/* ---- giving pages back ------------------------------------------------------------ */

static void release_pages(void *addr, size_t len, void *ctx)
{
    (void)ctx;
    (void)madvise(addr, len, MADV_DONTNEED);
}

/* Counts bytes freed; every g_trim_threshold bytes, one thread trims. */
static void note_freed(carve_heap *h, size_t n)
{
    if (g_trim_threshold == 0 || n == 0) {
        return;
    }
    size_t total = atomic_fetch_add_explicit(&g_freed_since_trim, n, memory_order_relaxed) + n;
    if (total < g_trim_threshold || atomic_exchange(&g_trimming, 1) != 0) {
        return;
    }
    atomic_store_explicit(&g_freed_since_trim, 0, memory_order_relaxed);
    size_t got = carve_trim(h, g_page_size, TRIM_MIN_BLOCK, release_pages, NULL);
    atomic_fetch_add_explicit(&g_trims, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&g_trimmed_bytes, got, memory_order_relaxed);
    atomic_store(&g_trimming, 0);
}

/* ---- the malloc family ------------------------------------------------------------ */

static inline bool tracing(void)
{
    return atomic_load_explicit(&shim_tracing, memory_order_relaxed) != 0;
}

/* The common path of every allocation: errno is left alone on success and
 * is ENOMEM on failure, as malloc promises (carve may also say EINVAL or
 * EIO; for malloc's caller all of them mean "no memory"). */
static void *alloc_plain(size_t size)
{
    carve_heap *h = heap();
    if (SHIM_UNLIKELY(h == NULL)) {
        return boot_alloc(16, size);
    }
    int saved = errno;
    void *p = carve_alloc(h, size != 0 ? size : 1);
    if (SHIM_UNLIKELY(p == NULL)) {
        errno = ENOMEM;
        return NULL;
    }
    errno = saved;
    return p;
}

static void *alloc_aligned(size_t alignment, size_t size)
{
    if (alignment <= CARVE_ALIGNMENT) {
        return alloc_plain(size);
    }
    carve_heap *h = heap();
    if (SHIM_UNLIKELY(h == NULL)) {
        return boot_alloc(alignment, size);
    }
    int saved = errno;
    void *p = carve_aligned_alloc(h, alignment, size != 0 ? size : 1);
    if (SHIM_UNLIKELY(p == NULL)) {
        errno = ENOMEM;
        return NULL;
    }
    errno = saved;
    return p;
}

static inline bool is_power_of_two(size_t x)
{
    return x != 0 && (x & (x - 1u)) == 0;
}

SHIM_EXPORT void *malloc(size_t size)
{
    void *p = alloc_plain(size);
    if (p != NULL && tracing()) {
        trace_alloc(p, size != 0 ? size : 1);
    }
    return p;
}

/* Reports what carve_free found wrong with p and aborts. */
static SHIM_NORETURN void bad_free(const char *fn, int status, const void *p)
{
    const char *what = "invalid pointer (not a block carve-malloc handed out):";
    if (status == CARVE_ERR_DOUBLE_FREE) {
        what = "double free of";
    } else if (status == CARVE_ERR_CORRUPT) {
        what = "heap corruption detected (a block header was overwritten) at";
    }
    msg m = {.n = 0};
    msg_str(&m, "carve-malloc: ");
    msg_str(&m, fn);
    msg_str(&m, "(): ");
    msg_str(&m, what);
    msg_str(&m, " ");
    msg_ptr(&m, p);
    msg_str(&m, "\n");
    msg_emit(&m);
    abort();
}

/* The checks every call taking a pointer makes: true when p is one of the
 * heap's (and the heap exists), false for a bootstrap pointer; aborts for
 * anything else. */
static bool heap_pointer(const char *fn, const void *p)
{
    if (SHIM_LIKELY(in_region(p))) {
        return true;
    }
    if (in_boot(p)) {
        return false;
    }
    bad_free(fn, CARVE_ERR_NOT_OWNED, p);
}

SHIM_EXPORT void free(void *p)
{
    if (p == NULL || !heap_pointer("free", p)) {
        return;
    }
    carve_heap *h = heap();
    int saved = errno;
    size_t n = g_trim_threshold != 0 ? carve_usable_size(h, p) : 0;
    if (tracing()) {
        /* Before the block is free: once it is, another thread may be handed
         * the same address (the same id) and write its line first. */
        trace_free(p);
    }
    int st = carve_free(h, p);
    if (SHIM_UNLIKELY(st != CARVE_OK)) {
        bad_free("free", st, p);
    }
    note_freed(h, n);
    errno = saved;
}

/* Zeroes len bytes at run, whole pages of a calloc'd block: memset when
 * resident, else MADV_DONTNEED.  The heap is a private anonymous mapping
 * (reserve), whose released pages read as zero; a page that is not resident
 * was never touched, or trimmed (both zero already: the madvise is nearly
 * free), or swapped out (released rather than read back to be overwritten).
 * A resident page is cheaper to clear than to fault in again.  A refused
 * madvise (locked memory) falls back to memset. */
static void zero_pages(void *run, size_t len, bool resident)
{
    if (resident || madvise(run, len, MADV_DONTNEED) != 0) {
        memset(run, 0, len);
    }
}

/* Zeroes the n bytes at p, a block of the heap, without touching pages
 * the program never touched: calloc(1, 2 GiB) costs no time and no
 * resident memory, as glibc's large callocs (fresh mmap'd pages) do, and a
 * block reused while its pages are resident is cleared with memset.  The
 * partial pages at the two ends hold the neighbours' headers: memset. */
static void calloc_zero(void *p, size_t n)
{
    uintptr_t start = (uintptr_t)p;
    uintptr_t mask = (uintptr_t)(g_page_size - 1u);
    uintptr_t lo = (start + mask) & ~mask;
    uintptr_t hi = (start + n) & ~mask;
    if (n < CALLOC_RELEASE_MIN || hi <= lo) {
        memset(p, 0, n);
        return;
    }
    memset(p, 0, lo - start);
    memset((void *)hi, 0, start + n - hi);
    unsigned char vec[CALLOC_MINCORE_PAGES]; /* no allocation here: a stack vector */
    for (uintptr_t at = lo; at < hi;) {
        size_t pages = (size_t)(hi - at) / g_page_size;
        pages = pages < CALLOC_MINCORE_PAGES ? pages : CALLOC_MINCORE_PAGES;
        if (mincore((void *)at, pages * g_page_size, vec) != 0) {
            memset((void *)at, 0, pages * g_page_size);
            at += pages * g_page_size;
            continue;
        }
        for (size_t i = 0; i < pages;) {
            bool resident = (vec[i] & 1u) != 0;
            size_t j = i + 1u;
            while (j < pages && ((vec[j] & 1u) != 0) == resident) {
                j++;
            }
            zero_pages((void *)(at + i * g_page_size), (j - i) * g_page_size, resident);
            i = j;
        }
        at += pages * g_page_size;
    }
}

SHIM_EXPORT void *calloc(size_t count, size_t size)
{
    if (size != 0 && count > SIZE_MAX / size) {
        errno = ENOMEM;
        return NULL;
    }
    if (count == 0 || size == 0) {
        count = 1;
        size = 1;
    }
    carve_heap *h = heap();
    void *p;
    if (SHIM_UNLIKELY(h == NULL)) {
        p = boot_alloc(16, count * size); /* static memory: zero, never reused */
    } else {
        int saved = errno;
        size_t n = count * size;
        if (n < CALLOC_RELEASE_MIN) {
            p = carve_calloc(h, count, size);
        } else {
            p = carve_alloc(h, n);
            if (p != NULL) {
                calloc_zero(p, n);
            }
        }
        errno = p != NULL ? saved : ENOMEM;
    }
    if (p != NULL && tracing()) {
        trace_calloc(p, count, size);
    }
    return p;
}

/* realloc of a bootstrap block: it moves to the heap. */
static void *realloc_boot(void *p, size_t size)
{
    void *q = malloc(size);
    if (q != NULL) {
        size_t old = boot_size(p);
        memcpy(q, p, old < size ? old : size);
    }
    return q;
}

/* While tracing, a realloc that may move is done here as allocate, copy,
 * write the line, free: the old id must stay live until its line is written
 * (see free). */
static void *realloc_traced_move(carve_heap *h, void *p, size_t old, size_t size)
{
    void *q = carve_alloc(h, size);
    if (q == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    memcpy(q, p, old);
    trace_realloc(p, q, size);
    int st = carve_free(h, p);
    if (st != CARVE_OK) {
        bad_free("realloc", st, p);
    }
    return q;
}

SHIM_EXPORT void *realloc(void *p, size_t size)
{
    if (p == NULL) {
        return malloc(size);
    }
    if (!heap_pointer("realloc", p)) {
        return realloc_boot(p, size);
    }
    if (size == 0) { /* glibc's behaviour: free and return NULL */
        free(p);
        return NULL;
    }
    carve_heap *h = heap();
    int saved = errno;
    size_t old = carve_usable_size(h, p);
    if (old == 0) {
        /* Not a live block: carve_free says which bug it is (a failed
         * carve_free changes nothing), so a freed block reads "double free"
         * here as it does in free(), not "not a block carve-malloc handed
         * out".  It succeeds only if another thread was handed the same
         * block meanwhile (the program's race); the process aborts anyway. */
        int st = carve_free(h, p);
        bad_free("realloc", st != CARVE_OK ? st : CARVE_ERR_NOT_OWNED, p);
    }
    void *q;
    if (tracing() && size > old) {
        q = realloc_traced_move(h, p, old, size);
    } else {
        q = carve_realloc(h, p, size);
        if (q == NULL) {
            if (errno != ENOMEM) {
                bad_free("realloc", errno == EIO ? CARVE_ERR_CORRUPT : CARVE_ERR_NOT_OWNED, p);
            }
            return NULL;
        }
        if (tracing()) {
            trace_realloc(p, q, size);
        }
    }
    if (q == NULL) {
        return NULL;
    }
    if (q != p) {
        note_freed(h, old);
    }
    errno = saved;
    return q;
}

SHIM_EXPORT void *reallocarray(void *p, size_t count, size_t size)
{
    if (size != 0 && count > SIZE_MAX / size) {
        errno = ENOMEM;
        return NULL;
    }
    /* A zero product frees p, as glibc's reallocarray does. */
    return realloc(p, count * size); // NOLINT(clang-analyzer-optin.portability.UnixAPI)
}

static void *aligned_traced(size_t alignment, size_t size)
{
    void *p = alloc_aligned(alignment, size);
    if (p != NULL && tracing()) {
        trace_aligned(p, alignment, size != 0 ? size : 1);
    }
    return p;
}

SHIM_EXPORT int posix_memalign(void **out, size_t alignment, size_t size)
{
    if (!is_power_of_two(alignment) || alignment % sizeof(void *) != 0) {
        return EINVAL;
    }
    int saved = errno;
    void *p = aligned_traced(alignment, size);
    errno = saved; /* posix_memalign reports through its result only */
    if (p == NULL) {
        return ENOMEM;
    }
    *out = p;
    return 0;
}

SHIM_EXPORT void *aligned_alloc(size_t alignment, size_t size)
{
    if (!is_power_of_two(alignment)) {
        errno = EINVAL;
        return NULL;
    }
    return aligned_traced(alignment, size);
}

/* memalign rounds an alignment that is not a power of two up to one, as
 * glibc does; beyond the largest power of two it fails with EINVAL. */
SHIM_EXPORT void *memalign(size_t alignment, size_t size)
{
    if (!is_power_of_two(alignment)) {
        size_t a = 1;
        while (a < alignment && a <= SIZE_MAX / 2u) {
            a <<= 1u;
        }
        if (a < alignment) {
            errno = EINVAL;
            return NULL;
        }
        alignment = a;
    }
    return aligned_traced(alignment, size);
}

static size_t page_size(void)
{
    long page = sysconf(_SC_PAGESIZE);
    return page > 0 ? (size_t)page : 4096u;
}

SHIM_EXPORT void *valloc(size_t size)
{
    return aligned_traced(page_size(), size);
}

SHIM_EXPORT void *pvalloc(size_t size)
{
    size_t page = page_size();
    if (size > SIZE_MAX - (page - 1u)) {
        errno = ENOMEM;
        return NULL;
    }
    size_t rounded = (size + page - 1u) & ~(page - 1u);
    return aligned_traced(page, rounded != 0 ? rounded : page);
}

SHIM_EXPORT size_t malloc_usable_size(void *p)
{
    if (p == NULL) {
        return 0;
    }
    if (!in_region(p)) {
        return in_boot(p) ? boot_size(p) : 0;
    }
    return carve_usable_size(heap(), p);
}

/* ---- at exit --------------------------------------------------------------------- */

static void print_stats(void)
{
    carve_stats s;
    carve_get_stats(g_heap, &s);
    char line[640];
    int n = snprintf(line, sizeof line,
                     "carve-malloc: pid %ld: heap of %zu bytes reserved; used %zu bytes "
                     "(peak %zu) in %zu live blocks, free %zu bytes in %zu blocks, largest free "
                     "%zu; %llu allocs, %llu frees, %llu failed; trimmed %llu bytes in %llu "
                     "trims\n",
                     (long)getpid(), g_region_size, s.used_bytes, s.peak_used_bytes, s.live_blocks,
                     s.free_bytes, s.free_blocks, s.largest_free, (unsigned long long)s.allocs,
                     (unsigned long long)s.frees, (unsigned long long)s.failed_allocs,
                     (unsigned long long)atomic_load(&g_trimmed_bytes),
                     (unsigned long long)atomic_load(&g_trims));
    /* The copy of stderr is used only while it is still the shim's: a
     * program may have closed it, or put a file of its own at its number. */
    int fd = g_stats_fd;
    if (fd != STDERR_FILENO && !shim_same_file(fd, &g_stats_id)) {
        fd = STDERR_FILENO;
    }
    if (n > 0) {
        shim_write_all(fd, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1u);
    }
}

/* Makes the heap at load time when no malloc came first, so that a process
 * that never allocates still claims its trace (trace.c) before it runs
 * other programs. */
__attribute__((constructor)) static void shim_init(void)
{
    (void)heap();
}

/* Runs late (the preloaded library is finalised after the program's own
 * destructors); calls that come after it still work, and trace lines they
 * make are written at once (trace.c). */
__attribute__((destructor)) static void shim_fini(void)
{
    if (atomic_load_explicit(&g_state, memory_order_acquire) != HEAP_READY) {
        return;
    }
    trace_flush();
    if (g_print_stats) {
        print_stats();
    }
}
