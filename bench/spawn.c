/*
 * carve-bench: peers in child processes, and callgrind runs.
 *
 * A peer malloc is measured as a real malloc: this program re-executes
 * itself with the peer's library in LD_PRELOAD and a hidden "--peer NAME
 * --job SPEC" option; the child checks that malloc really resolves into that
 * library, runs the one job, and writes one result line to a pipe.  Every
 * measurement of a peer gets a fresh process, so no peer (and no earlier
 * workload) leaves state behind for another.  glibc runs the same way,
 * without a preload.
 *
 * Copyright (c) 2026 the carve authors.  MIT licence (see LICENSE).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

peer bench_peers[] = {
    {"glibc", NULL, "libc.so", "", ""},
    {"jemalloc", "libjemalloc.so.2", "libjemalloc", "", ""},
    {"mimalloc", "libmimalloc.so.2", "libmimalloc", "", ""},
    {"tcmalloc", "libtcmalloc_minimal.so.4", "libtcmalloc", "", ""},
};
const size_t bench_peer_count = sizeof bench_peers / sizeof bench_peers[0];

peer *peer_find(const char *name)
{
    for (size_t i = 0; i < bench_peer_count; i++)
        if (strcmp(bench_peers[i].name, name) == 0)
            return &bench_peers[i];
    return NULL;
}

/* The directory the C library was loaded from ("/lib/x86_64-linux-gnu"),
 * which is where Debian's multiarch packages put the peers too. */
static void libc_directory(char *dir, size_t len)
{
    Dl_info info;
    void *sym = dlsym(RTLD_DEFAULT, "fopen");
    dir[0] = '\0';
    if (sym != NULL && dladdr(sym, &info) != 0 && info.dli_fname != NULL) {
        snprintf(dir, len, "%s", info.dli_fname);
        char *slash = strrchr(dir, '/');
        if (slash != NULL)
            *slash = '\0';
        else
            dir[0] = '\0';
    }
}

void peer_locate(peer *p)
{
    p->path[0] = '\0';
    p->missing[0] = '\0';
    if (p->soname == NULL)
        return; /* glibc: this process's own malloc, nothing to preload */
    char libc_dir[PATH_MAX], usr_dir[PATH_MAX + 8];
    libc_directory(libc_dir, sizeof libc_dir);
    snprintf(usr_dir, sizeof usr_dir, "/usr%s", libc_dir);
    const char *dirs[] = {libc_dir, usr_dir, "/usr/local/lib", "/usr/lib64", "/usr/lib", "/lib"};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        char candidate[PATH_MAX + 64];
        if (dirs[i][0] == '\0')
            continue;
        int n = snprintf(candidate, sizeof candidate, "%s/%s", dirs[i], p->soname);
        if (n < 0 || (size_t)n >= sizeof p->path)
            continue; /* a path this long would not fit in p->path */
        if (access(candidate, R_OK) == 0) {
            memcpy(p->path, candidate, (size_t)n + 1);
            return;
        }
    }
    snprintf(p->missing, sizeof p->missing,
             "%s not found (searched %s, /usr/local/lib, /usr/lib64, /usr/lib)", p->soname,
             libc_dir[0] ? libc_dir : "the C library's directory");
}

int peer_verify_active(const char *marker, char *why, size_t whylen)
{
    Dl_info info;
    void *sym = dlsym(RTLD_DEFAULT, "malloc");
    if (sym == NULL || dladdr(sym, &info) == 0 || info.dli_fname == NULL) {
        snprintf(why, whylen, "cannot tell which library provides malloc");
        return -1;
    }
    if (strstr(info.dli_fname, marker) == NULL) {
        snprintf(why, whylen, "malloc comes from %s, not %s (preload not in effect)",
                 info.dli_fname, marker);
        return -1;
    }
    return 0;
}

/* A copy of this process's environment without LD_PRELOAD, plus
 * LD_PRELOAD=preload when preload is not NULL.  Freed by the caller. */
