/*
 * replay.c: `carve replay`: a recorded program's allocations on a carve heap
 * (and, with --compare, on every policy and every peer malloc).
 *
 * Space figures are deterministic (they depend on the trace, the policy and
 * the heap size only: the buffer is placed at an address aligned to the
 * trace's largest alignment, up to REPLAY_BUFFER_ALIGN_MAX, see replay.h),
 * so tests may assert them; times are medians of a few runs after a warm-up
 * run and depend on the machine.
 */
#define _GNU_SOURCE /* MAP_NORESERVE */

#include "cli.h"
#include "engine.h"
#include "peers.h"
#include "replay.h"
#include "trace.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

enum {
    DEFAULT_RUNS = 3,
    MAX_RUNS = 101,
    DEFAULT_SAMPLES = 10,
    MAX_TRACES = 64,
    POLICIES = 3,
    PRECISION_MIN = 512, /* --find-min stops within max(512 B, 0.1%) */
};

/* carve_options.flags of every heap a replay makes (--no-runs). */
static unsigned replay_flags;

static const carve_policy policy_list[POLICIES] = {CARVE_GOOD_FIT, CARVE_FIRST_FIT, CARVE_BEST_FIT};

typedef struct replay_options {
    const char *traces[MAX_TRACES];
    size_t trace_count;
    carve_policy policy;
    size_t heap_size; /* 0: default_heap_size() */
    bool find_min, compare, quiet;
    unsigned runs;
    size_t samples;
    double fail_above; /* 0: no limit */
} replay_options;

/* ------------------------------------------------------------------------ */
/* Buffers                                                                   */
/* ------------------------------------------------------------------------ */

/* Sized from the trace's need, not its floor: the need counts each aligned
 * request with its alignment slack, without which a small block with a
 * large alignment finds no room. */
size_t replay_default_heap_size(const trace *t)
{
    const uint64_t limit = (uint64_t)SIZE_MAX / 2u;
    uint64_t want = t->need > limit / 2u ? limit : 2u * t->need + (16u << 20);
    if (want > limit)
        want = limit;
    return ((size_t)want + 65535u) & ~(size_t)65535u;
}

static size_t page_size(void)
{
    long page = sysconf(_SC_PAGESIZE);
    return page > 0 ? (size_t)page : 4096u;
}

/* The trace's largest alignment in bytes (the reader keeps it below 2^62). */
static uint64_t largest_alignment(const trace *t)
{
    return (uint64_t)1 << t->align_log2_max;
}

size_t replay_buffer_alignment(const trace *t)
{
    size_t page = page_size();
    uint64_t want = largest_alignment(t);
    if (want > REPLAY_BUFFER_ALIGN_MAX)
        want = REPLAY_BUFFER_ALIGN_MAX;
    return want > page ? (size_t)want : page;
}

void replay_warn_alignment(const char *cmd, const trace *t)
{
    if (largest_alignment(t) <= REPLAY_BUFFER_ALIGN_MAX)
        return;
    char a[32], b[32];
    fprintf(stderr,
            "carve %s: warning: %s asks for an alignment of %s, above the %s the replay "
            "buffer is aligned to: where those blocks land, and so the space figures, may vary "
            "from run to run\n",
            cmd, t->path, cli_format_bytes(a, sizeof a, largest_alignment(t)),
            cli_format_bytes(b, sizeof b, REPLAY_BUFFER_ALIGN_MAX));
}

/* Reserves size + alignment - page bytes, then gives back the head below
 * the first aligned address and the tail past the buffer, so that the
 * mapping left is exactly [aligned, aligned + size) and replay_buffer_unmap
 * needs no other address. */
