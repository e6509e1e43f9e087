/*
 * shim.h: what the two halves of libcarve-malloc.so share: the malloc
 * family (shim.c) and the trace writer (trace.c).
 *
 * Rules for everything reachable from a malloc-family call: no stdio, no
 * dlsym, no getenv, nothing that may allocate; only system calls (write,
 * open, fstat, mmap, madvise), atomics and pthread mutexes with static
 * initialisers.  No cancellation point either (glibc's malloc family has
 * none): a system call that is one (write, open, read, close) runs with
 * cancellation disabled (shim_cancel_off), or a thread cancelled there
 * would unwind out of malloc holding a lock.
 */
#ifndef CARVE_SHIM_H
#define CARVE_SHIM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#if defined(__GNUC__) || defined(__clang__)
#define SHIM_LIKELY(x)   __builtin_expect(!!(x), 1)
#define SHIM_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define SHIM_NORETURN    __attribute__((noreturn))
/* Thread-locals of a preloaded library sit in the static TLS block; the
 * initial-exec model reaches them without __tls_get_addr, which may call
 * malloc. */
#define SHIM_TLS _Thread_local __attribute__((tls_model("initial-exec")))
#else
#define SHIM_LIKELY(x)   (x)
#define SHIM_UNLIKELY(x) (x)
#define SHIM_NORETURN
#define SHIM_TLS _Thread_local
#endif

/* ---- small helpers that never allocate (shim.c) --------------------------- */

/* Writes the whole of [s, s + n) to fd, retrying short writes and EINTR. */
void shim_write_all(int fd, const char *s, size_t n);
/* Writes "carve-malloc: <what> <pointer>\n" to stderr and aborts. */
SHIM_NORETURN void shim_die(const char *what, const void *ptr);
/* The value of environment variable name (read from environ directly, no
 * allocation), or NULL.  It points into the environment itself. */
char *shim_env(const char *name);
/* Decimal digits of v at buf (at least 21 bytes); returns their count. */
size_t shim_utoa(char *buf, uint64_t v);

/* Disables the calling thread's cancellation and returns the state to give
 * back to shim_cancel_restore: a deferred cancel then stays pending until a
 * cancellation point of the program's own. */
int shim_cancel_off(void);
void shim_cancel_restore(int old_state);

/* ---- descriptors of the shim's own (shim.c) ---------------------------------- */

/* The shim's files (the trace, the copy of stderr) must not be mistaken for
 * the program's: they live at a high number, where programs that dup2 onto
 * 3, or close 3..N and open files, do not reach, and each write first checks
 * that the descriptor still names the file it was opened on. */
typedef struct shim_file_id {
    dev_t dev;
    ino_t ino;
} shim_file_id;

/* A close-on-exec copy of fd at a high number (SHIM_HIGH_FD, or lower when
 * RLIMIT_NOFILE is lower), or -1.  fd stays open. */
int shim_dup_high(int fd);
/* The identity of the file fd is open on; false when fstat fails. */
bool shim_file_id_of(int fd, shim_file_id *out);
/* Whether fd is still open on the file id names. */
bool shim_same_file(int fd, const shim_file_id *id);

/* ---- the trace (trace.c) ----------------------------------------------------- */

/* 1 while this process records a trace (CARVE_TRACE set and this process is
 * one that writes it); read without a lock on every call. */
extern _Atomic int shim_tracing;

/* Called once from the heap's initialisation (no other thread runs shim
 * code yet).  base is the address ids are measured from. */
void trace_init(uintptr_t base);

/* One line per successful call, in the trace format (shim/README.md).
 * Each takes the trace lock and never calls carve or malloc. */
void trace_alloc(const void *p, size_t size);
void trace_calloc(const void *p, size_t count, size_t size);
void trace_aligned(const void *p, size_t alignment, size_t size);
void trace_realloc(const void *old, const void *p, size_t size);
void trace_free(const void *p);

/* Writes what is buffered (at exit). */
void trace_flush(void);

#endif /* CARVE_SHIM_H */