static char **child_environment(const char *preload)
{
    size_t n = 0;
    while (environ[n] != NULL)
        n++;
    char **env = calloc(n + 2, sizeof *env);
    if (env == NULL)
        die("out of memory");
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "LD_PRELOAD=", 11) != 0)
            env[k++] = environ[i];
    if (preload != NULL) {
        size_t len = strlen(preload) + 12;
        env[k] = malloc(len);
        if (env[k] == NULL)
            die("out of memory");
        snprintf(env[k], len, "LD_PRELOAD=%s", preload);
        k++;
    }
    env[k] = NULL;
    return env;
}

static void free_environment(char **env, const char *preload)
{
    if (preload != NULL) {
        size_t k = 0;
        while (env[k] != NULL)
            k++;
        free(env[k - 1]);
    }
    free(env);
}

/* Spawns image with argv and the environment env, its stdout into out (up to len - 1
 * bytes, NUL-terminated); returns the wait status, or -1 with errno. */
static int spawn_capture(const char *image, char *const argv[], char **env, char *out, size_t len)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0)
        return -1;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
    pid_t pid;
    int rc = posix_spawn(&pid, image, &fa, NULL, argv, env);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    if (rc != 0) {
        close(fds[0]);
        errno = rc;
        return -1;
    }
    size_t used = 0;
    for (;;) {
        char scratch[256];
        ssize_t got = read(fds[0], used + 1 < len ? out + used : scratch,
                           used + 1 < len ? len - 1 - used : sizeof scratch);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        if (used + 1 < len)
            used += (size_t)got;
    }
    out[used] = '\0';
    close(fds[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR)
            return -1;
    }
    return status;
}

static void describe_status(int status, char *why, size_t whylen)
{
    if (status < 0)
        snprintf(why, whylen, "could not start: %s", strerror(errno));
    else if (WIFSIGNALED(status))
        snprintf(why, whylen, "child killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else
        snprintf(why, whylen, "child exited with status %d", WEXITSTATUS(status));
}

void peer_run_job(const char *self_exe, const peer *p, const job *j, result *r)
{
    memset(r, 0, sizeof *r);
    if (p->missing[0] != '\0') {
        snprintf(r->reason, sizeof r->reason, "%s", p->missing);
        return;
    }
    char spec[256];
    job_format(j, spec, sizeof spec);
    /* argv[0] names this program; the image run is /proc/self/exe, so a
     * rebuild during a run cannot mix two versions of the harness. */
    char *argv[] = {(char *)self_exe, "--peer", (char *)p->name, "--job", spec, NULL};
    const char *preload = p->soname != NULL ? p->path : NULL;
    char **env = child_environment(preload);
    char out[1024];
    int status = spawn_capture("/proc/self/exe", argv, env, out, sizeof out);
    free_environment(env, preload);

    /* The result is the last line that parses. */
    char *line = out, *found = NULL;
    while (line != NULL && *line != '\0') {
        if (strncmp(line, "ok ", 3) == 0 || strncmp(line, "err ", 4) == 0)
            found = line;
        char *nl = strchr(line, '\n');
        line = nl != NULL ? nl + 1 : NULL;
    }
    if (found != NULL && result_parse(found, r) == 0)
        return;
    describe_status(status, r->reason, sizeof r->reason);
}

/* From a callgrind output file: the total of each event named in want
 * (e.g. "Ir", "Dr"), read from the "events:" line and the first "summary:"
 * or "totals:" line.  Returns 0 when every one was found. */
static int callgrind_totals(const char *path, const char *const *want, double *out, size_t nwant)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    char line[1024], events[1024] = "";
    int found = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, "events:", 7) == 0) {
            snprintf(events, sizeof events, "%s", line + 7);
            continue;
        }
        const char *numbers = NULL;
        if (strncmp(line, "summary:", 8) == 0)
            numbers = line + 8;
        else if (strncmp(line, "totals:", 7) == 0)
            numbers = line + 7;
        if (numbers == NULL || events[0] == '\0')
            continue;
        /* The k-th number belongs to the k-th event name. */
        for (size_t w = 0; w < nwant; w++)
            out[w] = -1.0;
        char names[1024];
        snprintf(names, sizeof names, "%s", events);
        char *save = NULL;
        const char *num = numbers;
        for (char *name = strtok_r(names, " \t\n", &save); name != NULL;
             name = strtok_r(NULL, " \t\n", &save)) {
            char *end;
            unsigned long long v = strtoull(num, &end, 10);
            if (end == num)
                break;
            num = end;
            for (size_t w = 0; w < nwant; w++)
                if (strcmp(name, want[w]) == 0)
                    out[w] = (double)v;
        }
        found = 1;
        break;
    }
    fclose(f);
    if (!found)
        return -1;
    for (size_t w = 0; w < nwant; w++)
        if (out[w] < 0)
            return -1;
    return 0;
}

