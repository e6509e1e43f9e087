/*
 * carve-bench: the Markdown report, and the results file.
 *
 * Copyright (c) 2026 the carve authors.  MIT licence (see LICENSE).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "carve.h"
#include "plan.h"
#include "timing.h"

#ifndef CARVE_BENCH_LIB_FLAGS
#define CARVE_BENCH_LIB_FLAGS "unknown"
#endif

/* ------------------------------------------------------------------------ */
/* Formatting                                                                */
/* ------------------------------------------------------------------------ */

void format_bytes(uint64_t bytes, char *out, size_t len)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    unsigned u = 0;
    while (u + 1 < sizeof units / sizeof units[0] && bytes >= 1024 && bytes % 1024 == 0) {
        bytes /= 1024;
        u++;
    }
    snprintf(out, len, "%llu %s", (unsigned long long)bytes, units[u]);
}

void format_count(uint64_t n, char *out, size_t len)
{
    char digits[32];
    int nd = snprintf(digits, sizeof digits, "%llu", (unsigned long long)n);
    size_t o = 0;
    for (int i = 0; i < nd && o + 1 < len; i++) {
        if (i > 0 && (nd - i) % 3 == 0 && o + 2 < len)
            out[o++] = ',';
        out[o++] = digits[i];
    }
    out[o] = '\0';
}

/* ------------------------------------------------------------------------ */
/* Figures                                                                   */
/* ------------------------------------------------------------------------ */

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* A latency figure in ns, net of the timer's own overhead. */
static double ticks_to_net_ns(const plan *p, double ticks)
{
    double net = ticks - p->m.overhead_ticks;
    if (net < 0)
        net = 0;
    return p->m.ticks_per_ns > 0 ? net / p->m.ticks_per_ns : net;
}

double values_median(double *vals, size_t n)
{
    qsort(vals, n, sizeof *vals, compare_doubles);
    return n % 2 ? vals[n / 2] : (vals[n / 2 - 1] + vals[n / 2]) / 2.0;
}

/* The ok runs' v[k], sorted; returns how many. */
static size_t cell_values(const plan *p, const cell *c, int k, double *vals)
{
    size_t n = 0;
    for (unsigned i = 0; i < c->runs_done; i++) {
        if (!c->runs[i].ok)
            continue;
        double v = c->runs[i].v[k];
        if (c->workload == W_LATENCY)
            v = ticks_to_net_ns(p, v);
        vals[n++] = v;
    }
    qsort(vals, n, sizeof *vals, compare_doubles);
    return n;
}

int cell_median(const plan *p, const cell *c, int k, double *out)
{
    double vals[MAX_RUNS];
    if (c == NULL)
        return 0;
    size_t n = cell_values(p, c, k, vals);
    if (n == 0)
        return 0;
    *out = values_median(vals, n);
    return 1;
}

const cell *plan_cell(const plan *p, size_t row_index, workload_id w, const char *variant)
{
    for (size_t i = 0; i < p->ncells; i++) {
        const cell *c = &p->cells[i];
        if (c->row == row_index && c->workload == w && strcmp(c->variant, variant) == 0)
            return c;
    }
    return NULL;
}

static size_t row_of(const plan *p, const allocator *a)
{
    for (size_t r = 0; r < p->nrows; r++)
        if (p->rows[r].inproc == a)
            return r;
    return SIZE_MAX;
}

static size_t harness_row(const plan *p)
{
    return row_of(p, &noop_allocator);
}

/* The smallest median among the peers (the best of glibc, jemalloc,
 * mimalloc, tcmalloc in this run); returns 0 if none measured. */
static int best_peer(const plan *p, workload_id w, const char *variant, int k, double *value,
                     size_t *which)
{
    int found = 0;
    for (size_t r = 0; r < p->nrows; r++) {
        double v;
        if (p->rows[r].peer == NULL || !cell_median(p, plan_cell(p, r, w, variant), k, &v))
            continue;
        if (!found || v < *value) {
            *value = v;
            *which = r;
            found = 1;
        }
    }
    return found;
}

