/*
 * carve-bench: one program that runs the same operation sequences on carve
 * (each policy), the harness alone, and glibc, jemalloc, mimalloc and
 * tcmalloc, and prints one Markdown table (also written to
 * bench/results/latest.md).  See bench/README.md.
 *
 * Copyright (c) 2026 the carve authors.  MIT licence (see LICENSE).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "carve.h"
#include "plan.h"
#include "replay_traces.h"
#include "timing.h"

#ifndef CARVE_BENCH_RESULTS_FILE
#define CARVE_BENCH_RESULTS_FILE "bench/results/latest.md"
#endif
#ifndef CARVE_BENCH_SOURCE_DIR
#define CARVE_BENCH_SOURCE_DIR "."
#endif

#define MIB ((uint64_t)1 << 20)
#define GIB ((uint64_t)1 << 30)

int bench_quiet;

void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("carve-bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

void note(const char *fmt, ...)
{
    if (bench_quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void usage(FILE *f)
{
    fputs("usage: carve-bench [options]\n"
          "\n"
          "Runs the same operation sequences on carve (GOOD_FIT, FIRST_FIT, BEST_FIT), the\n"
          "harness alone, and glibc, jemalloc, mimalloc and tcmalloc (each preloaded into a\n"
          "child process), then prints a Markdown table and writes it to the results file.\n"
          "\n"
          "  W1   small churn: 10,000 slots, 10 M alloc-or-free steps, 8..128 B\n"
          "  W2   mixed churn: the same, log-uniform 16 B..64 KiB\n"
          "  W3   1 M x 64 B freed in order, then 1 M freed in reverse\n"
          "  W4   fill: 64 MiB buffer, 16 B..4 KiB, free a random block with p = 1/2;\n"
          "       live requested bytes / buffer size at the first failure (carve only)\n"
          "  LAT  W2 with every operation timed: p99.9, p99.99 (carve GOOD_FIT also on a\n"
          "       1 MiB and a 1 GiB heap, the peers at the same live slot counts, and\n"
          "       on the 1 GiB heap with W2's 10,000 slots)\n"
          "  W5   fragmenting churn: one trace of widely mixed sizes and lifetimes on a\n"
          "       carve buffer 1.10x its peak live bytes: GOOD_FIT with handles, each\n"
          "       policy with raw pointers (where it first fails); peers: peak RSS\n"
          "  CMP  carve_compact's GB/s against memmove of the same bytes (carve only)\n"
          "  PAUSE  the longest carve_compact(h, 64 KiB) call (carve only)\n"
          "  PIN  pin + read + unpin against a raw read, ns and (under callgrind)\n"
          "       instructions and loads per access (carve only)\n"
          "  THR  threads: W1 churn on 1 and 2 threads, own slots and larson-style\n"
          "       (blocks freed by the other thread), M ops/s (carve GOOD_FIT, peers)\n"
          "\n"
          "options:\n"
          "  --runs N       interleaved runs per measurement, median reported (default 5)\n"
          "  --seeds N      W4 seeds; the first is the fixed seed (default 5)\n"
          "  --only LIST    comma-separated subset of W1,W2,W3,W4,LAT,W5,CMP,PAUSE,PIN,THR\n"
          "  --quick        small operation counts: a smoke test of a few seconds\n"
          "  --out FILE     write the Markdown there (default for a full run:\n"
          "                 " CARVE_BENCH_RESULTS_FILE ";\n"
          "                 --quick and --only runs write no file unless --out is given;\n"
          "                 a full run's trace tables go beside it, to FILE-traces.md, or\n"
          "                 to bench/results/traces.md with the default)\n"
          "  --cpu N        pin to CPU N (default: the highest CPU allowed)\n"
          "  --no-pin       do not pin\n"
          "  --callgrind    instead: instructions per operation on W1 and W2 under\n"
          "                 valgrind --tool=callgrind (the results file's callgrind section)\n"
          "  --quiet        no progress lines on stderr\n"
          "  --help         this text\n",
          f);
}

/* ------------------------------------------------------------------------ */
/* Settings                                                                  */
/* ------------------------------------------------------------------------ */

static void settings_defaults(settings *s)
{
    memset(s, 0, sizeof *s);
    s->runs = 5;
    s->seeds = 5;
    for (unsigned w = 0; w < W_COUNT; w++)
        s->only[w] = 1;
    s->cpu = INT_MIN; /* auto */
    s->seed = 0x5eed0c0ffee2026u;
    s->time_limit = 120.0;
    s->churn_steps = 10000000;
    s->churn_warmup = 1000000;
    s->churn_slots = 10000;
    s->w1_heap = 32 * MIB;
    s->w2_heap = 256 * MIB;
    s->w3_count = 1000000;
    s->w3_heap = 256 * MIB;
    s->fill_heap = 64 * MIB;
    s->lat_steps = 5000000;
    s->lat_warmup = 500000;
    s->lat_small_heap = 1 * MIB;
    s->lat_large_heap = 1 * GIB;
    s->cg_steps = 1000000;
    s->cg_warmup = 100000;
    s->frag_allocs = 300000;
    s->cmp_blocks = 1024;
    s->pause_heap = 64 * MIB;
    s->pin_slots = 256;
    s->pin_steps = 10 * 1024 * 1024;
    s->pin_heap = 1 * MIB;
    s->pin_cg_steps = 1024 * 1024;
}

