/*
 * engine.c: the replay loop (see engine.h).
 */
#define _POSIX_C_SOURCE 200809L

#include "engine.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum {
    PATTERN_STRIDE = 64,  /* one word per cache line */
    CHUNK_OPS = 1u << 16, /* operations between progress checks */
};

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ------------------------------------------------------------------------ */
/* The pattern                                                               */
/* ------------------------------------------------------------------------ */

static inline uint64_t pattern_word(uint64_t tag, size_t offset)
{
    return (tag * 0xD6E8FEB86659FD93ull) ^ ((uint64_t)offset * 0x9E3779B97F4A7C15ull);
}

/* The offset of the word that holds a block's last bytes. */
static inline size_t last_word(size_t n)
{
    return (n - 1u) & ~(size_t)7u;
}

static inline void put_word(unsigned char *p, size_t off, size_t n, uint64_t tag)
{
    uint64_t w = pattern_word(tag, off);
    size_t k = n - off < 8u ? n - off : 8u;
    memcpy(p + off, &w, k);
}

static void pattern_write(unsigned char *p, size_t n, uint64_t tag)
{
    for (size_t off = 0; off < n; off += PATTERN_STRIDE)
        put_word(p, off, n, tag);
    if (last_word(n) % PATTERN_STRIDE != 0)
        put_word(p, last_word(n), n, tag);
}

/* Compares the bytes below limit of the word at off; true when they match. */
static inline bool word_matches(const unsigned char *p, size_t off, size_t n, size_t limit,
                                uint64_t tag)
{
    if (off >= limit)
        return true;
    uint64_t w = pattern_word(tag, off);
    size_t k = n - off < 8u ? n - off : 8u;
    if (k > limit - off)
        k = limit - off;
    return memcmp(p + off, &w, k) == 0;
}

/* The offset of the first word of the pattern of an n-byte block that does
 * not hold it below limit, or SIZE_MAX when all do. */
static size_t pattern_check(const unsigned char *p, size_t n, uint64_t tag, size_t limit)
{
    for (size_t off = 0; off < n; off += PATTERN_STRIDE)
        if (!word_matches(p, off, n, limit, tag))
            return off;
    if (!word_matches(p, last_word(n), n, limit, tag))
        return last_word(n);
    return SIZE_MAX;
}

/* The offset of the first pattern position of an n-byte block that is not
 * zero, or SIZE_MAX. */
static size_t zero_check(const unsigned char *p, size_t n)
{
    static const unsigned char zeros[8];
    for (size_t off = 0; off < n; off += PATTERN_STRIDE)
        if (memcmp(p + off, zeros, n - off < 8u ? n - off : 8u) != 0)
            return off;
    size_t off = last_word(n);
    return memcmp(p + off, zeros, n - off) != 0 ? off : SIZE_MAX;
}

/* ------------------------------------------------------------------------ */
/* One run                                                                   */
/* ------------------------------------------------------------------------ */

typedef struct run {
    const replay_config *c;
    const trace *t;
    replay_slot *slots;
    replay_outcome *o;
    carve_heap *heap;
    bool stop; /* stop_at_failure hit, or an error */
} run;

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void
run_error(run *r, size_t op, const char *fmt, ...)
{
    int n = 0;
    if (op < r->t->op_count)
        n = snprintf(r->o->message, sizeof r->o->message, "%s:%u: ", r->t->path,
                     (unsigned)r->t->lines[op]);
    if (n >= 0 && (size_t)n < sizeof r->o->message) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->o->message + n, sizeof r->o->message - (size_t)n, fmt, ap);
        va_end(ap);
    }
    r->o->error = true;
    r->stop = true;
}

static unsigned alloc_line(const run *r, const replay_slot *s)
{
    size_t op = (size_t)(s->tag - 1u);
    return op < r->t->op_count ? (unsigned)r->t->lines[op] : 0u;
}

static bool verify(run *r, size_t op, const replay_slot *s, size_t limit, const char *when)
{
    size_t bad = pattern_check(s->ptr, s->size, s->tag, limit);
    if (bad == SIZE_MAX)
        return true;
    run_error(r, op,
              "%s: the %zu-byte block allocated at line %u lost its pattern at byte %zu "
              "(overwritten)",
              when, s->size, alloc_line(r, s), bad);
    return false;
}

static void note_failure(run *r, size_t op)
{
    if (r->o->failed_allocs++ == 0)
        r->o->first_failure_op = op;
    if (r->c->stop_at_failure)
        r->stop = true;
}