static int any_failures(const cell *c)
{
    for (unsigned i = 0; i < c->runs_done; i++)
        if (c->runs[i].ok && c->runs[i].failures != 0)
            return 1;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Table cells                                                               */
/* ------------------------------------------------------------------------ */

/* Writes one table entry: "-" when the cell does not exist (not run or not
 * applicable), "n/a" when it failed, else the figure. */
static void put_figure(FILE *f, const plan *p, const cell *c, int k, const char *fmt)
{
    double v;
    if (c == NULL)
        fputs(" - |", f);
    else if (!cell_median(p, c, k, &v))
        fputs(" n/a |", f);
    else {
        fputc(' ', f);
        fprintf(f, fmt, v);
        fputs(any_failures(c) && c->workload != W_LATENCY ? "\\* |" : " |", f);
    }
}

static void put_net(FILE *f, const plan *p, size_t r, workload_id w)
{
    const cell *c = plan_cell(p, r, w, "");
    const cell *h = plan_cell(p, harness_row(p), w, "");
    double v, base;
    if (c == NULL || p->rows[r].is_harness)
        fputs(" - |", f);
    else if (!cell_median(p, c, 0, &v) || !cell_median(p, h, 0, &base))
        fputs(" n/a |", f);
    else
        fprintf(f, " %.1f |", v - base);
}

/* ------------------------------------------------------------------------ */
/* Sections                                                                  */
/* ------------------------------------------------------------------------ */

static void report_header(const plan *p, FILE *f)
{
    const machine_info *m = &p->m;
    fprintf(f, "# carve benchmark results\n\n");
    fprintf(f, "- Machine: %s, %ld cores online, %s, transparent huge pages: %s", m->cpu_model,
            m->cores, m->kernel, m->thp);
    if (m->pinned_cpu >= 0)
        fprintf(f, "; pinned to CPU %d\n", m->pinned_cpu);
    else
        fprintf(f, "; not pinned\n");
    fprintf(f, "- Date: %s; wall time of this run: %.0f s; load average at start %s, at end %s\n",
            m->date, p->wall_seconds, m->load_start, m->load_end);
    fprintf(f, "- Build: carve %s; compiler %s; bench -O2, library flags: %s\n", carve_version(),
            m->compiler, CARVE_BENCH_LIB_FLAGS);
    fprintf(f, "- Commit: %s\n", m->commit);
    fprintf(f, "- Command: `%s`\n", m->command);
    fprintf(f,
            "- Method: median of %u interleaved runs per figure (the allocators' order rotates "
            "every run); every run starts with an untimed warm-up on the same sequence; carve and "
            "the harness run in this process, each peer in a fresh child process with its library "
            "in LD_PRELOAD (glibc: no preload); carve's heaps sit in one mmap'd buffer pre-faulted "
            "before any timing\n",
            p->s.runs);
    fprintf(f, "- Peers:");
    for (size_t i = 0; i < tool_peer_count; i++) {
        const peer *pe = &tool_peers[i];
        char real[PATH_MAX];
        if (pe->soname == NULL)
            fprintf(f, " %s (the system C library)", pe->name);
        else if (pe->missing[0] != '\0')
            fprintf(f, " %s (n/a: %s)", pe->name, pe->missing);
        else
            fprintf(f, " %s (`%s`)", pe->name, realpath(pe->path, real) != NULL ? real : pe->path);
        fputs(i + 1 < tool_peer_count ? ";" : "\n", f);
    }
    if (p->s.quick)
        fprintf(f, "- **--quick: small operation counts, a smoke test; these figures are not the "
                   "benchmark**\n");
    fputc('\n', f);
}

static void report_main_table(const plan *p, FILE *f)
{
    fprintf(f, "## All allocators\n\n");
    fprintf(f, "ns per operation (an operation is one alloc or one free, the harness's own cost "
               "included); \"net\" subtracts the harness alone. W4: requested live bytes / buffer "
               "size at the first failed allocation. Latency: single W2 operations, ns net of the "
               "timer.\n\n");
    fprintf(f,
            "| allocator | W1 ns/op | W1 net | W2 ns/op | W2 net | W3 ns/op | W3 net | W4 fill | "
            "W4 fill, median of %u seeds | W2 p99.9 ns | W2 p99.99 ns |\n",
            p->s.seeds);
    fprintf(f, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (size_t r = 0; r < p->nrows; r++) {
        fprintf(f, "| %s |", p->rows[r].label);
        put_figure(f, p, plan_cell(p, r, W_SMALL_CHURN, ""), 0, "%.1f");
        put_net(f, p, r, W_SMALL_CHURN);
        put_figure(f, p, plan_cell(p, r, W_MIXED_CHURN, ""), 0, "%.1f");
        put_net(f, p, r, W_MIXED_CHURN);
        put_figure(f, p, plan_cell(p, r, W_ORDERED, ""), 0, "%.1f");
        put_net(f, p, r, W_ORDERED);
        const cell *fill = plan_cell(p, r, W_FILL, "");
        if (fill != NULL && fill->runs_done > 0 && fill->runs[0].ok)
            fprintf(f, " %.4f |", fill->runs[0].v[0]);
        else
            fputs(fill == NULL ? " - |" : " n/a |", f);
        put_figure(f, p, fill, 0, "%.4f");
        put_figure(f, p, plan_cell(p, r, W_LATENCY, ""), 0, "%.0f");
        put_figure(f, p, plan_cell(p, r, W_LATENCY, ""), 1, "%.0f");
        fputc('\n', f);
    }
    fputc('\n', f);
}

/* Says so when the runs of some W1/W2 figure spread by more than 15% of
 * their median: the machine was busy and the figures deserve a rerun. */
static void report_noise(const plan *p, FILE *f)
{
    const workload_id ws[] = {W_SMALL_CHURN, W_MIXED_CHURN};
    double worst = 0.0;
    const char *who = NULL, *which = NULL;
    for (size_t r = 0; r < p->nrows; r++) {
        for (size_t k = 0; k < 2; k++) {
            const cell *c = plan_cell(p, r, ws[k], "");
            double vals[MAX_RUNS], median;
            size_t n = c != NULL ? cell_values(p, c, 0, vals) : 0;
            if (n < 2 || !cell_median(p, c, 0, &median) || median <= 0)
                continue;
            double spread = (vals[n - 1] - vals[0]) / median;
            if (spread > worst) {
                worst = spread;
                who = p->rows[r].label;
                which = workload_tag(ws[k]);
            }
        }
    }
    if (who != NULL && worst > 0.15)
        fprintf(
            f,
            "**Noisy run**: the runs of %s %s spread by %.0f%% of their median (see the spread "
            "table); the machine was busy (load average %s at start, %s at end). Rerun on a quiet "
            "machine before quoting these figures.\n\n",
            which, who, worst * 100.0, p->m.load_start, p->m.load_end);
}

static const char *verdict(int pass)
{
    return pass ? "**PASS**" : "**SHORT**";
}

static void target_ratio_row(FILE *f, const plan *p, workload_id w, const char *what)
{
    size_t good = row_of(p, &carve_good_fit), peer_row = 0;
    double carve, best;
    if (!cell_median(p, plan_cell(p, good, w, ""), 0, &carve) ||
        !best_peer(p, w, "", 0, &best, &peer_row)) {
        fprintf(f, "| %s: carve GOOD_FIT / fastest peer | not measured | <= 1.10 | - |\n", what);
        return;
    }
    double ratio = carve / best;
    fprintf(f,
            "| %s: carve GOOD_FIT (%.1f ns) / fastest peer (%s, %.1f ns) | %.2f | <= 1.10 | %s |\n",
            what, carve, p->rows[peer_row].label, best, ratio, verdict(ratio <= 1.10));
}

static void target_fill_row(FILE *f, const plan *p, const allocator *a, double goal)
{
    const cell *c = plan_cell(p, row_of(p, a), W_FILL, "");
    double median;
    if (c == NULL || c->runs_done == 0 || !c->runs[0].ok || !cell_median(p, c, 0, &median)) {
        fprintf(f, "| W4 fill, %s | not measured | >= %.3f | - |\n", a->name, goal);
        return;
    }
    double fixed = c->runs[0].v[0];
    fprintf(f, "| W4 fill, %s (fixed seed; median of %u seeds) | %.4f; %.4f | >= %.3f | %s |\n",
            a->name, c->runs_done, fixed, median, goal, verdict(fixed >= goal && median >= goal));
}

/* The two readings of a latency figure: the first pass, and each step's
 * fastest of LAT_PASSES passes (workloads.c, run_latency). */
typedef struct latency_reading {
    int p9999; /* result value index of p99.99 */
    const char *label;
} latency_reading;

static const latency_reading first_pass = {1, "first pass"};
static const latency_reading fastest_pass = {5, "each step's fastest pass"};

/* The variant of the latency cells in which the peers ran as many live
 * slots as carve's cell c: a peer has no heap size, so carve's cells with
 * one slot count share one baseline. */
static const char *peer_variant_of(const plan *p, const cell *c)
{
    for (size_t i = 0; i < p->ncells; i++) {
        const cell *o = &p->cells[i];
        if (o->workload == W_LATENCY && p->rows[o->row].peer != NULL && o->j.slots == c->j.slots)
            return o->variant;
    }
    return c->variant;
}

static void target_latency_row(FILE *f, const plan *p, const char *variant,
                               const latency_reading *rd)
{
    size_t good = row_of(p, &carve_good_fit), peer_row = 0;
    double carve, best;
    const cell *c = plan_cell(p, good, W_LATENCY, variant);
    char slots[32];
    format_count(c != NULL ? c->j.slots : 0, slots, sizeof slots);
    if (!cell_median(p, c, rd->p9999, &carve) ||
        !best_peer(p, W_LATENCY, peer_variant_of(p, c), rd->p9999, &best, &peer_row)) {
        fprintf(f, "| p99.99 (%s), carve GOOD_FIT%s%s / best peer | not measured | - | - |\n",
                rd->label, variant[0] ? ", " : "", variant);
        return;
    }
    double goal = variant[0] ? 1.5 : 1.0;
    double ratio = best > 0 ? carve / best : (carve > 0 ? 1e9 : 1.0);
    fprintf(f,
            "| p99.99 (%s), carve GOOD_FIT%s%s / best peer at the same %s slots (%s, %.0f ns) | "
            "%.0f ns = %.2fx | <= %.1fx | %s |\n",
            rd->label, variant[0] ? ", " : "", variant, slots, p->rows[peer_row].label, best, carve,
            ratio, goal, verdict(ratio <= goal));
}

/* The "constant time" reading: carve on another heap size against carve on
 * the standard W2 heap. */
static void target_constant_row(FILE *f, const plan *p, const char *variant,
                                const latency_reading *rd)
{
    size_t good = row_of(p, &carve_good_fit);
    double here, standard;
    if (!cell_median(p, plan_cell(p, good, W_LATENCY, variant), rd->p9999, &here) ||
        !cell_median(p, plan_cell(p, good, W_LATENCY, ""), rd->p9999, &standard)) {
        fprintf(f,
                "| p99.99 (%s), carve GOOD_FIT, %s / on the W2 heap | not measured | <= 1.5x | - "
                "|\n",
                rd->label, variant);
        return;
    }
    double ratio = standard > 0 ? here / standard : (here > 0 ? 1e9 : 1.0);
    fprintf(f,
            "| p99.99 (%s), carve GOOD_FIT, %s / carve GOOD_FIT on the W2 heap (%.0f ns) | %.0f ns "
            "= %.2fx | <= 1.5x | %s |\n",
            rd->label, variant, standard, here, ratio, verdict(ratio <= 1.5));
}

static void target_latency_rows(FILE *f, const plan *p, const latency_reading *rd)
{
    target_latency_row(f, p, "", rd);
    size_t good = row_of(p, &carve_good_fit);
    for (size_t i = 0; i < p->ncells; i++) {
        const cell *c = &p->cells[i];
        if (c->workload == W_LATENCY && c->row == good && c->variant[0] != '\0') {
            target_constant_row(f, p, c->variant, rd);
            target_latency_row(f, p, c->variant, rd);
        }
    }
}

static void report_targets(const plan *p, FILE *f)
{
    fprintf(f, "## Targets (issue 2), this run\n\n");
    fprintf(f, "| target | measured | goal | verdict |\n|---|---:|---:|---|\n");
    target_ratio_row(f, p, W_SMALL_CHURN, "W1 ns/op");
    target_ratio_row(f, p, W_MIXED_CHURN, "W2 ns/op");
    target_fill_row(f, p, &carve_good_fit, 0.98);
    target_fill_row(f, p, &carve_best_fit, 0.985);
    target_latency_rows(f, p, &first_pass);
    target_latency_rows(f, p, &fastest_pass);
    fprintf(
        f,
        "\nThe issue asks for p99.99 \"within 1.5x on a 1 MiB and a 1 GiB heap (constant time)\"; "
        "both readings are shown: carve against itself on the W2 heap, and carve against the best "
        "peer running the same number of live slots. A row \"with W2's slots\" runs the W2 heap's "
        "operations and live bytes on a larger heap, so that only the heap's size differs. Each is "
        "given for the first pass of the timed sequence (what one run meets, the machine's "
        "interruptions included) and for each step's fastest of %u passes (what the allocator "
        "itself does; see the latency section). The instructions-per-operation target is "
        "measured by `carve-bench --callgrind` (its section below, when present).\n\n",
        LAT_PASSES);
}

static void report_latency(const plan *p, FILE *f)
{
    if (!p->s.only[W_LATENCY])
        return;
    fprintf(f, "## Latency: single W2 operations\n\n");
    double resolution_ns = p->m.ticks_per_ns > 0 ? p->m.resolution_ticks / p->m.ticks_per_ns : 0;
    fprintf(f,
            "Timer: %s, %.3f ticks/ns, resolution %.0f ticks (%.0f ns) on this machine; its own "
            "overhead (%.0f ticks median, %.0f min, measured) is subtracted. Each figure is the "
            "median over runs of that run's percentile; \"max\" is the median of the runs' single "
            "worst operation.\n\n",
            BENCH_TIMER_NAME, p->m.ticks_per_ns, p->m.resolution_ticks, resolution_ns,
            p->m.overhead_ticks, p->m.overhead_min_ticks);
    fprintf(f,
            "| allocator | heap | live slots | p50 ns | p99.9 ns | p99.99 ns | max ns | fastest of "
            "%u: p99.9 ns | p99.99 ns | max ns | failed allocs (worst run) "
            "|\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
            LAT_PASSES);
    for (size_t i = 0; i < p->ncells; i++) {
        const cell *c = &p->cells[i];
        if (c->workload != W_LATENCY)
            continue;
        char heap[40], slots[32];
        if (p->rows[c->row].is_carve)
            format_bytes(c->j.heap, heap, sizeof heap);
        else
            snprintf(heap, sizeof heap, "its own");
        format_count(c->j.slots, slots, sizeof slots);
        uint64_t worst = 0;
        for (unsigned k = 0; k < c->runs_done; k++)
            if (c->runs[k].ok && c->runs[k].failures > worst)
                worst = c->runs[k].failures;
        fprintf(f, "| %s | %s | %s |", p->rows[c->row].label, heap, slots);
        put_figure(f, p, c, 2, "%.0f");
        put_figure(f, p, c, 0, "%.0f");
        put_figure(f, p, c, 1, "%.0f");
        put_figure(f, p, c, 3, "%.0f");
        put_figure(f, p, c, 4, "%.0f");
        put_figure(f, p, c, 5, "%.0f");
        put_figure(f, p, c, 6, "%.0f");
        fprintf(f, " %llu |\n", (unsigned long long)worst);
    }
    fprintf(
        f,
        "\nThe smaller and larger carve heaps hold about half their size live (slots = heap / mean "
        "W2 size %.0f B; about half the slots are live at a time); the peers run the same slot "
        "counts in their own memory. The row with W2's slots on the larger heap runs exactly the "
        "W2 heap's operations: its live bytes, and so the memory it touches, are the same, and "
        "only the heap around them is larger. A failed allocation leaves its slot empty and is "
        "timed like any other operation. The harness row is the timer's floor.\n\n"
        "Each job runs its timed sequence %u times, each pass from a fresh allocator after the "
        "same warm-up: p50, p99.9, p99.99 and max are the first pass's. An "
        "interrupt, a preemption of this virtual machine or a page migration lands on a step by "
        "chance, and seldom on the same step twice, while a step that is slow for what the "
        "allocator does there is slow in every pass: the \"fastest of\" columns take each step's "
        "fastest pass, which filters out the machine and keeps the allocator's own tail. carve "
        "starts every pass from the same buffer, so its passes meet the same heap step by step; a "
        "peer starts its later passes from what its first left behind, so its steps there are "
        "alike but not equal, and the minimum can only flatter it.\n\n",
        log_uniform_mean(MIXED_FIRST_OCTAVE, MIXED_OCTAVES), LAT_PASSES);
}

static void report_details(const plan *p, FILE *f)
{
    if (p->s.only[W_ORDERED]) {
        fprintf(f, "## W3 by phase (ns/op)\n\n| allocator | freed in order | freed in reverse "
                   "|\n|---|---:|---:|\n");
        for (size_t r = 0; r < p->nrows; r++) {
            const cell *c = plan_cell(p, r, W_ORDERED, "");
            fprintf(f, "| %s |", p->rows[r].label);
            put_figure(f, p, c, 1, "%.1f");
            put_figure(f, p, c, 2, "%.1f");
            fputc('\n', f);
        }
        fputc('\n', f);
    }
    if (p->s.only[W_FILL]) {
        fprintf(f,
                "## W4 fill by seed\n\nSeeds: the fixed seed 0x%llx, then the next %u "
                "integers.\n\n| policy |",
                (unsigned long long)p->s.seed, p->s.seeds - 1);
        for (unsigned k = 0; k < p->s.seeds; k++)
            fprintf(f, k == 0 ? " fixed seed |" : " +%u |", k);
        fprintf(f, " median |\n|---|");
        for (unsigned k = 0; k <= p->s.seeds; k++)
            fputs("---:|", f);
        fputc('\n', f);
        for (size_t r = 0; r < p->nrows; r++) {
            const cell *c = plan_cell(p, r, W_FILL, "");
            if (c == NULL)
                continue;
            fprintf(f, "| %s |", p->rows[r].label);
            for (unsigned k = 0; k < p->s.seeds; k++) {
                if (k < c->runs_done && c->runs[k].ok)
                    fprintf(f, " %.4f |", c->runs[k].v[0]);
                else
                    fputs(" n/a |", f);
            }
            put_figure(f, p, c, 0, "%.4f");
            fputc('\n', f);
        }
        fputc('\n', f);
    }
    if (p->s.runs > 1) {
        fprintf(f,
                "## Run-to-run spread (min..max ns/op over %u runs)\n\n| allocator | W1 | W2 | W3 "
                "|\n|---|---:|---:|---:|\n",
                p->s.runs);
        const workload_id ws[] = {W_SMALL_CHURN, W_MIXED_CHURN, W_ORDERED};
        for (size_t r = 0; r < p->nrows; r++) {
            fprintf(f, "| %s |", p->rows[r].label);
            for (size_t k = 0; k < 3; k++) {
                const cell *c = plan_cell(p, r, ws[k], "");
                double vals[MAX_RUNS];
                size_t n = c != NULL ? cell_values(p, c, 0, vals) : 0;
                if (n == 0)
                    fputs(" - |", f);
                else
                    fprintf(f, " %.1f..%.1f |", vals[0], vals[n - 1]);
            }
            fputc('\n', f);
        }
        fputc('\n', f);
    }
}

/* ------------------------------------------------------------------------ */
/* Issue 3: handles and compaction                                           */
/* ------------------------------------------------------------------------ */

/* "12.3 MiB" (binary units, one decimal). */
static void format_mib(double bytes, char *out, size_t len)
{
    if (bytes >= 1024.0 * 1024.0)
        snprintf(out, len, "%.1f MiB", bytes / (1024.0 * 1024.0));
    else if (bytes >= 1024.0)
        snprintf(out, len, "%.1f KiB", bytes / 1024.0);
    else
        snprintf(out, len, "%.0f B", bytes);
}

/* The single W5 run of a cell, or NULL when it did not run or failed. */
static const result *frag_result(const cell *c)
{
    return c != NULL && c->runs_done > 0 && c->runs[0].ok ? &c->runs[0] : NULL;
}

static void frag_row(const plan *p, FILE *f, const cell *c)
{
    const row *rw = &p->rows[c->row];
    const result *r = frag_result(c);
    int handles = rw->is_carve ? c->j.mode : FRAG_RAW;
    char buffer[48], mib[32];
    const frag_trace *t = &p->frag;
    if (rw->is_carve) {
        format_mib((double)c->j.heap, mib, sizeof mib);
        snprintf(buffer, sizeof buffer, "%.2fx = %s", (double)c->j.heap / (double)t->peak_live,
                 mib);
    } else {
        snprintf(buffer, sizeof buffer, "none (its own)");
    }
    const char *by = !rw->is_carve             ? "malloc"
                     : handles == FRAG_HANDLES ? "handles + 64 KiB slices"
                     : handles != FRAG_RAW     ? "handles, automatic compaction only"
                                               : "raw pointers";
    fprintf(f, "| %s | %s | %s |", rw->label, by, buffer);
    if (r == NULL) {
        fputs(" n/a | n/a | n/a | n/a | n/a | n/a |\n", f);
        return;
    }
    fprintf(f, " %.1f%% |", 100.0 * r->v[0]);
    if (r->v[1] >= 0) {
        char at[32];
        format_count((uint64_t)r->v[1], at, sizeof at);
        fprintf(f, " event %s |", at);
    } else {
        fputs(" none |", f);
    }
    if (!rw->is_carve)
        fprintf(f, " %.3fx (peak RSS growth) |", r->v[2]);
    else if (r->v[2] < 0)
        fprintf(f, " > %.2fx |", -r->v[2]);
    else if (r->v[2] > 0)
        fprintf(f, " %.3fx |", r->v[2]);
    else
        fputs(" - |", f);
    if (handles != FRAG_RAW)
        fprintf(f, " %.4f (slices %.4f, automatic %.4f) | %.0f (slices %.0f, automatic %.0f) |",
                r->v[4], r->v[7], r->v[4] - r->v[7], r->v[5], r->v[6], r->v[5] - r->v[6]);
    else
        fputs(" - | - |", f);
    fprintf(f, " %.0f |\n", r->v[3]);
}

static void report_frag(const plan *p, FILE *f)
{
    const frag_trace *t = &p->frag;
    char allocs[32], events[32], live[32], blocks[32], total[32];
    format_count(t->blocks, allocs, sizeof allocs);
    format_count(2 * (uint64_t)t->blocks, events, sizeof events);
    format_mib((double)t->peak_live, live, sizeof live);
    format_count(t->peak_blocks, blocks, sizeof blocks);
    format_mib((double)t->allocated, total, sizeof total);
    fprintf(f, "### W5: fragmenting churn on a buffer %.2fx the peak live bytes\n\n", FRAG_SLACK);
    fprintf(f,
            "One trace (seed 0x%llx): %s allocations and as many frees (%s events); peak live "
            "bytes %s (the largest sum of live requests), at most %s blocks live; %s allocated "
            "in all. Every block is written whole when allocated and checked when freed, by "
            "every allocator.\n\n",
            (unsigned long long)p->s.seed, allocs, events, live, blocks, total);
    fprintf(f, "| class | share of allocations | share of bytes allocated |\n|---|---:|---:|\n");
    for (int k = 0; k < 4; k++)
        fprintf(f, "| %s | %.1f%% | %.1f%% |\n", frag_class_names[k],
                100.0 * (double)t->class_count[k] / (double)(t->blocks ? t->blocks : 1),
                100.0 * (double)t->class_bytes[k] / (double)(t->allocated ? t->allocated : 1));
    fprintf(f, "\n| allocator | blocks by | buffer (x peak live) | trace done | first failed "
               "allocation | memory needed / peak live | bytes moved / byte allocated | "
               "compactions | ns per event |\n|---|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for (size_t i = 0; i < p->ncells; i++)
        if (p->cells[i].workload == W_FRAG)
            frag_row(p, f, &p->cells[i]);
    fprintf(
        f,
        "\n- **carve** runs in a buffer of %.2fx the peak live bytes (its control block, the "
        "handle table and every header included). With handles, every block is a handle "
        "(`carve_halloc`, pinned only to write or check it) and a failing allocation compacts by "
        "itself; in the first handle row the program also calls `carve_compact(h, 64 KiB)` every "
        "1,000 events, as it would once per frame or tick. The handle table is sized once "
        "(`max_handles` = the trace's most live blocks). A compaction counts when it moved "
        "something; the automatic ones are the stats' count minus the explicit calls that moved "
        "something. \"Memory needed\" for carve is the smallest buffer (x peak live, by bisection "
        "to 0.005, below %.2fx when the trace completed there, else above it) that runs the whole "
        "trace; a trace need not fail monotonically in the buffer's size, so it is a size that "
        "works next to one that does not.\n"
        "- **Peers** cannot be confined to a buffer, so they cannot fail the same way. Their "
        "figure is a different measure: how far the child's resident set grew over the replay "
        "(VmHWM after it, minus VmRSS before it, the peak having been reset through "
        "`/proc/self/clear_refs`), over the same peak live bytes. It counts pages touched (4 KiB "
        "granularity), the allocator's metadata, and memory freed but kept; memory the allocator "
        "returned to the kernel before the peak is not counted. It is not comparable to carve's "
        "buffer size to the last percent, but a peer whose growth exceeds %.2fx would not have "
        "fitted in carve's buffer.\n"
        "- ns per event: the replay's wall time over its events, the writing and checking of every "
        "byte included (and, for handles, the pins and the compaction): not a speed target.\n\n",
        FRAG_SLACK, FRAG_SLACK, FRAG_SLACK);
}

static void report_compaction(const plan *p, const cell *cmp, const cell *pause, FILE *f)
{
    double compact, same, one, moved;
    if (cmp != NULL) {
        fprintf(f, "### Compaction speed\n\n");
        if (cell_median(p, cmp, 0, &compact) && cell_median(p, cmp, 1, &same) &&
            cell_median(p, cmp, 2, &one) && cell_median(p, cmp, 3, &moved)) {
            char mb[32];
            format_mib(moved, mb, sizeof mb);
            fprintf(f,
                    "%llu handle blocks of 64 KiB, every other one freed, then one "
                    "`carve_compact(h, SIZE_MAX)`, timed; then `memmove` of the same blocks to "
                    "the same offsets in a buffer of the same size, and one `memmove` call of "
                    "the bytes the compaction reported. Median of %u runs.\n\n",
                    (unsigned long long)cmp->j.slots, cmp->runs_done);
            fprintf(f, "| bytes moved | carve_compact GB/s | memmove GB/s, same moves | memmove "
                       "GB/s, one call | carve / faster memmove |\n|---:|---:|---:|---:|---:|\n");
            double best = same > one ? same : one;
            fprintf(f, "| %s | %.2f | %.2f | %.2f | %.2fx |\n\n", mb, compact, same, one,
                    compact / best);
        } else {
            fprintf(f, "n/a (see the notes)\n\n");
        }
    }
    if (pause != NULL) {
        fprintf(f, "### Compaction pause at a 64 KiB budget\n\n");
        double worst, median, p99, calls, total, rest;
        if (cell_median(p, pause, 0, &worst) && cell_median(p, pause, 1, &median) &&
            cell_median(p, pause, 2, &p99) && cell_median(p, pause, 3, &calls) &&
            cell_median(p, pause, 4, &total) && cell_median(p, pause, 5, &rest)) {
            char heap[32], mb[32];
            format_bytes(pause->j.heap, heap, sizeof heap);
            format_mib(total, mb, sizeof mb);
            double all_max = 0;
            for (unsigned k = 0; k < pause->runs_done; k++)
                if (pause->runs[k].ok && pause->runs[k].v[0] > all_max)
                    all_max = pause->runs[k].v[0];
            fprintf(f,
                    "A %s heap filled to 90%% with blocks of 16 B..32 KiB (log-uniform; one in "
                    "eight a raw block, which never moves), a random half freed; then "
                    "`carve_compact(h, 64 KiB)` called until it returns 0, each call timed "
                    "alone (CLOCK_MONOTONIC). Median over %u runs of each run's figure; the "
                    "longest call of all runs: %.0f ns.\n\n",
                    heap, pause->runs_done, all_max);
            fprintf(f, "| calls | bytes moved | longest call ns | p99 ns | median ns | left for "
                       "a full compaction after |\n|---:|---:|---:|---:|---:|---:|\n");
            fprintf(f, "| %.0f | %s | %.0f | %.0f | %.0f | %.0f B |\n\n", calls, mb, worst, p99,
                    median, rest);
            fprintf(f,
                    "\"Left for a full compaction\": what one `carve_compact(h, SIZE_MAX)` still "
                    "moved after the slices stopped; a block larger than the budget (the handle "
                    "table, which grows with the number of handles, is one) never moves in a "
                    "64 KiB slice.\n\n");
            if (cmp != NULL && cell_median(p, cmp, 1, &same) && same > 0)
                fprintf(f,
                        "For scale: memmove of 64 KiB at this run's memmove speed (%.2f GB/s) "
                        "takes %.0f ns.\n\n",
                        same, 65536.0 / same);
        } else {
            fprintf(f, "n/a (see the notes)\n\n");
        }
    }
}

static void report_pin(const plan *p, const cell *pin, FILE *f)
{
    double pinned = 0, raw = 0;
    int timed = pin != NULL && cell_median(p, pin, 0, &pinned) && cell_median(p, pin, 1, &raw);
    const pin_counts *pc = &p->pin_cg;
    fprintf(f, "### Pinned access\n\n");
    fprintf(f,
            "Each step reads one 64-bit word from one of %llu handle blocks of 64 B (in turn; "
            "all in cache): `carve_pin`, read, `carve_unpin` (its status OR-ed into a flag "
            "checked after the loop), against reading the same words through raw pointers held "
            "while the blocks stay pinned. Time: median of %u runs of %llu steps each; "
            "instructions and data reads (loads; a `ret` counts as one) per step: callgrind "
            "with its cache simulator, %llu steps, collection only around the loop.\n\n",
            (unsigned long long)(pin != NULL ? pin->j.slots : p->s.pin_slots),
            pin != NULL ? pin->runs_done : 0,
            (unsigned long long)(pin != NULL ? pin->j.steps : p->s.pin_steps),
            (unsigned long long)p->s.pin_cg_steps);
    fprintf(f, "| access | ns | instructions | data reads |\n|---|---:|---:|---:|\n");
    const char *names[2] = {"pin + read + unpin", "raw pointer read"};
    double ns[2] = {pinned, raw};
    for (int k = 0; k < 2; k++) {
        fprintf(f, "| %s |", names[k]);
        if (timed)
            fprintf(f, " %.2f |", ns[k]);
        else
            fputs(" n/a |", f);
        if (pc->measured)
            fprintf(f, " %.1f | %.1f |\n", pc->ir[k], pc->dr[k]);
        else
            fputs(" n/a | n/a |\n", f);
    }
    fprintf(f, "| difference |");
    if (timed)
        fprintf(f, " %.2f |", pinned - raw);
    else
        fputs(" n/a |", f);
    if (pc->measured)
        fprintf(f, " %.1f | %.1f |\n", pc->ir[0] - pc->ir[1], pc->dr[0] - pc->dr[1]);
    else
        fputs(" n/a | n/a |\n", f);
    if (!pc->measured)
        fprintf(f, "\ncallgrind: %s\n", pc->why);
    fputc('\n', f);
}

static void report_handle_targets(const plan *p, const cell *cmp, const cell *pin, FILE *f)
{
    fprintf(f, "### Targets (issue 3), this run\n\n");
    fprintf(f, "| target | measured | goal | verdict |\n|---|---:|---:|---|\n");
    size_t good = row_of(p, &carve_good_fit);
    if (p->s.only[W_FRAG]) {
        const char *variants[2] = {"handles", "handles, automatic"};
        const char *what[2] = {"with handles and 64 KiB slices",
                               "with handles, automatic compaction only"};
        for (int k = 0; k < 2; k++) {
            const result *r = frag_result(plan_cell(p, good, W_FRAG, variants[k]));
            if (r == NULL)
                fprintf(f,
                        "| W5 at %.2fx peak live, carve GOOD_FIT %s | n/a | completes "
                        "| **SHORT** |\n",
                        FRAG_SLACK, what[k]);
            else
                fprintf(f,
                        "| W5 at %.2fx peak live, carve GOOD_FIT %s | %.1f%% of the "
                        "trace | completes | %s |\n",
                        FRAG_SLACK, what[k], 100.0 * r->v[0], verdict(r->v[0] >= 1.0));
        }
        for (size_t i = 0; i < p->ncells; i++) {
            const cell *c = &p->cells[i];
            if (c->workload != W_FRAG || !p->rows[c->row].is_carve || c->j.mode != FRAG_RAW)
                continue;
            const result *rr = frag_result(c);
            if (rr == NULL)
                continue;
            fprintf(f,
                    "| W5 at %.2fx, %s with raw pointers (report only) | %.1f%% of the "
                    "trace | - | - |\n",
                    FRAG_SLACK, p->rows[c->row].label, 100.0 * rr->v[0]);
        }
    }
    double compact, same, one;
    if (cmp != NULL) {
        if (cell_median(p, cmp, 0, &compact) && cell_median(p, cmp, 1, &same) &&
            cell_median(p, cmp, 2, &one)) {
            double best = same > one ? same : one;
            fprintf(f,
                    "| carve_compact / memmove (the faster of the two readings), GB/s | %.2f / "
                    "%.2f = %.2fx | >= 0.5x | %s |\n",
                    compact, best, compact / best, verdict(compact >= 0.5 * best));
        } else {
            fprintf(f, "| carve_compact / memmove | n/a | >= 0.5x | **SHORT** |\n");
        }
    }
    if (pin != NULL) {
        const pin_counts *pc = &p->pin_cg;
        if (pc->measured) {
            double extra = pc->dr[0] - pc->dr[1];
            fprintf(f,
                    "| pinned access: data reads over a raw read (callgrind; %.1f extra "
                    "instructions) | %.1f | <= 1 | %s |\n",
                    pc->ir[0] - pc->ir[1], extra, verdict(extra <= 1.0 + 1e-9));
        } else {
            fprintf(f,
                    "| pinned access: data reads over a raw read | not measured (%s) | <= 1 | "
                    "- |\n",
                    pc->why);
        }
    }
    fprintf(f,
            "\nThe guarantee (every request up to the free bytes succeeds with only unpinned "
            "handle blocks live) is checked by the tests, not here. \"One extra load\" is read "
            "strictly: every data read the pinned access makes beyond the raw read counts, those "
            "of the calls themselves (return addresses, the heap's and the table's fields) "
            "included.\n\n");
}

static void report_handles(const plan *p, FILE *f)
{
    size_t good = row_of(p, &carve_good_fit);
    const cell *cmp = plan_cell(p, good, W_COMPACT, "");
    const cell *pause = plan_cell(p, good, W_PAUSE, "");
    const cell *pin = plan_cell(p, good, W_PIN, "");
    if (!p->s.only[W_FRAG] && cmp == NULL && pause == NULL && pin == NULL)
        return;
    fprintf(f, "## Handles and compaction (issue 3)\n\n");
    report_handle_targets(p, cmp, pin, f);
    if (p->s.only[W_FRAG])
        report_frag(p, f);
    report_compaction(p, cmp, pause, f);
    if (pin != NULL)
        report_pin(p, pin, f);
}

static void report_notes(const plan *p, FILE *f)
{
    int any = 0;
    for (size_t r = 0; r < p->nrows; r++) {
        const char *last = "";
        for (size_t i = 0; i < p->ncells; i++) {
            const cell *c = &p->cells[i];
            if (c->row != r)
                continue;
            for (unsigned k = 0; k < c->runs_done; k++) {
                const result *res = &c->runs[k];
                if (!res->ok && strcmp(res->reason, last) != 0) {
                    if (!any++)
                        fprintf(f, "## Notes\n\n");
                    fprintf(f, "- %s, %s%s%s: n/a: %s\n", p->rows[r].label,
                            workload_tag(c->workload), c->variant[0] ? " " : "", c->variant,
                            res->reason);
                    last = res->reason;
                }
            }
            if (c->workload != W_LATENCY && c->workload != W_FILL && c->workload != W_FRAG &&
                any_failures(c)) {
                if (!any++)
                    fprintf(f, "## Notes\n\n");
                fprintf(f,
                        "- \\* %s, %s: some allocations returned NULL, so its operation sequence "
                        "differs from the others'\n",
                        p->rows[r].label, workload_tag(c->workload));
            }
        }
    }
    if (any)
        fputc('\n', f);
}

static void report_workloads(const plan *p, FILE *f)
{
    const settings *s = &p->s;
    char slots[32], steps[32], warm[32], n3[32], ops3[32], lsteps[32], lwarm[32];
    char h1[32], h2[32], h3[32], h4[32];
    format_count(s->churn_slots, slots, sizeof slots);
    format_count(s->churn_steps, steps, sizeof steps);
    format_count(s->churn_warmup, warm, sizeof warm);
    format_count(s->w3_count, n3, sizeof n3);
    format_count(4 * s->w3_count, ops3, sizeof ops3);
    format_count(s->lat_steps, lsteps, sizeof lsteps);
    format_count(s->lat_warmup, lwarm, sizeof lwarm);
    format_bytes(s->w1_heap, h1, sizeof h1);
    format_bytes(s->w2_heap, h2, sizeof h2);
    format_bytes(s->w3_heap, h3, sizeof h3);
    format_bytes(s->fill_heap, h4, sizeof h4);
    fprintf(f, "## Workloads as run\n\n");
    fprintf(f,
            "- W1 small churn: %s slots, %s timed steps after %s untimed ones (pick a random slot: "
            "allocate into it if empty, else free it), sizes uniform 8..128 B, first byte of every "
            "block written; carve heap %s\n",
            slots, steps, warm, h1);
    fprintf(
        f,
        "- W2 mixed churn: the same with sizes log-uniform 16 B..64 KiB (octave 2^4..2^15 uniform, "
        "then uniform within it); carve heap %s\n",
        h2);
    fprintf(
        f,
        "- W3: %s allocations of 64 B freed in allocation order, then %s freed in reverse; ns/op "
        "over all %s operations, after one untimed pass; carve heap %s\n",
        n3, n3, ops3, h3);
    fprintf(
        f,
        "- W4 fill (carve only): %s buffer, log-uniform 16 B..4 KiB (octaves 2^4..2^11); after "
        "each allocation, with probability 1/2, free a random live block; at the first failure, "
        "requested live bytes / buffer size\n",
        h4);
    fprintf(f, "- Latency: W2 (%s timed steps after %s untimed), each alloc and free timed alone\n",
            lsteps, lwarm);
    fprintf(
        f,
        "- Harness: the no-op allocator hands out 64-byte cells of a pre-faulted array from a LIFO "
        "stack; its pop or push (a few instructions) counts as harness, so every \"net\" figure is "
        "that much lower for every allocator alike\n");
    fprintf(f,
            "- Random numbers: splitmix64, seed 0x%llx, one draw per step for every allocator\n\n",
            (unsigned long long)s->seed);
}

void report_write(const plan *p, FILE *f)
{
    report_header(p, f);
    report_main_table(p, f);
    report_noise(p, f);
    report_targets(p, f);
    report_latency(p, f);
    report_details(p, f);
    report_handles(p, f);
    report_notes(p, f);
    report_workloads(p, f);
}

/* ------------------------------------------------------------------------ */
/* The results file                                                          */
/* ------------------------------------------------------------------------ */

static char *read_whole_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return NULL;
    char *text = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            char *grown = realloc(text, cap);
            if (grown == NULL) {
                free(text);
                fclose(f);
                return NULL;
            }
            text = grown;
        }
        size_t got = fread(text + len, 1, 4096, f);
        len += got;
        if (got < 4096)
            break;
    }
    fclose(f);
    text[len] = '\0';
    return text;
}