static void first_line_of(const char *path, char *buf, size_t len)
{
    buf[0] = '\0';
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    char line[512];
    while (fgets(line, sizeof line, f) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        if (line[0] != '\0') {
            if (snprintf(buf, len, "%s", line) < 0)
                buf[0] = '\0';
            break;
        }
    }
    fclose(f);
}

/* Runs the job under callgrind (with the cache simulator when cache_sim)
 * and reads the totals of the events named in want.  0, or -1 with why. */
static int callgrind_events(const char *self_exe, const char *valgrind, const char *row,
                            const peer *p, const job *j, int cache_sim, const char *const *want,
                            double *out, size_t nwant, char *why, size_t whylen)
{
    if (p != NULL && p->missing[0] != '\0') {
        snprintf(why, whylen, "%s", p->missing);
        return -1;
    }
    char dir[] = "/tmp/carve-bench-cg.XXXXXX";
    if (mkdtemp(dir) == NULL) {
        snprintf(why, whylen, "mkdtemp: %s", strerror(errno));
        return -1;
    }
    char out_path[64], log_path[64], out_opt[96], log_opt[96], spec[256];
    snprintf(out_path, sizeof out_path, "%s/out", dir);
    snprintf(log_path, sizeof log_path, "%s/log", dir);
    snprintf(out_opt, sizeof out_opt, "--callgrind-out-file=%s", out_path);
    snprintf(log_opt, sizeof log_opt, "--log-file=%s", log_path);
    job_format(j, spec, sizeof spec);
    char *argv[] = {(char *)valgrind,
                    "--tool=callgrind",
                    "--collect-atstart=no",
                    cache_sim ? "--cache-sim=yes" : "--cache-sim=no",
                    out_opt,
                    log_opt,
                    (char *)self_exe,
                    "--cg-worker",
                    (char *)row,
                    "--job",
                    spec,
                    NULL};
    const char *preload = p != NULL && p->soname != NULL ? p->path : NULL;
    char **env = child_environment(preload);
    char captured[1024];
    int status = spawn_capture(valgrind, argv, env, captured, sizeof captured);
    free_environment(env, preload);

    int rc = -1;
    result r;
    memset(&r, 0, sizeof r);
    char *line = strstr(captured, "err ");
    if (line != NULL) {
        result_parse(line, &r);
        snprintf(why, whylen, "%s", r.reason);
    } else if (status == 0) {
        rc = callgrind_totals(out_path, want, out, nwant);
        if (rc != 0)
            snprintf(why, whylen, "no totals in the callgrind output");
    } else {
        char first[160];
        describe_status(status, why, whylen);
        first_line_of(log_path, first, sizeof first);
        size_t used = strlen(why);
        if (first[0] != '\0' && used + 16 < whylen &&
            snprintf(why + used, whylen - used, "; valgrind: %s", first) < 0)
            why[used] = '\0';
    }
    unlink(out_path);
    unlink(log_path);
    rmdir(dir);
    return rc;
}

double callgrind_run(const char *self_exe, const char *valgrind, const char *row, const peer *p,
                     const job *j, char *why, size_t whylen)
{
    static const char *const want[] = {"Ir"};
    double total;
    if (callgrind_events(self_exe, valgrind, row, p, j, 0, want, &total, 1, why, whylen) != 0)
        return -1.0;
    return total;
}

int callgrind_run_reads(const char *self_exe, const char *valgrind, const char *row, const job *j,
                        double *instructions, double *data_reads, char *why, size_t whylen)
{
    static const char *const want[] = {"Ir", "Dr"};
    double totals[2];
    if (callgrind_events(self_exe, valgrind, row, NULL, j, 1, want, totals, 2, why, whylen) != 0)
        return -1;
    *instructions = totals[0];
    *data_reads = totals[1];
    return 0;
}
