/*
 * process.h: which process owns something a heap in shared memory records,
 * and whether that process is gone.
 *
 * Why: a CARVE_SHARED heap is used by several processes at once, and a
 * process can die (SIGKILL, a crash) in the middle of an operation that
 * marked a thread cache busy without the heap's lock (threads.c).  Nothing
 * but the owner ever clears that mark, so the others must be able to tell
 * a busy owner from a dead one before they take the cache over.
 *
 * A process id alone cannot say: the id of a dead process is reused, and
 * processes in two pid namespaces that map the same heap may see each
 * other under other ids, or under ids that name someone else.  So an owner
 * is recorded as its id, its pid namespace and its start time, and it is
 * declared gone only when the one asking is in the same namespace (its
 * /proc shows it under its own id) and that id now names no process, a
 * zombie, or a process that started at another time.  Whenever anything is
 * uncertain (no /proc, another namespace, an unreadable entry) the owner
 * counts as alive: waiting is safe, taking over a live owner's cache is not.
 *
 * Linux only; elsewhere every owner counts as alive.
 */
#ifndef CARVE_PROCESS_H
#define CARVE_PROCESS_H

#include <stdbool.h>
#include <stdint.h>

/* A process as a record names it.  ns == 0 or started == 0: unknown. */
struct process_id {
    uint32_t pid;
    uint64_t ns;      /* its pid namespace (device and inode of /proc/self/ns/pid, mixed) */
    uint64_t started; /* its start time, in clock ticks after boot (/proc/PID/stat) */
};

/* The calling process (worked out again after a fork()).  Thread-safe. */
struct process_id process_self(void);

/* Whether process who is certainly gone, as the caller sees it: see above.
 * Reads /proc; thread-safe. */
bool process_is_gone(const struct process_id *who);

#endif /* CARVE_PROCESS_H */