static void settings_quick(settings *s)
{
    s->quick = 1;
    s->runs = 1;
    s->seeds = 3;
    s->time_limit = 60.0;
    s->churn_steps = 200000;
    s->churn_warmup = 20000;
    s->w3_count = 100000;
    s->fill_heap = 16 * MIB;
    s->lat_steps = 200000;
    s->lat_warmup = 20000;
    s->lat_large_heap = 64 * MIB;
    s->cg_steps = 100000;
    s->cg_warmup = 10000;
    s->frag_allocs = 20000;
    s->cmp_blocks = 64;
    s->pause_heap = 4 * MIB;
    s->pin_steps = 256 * 1024;
}

static unsigned parse_count(const char *opt, const char *text, unsigned lo, unsigned hi)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(text, &end, 10);
    if (errno != 0 || *end != '\0' || v < lo || v > hi)
        die("%s wants a number from %u to %u, not '%s'", opt, lo, hi, text);
    return (unsigned)v;
}

static void parse_only(settings *s, const char *list)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", list);
    for (unsigned w = 0; w < W_COUNT; w++)
        s->only[w] = 0;
    for (char *tok = strtok(buf, ","); tok != NULL; tok = strtok(NULL, ",")) {
        workload_id w;
        if (workload_from_tag(tok, &w) != 0)
            die("--only: unknown workload '%s' (W1, W2, W3, W4, LAT, W5, CMP, PAUSE, PIN)", tok);
        s->only[w] = 1;
    }
}

/* ------------------------------------------------------------------------ */
/* Hidden child modes                                                        */
/* ------------------------------------------------------------------------ */

static int print_result(const result *r)
{
    char line[512];
    result_format(r, line, sizeof line);
    fputs(line, stdout);
    return fflush(stdout) == 0 ? 0 : 1;
}

/* --peer NAME --job SPEC: runs one job on this process's malloc, which the
 * parent made NAME's by LD_PRELOAD, after checking that it really is. */
static int peer_child_main(const char *name, const char *spec)
{
    result r;
    job j;
    memset(&r, 0, sizeof r);
    peer *p = tool_peer_find(name);
    if (p == NULL)
        snprintf(r.reason, sizeof r.reason, "unknown peer %s", name);
    else if (job_parse(spec, &j) != 0)
        snprintf(r.reason, sizeof r.reason, "bad job '%s'", spec);
    else if (tool_peer_verify(p->marker, r.reason, sizeof r.reason) == 0)
        run_job(&libc_allocator, &j, &r);
    return print_result(&r);
}

static const allocator *inproc_allocator(const char *name)
{
    if (strcmp(name, "harness") == 0)
        return &noop_allocator;
    if (strcmp(name, "carve-good") == 0)
        return &carve_good_fit;
    if (strcmp(name, "carve-first") == 0)
        return &carve_first_fit;
    if (strcmp(name, "carve-best") == 0)
        return &carve_best_fit;
    return NULL;
}

/* --cg-worker ROW --job SPEC: the same, under valgrind, for an in-process
 * row (harness, carve-*) or a peer. */
static int callgrind_child_main(const char *name, const char *spec)
{
    result r;
    job j;
    memset(&r, 0, sizeof r);
    const allocator *a = inproc_allocator(name);
    peer *p = a == NULL ? tool_peer_find(name) : NULL;
    if (a == NULL && p == NULL)
        snprintf(r.reason, sizeof r.reason, "unknown row %s", name);
    else if (job_parse(spec, &j) != 0)
        snprintf(r.reason, sizeof r.reason, "bad job '%s'", spec);
    else if (a != NULL)
        run_job(a, &j, &r);
    else if (tool_peer_verify(p->marker, r.reason, sizeof r.reason) == 0)
        run_job(&libc_allocator, &j, &r);
    return print_result(&r);
}

/* ------------------------------------------------------------------------ */
/* The machine                                                               */
/* ------------------------------------------------------------------------ */

static void read_first_match(const char *path, const char *key, char *out, size_t len)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    char line[512];
    while (fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, key, strlen(key)) == 0) {
            char *colon = strchr(line, ':');
            if (colon == NULL)
                continue;
            colon++;
            while (*colon == ' ' || *colon == '\t')
                colon++;
            colon[strcspn(colon, "\n")] = '\0';
            snprintf(out, len, "%s", colon);
            break;
        }
    }
    fclose(f);
}

static void command_output(const char *cmd, char *out, size_t len)
{
    out[0] = '\0';
    FILE *f = popen(cmd, "r");
    if (f == NULL)
        return;
    if (fgets(out, (int)len, f) == NULL)
        out[0] = '\0';
    out[strcspn(out, "\n")] = '\0';
    pclose(f);
}

static void git_commit(char *out, size_t len)
{
    char head[64], dirty[256];
    command_output("git -C '" CARVE_BENCH_SOURCE_DIR "' rev-parse --short=12 HEAD 2>/dev/null",
                   head, sizeof head);
    command_output("git -C '" CARVE_BENCH_SOURCE_DIR
                   "' status --porcelain --untracked-files=no 2>/dev/null",
                   dirty, sizeof dirty);
    if (head[0] == '\0' || strcmp(head, "HEAD") == 0)
        snprintf(out, len, "none (no commit yet)");
    else
        snprintf(out, len, "%s%s", head, dirty[0] != '\0' ? " (with uncommitted changes)" : "");
}