static void note_footprint(run *r, const unsigned char *p)
{
    size_t end = (size_t)(p - r->c->base) + carve_usable_size(r->heap, p);
    if (end > r->o->footprint)
        r->o->footprint = end;
}

/* Gives back a block the replay will not keep (it failed a check). */
static void discard(run *r, unsigned char *p)
{
    if (r->heap != NULL)
        (void)carve_free(r->heap, p);
    else
        free(p);
}

static bool check_alignment(run *r, size_t op, const unsigned char *p, size_t alignment)
{
    if (((uintptr_t)p & (alignment - 1u)) == 0)
        return true;
    run_error(r, op, "the block is not aligned to %zu bytes", alignment);
    return false;
}

/* A new block in slot s for operation op; false when the replay must stop. */
static bool do_alloc(run *r, size_t op, const trace_op *x)
{
    replay_slot *s = &r->slots[x->slot];
    size_t n = trace_request(x->size);
    size_t alignment = (size_t)1 << x->align_log2;
    unsigned char *p;
    if (r->heap != NULL) {
        switch ((trace_op_kind)x->kind) {
        case TRACE_CALLOC:
            p = carve_calloc(r->heap, 1, n);
            break;
        case TRACE_ALIGNED:
            p = carve_aligned_alloc(r->heap, alignment, n);
            break;
        default:
            p = carve_alloc(r->heap, n);
            break;
        }
    } else {
        switch ((trace_op_kind)x->kind) {
        case TRACE_CALLOC:
            p = calloc(1, n);
            break;
        case TRACE_ALIGNED: {
            void *q = NULL;
            size_t a = alignment < sizeof(void *) ? sizeof(void *) : alignment;
            p = posix_memalign(&q, a, n) == 0 ? q : NULL;
            break;
        }
        default:
            p = malloc(n);
            break;
        }
    }
    if (p == NULL) {
        if (r->heap != NULL && errno != ENOMEM) {
            run_error(r, op, "the allocation of %zu bytes failed: %s", n, strerror(errno));
            return false;
        }
        s->ptr = NULL;
        note_failure(r, op);
        return !r->stop;
    }
    if (!check_alignment(r, op, p, r->heap != NULL && alignment < 16u ? 16u : alignment)) {
        discard(r, p);
        return false;
    }
    if (x->kind == TRACE_CALLOC && zero_check(p, n) != SIZE_MAX) {
        run_error(r, op, "calloc returned a block that is not zeroed (byte %zu)", zero_check(p, n));
        discard(r, p);
        return false;
    }
    s->ptr = p;
    s->size = n;
    s->tag = (uint64_t)op + 1u;
    pattern_write(p, n, s->tag);
    if (r->c->track_footprint)
        note_footprint(r, p);
    return true;
}

static bool do_free(run *r, size_t op, replay_slot *s)
{
    if (s->ptr == NULL)
        return true; /* its allocation failed */
    if (!verify(r, op, s, s->size, "free"))
        return false;
    if (r->heap != NULL) {
        int rc = carve_free(r->heap, s->ptr);
        if (rc != CARVE_OK) {
            run_error(r, op, "carve_free: %s", carve_strerror(rc));
            return false;
        }
    } else {
        free(s->ptr);
    }
    s->ptr = NULL;
    return true;
}

static bool do_realloc(run *r, size_t op, const trace_op *x)
{
    replay_slot *s = &r->slots[x->slot];
    if (s->ptr == NULL) /* its allocation failed: the program had a block; we try again */
        return do_alloc(r, op, &(trace_op){x->size, x->slot, TRACE_MALLOC, 0});
    size_t n = trace_request(x->size);
    if (!verify(r, op, s, s->size, "realloc"))
        return false;
    errno = 0;
    unsigned char *p = r->heap != NULL ? carve_realloc(r->heap, s->ptr, n) : realloc(s->ptr, n);
    if (p == NULL) {
        if (r->heap != NULL && errno != ENOMEM) {
            run_error(r, op, "carve_realloc to %zu bytes failed: %s", n, strerror(errno));
            return false;
        }
        note_failure(r, op); /* the old block stays, as realloc promises */
        return !r->stop;
    }
    /* From here the slot holds p: realloc freed the old pointer (or
     * returned it), so when a check below stops the replay, cleanup must
     * free p, never the old pointer (a double free under this process's
     * malloc).  The size and tag stay the old block's until its pattern is
     * checked. */
    s->ptr = p;
    if (!check_alignment(r, op, p, r->heap != NULL ? 16u : 1u))
        return false;
    if (!verify(r, op, s, n < s->size ? n : s->size, "after realloc"))
        return false;
    s->size = n;
    s->tag = (uint64_t)op + 1u;
    pattern_write(p, n, s->tag);
    if (r->c->track_footprint)
        note_footprint(r, p);
    return true;
}

