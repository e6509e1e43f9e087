/*
 * trace.c: recording the allocation trace (CARVE_TRACE=<path>) in the
 * format `carve replay` reads (one line per call; see shim/README.md).
 *
 * Cost: one uncontended mutex and a few dozen bytes of formatting per call;
 * lines collect in a static 256 KiB buffer written with write(2) when full,
 * at exit and before fork.  No allocation anywhere (this runs inside
 * malloc), and no cancellation point with cancellation enabled: write and
 * close run under the trace lock, and a thread cancelled there would unwind
 * out of malloc with the lock held (every later call would wait for ever).
 *
 * The descriptor: the program owns the low numbers, and may dup2 a file of
 * its own onto any of them, or close a range and open files that take
 * them.  The trace's descriptor is moved high (shim_dup_high), and before
 * each write flush_locked checks that it still names the file opened; when
 * it does not, recording stops (one line on stderr) without writing to or
 * closing what is now the program's descriptor; the buffered lines and a
 * last comment line "# recording stopped: ..." go into the trace by its
 * path, so that `carve record` and readers know the trace is incomplete.
 *
 * Block ids are (pointer - base) / 16: carve's pointers are 16-aligned and
 * distinct among live blocks, and an address comes back only after its
 * block was freed, which is what the format asks of ids.  The order of the
 * lines must agree with that: an allocation's line is written after the
 * block exists and before the pointer reaches the program, a free's line
 * before the block is freed (shim.c), so an id's "a" always precedes its
 * "f", which precedes the next "a" of the same id, whichever threads make
 * them.
 *
 * Threads are numbered in the order of their first traced call (0 first);
 * a "t <n>" line precedes the calls of a thread other than the previous
 * line's.
 *
 * Processes: a path holding "%p" is expanded with the pid, and every
 * process of the program (children that exec, which inherit LD_PRELOAD and
 * CARVE_TRACE) writes its own file; such files are created exclusively, so
 * an image that replaced its process by exec (same pid) writes
 * "<path>.1" and so on instead of truncating its predecessor's.  Without "%p" only the first
 * process writes: it empties CARVE_TRACE in its own environment, so the programs it executes do not
 * open (and truncate) the same file.  A child that forks without exec stops recording in both
 * cases: the blocks it inherited are not in a trace of its own, so its frees of them would not
 * replay.
 */
#define _GNU_SOURCE

#include "shim.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

_Atomic int shim_tracing;

#define TRACE_BUF_SIZE ((size_t)256 << 10)
#define LINE_MAX_BYTES ((size_t)128) /* the longest line: "r", two ids, a size */
#define PATH_MAX_BYTES 4096u

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static int g_fd = -1;
static shim_file_id g_file; /* what g_fd was opened on */
static char g_buf[TRACE_BUF_SIZE];
static size_t g_len;
static uintptr_t g_base;
static int g_write_through; /* after the exit flush: every line at once */
static unsigned g_threads;  /* numbers handed out */
static unsigned g_current;  /* the thread of the previous line */
static int g_fork_locked;
static char g_path[PATH_MAX_BYTES];
static char g_opened[PATH_MAX_BYTES + 64]; /* g_path expanded: the file g_fd is on */
static int g_per_pid;                      /* the path holds %p */
static SHIM_TLS unsigned t_number_plus1;   /* 0: no number yet */

/* ---- the buffer (all under g_lock) ----------------------------------------------- */

static void put(const char *s, size_t n)
{
    memcpy(g_buf + g_len, s, n);
    g_len += n;
}

static void put_str(const char *s)
{
    put(s, strlen(s));
}

static void put_char(char c)
{
    g_buf[g_len++] = c;
}

static void put_num(uint64_t v)
{
    g_len += shim_utoa(g_buf + g_len, v);
}

/* The trace file opened again by its path (never created), or -1 when that
 * path is no longer the file g_fd was opened on: how the last lines and the
 * "# recording stopped" comment reach a trace whose descriptor was taken. */
