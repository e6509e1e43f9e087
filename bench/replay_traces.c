/*
 * replay_traces.c: the sample traces on every allocator, for `make bench`.
 *
 * The measuring is the carve tool's (`carve replay --compare`, tools/carve/
 * replay.c): it replays each trace on every carve policy in-process and on
 * each peer malloc in a child process with the peer preloaded, in one run,
 * so every speed figure is a ratio against glibc measured minutes apart on
 * the same machine.  This file only finds the tool and the traces, runs it
 * and files its Markdown under bench/results/.
 *
 * Copyright (c) 2026 the carve authors.  MIT licence (see LICENSE).
 */
#define _GNU_SOURCE

#include "replay_traces.h"

#include <errno.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef CARVE_BENCH_TOOL
#define CARVE_BENCH_TOOL ""
#endif
#ifndef CARVE_BENCH_SOURCE_DIR
#define CARVE_BENCH_SOURCE_DIR "."
#endif
#ifndef CARVE_BENCH_RESULTS_FILE
#define CARVE_BENCH_RESULTS_FILE "bench/results/latest.md"
#endif
#ifndef CARVE_BENCH_TRACES_FILE
#define CARVE_BENCH_TRACES_FILE "bench/results/traces.md"
#endif

enum { REPLAY_RUNS = 5 };

/* Appends s to the command line, single-quoted for sh. */
static int append_quoted(char **cmd, size_t *len, const char *s)
{
    size_t need = *len + 4u * strlen(s) + 4u;
    char *c = realloc(*cmd, need);
    if (c == NULL)
        return -1;
    *cmd = c;
    size_t n = *len;
    c[n++] = ' ';
    c[n++] = '\'';
    for (; *s; s++) {
        if (*s == '\'') {
            memcpy(c + n, "'\\''", 4);
            n += 4;
        } else {
            c[n++] = *s;
        }
    }
    c[n++] = '\'';
    c[n] = '\0';
    *len = n;
    return 0;
}

static void utc_now(char *buf, size_t len)
{
    time_t now = time(NULL);
    struct tm tm;
    if (gmtime_r(&now, &tm) == NULL || strftime(buf, len, "%Y-%m-%d %H:%M UTC", &tm) == 0)
        snprintf(buf, len, "unknown time");
}

int bench_traces_path(const char *results, char *buf, size_t len)
{
    size_t n = results != NULL ? strlen(results) : 0;
    int w;
    if (results == NULL || strcmp(results, CARVE_BENCH_RESULTS_FILE) == 0)
        w = snprintf(buf, len, "%s", CARVE_BENCH_TRACES_FILE);
    else if (n >= 3 && strcmp(results + n - 3, ".md") == 0)
        w = snprintf(buf, len, "%.*s-traces.md", (int)(n - 3), results);
    else
        w = snprintf(buf, len, "%s-traces.md", results);
    return w > 0 && (size_t)w < len;
}

int bench_replay_traces(int quiet, const char *path)
{
    const char *tool = CARVE_BENCH_TOOL;
    if (tool[0] == '\0' || access(tool, X_OK) != 0) {
        fprintf(stderr, "carve-bench: traces: the carve tool is not built (%s); skipped\n",
                tool[0] ? tool : "CARVE_BUILD_TOOLS=OFF");
        return 1;
    }
    glob_t g;
    if (glob(CARVE_BENCH_SOURCE_DIR "/traces/*.trace.gz", 0, NULL, &g) != 0 || g.gl_pathc == 0) {
        fprintf(stderr, "carve-bench: traces: no traces in " CARVE_BENCH_SOURCE_DIR "/traces\n");
        return 1;
    }
    char *cmd = NULL;
    size_t len = 0;
    int rc = append_quoted(&cmd, &len, tool);
    char runs[64];
    snprintf(runs, sizeof runs, " replay --compare --quiet --samples 0 --runs %d", REPLAY_RUNS);
    char *c = rc == 0 ? realloc(cmd, len + strlen(runs) + 1u) : NULL;
    if (c == NULL) {
        free(cmd);
        globfree(&g);
        return 1;
    }
    cmd = c;
    memcpy(cmd + len, runs, strlen(runs) + 1u);
    len += strlen(runs);
    for (size_t i = 0; i < g.gl_pathc && rc == 0; i++)
        rc = append_quoted(&cmd, &len, g.gl_pathv[i]);
    if (!quiet)
        fprintf(stderr, "carve-bench: traces: %s\n", cmd);

    char *text = NULL;
    size_t text_len = 0;
    FILE *out = open_memstream(&text, &text_len);
    FILE *p = rc == 0 && out != NULL ? popen(cmd, "r") : NULL;
    int status = -1;
    if (p != NULL) {
        char date[64];
        utc_now(date, sizeof date);
        fprintf(out,
                "# carve-bench: sample traces on every allocator\n\n"
                "Written by `make bench` (carve-bench) on %s: `carve replay --compare` over "
                "traces/*.trace.gz (see traces/README.md for how each was recorded). "
                "Speed is glibc's ns/op over the allocator's, measured in the same run; the "
                "smallest heap is a deterministic space figure.\n\n",
                date);
        char buf[4096];
        size_t got;
        while ((got = fread(buf, 1, sizeof buf, p)) > 0) {
            fwrite(buf, 1, got, out);
            fwrite(buf, 1, got, stdout);
        }
        status = pclose(p);
    }
    if (out != NULL)
        fclose(out);
    free(cmd);
    globfree(&g);
    int result = 0;
    if (status != 0) {
        fprintf(stderr, "carve-bench: traces: carve replay --compare failed (status %d)\n", status);
        result = 1;
    }
    if (text != NULL && text_len > 0) {
        FILE *f = fopen(path, "w");
        if (f == NULL || fwrite(text, 1, text_len, f) != text_len || fclose(f) != 0) {
            fprintf(stderr, "carve-bench: cannot write %s: %s\n", path, strerror(errno));
            result = 1;
        } else if (!quiet) {
            fprintf(stderr, "carve-bench: traces: written to %s\n", path);
        }
    }
    free(text);
    return result;
}