static void machine_describe(machine_info *m, int argc, char **argv)
{
    snprintf(m->cpu_model, sizeof m->cpu_model, "unknown CPU");
    read_first_match("/proc/cpuinfo", "model name", m->cpu_model, sizeof m->cpu_model);
    m->cores = sysconf(_SC_NPROCESSORS_ONLN);
    struct utsname u;
    if (uname(&u) == 0)
        if (snprintf(m->kernel, sizeof m->kernel, "%s %s %s", u.sysname, u.release, u.machine) < 0)
            m->kernel[0] = '\0';
    char thp[128] = "";
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    if (f != NULL) {
        if (fgets(thp, sizeof thp, f) == NULL)
            thp[0] = '\0';
        fclose(f);
    }
    char *open = strchr(thp, '['), *close = open != NULL ? strchr(open, ']') : NULL;
    if (open != NULL && close != NULL) {
        *close = '\0';
        snprintf(m->thp, sizeof m->thp, "%s", open + 1);
    } else {
        snprintf(m->thp, sizeof m->thp, "unknown");
    }
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(m->date, sizeof m->date, "%Y-%m-%d %H:%M UTC", &tm);
#if defined(__clang__)
    snprintf(m->compiler, sizeof m->compiler, "clang %s", __clang_version__);
#elif defined(__GNUC__)
    snprintf(m->compiler, sizeof m->compiler, "gcc %s", __VERSION__);
#else
    snprintf(m->compiler, sizeof m->compiler, "unknown compiler");
#endif
    git_commit(m->commit, sizeof m->commit);
    size_t used = 0;
    m->command[0] = '\0';
    for (int i = 0; i < argc && used + 1 < sizeof m->command; i++) {
        int quote = strpbrk(argv[i], " \t'\"$") != NULL;
        int n = snprintf(m->command + used, sizeof m->command - used, quote ? "%s'%s'" : "%s%s",
                         i ? " " : "", argv[i]);
        if (n < 0)
            break;
        used += (size_t)n;
    }
    if (used >= sizeof m->command)
        used = sizeof m->command - 1;
    m->command[used] = '\0';
}

/* Pins this process (and so its children) to one CPU: want, or the highest
 * allowed when want is INT_MIN.  Returns the CPU, or -1. */
static int pin_to_cpu(int want)
{
    cpu_set_t allowed, one;
    if (sched_getaffinity(0, sizeof allowed, &allowed) != 0)
        return -1;
    if (want == INT_MIN) {
        for (unsigned c = CPU_SETSIZE; c-- > 0;) {
            if (CPU_ISSET(c, &allowed)) {
                want = (int)c;
                break;
            }
        }
    }
    if (want < 0 || want >= CPU_SETSIZE)
        return -1;
    CPU_ZERO(&one);
    CPU_SET((unsigned)want, &one);
    if (sched_setaffinity(0, sizeof one, &one) != 0) {
        note("carve-bench: cannot pin to CPU %d: %s (running unpinned)", want, strerror(errno));
        return -1;
    }
    return want;
}

/* The 1-minute load average ("0.52"), or "?" where /proc/loadavg is missing. */
static void load_average(char *out, size_t len)
{
    snprintf(out, len, "?");
    FILE *f = fopen("/proc/loadavg", "r");
    if (f == NULL)
        return;
    char word[32];
    if (fscanf(f, "%31s", word) == 1)
        snprintf(out, len, "%s", word);
    fclose(f);
}