static int reopen_trace(void)
{
    if (g_opened[0] == '\0') {
        return -1;
    }
    int fd = open(g_opened, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOCTTY);
    if (fd >= 0 && !shim_same_file(fd, &g_file)) {
        close(fd);
        fd = -1;
    }
    return fd;
}

/* Ends recording for good: one line on stderr and, when fd reaches the
 * trace file, "# recording stopped: why" as its last line (a trace that
 * ends early says so); fd is closed.  g_fd is forgotten, not closed: the
 * callers pass it as fd while it is still the trace's. */
static void stop_tracing(const char *why, int fd)
{
    static const char head[] = "carve-malloc: trace: ";
    static const char mark[] = "# recording stopped: ";
    int cancel = shim_cancel_off();
    shim_write_all(STDERR_FILENO, head, sizeof head - 1);
    shim_write_all(STDERR_FILENO, why, strlen(why));
    shim_write_all(STDERR_FILENO, "; recording stopped\n", 20);
    atomic_store(&shim_tracing, 0);
    g_fd = -1;
    if (fd >= 0) {
        shim_write_all(fd, mark, sizeof mark - 1);
        shim_write_all(fd, why, strlen(why));
        shim_write_all(fd, "\n", 1);
        close(fd);
    }
    shim_cancel_restore(cancel);
}

/* Writes the buffer.  A g_fd that no longer names the trace file (the
 * program closed it, or put a file of its own at its number) is neither
 * written nor closed: the buffer goes to the file by its path and
 * recording stops. */
static void flush_locked(void)
{
    const char *s = g_buf;
    size_t n = g_len;
    g_len = 0;
    if (n == 0 || g_fd < 0) {
        return;
    }
    int cancel = shim_cancel_off();
    if (!shim_same_file(g_fd, &g_file)) {
        int fd = reopen_trace();
        if (fd >= 0) {
            shim_write_all(fd, s, n);
        }
        stop_tracing("the program closed or replaced the trace file's descriptor", fd);
        n = 0;
    }
    while (n > 0) {
        ssize_t w = write(g_fd, s, n);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            stop_tracing("cannot write the trace file", g_fd);
            break;
        }
        s += w;
        n -= (size_t)w;
    }
    shim_cancel_restore(cancel);
}

/* ---- lines ------------------------------------------------------------------------ */

static uint64_t id_of(const void *p)
{
    return (uint64_t)(((uintptr_t)p - g_base) >> 4);
}

/* Takes the lock and makes room for one line, preceded by a "t" line when
 * the thread changed.  Returns false (lock released) when not recording. */
static bool line_begin(int *saved_errno)
{
    *saved_errno = errno;
    pthread_mutex_lock(&g_lock);
    if (g_fd < 0) {
        pthread_mutex_unlock(&g_lock);
        return false;
    }
    if (t_number_plus1 == 0) {
        t_number_plus1 = ++g_threads;
    }
    if (g_len > TRACE_BUF_SIZE - (size_t)2 * LINE_MAX_BYTES) {
        flush_locked();
    }
    unsigned me = t_number_plus1 - 1u;
    if (me != g_current) {
        put("t ", 2);
        put_num(me);
        put_char('\n');
        g_current = me;
    }
    return true;
}

static void line_end(int saved_errno)
{
    put_char('\n');
    if (g_write_through) {
        flush_locked();
    }
    pthread_mutex_unlock(&g_lock);
    errno = saved_errno; /* a flush's write must not show through malloc */
}

void trace_alloc(const void *p, size_t size)
{
    int e;
    if (line_begin(&e)) {
        put("a ", 2);
        put_num(id_of(p));
        put_char(' ');
        put_num(size);
        line_end(e);
    }
}

void trace_calloc(const void *p, size_t count, size_t size)
{
    int e;
    if (line_begin(&e)) {
        put("c ", 2);
        put_num(id_of(p));
        put_char(' ');
        put_num(count);
        put_char(' ');
        put_num(size);
        line_end(e);
    }
}