static bool do_op(run *r, size_t op)
{
    const trace_op *x = &r->t->ops[op];
    switch ((trace_op_kind)x->kind) {
    case TRACE_FREE:
        return do_free(r, op, &r->slots[x->slot]);
    case TRACE_REALLOC:
        return do_realloc(r, op, x);
    default:
        return do_alloc(r, op, x);
    }
}

/* ------------------------------------------------------------------------ */
/* Progress                                                                  */
/* ------------------------------------------------------------------------ */

typedef struct progress {
    bool enabled, shown;
    double start, last;
} progress;

static void progress_update(progress *pg, const run *r, size_t done)
{
    if (!pg->enabled)
        return;
    double now = now_seconds();
    if (now - pg->start < 0.5 || now - pg->last < 0.1)
        return;
    pg->last = now;
    pg->shown = true;
    enum { BAR = 40 };
    size_t total = r->t->op_count ? r->t->op_count : 1u;
    size_t fill = done * BAR / total;
    char bar[BAR + 1];
    for (size_t i = 0; i < BAR; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[BAR] = '\0';
    fprintf(stderr, "\r%s [%s] %3zu%% %zu/%zu ops",
            r->c->progress_label ? r->c->progress_label : "replay", bar, done * 100u / total, done,
            r->t->op_count);
    fflush(stderr);
}

static void progress_end(progress *pg)
{
    if (pg->shown) {
        fprintf(stderr, "\r%*s\r", 100, "");
        fflush(stderr);
    }
}

/* ------------------------------------------------------------------------ */
/* The whole replay                                                          */
/* ------------------------------------------------------------------------ */

static void check_heap(run *r, size_t done)
{
    if (r->heap == NULL || !r->c->check_heap)
        return;
    int rc = carve_check(r->heap);
    if (rc != CARVE_OK)
        run_error(r, done ? done - 1u : 0u, "carve_check after this operation: %s",
                  carve_strerror(rc));
}

/* Frees what the trace left live, oldest slot first, checking each. */
static void cleanup(run *r)
{
    for (size_t i = 0; i < r->t->slot_count; i++) {
        replay_slot *s = &r->slots[i];
        if (s->ptr == NULL)
            continue;
        if (!r->stop && !verify(r, r->t->op_count, s, s->size, "at the end"))
            continue;
        if (r->heap != NULL) {
            int rc = carve_free(r->heap, s->ptr);
            if (rc != CARVE_OK && !r->stop)
                run_error(r, r->t->op_count, "carve_free at the end: %s", carve_strerror(rc));
        } else {
            free(s->ptr);
        }
        s->ptr = NULL;
    }
}

int replay_run(const replay_config *c, replay_slot *slots, replay_outcome *o)
{
    memset(o, 0, sizeof *o);
    memset(slots, 0, c->t->slot_count * sizeof *slots);
    run r = {c, c->t, slots, o, c->heap, false};
    progress pg = {c->progress && isatty(STDERR_FILENO) == 1, false, now_seconds(), 0.0};
    size_t n = c->t->op_count;
    size_t samples = c->sample != NULL ? c->samples : 0u;
    size_t next_sample_k = 1;
    double spent = 0.0;
    size_t op = 0;
    while (op < n && !r.stop) {
        size_t end = op + CHUNK_OPS < n ? op + CHUNK_OPS : n;
        size_t sample_at =
            samples ? (size_t)((double)n * (double)next_sample_k / (double)samples) : SIZE_MAX;
        if (sample_at < end)
            end = sample_at > op ? sample_at : op + 1u;
        double t0 = now_seconds();
        for (; op < end; op++)
            if (!do_op(&r, op))
                break;
        spent += now_seconds() - t0;
        if (r.stop)
            break;
        if (samples && op >= sample_at && next_sample_k <= samples) {
            check_heap(&r, op);
            c->sample(c->sample_ctx, op, c->heap);
            while (next_sample_k <= samples &&
                   (size_t)((double)n * (double)next_sample_k / (double)samples) <= op)
                next_sample_k++;
        }
        progress_update(&pg, &r, op);
    }
    progress_end(&pg);
    o->ops_done = r.stop && !o->error ? op + 1u : op;
    o->seconds = spent;
    if (samples && !r.stop && next_sample_k <= samples)
        c->sample(c->sample_ctx, op, c->heap); /* the end, when n < samples rounded it away */
    cleanup(&r);
    if (!r.stop)
        check_heap(&r, n);
    return r.stop ? -1 : 0;
}