static void make_parent_directory(const char *path)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == NULL || slash == dir)
        return;
    *slash = '\0';
    mkdir(dir, 0777); /* an existing directory is fine; fopen reports real trouble */
}

/* Writes n bytes of s without trailing blank space; returns how many. */
static size_t put_trimmed(FILE *f, const char *s, size_t n)
{
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    fwrite(s, 1, n, f);
    return n;
}

int results_file_write(const char *path, const char *report, const char *cg_section)
{
    char *old = read_whole_file(path);
    const char *old_begin = old != NULL ? strstr(old, CG_BEGIN) : NULL;
    const char *old_end = old_begin != NULL ? strstr(old_begin, CG_END) : NULL;
    size_t old_cg_len = 0;
    if (old_begin != NULL && old_end != NULL)
        old_cg_len = (size_t)(old_end - old_begin) + strlen(CG_END);
    else
        old_begin = NULL;

    make_parent_directory(path);
    char tmp[PATH_MAX + 16];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (f == NULL) {
        free(old);
        return -1;
    }
    size_t body = 0;
    if (report != NULL) {
        body = put_trimmed(f, report, strlen(report));
    } else if (old != NULL && old_begin == NULL) {
        body = put_trimmed(f, old, strlen(old));
    } else if (old != NULL) {
        /* Keep everything but the old callgrind section. */
        body = put_trimmed(f, old, (size_t)(old_begin - old));
        const char *after = old_begin + old_cg_len;
        after += strspn(after, " \t\n");
        if (*after != '\0') {
            if (body > 0)
                fputs("\n\n", f);
            body += put_trimmed(f, after, strlen(after));
        }
    }
    const char *section = cg_section != NULL ? cg_section : old_begin;
    size_t section_len = cg_section != NULL ? strlen(cg_section) : old_cg_len;
    if (section != NULL) {
        if (body > 0)
            fputs("\n\n", f);
        put_trimmed(f, section, section_len);
    }
    fputc('\n', f);
    free(old);
    int failed = ferror(f);
    if (fclose(f) != 0 || failed) {
        remove(tmp);
        return -1;
    }
    return rename(tmp, path);
}