void trace_aligned(const void *p, size_t alignment, size_t size)
{
    int e;
    if (line_begin(&e)) {
        put("m ", 2);
        put_num(id_of(p));
        put_char(' ');
        put_num(alignment);
        put_char(' ');
        put_num(size);
        line_end(e);
    }
}

void trace_realloc(const void *old, const void *p, size_t size)
{
    int e;
    if (line_begin(&e)) {
        put("r ", 2);
        put_num(id_of(old));
        put_char(' ');
        put_num(id_of(p));
        put_char(' ');
        put_num(size);
        line_end(e);
    }
}

void trace_free(const void *p)
{
    int e;
    if (line_begin(&e)) {
        put("f ", 2);
        put_num(id_of(p));
        line_end(e);
    }
}

void trace_flush(void)
{
    int e = errno;
    pthread_mutex_lock(&g_lock);
    flush_locked();
    g_write_through = 1;
    pthread_mutex_unlock(&g_lock);
    errno = e;
}

/* ---- the header ---------------------------------------------------------------------- */

/* "# command: ARGS..." from /proc/self/cmdline (NULs and newlines become
 * spaces; long command lines are cut). */
static void put_command(void)
{
    char cmd[1024];
    size_t n = 0;
    int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t r;
        while (n < sizeof cmd && (r = read(fd, cmd + n, sizeof cmd - n)) != 0) {
            if (r < 0 && errno == EINTR) {
                continue;
            }
            if (r < 0) {
                break;
            }
            n += (size_t)r;
        }
        close(fd);
    }
    while (n > 0 && cmd[n - 1] == '\0') {
        n--;
    }
    for (size_t i = 0; i < n; i++) {
        if (cmd[i] == '\0' || cmd[i] == '\n' || cmd[i] == '\r') {
            cmd[i] = ' ';
        }
    }
    put_str("# command: ");
    put(cmd, n);
    if (n == sizeof cmd) {
        put_str(" ...");
    }
    put_char('\n');
}

/* Two decimal digits. */
static void put_2(unsigned v)
{
    put_char((char)('0' + v / 10u));
    put_char((char)('0' + v % 10u));
}

/* "# pid N, recorded YYYY-MM-DDTHH:MM:SSZ" (UTC, computed by hand: gmtime
 * may not be safe here). */
static void put_pid_and_date(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t secs = (int64_t)ts.tv_sec;
    int64_t days = secs / 86400;
    int64_t rem = secs % 86400;
    /* Civil date from days since 1970-01-01 (Howard Hinnant's algorithm). */
    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t day = doy - (153 * mp + 2) / 5 + 1;
    int64_t month = mp < 10 ? mp + 3 : mp - 9;
    int64_t year = yoe + era * 400 + (month <= 2);

    put_str("# pid ");
    put_num((uint64_t)getpid());
    put_str(", recorded ");
    put_num((uint64_t)year);
    put_char('-');
    put_2((unsigned)month);
    put_char('-');
    put_2((unsigned)day);
    put_char('T');
    put_2((unsigned)(rem / 3600));
    put_char(':');
    put_2((unsigned)(rem / 60 % 60));
    put_char(':');
    put_2((unsigned)(rem % 60));
    put_str("Z by libcarve-malloc.so\n");
}

/* g_path with "%p" replaced by the pid and "%%" by "%"; false when the
 * result does not fit. */
static bool expand_path(char *out, size_t cap)
{
    size_t n = 0;
    for (const char *s = g_path; *s; s++) {
        char digits[24];
        const char *piece = s;
        size_t len = 1;
        if (s[0] == '%' && s[1] == 'p') {
            len = shim_utoa(digits, (uint64_t)getpid());
            piece = digits;
            s++;
        } else if (s[0] == '%' && s[1] == '%') {
            s++;
        }
        if (len >= cap - n) {
            return false;
        }
        memcpy(out + n, piece, len);
        n += len;
    }
    out[n] = '\0';
    return true;
}

