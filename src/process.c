/*
 * process.c: process identities for records in shared memory, and whether
 * their process is gone (process.h says why, and when the answer is "no").
 *
 * Copyright (c) 2026 the carve authors.  MIT licence (see LICENSE).
 */
#define _POSIX_C_SOURCE 200809L

#include "process.h"

#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* This process's nonce (process.h): its id in the high half, 32 bits from
 * the monotonic clock and an address in the low half, drawn by the first
 * caller and again in a fork() child, whose id differs.  One atomic word,
 * so no lock (a lock held by another thread at a fork() would never be
 * released in the child); threads racing to draw it agree on the winner. */
static uint64_t process_nonce(uint32_t me)
{
    static _Atomic uint64_t word;
    uint64_t seen = atomic_load_explicit(&word, memory_order_acquire);
    while ((uint32_t)(seen >> 32) != me) {
        struct timespec t;
        (void)clock_gettime(CLOCK_MONOTONIC, &t);
        uint64_t x = (uint64_t)t.tv_sec * UINT64_C(1000000000) + (uint64_t)t.tv_nsec;
        x ^= (uint64_t)(uintptr_t)&t;
        x *= UINT64_C(0x9e3779b97f4a7c15);
        uint64_t drawn = ((uint64_t)me << 32) | ((x >> 32) | 1u);
        if (atomic_compare_exchange_weak_explicit(&word, &seen, drawn, memory_order_acq_rel,
                                                  memory_order_acquire)) {
            return drawn;
        }
    }
    return seen;
}

#if defined(__linux__)
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

/* What /proc/PID/stat says of a process. */
struct proc_stat {
    uint32_t pid;
    char state;
    uint64_t started;
};

/* Reads /proc/<pid>/stat ("self" for pid 0).  1: read; 0: no such process;
 * -1: could not tell. */
static int proc_stat_read(uint32_t pid, struct proc_stat *out)
{
    char path[48];
    if (pid == 0) {
        snprintf(path, sizeof path, "/proc/self/stat");
    } else {
        snprintf(path, sizeof path, "/proc/%lu/stat", (unsigned long)pid);
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return errno == ENOENT ? 0 : -1;
    }
    char text[1024];
    ssize_t n = read(fd, text, sizeof text - 1u);
    close(fd);
    if (n <= 0) {
        return n == 0 ? 0 : -1; /* empty: the process went between open and read */
    }
    text[n] = '\0';
    /* "pid (comm) state f4 ... f21 starttime ...": comm may hold anything,
     * ')' included, so the fields start after the last ')'. */
    char *end = strrchr(text, ')');
    if (end == NULL || end[1] != ' ' || end[2] == '\0' || end[3] != ' ') {
        return -1;
    }
    char *stop;
    unsigned long long id = strtoull(text, &stop, 10);
    if (stop == text || *stop != ' ') {
        return -1;
    }
    out->pid = (uint32_t)id;
    out->state = end[2];
    const char *f = end + 3;                        /* the space before field 4 */
    for (unsigned field = 4; field < 22; field++) { /* skip fields 4 to 21 */
        f = strchr(f + 1, ' ');
        if (f == NULL) {
            return -1;
        }
    }
    unsigned long long started = strtoull(f + 1, &stop, 10);
    if (stop == f + 1) {
        return -1;
    }
    out->started = started;
    return 1;
}

/* The inode and device of this thread's namespace NAME ("pid", "time")
 * mixed, or 0 when it cannot be read (a kernel without that namespace, no
 * /proc).  /proc/thread-self first: once the main thread has exited,
 * /proc/self/ns is the zombie main thread's and can no longer be read,
 * while the other threads go on (and take caches). */
static uint64_t namespace_of(const char *name)
{
    char path[48];
    struct stat st;
    snprintf(path, sizeof path, "/proc/thread-self/ns/%s", name);
    if (stat(path, &st) != 0) {
        snprintf(path, sizeof path, "/proc/self/ns/%s", name);
        if (stat(path, &st) != 0) {
            return 0;
        }
    }
    return (uint64_t)st.st_ino ^ ((uint64_t)st.st_dev << 32);
}

/* This process's namespaces as one number, or 0 when /proc is not its pid
 * namespace's (a container with its host's /proc) or cannot be read.  The
 * time namespace is in it because /proc/PID/stat gives start times shifted
 * by the reader's boot-time offset: a start time read across two time
 * namespaces would not match, and a live owner would look gone. */
static uint64_t my_namespaces(uint32_t me, const struct proc_stat *self)
{
    uint64_t pid_ns = namespace_of("pid");
    if (self->pid != me || pid_ns == 0) {
        return 0;
    }
    uint64_t time_ns = namespace_of("time");
    uint64_t ns = pid_ns ^ (time_ns * UINT64_C(0x9e3779b97f4a7c15));
    return ns != 0 ? ns : 1u;
}

static struct process_id work_out_self(uint32_t me)
{
    struct process_id id = {me, process_nonce(me), 0, 0};
    struct proc_stat self;
    if (proc_stat_read(0, &self) == 1) {
        id.ns = my_namespaces(me, &self);
        id.started = id.ns != 0 ? self.started : 0u;
    }
    return id;
}

/* Whether zombie pid has no thread left: its main thread shows 'Z' as soon
 * as it has exited, while the process's other threads may still run (and
 * use the heap); only when /proc/PID/task lists the main thread alone has
 * the process ended.  False when that cannot be read. */
static bool no_thread_left(uint32_t pid)
{
    char path[48];
    snprintf(path, sizeof path, "/proc/%lu/task", (unsigned long)pid);
    DIR *d = opendir(path);
    if (d == NULL) {
        return errno == ENOENT; /* reaped meanwhile */
    }
    unsigned tasks = 0;
    for (struct dirent *e = readdir(d); e != NULL; e = readdir(d)) {
        tasks += e->d_name[0] != '.';
    }
    closedir(d);
    return tasks <= 1u;
}

bool process_is_gone(const struct process_id *who)
{
    struct process_id me = process_self();
    if (who->pid == 0 || who->ns == 0 || who->started == 0 || who->ns != me.ns) {
        return false;
    }
    if (who->pid == me.pid) {
        return who->nonce != me.nonce; /* a process before this one under its id */
    }
    struct proc_stat now;
    int found = proc_stat_read(who->pid, &now);
    if (found == 0) {
        return true;
    }
    if (found != 1 || now.pid != who->pid) {
        return false;
    }
    if (now.started != who->started) {
        return true; /* another process under that id */
    }
    /* A zombie with no thread left has ended: only its exit status waits
     * for its parent. */
    return (now.state == 'Z' || now.state == 'X') && no_thread_left(who->pid);
}
#else
static struct process_id work_out_self(uint32_t me)
{
    struct process_id id = {me, process_nonce(me), 0, 0};
    return id;
}

bool process_is_gone(const struct process_id *who)
{
    (void)who;
    return false;
}
#endif

struct process_id process_self(void)
{
    /* Per thread, so that no lock is needed (a lock held by another thread
     * at a fork() would never be released in the child); pid 0 until worked
     * out, and stale in a fork() child, where getpid() differs. */
    static _Thread_local struct process_id known;
    uint32_t me = (uint32_t)getpid();
    if (known.pid != me) {
        known = work_out_self(me);
    }
    return known;
}
