/*
 * carve-bench: peers in child processes, and callgrind runs.
 *
 * A peer malloc is measured as a real malloc: this program re-executes
 * itself with the peer's library in LD_PRELOAD and a hidden "--peer NAME
 * --job SPEC" option; the child checks that malloc really resolves into that
 * library, runs the one job, and writes one result line to a pipe.  Every
 * measurement of a peer gets a fresh process, so no peer (and no earlier
 * workload) leaves state behind for another.  glibc runs the same way,
 * without a preload.  The peers' table and the spawning are the `carve`
 * tool's (tools/carve/peers.c), shared with `carve replay --compare`.
 *
 * Copyright (c) 2026 the carve authors.  MIT licence (see LICENSE).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

void peer_run_job(const char *self_exe, const peer *p, const job *j, result *r)
{
    memset(r, 0, sizeof *r);
    if (p->missing[0] != '\0') {
        snprintf(r->reason, sizeof r->reason, "%.*s", (int)sizeof r->reason - 1, p->missing);
        return;
    }
    char spec[256];
    job_format(j, spec, sizeof spec);
    /* argv[0] names this program; the image run is /proc/self/exe, so a
     * rebuild during a run cannot mix two versions of the harness. */
    char *argv[] = {(char *)self_exe, "--peer", (char *)p->name, "--job", spec, NULL};
    char out[1024];
    int status = tool_spawn_capture("/proc/self/exe", argv, p->soname != NULL ? p->path : NULL, out,
                                    sizeof out);

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
    tool_describe_status(status, r->reason, sizeof r->reason);
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
    char captured[1024];
    int status = tool_spawn_capture(valgrind, argv, p != NULL && p->soname != NULL ? p->path : NULL,
                                    captured, sizeof captured);

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
        tool_describe_status(status, why, whylen);
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