/* Whether g_path holds a "%p" that expand_path replaces (not one that
 * follows an escaped "%%"). */
static bool path_has_pid(void)
{
    for (const char *s = g_path; *s; s++) {
        if (s[0] == '%' && s[1] == 'p') {
            return true;
        }
        if (s[0] == '%' && s[1] == '%') {
            s++;
        }
    }
    return false;
}

static bool open_trace(void)
{
    char path[PATH_MAX_BYTES + 64];
    if (!expand_path(path, sizeof path - 8u)) { /* room for a ".NNN" suffix */
        stop_tracing("the CARVE_TRACE path is too long", -1);
        return false;
    }
    if (g_per_pid) {
        /* A program that execs without forking keeps its pid: the new image
         * gets "<path>.1", ".2", ... instead of truncating the old one's. */
        size_t base_len = strlen(path);
        g_fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        for (uint64_t k = 1; g_fd < 0 && errno == EEXIST && k < 1000; k++) {
            path[base_len] = '.';
            path[base_len + 1u + shim_utoa(path + base_len + 1u, k)] = '\0';
            g_fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        }
    } else {
        g_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    }
    if (g_fd < 0) {
        static const char head[] = "carve-malloc: trace: cannot create ";
        shim_write_all(STDERR_FILENO, head, sizeof head - 1);
        shim_write_all(STDERR_FILENO, path, strlen(path));
        shim_write_all(STDERR_FILENO, "; not recording\n", 16);
        return false;
    }
    int high = shim_dup_high(g_fd);
    if (high >= 0) {
        close(g_fd);
        g_fd = high;
    }
    if (!shim_file_id_of(g_fd, &g_file)) {
        stop_tracing("cannot fstat the trace file", g_fd);
        return false;
    }
    memcpy(g_opened, path, strlen(path) + 1u);
    g_len = 0;
    put_str("# carve-trace 1\n");
    put_command();
    put_pid_and_date();
    flush_locked(); /* the header at once: a process may end in _exit */
    return g_fd >= 0;
}

/* ---- fork ---------------------------------------------------------------------------- */

/* The forking thread holds the trace lock across fork(), so the child's
 * copy of the buffer is whole and its lock is free to re-make. */
static void at_fork_prepare(void)
{
    if (atomic_load(&shim_tracing)) {
        pthread_mutex_lock(&g_lock);
        flush_locked();
        g_fork_locked = 1;
    }
}

static void at_fork_parent(void)
{
    if (g_fork_locked) {
        g_fork_locked = 0;
        pthread_mutex_unlock(&g_lock);
    }
}

static void at_fork_child(void)
{
    if (g_fork_locked) {
        g_fork_locked = 0;
        pthread_mutex_init(&g_lock, NULL);
        atomic_store(&shim_tracing, 0);
        /* g_fd may be gone (recording stopped in the flush of
         * at_fork_prepare), and is closed only if still the trace's. */
        if (g_fd >= 0 && shim_same_file(g_fd, &g_file)) {
            int cancel = shim_cancel_off();
            close(g_fd);
            shim_cancel_restore(cancel);
        }
        g_fd = -1;
        g_len = 0;
    }
}

void trace_init(uintptr_t base)
{
    char *value = shim_env("CARVE_TRACE");
    if (value == NULL || *value == '\0') {
        return;
    }
    size_t len = strlen(value);
    if (len >= sizeof g_path) {
        stop_tracing("the CARVE_TRACE path is too long", -1);
        return;
    }
    memcpy(g_path, value, len + 1u);
    g_base = base;
    g_per_pid = path_has_pid();
    if (!g_per_pid) {
        /* Only this process writes the file: the programs it runs find
         * CARVE_TRACE empty (the string is the environment's own, on the
         * stack, so this allocates nothing). */
        value[0] = '\0';
    }
    if (!open_trace()) {
        return;
    }
    (void)pthread_atfork(at_fork_prepare, at_fork_parent, at_fork_child);
    atomic_store(&shim_tracing, 1);
}
