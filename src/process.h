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
 * is recorded as its id, its namespaces (pid and time: a start time read
 * in another time namespace is shifted) and its start time, and it is
 * declared gone only when the one asking is in the same namespaces (and its
 * /proc shows it under its own id) and that id now names no process, a
 * zombie with no thread left (a main thread that exited shows as a zombie
 * while the others run on), or a process that started at another time;
 * and an owner under the asker's own id is gone unless its nonce is the
 * asker's.  Whenever anything is uncertain (no /proc,
 * another namespace, an unreadable entry) the owner counts as alive:
 * waiting is safe, taking over a live owner's cache is not.
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
    /* Which of the processes that have had this id: its id and 32 bits
     * drawn when it first asked (never 0).  A start time does not tell a
     * process from another that got the same id within the same clock tick
     * (10 ms); this tells one from any other only by asking itself, so it
     * serves a process to know its own records. */
    uint64_t nonce;
    uint64_t ns;      /* its pid and time namespaces (/proc/thread-self/ns/{pid,time}, mixed) */
    uint64_t started; /* its start time, in clock ticks after boot (/proc/PID/stat) */
};

/* The calling process (worked out again after a fork(), nonce included).
 * Thread-safe. */
struct process_id process_self(void);

/* Whether process who is certainly gone, as the caller sees it: see above.
 * Reads /proc; thread-safe. */
bool process_is_gone(const struct process_id *who);

#endif /* CARVE_PROCESS_H */
