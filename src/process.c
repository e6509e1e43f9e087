/*
 * process.c: process identities for records in shared memory, and whether
 * their process is gone (process.h says why, and when the answer is "no").
 *
 * Copyright (c) 2026 the carve authors.  MIT licence (see LICENSE).
 */
#define _POSIX_C_SOURCE 200809L

#include "process.h"

#include <string.h>
#include <unistd.h>

#if defined(__linux__)
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

/* This process's pid namespace, or 0 when /proc is not this namespace's
 * (a container with its host's /proc) or cannot be read. */
static uint64_t my_pid_namespace(uint32_t me, const struct proc_stat *self)
{
    struct stat st;
    if (self->pid != me || stat("/proc/self/ns/pid", &st) != 0) {
        return 0;
    }
    uint64_t ns = (uint64_t)st.st_ino ^ ((uint64_t)st.st_dev << 32);
    return ns != 0 ? ns : 1u;
}

static struct process_id work_out_self(uint32_t me)
{
    struct process_id id = {me, 0, 0};
    struct proc_stat self;
    if (proc_stat_read(0, &self) == 1) {
        id.ns = my_pid_namespace(me, &self);
        id.started = id.ns != 0 ? self.started : 0u;
    }
    return id;
}

bool process_is_gone(const struct process_id *who)
{
    struct process_id me = process_self();
    if (who->pid == 0 || who->ns == 0 || who->started == 0 || who->ns != me.ns ||
        who->pid == me.pid) {
        return false;
    }
    struct proc_stat now;
    int found = proc_stat_read(who->pid, &now);
    if (found == 0) {
        return true;
    }
    /* A zombie has ended: only its exit status waits for its parent. */
    return found == 1 && now.pid == who->pid &&
           (now.state == 'Z' || now.state == 'X' || now.started != who->started);
}
#else
static struct process_id work_out_self(uint32_t me)
{
    struct process_id id = {me, 0, 0};
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