unsigned char *replay_buffer_map(size_t size, size_t alignment)
{
    size_t page = page_size();
    size_t slack = alignment > page ? alignment - page : 0u;
    size_t length = (size + page - 1u) & ~(page - 1u);
    if (length < size || length + slack < length) {
        errno = ENOMEM;
        return NULL;
    }
    void *p = mmap(NULL, length + slack, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    unsigned char *start = p;
    if (slack == 0)
        return start;
    uintptr_t at = (uintptr_t)start;
    size_t head = (size_t)((alignment - (at & (alignment - 1u))) & (alignment - 1u));
    unsigned char *aligned = start + head;
    if (head > 0)
        munmap(start, head);
    if (slack > head)
        munmap(aligned + length, slack - head);
    return aligned;
}

void replay_buffer_unmap(unsigned char *p, size_t size)
{
    if (p != NULL)
        munmap(p, size);
}

/* ------------------------------------------------------------------------ */
/* One carve replay                                                          */
/* ------------------------------------------------------------------------ */

/* Fragmentation below the heap's top, sampled by carve_walk. */
typedef struct frag_sample {
    size_t op;
    uint64_t live;     /* requested bytes live */
    size_t top;        /* end of the highest block that is not free, from the heap pointer */
    size_t free_below; /* free bytes below top */
    size_t largest_below;
    double frag;      /* 1 - largest_below / free_below (0 when nothing is free below) */
    double heap_frag; /* carve's own: 1 - largest_free / free_bytes, whole buffer */
} frag_sample;

typedef struct frag_log {
    const trace *t;
    uint64_t *slot_size; /* to follow the live bytes between samples */
    size_t scanned;
    uint64_t live;
    frag_sample *s;
    size_t count, cap;
    /* one walk's running figures */
    size_t top, free_run, largest_run, free_below, largest_below;
} frag_log;

static int visit_frag(const carve_block *b, void *ctx)
{
    frag_log *f = ctx;
    if (b->kind == CARVE_BLOCK_FREE) {
        f->free_run += b->size;
        if (b->size > f->largest_run)
            f->largest_run = b->size;
        return 0;
    }
    /* a block in use: the free blocks before it are below the top */
    f->free_below += f->free_run;
    if (f->largest_run > f->largest_below)
        f->largest_below = f->largest_run;
    f->free_run = f->largest_run = 0;
    f->top = b->offset + b->size;
    return 0;
}

static void frag_sample_fn(void *ctx, size_t ops_done, carve_heap *heap)
{
    frag_log *f = ctx;
    for (; f->scanned < ops_done; f->scanned++) {
        const trace_op *x = &f->t->ops[f->scanned];
        f->live -= f->slot_size[x->slot];
        f->slot_size[x->slot] = x->kind == TRACE_FREE ? 0u : x->size;
        f->live += f->slot_size[x->slot];
    }
    if (f->count == f->cap)
        return;
    f->top = f->free_run = f->free_below = f->largest_below = f->largest_run = 0;
    carve_walk(heap, visit_frag, f);
    carve_stats st;
    carve_get_stats(heap, &st);
    frag_sample *s = &f->s[f->count++];
    s->op = ops_done;
    s->live = f->live;
    s->top = f->top;
    s->free_below = f->free_below;
    s->largest_below = f->largest_below;
    s->frag = s->free_below ? 1.0 - (double)s->largest_below / (double)s->free_below : 0.0;
    s->heap_frag = st.free_bytes ? 1.0 - (double)st.largest_free / (double)st.free_bytes : 0.0;
}

int replay_carve(const trace *t, unsigned char *buffer, size_t size, carve_policy policy,
                 const replay_carve_extras *x, replay_outcome *o, carve_stats *st)
{
    carve_options opt = {replay_flags, policy, 0, NULL};
    carve_heap *h = carve_init(buffer, size, &opt);
    if (h == NULL) {
        memset(o, 0, sizeof *o);
        snprintf(o->message, sizeof o->message, "carve_init on %zu bytes failed: %s", size,
                 strerror(errno));
        o->error = true;
        return -1;
    }
    replay_slot *slots = calloc(t->slot_count ? t->slot_count : 1u, sizeof *slots);
    if (slots == NULL) {
        memset(o, 0, sizeof *o);
        snprintf(o->message, sizeof o->message, "out of memory");
        o->error = true;
        return -1;
    }
    replay_config c = {t, h, buffer, false, false, false, 0, NULL, NULL, false, NULL};
    if (x != NULL) {
        c.stop_at_failure = x->stop_at_failure;
        c.track_footprint = x->track_footprint;
        c.check_heap = x->check_heap;
        c.samples = x->samples;
        c.sample = x->sample;
        c.sample_ctx = x->sample_ctx;
        c.progress = x->progress;
        c.progress_label = x->progress_label;
    }
    int rc = replay_run(&c, slots, o);
    if (st != NULL)
        carve_get_stats(h, st);
    free(slots);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* --find-min                                                                */
/* ------------------------------------------------------------------------ */

/* Whether the whole trace replays in a heap of this size without a failed
 * allocation.  -1 on an error other than running out of room. */
static int fits(const trace *t, unsigned char *buffer, size_t size, carve_policy policy, char *why,
                size_t whylen)
{
    if (size < carve_min_buffer_size(NULL))
        return 0;
    replay_outcome o;
    replay_carve_extras x = {.stop_at_failure = true};
    int rc = replay_carve(t, buffer, size, policy, &x, &o, NULL);
    if (o.error) {
        snprintf(why, whylen, "%s", o.message);
        return -1;
    }
    return rc == 0 && o.failed_allocs == 0;
}

/* The largest heap --find-min tries before it gives up on a trace: 64 x
 * (the need + 1 MiB), far above what any policy has needed. */
static uint64_t find_min_ceiling(const trace *t)
{
    uint64_t base = t->need + (1u << 20);
    return base > UINT64_MAX / 64u ? UINT64_MAX : 64u * base;
}

int replay_find_min(const trace *t, carve_policy policy, size_t start, replay_min *m, char *why,
                    size_t whylen)
{
    memset(m, 0, sizeof *m);
    size_t hi = start ? start : replay_default_heap_size(t);
    size_t cap = hi;
    size_t alignment = replay_buffer_alignment(t);
    unsigned char *buffer = replay_buffer_map(cap, alignment);
    if (buffer == NULL) {
        snprintf(why, whylen, "cannot map %zu bytes: %s", cap, strerror(errno));
        return -1;
    }
    int ok;
    while ((ok = fits(t, buffer, hi, policy, why, whylen)) == 0) {
        m->probes++;
        if (hi > SIZE_MAX / 4u || (uint64_t)hi > find_min_ceiling(t)) {
            snprintf(why, whylen, "the trace does not fit even in %zu bytes", hi);
            replay_buffer_unmap(buffer, cap);
            return -1;
        }
        replay_buffer_unmap(buffer, cap);
        hi *= 2u;
        cap = hi;
        buffer = replay_buffer_map(cap, alignment);
        if (buffer == NULL) {
            snprintf(why, whylen, "cannot map %zu bytes: %s", cap, strerror(errno));
            return -1;
        }
    }
    m->probes++;
    if (ok < 0) {
        replay_buffer_unmap(buffer, cap);
        return -1;
    }
    /* lo never fits: below the floor nothing can. */
    size_t lo = t->floor > 0 ? (size_t)t->floor - 1u : 0u;
    if (lo >= hi)
        lo = hi - 1u;
    size_t precision = (size_t)(t->floor / 1000u);
    if (precision < PRECISION_MIN)
        precision = PRECISION_MIN;
    while (hi - lo > precision) {
        size_t mid = lo + (hi - lo) / 2u;
        ok = fits(t, buffer, mid, policy, why, whylen);
        m->probes++;
        if (ok < 0) {
            replay_buffer_unmap(buffer, cap);
            return -1;
        }
        if (ok)
            hi = mid;
        else
            lo = mid;
    }
    replay_buffer_unmap(buffer, cap);
    m->bytes = hi;
    m->fails = lo;
    m->precision = precision;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Timing                                                                    */
/* ------------------------------------------------------------------------ */

static int compare_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, size_t n)
{
    qsort(v, n, sizeof *v, compare_double);
    return n % 2u ? v[n / 2u] : (v[n / 2u - 1u] + v[n / 2u]) / 2.0;
}

/* ns per operation: a warm-up run, then the median of runs.  heap NULL =
 * this process's malloc.  -1.0 with why on an error. */
static double time_replay(const trace *t, unsigned char *buffer, size_t size, carve_policy policy,
                          bool on_carve, unsigned runs, char *why, size_t whylen)
{
    double ns[MAX_RUNS];
    replay_slot *slots = calloc(t->slot_count ? t->slot_count : 1u, sizeof *slots);
    if (slots == NULL) {
        snprintf(why, whylen, "out of memory");
        return -1.0;
    }
    double result = -1.0;
    for (unsigned i = 0; i <= runs; i++) {
        replay_outcome o;
        int rc;
        if (on_carve) {
            rc = replay_carve(t, buffer, size, policy, NULL, &o, NULL);
        } else {
            replay_config c = {t, NULL, NULL, false, false, false, 0, NULL, NULL, false, NULL};
            rc = replay_run(&c, slots, &o);
        }
        if (rc != 0 || o.failed_allocs != 0) {
            snprintf(why, whylen, "%s",
                     o.error ? o.message : "allocations failed (the heap is too small)");
            goto out;
        }
        if (i > 0) /* run 0 warms up caches and pages */
            ns[i - 1u] = o.seconds * 1e9 / (double)(t->op_count ? t->op_count : 1u);
    }
    result = median(ns, runs);
out:
    free(slots);
    return result;
}

/* ------------------------------------------------------------------------ */
/* The hidden child mode: --peer-child NAME --runs N TRACE                   */
/* ------------------------------------------------------------------------ */

static int peer_child(int argc, char **argv)
{
    char why[TRACE_ERROR_LEN];
    if (argc != 6 || strcmp(argv[3], "--runs") != 0) {
        printf("err bad child command line\n");
        return 1;
    }
    /* NAME: a peer, or carve-POLICY[-noruns] for carve itself */
    carve_policy policy = CARVE_GOOD_FIT;
    bool on_carve = strncmp(argv[2], "carve-", 6) == 0;
    tool_peer *p = on_carve ? NULL : tool_peer_find(argv[2]);
    unsigned runs = (unsigned)strtoul(argv[4], NULL, 10);
    if (on_carve) {
        char name[32];
        snprintf(name, sizeof name, "%s", argv[2] + 6);
        char *suffix = strstr(name, "-noruns");
        if (suffix != NULL) {
            *suffix = '\0';
            replay_flags |= CARVE_NO_RUNS;
        }
        if (!cli_parse_policy(name, &policy))
            runs = 0;
    }
    if ((p == NULL && !on_carve) || runs == 0 || runs > MAX_RUNS) {
        printf("err bad child command line\n");
        return 1;
    }
    if (p != NULL && tool_peer_verify(p->marker, why, sizeof why) != 0) {
        printf("err %s\n", why);
        return 1;
    }
    trace t;
    if (trace_load(argv[5], &t, why, sizeof why) != 0) {
        printf("err %s\n", why);
        return 1;
    }
    size_t size = on_carve ? replay_default_heap_size(&t) : 0u;
    unsigned char *buffer = on_carve ? replay_buffer_map(size, replay_buffer_alignment(&t)) : NULL;
    double ns = -1.0;
    if (on_carve && buffer == NULL)
        snprintf(why, sizeof why, "cannot map %zu bytes", size);
    else
        ns = time_replay(&t, buffer, size, policy, on_carve, runs, why, sizeof why);
    replay_buffer_unmap(buffer, size);
    trace_free(&t);
    if (ns < 0) {
        printf("err %s\n", why);
        return 1;
    }
    printf("ok %.6f\n", ns);
    return 0;
}

static double time_peer(tool_peer *p, const char *path, unsigned runs, char *why, size_t whylen)
{
    char runs_text[16], out[256];
    snprintf(runs_text, sizeof runs_text, "%u", runs);
    char *argv[] = {"carve",  "replay",  "--peer-child", (char *)p->name,
                    "--runs", runs_text, (char *)path,   NULL};
    if (tool_peer_spawn(p, argv, out, sizeof out, why, whylen) != 0)
        return -1.0;
    return strtod(out + 3, NULL);
}

/* ------------------------------------------------------------------------ */
/* Reports                                                                   */
/* ------------------------------------------------------------------------ */

static double ratio(uint64_t a, uint64_t b)
{
    return b ? (double)a / (double)b : 0.0;
}

/* a / b as "1.234" followed by unit, or "n/a" when b is 0: a ratio over a
 * trace that never had a byte live (`a 1 0` asks for 0 bytes) means
 * nothing, and 0.000x would read as a measurement. */
static const char *format_ratio(char *buf, size_t len, uint64_t a, uint64_t b, const char *unit)
{
    if (b == 0)
        snprintf(buf, len, "n/a");
    else
        snprintf(buf, len, "%.3f%s", ratio(a, b), unit);
    return buf;
}

static void describe_trace(const trace *t)
{
    char a[32], b[32], c[32];
    printf("trace %s (%s, %s)\n", t->path, t->compressed ? "gzip" : "plain",
           t->from_stream ? "a stream" : cli_format_bytes(a, sizeof a, t->file_bytes));
    printf("  %zu operations: %zu malloc, %zu calloc, %zu aligned, %zu realloc, %zu free\n",
           t->op_count, t->counts[TRACE_MALLOC], t->counts[TRACE_CALLOC], t->counts[TRACE_ALIGNED],
           t->counts[TRACE_REALLOC], t->counts[TRACE_FREE]);
    if (t->threads_over_limit)
        printf("  more than %d threads (counted up to %d; %zu switches): replayed in one thread, "
               "in trace order\n",
               TRACE_MAX_THREADS, TRACE_MAX_THREADS, t->thread_switches);
    else if (t->threads > 1)
        printf("  %zu threads (%zu switches): replayed in one thread, in trace order\n", t->threads,
               t->thread_switches);
    char r[32];
    printf("  peak live %s (%llu B), at most %zu blocks live; aligned floor %s (%llu B, %s peak "
           "live); %zu blocks never freed\n",
           cli_format_bytes(b, sizeof b, t->peak_live), (unsigned long long)t->peak_live,
           t->slot_count, cli_format_bytes(c, sizeof c, t->floor), (unsigned long long)t->floor,
           format_ratio(r, sizeof r, t->floor, t->peak_live, "x"), t->end_live);
    if (t->need > t->floor)
        printf("  aligned requests: up to %s (%llu B) live counting each one's alignment slack "
               "(size + alignment + 32 B); the default buffer and --find-min allow for it\n",
               cli_format_bytes(a, sizeof a, t->need), (unsigned long long)t->need);
    replay_warn_alignment("replay", t);
    if (t->op_count == 0)
        fprintf(stderr,
                "carve replay: warning: %s holds no operations, only its header: there is "
                "nothing to measure. A trace recorded from a command that exec'd another "
                "program (env, sh -c 'exec ...', a pyenv shim) is empty this way: record the "
                "real program\n",
                t->path);
}

static void print_fragmentation(const frag_log *f, bool quiet)
{
    if (f->count == 0)
        return;
    double lo = 1.0, hi = 0.0, sum = 0.0;
    for (size_t i = 0; i < f->count; i++) {
        double v = f->s[i].frag;
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
        sum += v;
    }
    printf("  fragmentation below the top (1 - largest free / free bytes, counting only free "
           "blocks below the highest live block), at %zu points: min %.3f, avg %.3f, max %.3f\n",
           f->count, lo, sum / (double)f->count, hi);
    if (quiet)
        return;
    printf("    %12s %12s %12s %12s %8s %10s\n", "after op", "live", "top", "free below", "frag",
           "heap frag");
    for (size_t i = 0; i < f->count; i++) {
        const frag_sample *s = &f->s[i];
        char a[32], b[32], c[32];
        printf("    %12zu %12s %12s %12s %8.3f %10.3f\n", s->op,
               cli_format_bytes(a, sizeof a, s->live), cli_format_bytes(b, sizeof b, s->top),
               cli_format_bytes(c, sizeof c, s->free_below), s->frag, s->heap_frag);
    }
    printf("    (top: the end of the highest block in use, from the heap's start; heap frag: "
           "carve_get_stats over the whole buffer, whose untouched tail is one free block)\n");
}

/* The footprint and peak used bytes of the heap as the program alone would
 * leave it.  Reading the statistics at a sample hands cached blocks back to
 * the free index, which moves later blocks, so with samples these come from
 * a second replay that takes none (o and st keep the sampled run's figures
 * if that replay fails). */
static void unsampled_peaks(const trace *t, unsigned char *buffer, size_t size, carve_policy policy,
                            replay_outcome *o, carve_stats *st)
{
    replay_carve_extras plain = {.track_footprint = true};
    replay_outcome o0;
    carve_stats st0;
    if (replay_carve(t, buffer, size, policy, &plain, &o0, &st0) == 0 && o0.failed_allocs == 0) {
        o->footprint = o0.footprint;
        st->peak_used_bytes = st0.peak_used_bytes;
    }
}

/* The plain replay: one policy, one heap size, everything reported. */
static int replay_one(const replay_options *opt, const trace *t)
{
    size_t size = opt->heap_size ? opt->heap_size : replay_default_heap_size(t);
    unsigned char *buffer = replay_buffer_map(size, replay_buffer_alignment(t));
    if (buffer == NULL) {
        fprintf(stderr, "carve replay: cannot map %zu bytes: %s\n", size, strerror(errno));
        return CLI_EXIT_FAILURE;
    }
    frag_log f = {t,
                  calloc(t->slot_count ? t->slot_count : 1u, sizeof(uint64_t)),
                  0,
                  0,
                  calloc(opt->samples + 1u, sizeof(frag_sample)),
                  0,
                  opt->samples + 1u,
                  0,
                  0,
                  0,
                  0,
                  0};
    if (f.slot_size == NULL || f.s == NULL) {
        fprintf(stderr, "carve replay: out of memory\n");
        free(f.slot_size);
        free(f.s);
        replay_buffer_unmap(buffer, size);
        return CLI_EXIT_FAILURE;
    }
    replay_carve_extras x = {.track_footprint = true,
                             .check_heap = true,
                             .samples = opt->samples,
                             .sample = frag_sample_fn,
                             .sample_ctx = &f,
                             .progress = !opt->quiet,
                             .progress_label = "replay"};
    replay_outcome o;
    carve_stats st;
    char a[32], b[32], r1[32], r2[32];
    int status = CLI_EXIT_OK;
    int rc = replay_carve(t, buffer, size, opt->policy, &x, &o, &st);
    if (rc == 0 && opt->samples > 0)
        unsampled_peaks(t, buffer, size, opt->policy, &o, &st);
    printf("  heap: %s in a %s buffer (%zu B, mmap'd; untouched pages cost nothing)\n",
           cli_policy_name(opt->policy), cli_format_bytes(a, sizeof a, size), size);
    if (rc != 0) {
        fprintf(stderr, "carve replay: %s\n", o.message);
        status = CLI_EXIT_FAILURE;
    } else {
        printf("  replayed %zu operations, patterns checked on every free, realloc and at the "
               "end; carve_check passed at every sample\n",
               o.ops_done);
        printf("  peak footprint %s (%zu B): the highest byte a live block reached, counted from "
               "the buffer's start (carve's control block included), i.e. the buffer this replay "
               "needed at this size, in a pass that reads no statistics: %s peak live, %s "
               "aligned floor\n",
               cli_format_bytes(a, sizeof a, o.footprint), o.footprint,
               format_ratio(r1, sizeof r1, o.footprint, t->peak_live, "x"),
               format_ratio(r2, sizeof r2, o.footprint, t->floor, "x"));
        printf("  peak used bytes %s (carve_get_stats: live blocks with their headers, run pages "
               "whole): %s peak live\n",
               cli_format_bytes(b, sizeof b, st.peak_used_bytes),
               format_ratio(r1, sizeof r1, st.peak_used_bytes, t->peak_live, "x"));
        print_fragmentation(&f, opt->quiet);
        printf("  failed allocations %zu, compactions %llu\n", o.failed_allocs,
               (unsigned long long)st.compactions);
        if (o.failed_allocs) {
            fprintf(stderr,
                    "carve replay: %zu allocations failed (the first at line %u): the heap is "
                    "too small for this trace; --find-min finds the smallest that fits\n",
                    o.failed_allocs, (unsigned)t->lines[o.first_failure_op]);
            status = CLI_EXIT_FAILURE;
        }
    }
    free(f.slot_size);
    free(f.s);
    if (status == CLI_EXIT_OK) {
        char why[TRACE_ERROR_LEN];
        double ns = time_replay(t, buffer, size, opt->policy, true, opt->runs, why, sizeof why);
        if (ns < 0) {
            fprintf(stderr, "carve replay: timing: %s\n", why);
            status = CLI_EXIT_FAILURE;
        } else {
            printf("  time %.1f ns/op (median of %u runs after a warm-up; the replay's own work, "
                   "writing and checking patterns, included)\n",
                   ns, opt->runs);
        }
    }
    replay_buffer_unmap(buffer, size);
    return status;
}

static int report_find_min(const replay_options *opt, const trace *t)
{
    replay_min m;
    char why[TRACE_ERROR_LEN], a[32], r1[32], r2[32];
    if (replay_find_min(t, opt->policy, opt->heap_size, &m, why, sizeof why) != 0) {
        fprintf(stderr, "carve replay: --find-min: %s\n", why);
        return CLI_EXIT_FAILURE;
    }
    double r = ratio(m.bytes, t->floor);
    printf("  smallest heap (%s): %s (%zu B; %zu B fails; bisection to within %zu B, %zu "
           "replays): %s peak live, %s aligned floor\n",
           cli_policy_name(opt->policy), cli_format_bytes(a, sizeof a, m.bytes), m.bytes, m.fails,
           m.precision, m.probes, format_ratio(r1, sizeof r1, m.bytes, t->peak_live, "x"),
           format_ratio(r2, sizeof r2, m.bytes, t->floor, "x"));
    if (opt->fail_above > 0 && r > opt->fail_above) {
        fprintf(stderr, "carve replay: %s: smallest heap / aligned floor = %.3f is above %.3f\n",
                t->path, r, opt->fail_above);
        return CLI_EXIT_FAILURE;
    }
    return CLI_EXIT_OK;
}

/* ------------------------------------------------------------------------ */
/* --compare                                                                 */
/* ------------------------------------------------------------------------ */

enum { ROWS = POLICIES + 4 };

typedef struct compare_row {
    char name[32];
    double ns; /* < 0: not measured */
    char why[TRACE_ERROR_LEN];
    replay_min min; /* carve rows */
    bool is_carve;
} compare_row;

/* Space first (each policy's smallest heap), then time in interleaved rounds:
 * each round runs every allocator, carve's policies included, in a fresh
 * child process (a peer preloaded) that replays once to warm up and once
 * timed, so all are measured alike, and a burst of noise on the shared
 * machine lands on one round of every allocator rather than on all the
 * runs of one; the median round is reported.  (--heap-size does not apply:
 * carve's children use the default buffer.) */
static void compare_trace(const replay_options *opt, const trace *t, compare_row *rows, int *status)
{
    static double ns[ROWS][MAX_RUNS];
    size_t got[ROWS] = {0};
    for (size_t i = 0; i < ROWS; i++) {
        compare_row *r = &rows[i];
        r->is_carve = i < POLICIES;
        r->ns = -1.0;
        if (r->is_carve)
            snprintf(r->name, sizeof r->name, "carve %s", cli_policy_name(policy_list[i]));
        else
            snprintf(r->name, sizeof r->name, "%s", tool_peers[i - POLICIES].name);
    }
    for (size_t i = 0; i < POLICIES; i++) {
        compare_row *r = &rows[i];
        if (replay_find_min(t, policy_list[i], 0, &r->min, r->why, sizeof r->why) != 0) {
            *status = CLI_EXIT_FAILURE;
            continue;
        }
        if (opt->fail_above > 0 && policy_list[i] == opt->policy &&
            ratio(r->min.bytes, t->floor) > opt->fail_above) {
            fprintf(stderr,
                    "carve replay: %s: %s smallest heap / aligned floor = %.3f is above "
                    "%.3f\n",
                    t->path, r->name, ratio(r->min.bytes, t->floor), opt->fail_above);
            *status = CLI_EXIT_FAILURE;
        }
    }
    bool failed[ROWS] = {false};
    for (unsigned round = 0; round < opt->runs; round++) {
        if (!opt->quiet)
            fprintf(stderr, "carve replay: %s: timing round %u of %u\n", t->path, round + 1u,
                    opt->runs);
        for (size_t i = 0; i < ROWS; i++) {
            compare_row *r = &rows[i];
            if (failed[i])
                continue;
            double v;
            if (!r->is_carve) {
                v = time_peer(&tool_peers[i - POLICIES], t->path, 1, r->why, sizeof r->why);
            } else {
                tool_peer self = {"", NULL, "", "", ""};
                snprintf(self.path, sizeof self.path, "carve-%s%s",
                         policy_list[i] == CARVE_GOOD_FIT    ? "good"
                         : policy_list[i] == CARVE_FIRST_FIT ? "first"
                                                             : "best",
                         (replay_flags & CARVE_NO_RUNS) ? "-noruns" : "");
                self.name = self.path; /* the child's name; nothing is preloaded */
                v = time_peer(&self, t->path, 1, r->why, sizeof r->why);
            }
            if (v < 0) {
                failed[i] = true;
                if (r->is_carve)
                    *status = CLI_EXIT_FAILURE;
                continue;
            }
            ns[i][got[i]++] = v;
        }
    }
    for (size_t i = 0; i < ROWS; i++)
        if (!failed[i] && got[i] > 0)
            rows[i].ns = median(ns[i], got[i]);
}

static const compare_row *glibc_row(const compare_row *rows)
{
    const compare_row *g = &rows[POLICIES];
    return g->ns > 0 ? g : NULL;
}

static void print_compare_table(const trace *t, const compare_row *rows)
{
    const compare_row *g = glibc_row(rows);
    char a[32], r1[32], r2[32];
    printf("\n| allocator | ns/op | speed vs glibc | smallest heap | / peak live | / aligned floor "
           "|\n|---|---:|---:|---:|---:|---:|\n");
    for (size_t i = 0; i < ROWS; i++) {
        const compare_row *r = &rows[i];
        if (r->ns < 0) {
            printf("| %s | not measured: %s | | | | |\n", r->name, r->why);
            continue;
        }
        printf("| %s | %.1f | ", r->name, r->ns);
        if (g != NULL)
            printf("%.2fx | ", g->ns / r->ns);
        else
            printf("- | ");
        if (r->is_carve && r->min.bytes)
            printf("%s | %s | %s |\n", cli_format_bytes(a, sizeof a, r->min.bytes),
                   format_ratio(r1, sizeof r1, r->min.bytes, t->peak_live, ""),
                   format_ratio(r2, sizeof r2, r->min.bytes, t->floor, ""));
        else
            printf("- | - | - |\n");
    }
}

/* rows: ROWS per trace, trace after trace. */
static void print_compare_summary(const trace *traces, const compare_row *rows, size_t n)
{
    printf("\nOver the %zu traces (geometric means; speed vs glibc above 1 is faster than glibc; "
           "every figure of one trace comes from the same run):\n\n"
           "| allocator | speed vs glibc | smallest heap / aligned floor | worst trace |\n"
           "|---|---:|---:|---:|\n",
           n);
    for (size_t i = 0; i < ROWS; i++) {
        double log_speed = 0.0, log_floor = 0.0, worst = 0.0;
        size_t speed_n = 0, floor_n = 0;
        for (size_t k = 0; k < n; k++) {
            const compare_row *r = &rows[k * ROWS + i];
            const compare_row *g = glibc_row(&rows[k * ROWS]);
            if (r->ns > 0 && g != NULL) {
                log_speed += log(g->ns / r->ns);
                speed_n++;
            }
            if (r->is_carve && r->min.bytes && traces[k].floor) {
                double f = ratio(r->min.bytes, traces[k].floor);
                log_floor += log(f);
                worst = f > worst ? f : worst;
                floor_n++;
            }
        }
        printf("| %s | ", rows[i].name);
        if (speed_n == n)
            printf("%.2fx | ", exp(log_speed / (double)speed_n));
        else
            printf("- | ");
        if (floor_n == n)
            printf("%.3f | %.3f |\n", exp(log_floor / (double)floor_n), worst);
        else
            printf("- | - |\n");
    }
}

static int replay_compare(const replay_options *opt, trace *traces)
{
    int status = CLI_EXIT_OK;
    compare_row *rows = calloc(opt->trace_count * ROWS, sizeof(compare_row));
    if (rows == NULL) {
        fprintf(stderr, "carve replay: out of memory\n");
        return CLI_EXIT_FAILURE;
    }
    for (size_t i = 0; i < tool_peer_count; i++)
        tool_peer_locate(&tool_peers[i]);
    for (size_t k = 0; k < opt->trace_count; k++) {
        compare_trace(opt, &traces[k], &rows[k * ROWS], &status);
        if (k > 0)
            printf("\n");
        describe_trace(&traces[k]);
        print_compare_table(&traces[k], &rows[k * ROWS]);
        fflush(stdout);
    }
    printf("\nns/op: the median of %u interleaved rounds; in each, every allocator replays in a "
           "fresh process (each peer preloaded; carve's policies on a carve heap) once to warm up "
           "and once timed; the replay's own work (patterns written and checked) included. "
           "Smallest heap: by bisection (within max(512 B, 0.1%% of the floor)); peers have no "
           "heap size to search.\n",
           opt->runs);
    if (opt->trace_count > 1)
        print_compare_summary(traces, rows, opt->trace_count);
    free(rows);
    return status;
}

/* ------------------------------------------------------------------------ */
/* Command line                                                              */
/* ------------------------------------------------------------------------ */

void replay_help(FILE *out)
{
    char cap[32];
    fprintf(out,
            "Usage: carve replay TRACE [OPTIONS]\n"
            "       carve replay --compare TRACE... [OPTIONS]\n"
            "\n"
            "Replays an allocation trace (see 'carve record'; plain or gzip-compressed, a\n"
            "file or, but for --compare, a pipe such as /dev/stdin) on a carve heap in an\n"
            "mmap'd buffer and reports what it cost: operations and ns per operation,\n"
            "peak live bytes, the aligned floor (the peak of the live requests\n"
            "each rounded up to 16 bytes, which no allocator returning 16-byte aligned blocks\n"
            "can go below), peak footprint (the highest byte a live block reached, from the\n"
            "buffer's start: the buffer the replay needed) over peak live and floor,\n"
            "fragmentation at evenly spaced points, failed allocations and compactions.\n"
            "The buffer's address is a multiple of the trace's largest alignment (up to\n"
            "%s; a warning above that), so the space figures depend on the trace, the\n"
            "policy and the heap size only.\n"
            "\n"
            "Every block gets a pattern (a word in every 64 bytes and its last bytes), checked\n"
            "on free, on realloc and at the end; carve_check runs at every sample point.\n"
            "All operations replay in ONE thread, in trace order, whatever thread made them\n"
            "(a trace's 't' lines are counted, not replayed). malloc(0) is replayed as a\n"
            "1-byte request. A bad trace is refused with FILE:LINE and the reason.\n"
            "\n"
            "Options:\n"
            "  --policy NAME    good (GOOD_FIT, default), first (FIRST_FIT) or best (BEST_FIT)\n"
            "  --heap-size N    the buffer's size (suffixes K, M, G); default 2 x floor + 16 MiB,\n"
            "                   each aligned request's alignment + 32 B counted in the floor\n"
            "                   (not with --compare, whose replays use the default)\n"
            "  --find-min       also find the smallest heap in which the whole replay succeeds\n"
            "                   without a failed allocation, by bisection to within\n"
            "                   max(512 B, 0.1%% of the floor); reported in bytes and over\n"
            "                   peak live and the floor\n"
            "  --compare        every carve policy (ns/op and smallest heap) and glibc,\n"
            "                   jemalloc, mimalloc and tcmalloc (ns/op, each the real malloc\n"
            "                   of a child process via LD_PRELOAD) on the same trace, one table\n"
            "                   per trace and geometric means over several traces; timed in\n"
            "                   --runs interleaved rounds, every allocator in a fresh process\n"
            "  --no-runs        heaps with CARVE_NO_RUNS: small requests from the policy's\n"
            "                   free index too, each with its header (to see what runs cost\n"
            "                   or save)\n"
            "  --runs N         timed replays per measurement after a warm-up (default %d)\n"
            "  --samples N      fragmentation sample points (default %d)\n"
            "  --fail-above R   exit 1 when the smallest heap of --policy over the floor is\n"
            "                   above R (only with --find-min or --compare; for tests)\n"
            "  --quiet          no sample table, no progress\n"
            "  -h, --help       show this help\n"
            "\n"
            "A progress bar shows on stderr when it is a terminal and a replay takes long.\n"
            "Exit status: 0 success; 1 a bad trace, a failed allocation, a damaged pattern\n"
            "or a library error; 2 a bad command line.\n",
            cli_format_bytes(cap, sizeof cap, REPLAY_BUFFER_ALIGN_MAX), DEFAULT_RUNS,
            DEFAULT_SAMPLES);
}

static int parse_count(const char *opt_name, const char *value, size_t lo, size_t hi, size_t *out)
{
    char *end;
    if (value == NULL || value[0] < '0' || value[0] > '9')
        return cli_usage_error("replay", "%s needs a number", opt_name);
    errno = 0;
    unsigned long long v = strtoull(value, &end, 10);
    if (*end != '\0' || errno != 0 || v < lo || v > hi)
        return cli_usage_error("replay", "bad %s '%s': use %zu to %zu", opt_name, value, lo, hi);
    *out = (size_t)v;
    return CLI_EXIT_OK;
}

static int parse_replay_options(int argc, char **argv, replay_options *opt)
{
    memset(opt, 0, sizeof *opt);
    opt->policy = CARVE_GOOD_FIT;
    opt->runs = DEFAULT_RUNS;
    opt->samples = DEFAULT_SAMPLES;
    for (int i = 1; i < argc;) {
        const char *arg = argv[i];
        const char *value = NULL;
        size_t n = 0;
        int rc = 0;
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            replay_help(stdout);
            return -1;
        }
        if (strcmp(arg, "--find-min") == 0) {
            opt->find_min = true;
            i++;
        } else if (strcmp(arg, "--compare") == 0) {
            opt->compare = true;
            i++;
        } else if (strcmp(arg, "--no-runs") == 0) {
            replay_flags |= CARVE_NO_RUNS;
            i++;
        } else if (strcmp(arg, "--quiet") == 0) {
            opt->quiet = true;
            i++;
        } else if (cli_option_value(argc, argv, &i, "--policy", &value)) {
            if (value == NULL || !cli_parse_policy(value, &opt->policy))
                return cli_usage_error("replay", "--policy needs good, first or best");
        } else if (cli_option_value(argc, argv, &i, "--heap-size", &value)) {
            if (value == NULL || !cli_parse_size(value, &opt->heap_size))
                return cli_usage_error("replay", "--heap-size needs a size in bytes (K, M, G)");
            if (opt->heap_size < carve_min_buffer_size(NULL))
                return cli_usage_error("replay", "--heap-size %zu is below carve's minimum, %zu",
                                       opt->heap_size, carve_min_buffer_size(NULL));
        } else if (cli_option_value(argc, argv, &i, "--runs", &value)) {
            if ((rc = parse_count("--runs", value, 1, MAX_RUNS, &n)) != CLI_EXIT_OK)
                return rc;
            opt->runs = (unsigned)n;
        } else if (cli_option_value(argc, argv, &i, "--samples", &value)) {
            if ((rc = parse_count("--samples", value, 0, 100000, &n)) != CLI_EXIT_OK)
                return rc;
            opt->samples = n;
        } else if (cli_option_value(argc, argv, &i, "--fail-above", &value)) {
            char *end;
            opt->fail_above = value != NULL ? strtod(value, &end) : 0.0;
            if (value == NULL || *end != '\0' || !(opt->fail_above >= 1.0))
                return cli_usage_error("replay", "--fail-above needs a ratio of at least 1");
        } else if (arg[0] == '-' && arg[1] != '\0') {
            return cli_usage_error("replay", "unknown option '%s'", arg);
        } else {
            if (opt->trace_count == MAX_TRACES)
                return cli_usage_error("replay", "at most %d traces", MAX_TRACES);
            opt->traces[opt->trace_count++] = arg;
            i++;
        }
    }
    if (opt->trace_count == 0)
        return cli_usage_error("replay", "which trace? (carve replay TRACE)");
    if (opt->trace_count > 1 && !opt->compare)
        return cli_usage_error("replay", "several traces only with --compare");
    /* Options that would otherwise be ignored without a word. */
    if (opt->compare && opt->heap_size != 0)
        return cli_usage_error("replay", "--heap-size does not apply to --compare (its replays "
                                         "search the smallest heap or use the default buffer)");
    if (opt->fail_above > 0 && !opt->find_min && !opt->compare)
        return cli_usage_error("replay", "--fail-above needs --find-min or --compare (it bounds "
                                         "the smallest heap they find)");
    return CLI_EXIT_OK;
}

/* --compare times each allocator in a child process that reads the trace
 * again by its name: a pipe has nothing left for it by then. */
static int refuse_streams_for_compare(const trace *traces, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (traces[i].from_stream)
            return cli_usage_error("replay",
                                   "--compare: %s is a pipe or a device; its child processes "
                                   "read each trace again, so give a file",
                                   traces[i].path);
    return CLI_EXIT_OK;
}

int replay_main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "--peer-child") == 0)
        return peer_child(argc, argv);
    replay_options opt;
    int status = parse_replay_options(argc, argv, &opt);
    if (status != CLI_EXIT_OK)
        return status < 0 ? CLI_EXIT_OK : status;

    trace *traces = calloc(opt.trace_count ? opt.trace_count : 1u, sizeof *traces);
    if (traces == NULL) {
        fprintf(stderr, "carve replay: out of memory\n");
        return CLI_EXIT_FAILURE;
    }
    size_t loaded = 0;
    char err[TRACE_ERROR_LEN];
    for (; loaded < opt.trace_count; loaded++) {
        if (trace_load(opt.traces[loaded], &traces[loaded], err, sizeof err) != 0) {
            fprintf(stderr, "carve replay: %s\n", err);
            status = CLI_EXIT_FAILURE;
            break;
        }
    }
    if (status == CLI_EXIT_OK && opt.compare)
        status = refuse_streams_for_compare(traces, loaded);
    if (status == CLI_EXIT_OK && opt.compare) {
        status = replay_compare(&opt, traces);
    } else if (status == CLI_EXIT_OK) {
        describe_trace(&traces[0]);
        status = replay_one(&opt, &traces[0]);
        if (status == CLI_EXIT_OK && opt.find_min)
            status = report_find_min(&opt, &traces[0]);
    }
    for (size_t i = 0; i < loaded; i++)
        trace_free(&traces[i]);
    free(traces);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "carve replay: error writing the output\n");
        status = CLI_EXIT_FAILURE;
    }
    return status;
}