static int self_exe(char *out, size_t len)
{
    ssize_t n = readlink("/proc/self/exe", out, len - 1);
    if (n <= 0)
        return -1;
    out[n] = '\0';
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The plan                                                                  */
/* ------------------------------------------------------------------------ */

static void add_row(plan *p, const char *label, const allocator *a, peer *pe, int is_carve,
                    int is_harness)
{
    if (p->nrows == MAX_ROWS)
        die("too many rows");
    row *r = &p->rows[p->nrows++];
    r->label = label;
    r->inproc = a;
    r->peer = pe;
    r->is_carve = is_carve;
    r->is_harness = is_harness;
}

static void plan_rows(plan *p)
{
    add_row(p, noop_allocator.name, &noop_allocator, NULL, 0, 1);
    add_row(p, carve_good_fit.name, &carve_good_fit, NULL, 1, 0);
    add_row(p, carve_first_fit.name, &carve_first_fit, NULL, 1, 0);
    add_row(p, carve_best_fit.name, &carve_best_fit, NULL, 1, 0);
    for (size_t i = 0; i < tool_peer_count; i++) {
        tool_peer_locate(&tool_peers[i]);
        add_row(p, tool_peers[i].name, NULL, &tool_peers[i], 0, 0);
    }
}

cell *add_cell(plan *p, size_t row_index, workload_id w, const char *variant, job j)
{
    if (p->ncells == MAX_CELLS)
        die("too many cells");
    cell *c = &p->cells[p->ncells++];
    memset(c, 0, sizeof *c);
    c->row = row_index;
    c->workload = w;
    snprintf(c->variant, sizeof c->variant, "%s", variant);
    c->j = j;
    c->j.workload = w;
    return c;
}

/* Live slots for a latency heap: W2 keeps about half its slots live, so
 * heap / mean size slots keep about half the heap live. */
static uint64_t slots_for_half_full(uint64_t heap)
{
    double mean = log_uniform_mean(MIXED_FIRST_OCTAVE, MIXED_OCTAVES);
    return (uint64_t)((double)heap / mean + 0.5);
}

static void plan_cells(plan *p)
{
    const settings *s = &p->s;
    job base;
    memset(&base, 0, sizeof base);
    base.seed = s->seed;
    base.time_limit = s->time_limit;

    const workload_id churns[] = {W_SMALL_CHURN, W_MIXED_CHURN};
    for (size_t k = 0; k < 2; k++) {
        if (!s->only[churns[k]])
            continue;
        job j = base;
        j.steps = s->churn_steps;
        j.warmup = s->churn_warmup;
        j.slots = s->churn_slots;
        j.heap = churns[k] == W_SMALL_CHURN ? s->w1_heap : s->w2_heap;
        for (size_t r = 0; r < p->nrows; r++)
            add_cell(p, r, churns[k], "", j);
    }
    if (s->only[W_ORDERED]) {
        job j = base;
        j.steps = s->w3_count;
        j.heap = s->w3_heap;
        for (size_t r = 0; r < p->nrows; r++)
            add_cell(p, r, W_ORDERED, "", j);
    }
    if (s->only[W_FILL]) {
        job j = base;
        j.heap = s->fill_heap;
        for (size_t r = 0; r < p->nrows; r++)
            if (p->rows[r].is_carve)
                add_cell(p, r, W_FILL, "", j);
    }
    if (s->only[W_LATENCY]) {
        job j = base;
        j.steps = s->lat_steps;
        j.warmup = s->lat_warmup;
        j.slots = s->churn_slots;
        j.heap = s->w2_heap;
        for (size_t r = 0; r < p->nrows; r++)
            add_cell(p, r, W_LATENCY, "", j);
        /* carve GOOD_FIT on a small and a large heap, about half full, and
         * every peer with the same live slots, for a baseline at that load. */
        const uint64_t heaps[] = {s->lat_small_heap, s->lat_large_heap};
        for (size_t k = 0; k < 2; k++) {
            char label[32];
            format_bytes(heaps[k], label, sizeof label);
            strncat(label, " heap", sizeof label - strlen(label) - 1);
            j.heap = heaps[k];
            j.slots = slots_for_half_full(heaps[k]);
            for (size_t r = 0; r < p->nrows; r++)
                if (p->rows[r].inproc == &carve_good_fit || p->rows[r].peer != NULL)
                    add_cell(p, r, W_LATENCY, label, j);
        }
        /* carve GOOD_FIT on the large heap with W2's own slots: the same
         * operations and the same live bytes as on the W2 heap, so that only
         * the heap's size differs (the peers' baseline is the W2 row). */
        if (s->lat_large_heap > s->w2_heap) {
            char label[32];
            format_bytes(s->lat_large_heap, label, sizeof label);
            strncat(label, " heap, W2's slots", sizeof label - strlen(label) - 1);
            j.heap = s->lat_large_heap;
            j.slots = s->churn_slots;
            for (size_t r = 0; r < p->nrows; r++)
                if (p->rows[r].inproc == &carve_good_fit)
                    add_cell(p, r, W_LATENCY, label, j);
        }
    }
}

/* W5: the trace is made once here for its figures (every job makes it
 * again from the same seed); carve runs it on FRAG_SLACK x its peak live
 * bytes.  CMP, PAUSE and PIN: carve GOOD_FIT only. */
static void plan_handle_cells(plan *p)
{
    const settings *s = &p->s;
    job base;
    memset(&base, 0, sizeof base);
    base.seed = s->seed;
    base.time_limit = s->time_limit;
    size_t good = SIZE_MAX;
    for (size_t r = 0; r < p->nrows; r++)
        if (p->rows[r].inproc == &carve_good_fit)
            good = r;
    if (s->only[W_FRAG]) {
        frag_trace_make(&p->frag, s->seed, s->frag_allocs);
        frag_trace t = p->frag;
        t.ev = NULL;
        t.map_bytes = 0;
        frag_trace_free(&p->frag); /* unmaps the events; keep the figures */
        p->frag = t;
        job j = base;
        j.steps = s->frag_allocs;
        j.heap = (uint64_t)((double)p->frag.peak_live * FRAG_SLACK + 0.5);
        for (size_t r = 0; r < p->nrows; r++) {
            if (p->rows[r].is_harness)
                continue;
            if (r == good) {
                j.mode = FRAG_HANDLES;
                add_cell(p, r, W_FRAG, "handles", j);
                j.mode = FRAG_HANDLES_AUTO;
                add_cell(p, r, W_FRAG, "handles, automatic", j);
            }
            j.mode = FRAG_RAW;
            add_cell(p, r, W_FRAG, p->rows[r].is_carve ? "raw" : "", j);
        }
    }
    if (good == SIZE_MAX)
        return;
    if (s->only[W_COMPACT]) {
        job j = base;
        j.slots = s->cmp_blocks;
        /* The blocks with their headers, the handle table, and room to spare. */
        j.heap = s->cmp_blocks * ((64u << 10) + 64u) + MIB;
        add_cell(p, good, W_COMPACT, "", j);
    }
    if (s->only[W_PAUSE]) {
        job j = base;
        j.heap = s->pause_heap;
        add_cell(p, good, W_PAUSE, "", j);
    }
    if (s->only[W_PIN]) {
        job j = base;
        j.slots = s->pin_slots;
        j.steps = s->pin_steps;
        j.heap = s->pin_heap;
        add_cell(p, good, W_PIN, "", j);
    }
}

static uint64_t plan_largest_heap(const plan *p)
{
    uint64_t most = 0;
    for (size_t i = 0; i < p->ncells; i++)
        if (p->rows[p->cells[i].row].is_carve && p->cells[i].j.heap > most)
            most = p->cells[i].j.heap;
    return most;
}

/* ------------------------------------------------------------------------ */
/* Running                                                                   */
/* ------------------------------------------------------------------------ */

static char exe_path[PATH_MAX];

static void progress(const plan *p, const cell *c, const result *r, unsigned run, unsigned total)
{
    const row *rw = &p->rows[c->row];
    char what[160];
    snprintf(what, sizeof what, "%s %s%s%s", workload_tag(c->workload), rw->label,
             c->variant[0] ? ", " : "", c->variant);
    if (!r->ok) {
        note("[%u/%u] %-34s n/a: %s", run, total, what, r->reason);
        return;
    }
    switch (c->workload) {
    case W_FILL:
        note("[seed %u/%u] %-30s fill %.4f", run, total, what, r->v[0]);
        break;
    case W_LATENCY:
        note("[%u/%u] %-34s p99.9 %.0f p99.99 %.0f ticks (raw); fastest of %u passes: %.0f %.0f",
             run, total, what, r->v[0], r->v[1], LAT_PASSES, r->v[4], r->v[5]);
        break;
    case W_FRAG:
        if (rw->is_carve)
            note("[W5] %-36s %.1f%% of the trace%s; smallest buffer %.3fx; moved/allocated %.4f",
                 what, 100.0 * r->v[0], r->v[1] >= 0 ? " (failed)" : " (complete)", r->v[2],
                 r->v[4]);
        else
            note("[W5] %-36s peak RSS growth %.3fx peak live", what, r->v[2]);
        break;
    case W_COMPACT:
        note("[%u/%u] %-34s compact %.2f GB/s, memmove %.2f GB/s (same moves), %.2f GB/s (one "
             "call)",
             run, total, what, r->v[0], r->v[1], r->v[2]);
        break;
    case W_PAUSE:
        note("[%u/%u] %-34s max %.0f ns, median %.0f ns over %.0f calls", run, total, what, r->v[0],
             r->v[1], r->v[3]);
        break;
    case W_PIN:
        note("[%u/%u] %-34s pinned %.2f ns, raw %.2f ns per access", run, total, what, r->v[0],
             r->v[1]);
        break;
    case W_THREADS:
        note("[%u/%u] %-34s %.2f M ops/s%s", run, total, what, r->v[0],
             r->failures ? " (allocation failures!)" : "");
        break;
    default:
        note("[%u/%u] %-34s %.2f ns/op%s", run, total, what, r->v[0],
             r->failures ? " (allocation failures!)" : "");
        break;
    }
}

static void run_cell_once(plan *p, cell *c, unsigned run, unsigned total)
{
    if (c->stop || c->runs_done >= MAX_RUNS)
        return;
    const row *rw = &p->rows[c->row];
    job j = c->j;
    if (c->workload == W_FILL)
        j.seed = p->s.seed + c->runs_done; /* seed index; the first is the fixed seed */
    result *r = &c->runs[c->runs_done++];
    if (rw->inproc != NULL)
        run_job(rw->inproc, &j, r);
    else
        peer_run_job(exe_path, rw->peer, &j, r);
    if (!r->ok)
        c->stop = 1; /* a failure or timeout: say so once, do not repeat it */
    progress(p, c, r, run, total);
}

static void plan_run(plan *p)
{
    const settings *s = &p->s;
    /* W4 is deterministic: one pass over the seeds. */
    for (size_t i = 0; i < p->ncells; i++)
        if (p->cells[i].workload == W_FILL)
            for (unsigned k = 0; k < s->seeds; k++)
                run_cell_once(p, &p->cells[i], k + 1, s->seeds);
    /* So is W5 (which allocations fail, the bytes moved, the footprint): one run. */
    for (size_t i = 0; i < p->ncells; i++)
        if (p->cells[i].workload == W_FRAG)
            run_cell_once(p, &p->cells[i], 1, 1);

    /* The timed workloads: run r of every cell, then run r + 1; within a
     * run the order of the allocators rotates. */
    const workload_id order[] = {W_SMALL_CHURN, W_MIXED_CHURN, W_ORDERED, W_LATENCY,
                                 W_COMPACT,     W_PAUSE,       W_PIN,     W_THREADS};
    for (unsigned run = 0; run < s->runs; run++) {
        for (size_t k = 0; k < sizeof order / sizeof order[0]; k++) {
            size_t members[MAX_CELLS], n = 0;
            for (size_t i = 0; i < p->ncells; i++)
                if (p->cells[i].workload == order[k])
                    members[n++] = i;
            unsigned reps = order[k] == W_THREADS ? THR_REPEATS : 1u;
            for (unsigned rep = 0; rep < reps; rep++)
                for (size_t m = 0; m < n; m++)
                    run_cell_once(p, &p->cells[members[(m + run + rep) % n]], run + 1, s->runs);
        }
    }
}

/* Counts (and reports on stderr) what is not sane: a failed harness or
 * carve measurement, a time that is not a positive number, a fill outside
 * (0, 1].  Peers that are missing or fail are reported in the table, not
 * counted: they are not carve's to fix. */
static int plan_insane(const plan *p)
{
    int bad = 0;
    for (size_t i = 0; i < p->ncells; i++) {
        const cell *c = &p->cells[i];
        const row *rw = &p->rows[c->row];
        for (unsigned k = 0; k < c->runs_done; k++) {
            const result *r = &c->runs[k];
            const char *what = NULL;
            if (!r->ok) {
                if (rw->peer == NULL)
                    what = r->reason;
            } else if (c->workload == W_FILL) {
                if (!(r->v[0] > 0.0 && r->v[0] <= 1.0))
                    what = "fill outside (0, 1]";
            } else if (c->workload == W_FRAG) {
                if (!(r->v[0] > 0.0 && r->v[0] <= 1.0) || !(r->v[3] > 0.0))
                    what = "W5: the fraction done or the time is not sane";
                else if (rw->is_carve && !(r->v[2] >= 1.0 || r->v[2] < 0.0))
                    what = "W5: a buffer smaller than the peak live bytes ran the trace";
            } else if (c->workload == W_COMPACT || c->workload == W_PIN) {
                if (!(r->v[0] > 0.0 && r->v[1] > 0.0))
                    what = "a speed or a time is not a positive number";
            } else if (c->workload == W_PAUSE) {
                if (!(r->v[0] >= r->v[1] && r->v[1] > 0.0 && r->v[3] >= 1.0))
                    what = "pause figures out of order";
            } else if (c->workload != W_LATENCY) {
                if (!(r->v[0] > 0.0 && r->v[0] < 1e9))
                    what = "ns/op is not a positive number";
            } else if (!(r->v[0] >= 0.0 && r->v[1] >= r->v[0] && r->v[3] >= r->v[1] &&
                         r->v[4] >= 0.0 && r->v[5] >= r->v[4] && r->v[6] >= r->v[5] &&
                         r->v[4] <= r->v[0] && r->v[6] <= r->v[3])) {
                what = "latency percentiles out of order";
            }
            if (what != NULL) {
                fprintf(stderr, "carve-bench: %s %s%s%s: %s\n", workload_tag(c->workload),
                        rw->label, c->variant[0] ? " " : "", c->variant, what);
                bad++;
            }
        }
    }
    return bad;
}

/* ------------------------------------------------------------------------ */
/* callgrind                                                                 */
/* ------------------------------------------------------------------------ */

static int find_in_path(const char *name, char *out, size_t len)
{
    const char *path = getenv("PATH");
    if (path == NULL)
        path = "/usr/bin:/bin";
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    char *save = NULL;
    for (char *dir = strtok_r(buf, ":", &save); dir != NULL; dir = strtok_r(NULL, ":", &save)) {
        snprintf(out, len, "%s/%s", dir[0] ? dir : ".", name);
        if (access(out, X_OK) == 0)
            return 0;
    }
    return -1;
}

/* The churn workloads counted under callgrind: W1, whose net count is
 * issue 2's target, and W2, the general heap's own stable figure. */
#define CG_WORKLOADS 2u

typedef struct cg_row {
    const char *label;
    const char *worker;          /* --cg-worker name */
    double per_op[CG_WORKLOADS]; /* instructions per step, < 0 when not measured */
    char why[200];
} cg_row;

static void cg_put_cells(FILE *f, const cg_row *rows, size_t i, unsigned k)
{
    double harness = rows[0].per_op[k];
    double v = rows[i].per_op[k];
    if (v < 0)
        fputs(" n/a | n/a |", f);
    else if (i == 0 || harness < 0)
        fprintf(f, " %.1f | - |", v);
    else
        fprintf(f, " %.1f | %.1f |", v, v - harness);
}

/* The net count of row i on workload k, or a negative number. */
static double cg_net(const cg_row *rows, size_t i, unsigned k)
{
    if (rows[0].per_op[k] < 0 || rows[i].per_op[k] < 0)
        return -1.0;
    return rows[i].per_op[k] - rows[0].per_op[k];
}

static int callgrind_main(plan *p)
{
    const settings *s = &p->s;
    char valgrind[PATH_MAX], version[64] = "";
    cg_row rows[] = {
        {noop_allocator.name, "harness", {-1, -1}, ""},
        {carve_good_fit.name, "carve-good", {-1, -1}, ""},
        {carve_first_fit.name, "carve-first", {-1, -1}, ""},
        {carve_best_fit.name, "carve-best", {-1, -1}, ""},
        {"glibc", "glibc", {-1, -1}, ""},
        {"jemalloc", "jemalloc", {-1, -1}, ""},
        {"mimalloc", "mimalloc", {-1, -1}, ""},
        {"tcmalloc", "tcmalloc", {-1, -1}, ""},
    };
    const size_t nrows = sizeof rows / sizeof rows[0];
    const workload_id workloads[CG_WORKLOADS] = {W_SMALL_CHURN, W_MIXED_CHURN};
    int have_valgrind = find_in_path("valgrind", valgrind, sizeof valgrind) == 0;
#ifndef CARVE_BENCH_HAVE_CALLGRIND
    have_valgrind = 0;
    const char *missing = "this carve-bench was built without valgrind/callgrind.h";
#else
    const char *missing = "valgrind not found in PATH (apt-get install valgrind)";
#endif
    if (have_valgrind) {
        char cmd[PATH_MAX + 32];
        snprintf(cmd, sizeof cmd, "'%s' --version 2>/dev/null", valgrind);
        command_output(cmd, version, sizeof version);
    }

    job j;
    memset(&j, 0, sizeof j);
    j.steps = s->cg_steps;
    j.warmup = s->cg_warmup;
    j.slots = s->churn_slots;
    j.seed = s->seed;
    j.time_limit = 1800.0;
    j.callgrind = 1;

    for (size_t i = 0; i < nrows; i++) {
        if (!have_valgrind) {
            snprintf(rows[i].why, sizeof rows[i].why, "%s", missing);
            continue;
        }
        peer *pe = tool_peer_find(rows[i].worker);
        if (pe != NULL)
            tool_peer_locate(pe);
        for (unsigned k = 0; k < CG_WORKLOADS; k++) {
            j.workload = workloads[k];
            j.heap = workloads[k] == W_SMALL_CHURN ? s->w1_heap : s->w2_heap;
            double total = callgrind_run(exe_path, valgrind, rows[i].worker, pe, &j, rows[i].why,
                                         sizeof rows[i].why);
            rows[i].per_op[k] = total >= 0 ? total / (double)j.steps : -1.0;
            if (rows[i].per_op[k] >= 0)
                note("[callgrind] %s %-18s %.1f instructions/op", workload_tag(workloads[k]),
                     rows[i].label, rows[i].per_op[k]);
            else
                note("[callgrind] %s %-18s n/a: %s", workload_tag(workloads[k]), rows[i].label,
                     rows[i].why);
        }
    }

    char *text = NULL;
    size_t text_len = 0;
    FILE *f = open_memstream(&text, &text_len);
    if (f == NULL)
        die("open_memstream: %s", strerror(errno));
    char steps[32], warm[32];
    format_count(j.steps, steps, sizeof steps);
    format_count(j.warmup, warm, sizeof warm);
    fprintf(f, "%s\n## Instructions per operation (callgrind)\n\n", CG_BEGIN);
    fprintf(
        f,
        "W1 (small churn) and W2 (mixed churn), each with %s timed steps after %s untimed, under "
        "`valgrind --tool=callgrind` (%s), collection switched on only around the timed loop; "
        "instructions per step, the harness's own included, and net of the harness alone. "
        "Deterministic: these figures do not move with machine noise.\n\n",
        steps, warm, version[0] ? version : "valgrind n/a");
    fprintf(f, "- Date: %s; commit: %s; compiler: %s\n", p->m.date, p->m.commit, p->m.compiler);
    fprintf(f, "- Command: `%s`\n\n", p->m.command);
    fprintf(f, "| allocator | W1 instructions/op | W1 net | W2 instructions/op | W2 net |\n"
               "|---|---:|---:|---:|---:|\n");
    for (size_t i = 0; i < nrows; i++) {
        fprintf(f, "| %s |", rows[i].label);
        for (unsigned k = 0; k < CG_WORKLOADS; k++)
            cg_put_cells(f, rows, i, k);
        fputc('\n', f);
    }
    int missing_rows = 0;
    for (size_t i = 0; i < nrows; i++) {
        if (rows[i].per_op[0] < 0 || rows[i].per_op[1] < 0) {
            if (!missing_rows++)
                fputc('\n', f);
            fprintf(f, "- %s: n/a: %s\n", rows[i].label, rows[i].why);
        }
    }
    double carve = cg_net(rows, 1, 0), mi = cg_net(rows, 6, 0);
    fputc('\n', f);
    if (carve >= 0 && mi >= 0)
        fprintf(f,
                "Target (issue 2): carve GOOD_FIT W1 net <= mimalloc net: %.1f vs %.1f "
                "instructions/op: **%s**\n",
                carve, mi, carve <= mi ? "PASS" : "SHORT");
    else
        fprintf(f, "Target (issue 2): carve GOOD_FIT W1 net <= mimalloc net: not measured (see "
                   "above)\n");
    double best_w2 = -1.0;
    const char *best_w2_name = "";
    for (size_t i = 4; i < nrows; i++) {
        double v = cg_net(rows, i, 1);
        if (v >= 0 && (best_w2 < 0 || v < best_w2)) {
            best_w2 = v;
            best_w2_name = rows[i].label;
        }
    }
    double carve_w2 = cg_net(rows, 1, 1);
    if (carve_w2 >= 0 && best_w2 > 0)
        fprintf(f,
                "\nW2 (no target of its own here; the timed W2 target is in the main table): carve "
                "GOOD_FIT net %.1f instructions/op, %.2fx the fewest among the peers (%s, %.1f).\n",
                carve_w2, carve_w2 / best_w2, best_w2_name, best_w2);
    fprintf(f, "%s\n", CG_END);
    fclose(f);

    fputs(text, stdout);
    fflush(stdout);
    int rc = 0;
    if (s->out != NULL) {
        if (results_file_write(s->out, NULL, text) != 0) {
            note("carve-bench: cannot write %s: %s", s->out, strerror(errno));
            rc = 1;
        } else {
            note("callgrind section written to %s", s->out);
        }
    }
    free(text);
    return rc || !have_valgrind;
}

/* The PIN loops under callgrind with the cache simulator: instructions and
 * data reads per access, figures that do not move with machine noise.  Part
 * of a full run (a few seconds); --quick skips it. */
static void pin_callgrind(plan *p)
{
    pin_counts *pc = &p->pin_cg;
    const settings *s = &p->s;
    if (!s->only[W_PIN])
        return;
    if (s->quick) {
        snprintf(pc->why, sizeof pc->why, "not measured in a --quick run");
        return;
    }
#ifndef CARVE_BENCH_HAVE_CALLGRIND
    snprintf(pc->why, sizeof pc->why, "this carve-bench was built without valgrind/callgrind.h");
#else
    char valgrind[PATH_MAX];
    if (find_in_path("valgrind", valgrind, sizeof valgrind) != 0) {
        snprintf(pc->why, sizeof pc->why, "valgrind not found in PATH (apt-get install valgrind)");
        return;
    }
    job j;
    memset(&j, 0, sizeof j);
    j.workload = W_PIN;
    j.slots = s->pin_slots;
    j.steps = s->pin_cg_steps;
    j.heap = s->pin_heap;
    j.seed = s->seed;
    j.time_limit = 600.0;
    j.callgrind = 1;
    const int modes[2] = {PIN_CG_PINNED, PIN_CG_RAW};
    for (int k = 0; k < 2; k++) {
        j.mode = modes[k];
        double ir, dr;
        if (callgrind_run_reads(exe_path, valgrind, "carve-good", &j, &ir, &dr, pc->why,
                                sizeof pc->why) != 0)
            return;
        pc->ir[k] = ir / (double)j.steps;
        pc->dr[k] = dr / (double)j.steps;
    }
    pc->measured = 1;
    note("[callgrind] PIN: pinned %.1f instructions, %.1f reads; raw %.1f, %.1f per access",
         pc->ir[0], pc->dr[0], pc->ir[1], pc->dr[1]);
#endif
}

/* ------------------------------------------------------------------------ */
/* main                                                                      */
/* ------------------------------------------------------------------------ */

int main(int argc, char **argv)
{
    /* Hidden modes first: a child must not do anything else. */
    if (argc == 5 && strcmp(argv[1], "--peer") == 0 && strcmp(argv[3], "--job") == 0)
        return peer_child_main(argv[2], argv[4]);
    if (argc == 5 && strcmp(argv[1], "--cg-worker") == 0 && strcmp(argv[3], "--job") == 0)
        return callgrind_child_main(argv[2], argv[4]);

    static plan p; /* large; zero-initialised */
    settings_defaults(&p.s);
    int quick = 0, partial = 0, no_pin = 0;
    const char *out = NULL, *only = NULL, *runs = NULL, *seeds = NULL, *cpu = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--quick") == 0) {
            quick = 1;
        } else if (strcmp(a, "--callgrind") == 0) {
            p.s.callgrind = 1;
        } else if (strcmp(a, "--quiet") == 0) {
            bench_quiet = 1;
        } else if (strcmp(a, "--no-pin") == 0) {
            no_pin = 1;
        } else if (next != NULL && strcmp(a, "--runs") == 0) {
            runs = argv[++i];
        } else if (next != NULL && strcmp(a, "--seeds") == 0) {
            seeds = argv[++i];
        } else if (next != NULL && strcmp(a, "--only") == 0) {
            only = argv[++i];
        } else if (next != NULL && strcmp(a, "--out") == 0) {
            out = argv[++i];
        } else if (next != NULL && strcmp(a, "--cpu") == 0) {
            cpu = argv[++i];
        } else {
            fprintf(stderr, "carve-bench: unknown or incomplete option '%s'\n\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (quick)
        settings_quick(&p.s);
    if (runs != NULL)
        p.s.runs = parse_count("--runs", runs, 1, MAX_RUNS);
    if (seeds != NULL)
        p.s.seeds = parse_count("--seeds", seeds, 1, MAX_RUNS);
    if (only != NULL) {
        parse_only(&p.s, only);
        partial = 1;
    }
    if (cpu != NULL)
        p.s.cpu = (int)parse_count("--cpu", cpu, 0, CPU_SETSIZE - 1);
    if (no_pin)
        p.s.cpu = -1;
    /* Smoke and partial runs must not overwrite the published results. */
    p.s.out = out != NULL ? out : (quick || partial) ? NULL : CARVE_BENCH_RESULTS_FILE;
    if (self_exe(exe_path, sizeof exe_path) != 0)
        die("cannot read /proc/self/exe: %s", strerror(errno));

    double start = now_seconds();
    p.m.pinned_cpu = p.s.cpu == -1 ? -1 : pin_to_cpu(p.s.cpu);
    machine_describe(&p.m, argc, argv);
    load_average(p.m.load_start, sizeof p.m.load_start);
    if (p.s.callgrind)
        return callgrind_main(&p);

    plan_rows(&p);
    plan_cells(&p);
    plan_handle_cells(&p);
    threads_plan_cells(&p);
    if (p.s.only[W_LATENCY]) {
        p.m.ticks_per_ns = ticks_per_ns();
        timer_overhead(&p.m.overhead_ticks, &p.m.overhead_min_ticks);
        p.m.resolution_ticks = timer_resolution();
        note("timer: %s, %.3f ticks/ns, overhead %.0f ticks (median), %.0f (min), resolution %.0f "
             "ticks",
             BENCH_TIMER_NAME, p.m.ticks_per_ns, p.m.overhead_ticks, p.m.overhead_min_ticks,
             p.m.resolution_ticks);
    }
    note("carve-bench: pre-faulting %llu MiB for carve's heaps",
         (unsigned long long)(plan_largest_heap(&p) / MIB));
    carve_buffer_reserve((size_t)plan_largest_heap(&p));
    plan_run(&p);
    pin_callgrind(&p);
    p.wall_seconds = now_seconds() - start;
    load_average(p.m.load_end, sizeof p.m.load_end);

    char *text = NULL;
    size_t text_len = 0;
    FILE *f = open_memstream(&text, &text_len);
    if (f == NULL)
        die("open_memstream: %s", strerror(errno));
    report_write(&p, f);
    threads_report(&p, f);
    fclose(f);
    fputs(text, stdout);
    fflush(stdout);
    int rc = 0;
    if (p.s.out != NULL) {
        if (results_file_write(p.s.out, text, NULL) != 0) {
            note("carve-bench: cannot write %s: %s", p.s.out, strerror(errno));
            rc = 1;
        } else {
            note("results written to %s", p.s.out);
        }
    }
    free(text);
    /* The sample traces on every allocator: a full run has p.s.out set. */
    char traces[PATH_MAX];
    if (!quick && !partial) {
        if (!bench_traces_path(p.s.out, traces, sizeof traces)) {
            note("carve-bench: --out %s: the name is too long for the traces' file", p.s.out);
            rc = 1;
        } else if (bench_replay_traces(bench_quiet, traces) != 0) {
            rc = 1;
        }
    }
    note("carve-bench: total wall time %.1f s", p.wall_seconds);
    if (plan_insane(&p) != 0)
        rc = 3;
    return rc;
}
