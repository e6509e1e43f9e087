/*
 * demo.c: `carve demo`, the textbook fragmentation scenario, once per policy,
 * then the way out of it: handles and compaction.
 *
 * On a small heap in a static buffer it fills the heap with blocks of mixed
 * sizes, frees every other one, prints the map, shows a request that fails
 * although more bytes than it asks for are free (and why), then shows where
 * each placement policy puts a few small requests and what that costs a later
 * large one.  It ends with a table comparing the policies.
 *
 * The last section (alone with --handles) replays the same moment with
 * relocatable blocks: a heap of handle blocks with every other one freed, a
 * request that fails while the live blocks are pinned, carve_compact with one
 * block still pinned, the map before and after, and the same request
 * succeeding; the pinned block never moves.
 *
 * The demo doubles as a smoke test (`make demo`): every call's result is
 * checked, carve_check runs after every step, the stats are cross-checked
 * against what the calls did, and any surprise ends the run with exit
 * status 1 and a message on stderr.
 *
 * Output is deterministic: it prints offsets from the heap's start, never
 * addresses, and the scenario depends only on the heap size.
 */
#define _POSIX_C_SOURCE 200809L

#include "cli.h"
#include "map.h"

#include <errno.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum {
    DEMO_DEFAULT_HEAP = 4096,
    DEMO_MIN_HEAP = 3072,
    DEMO_MAX_HEAP = 1 << 20,
    /* The scenario is drawn on a grid: a unit is 1/32 of the heap's capacity
     * (rounded down to CARVE_ALIGNMENT), so it looks the same at any size. */
    DEMO_GRID = 32,
    DEMO_MIN_UNIT = CARVE_MIN_BLOCK,
    PLANNED = 11, /* blocks A..K; L fills what is left */
    MAX_BLOCKS = PLANNED + 1,
    FOLLOWUPS = 3,
    MAX_FREE_SNAPSHOT = 64,
    POLICY_COUNT = 3,
    WALK_FOUND = 0x4000, /* a visit's "stop, found it"; not a carve_status */
};

/* Block sizes in grid units.  Even-numbered blocks (A, C, E, ...) are freed
 * in step 2, so the holes are, in address order, 6, 2, 3, 1, 2 and 3 units
 * with live blocks between them: the biggest hole comes first, where an
 * address-ordered policy looks first. */
static const unsigned plan_units[PLANNED] = {6, 1, 2, 2, 3, 1, 1, 2, 2, 1, 3};
/* Step 5's small requests, in units: each fits some hole exactly. */
static const unsigned followup_units[FOLLOWUPS] = {1, 2, 2};

static const carve_policy all_policies[POLICY_COUNT] = {CARVE_GOOD_FIT, CARVE_FIRST_FIT,
                                                        CARVE_BEST_FIT};

/* The built-in heap: a static buffer, as on a small embedded target. */
static alignas(64) unsigned char demo_arena[DEMO_MAX_HEAP];

typedef struct demo_options {
    bool one_policy;
    carve_policy policy;
    size_t heap_size;
    bool hex;
    bool no_color;
    bool handles_only;
    const char *map_path; /* --map: the heap over the demo's steps, as a picture */
} demo_options;

typedef struct style {
    const char *bold, *ok, *bad, *reset;
} style;

/* One of the scenario's blocks A..L: where it is and how big. */
typedef struct planned_block {
    void *payload; /* NULL once freed */
    size_t request, offset, size;
} planned_block;

/* What one policy's run produced, for the summary table. */
typedef struct policy_result {
    size_t capacity;
    size_t holes_free, holes_largest, holes_count; /* after step 2 */
    size_t failed_request;                         /* step 4 */
    size_t after_free, after_largest;              /* after step 5 */
    size_t big_request;                            /* step 6 */
    carve_policy policy;
    bool big_ok;
    char followup_hole[FOLLOWUPS]; /* step 5: which hole each went to */
} policy_result;

typedef struct demo {
    FILE *out;
    style st;
    const demo_options *opt;
    carve_policy policy;
    carve_heap *heap;
    const char *section; /* "handles" in the last section, else NULL */
    int step;
    size_t unit;
    carve_stats fresh;
    planned_block blocks[MAX_BLOCKS];
    size_t block_count;
    void *followups[FOLLOWUPS];
    void *big_block;
    char big_hole;   /* the largest hole after step 2 */
    map_canvas *map; /* --map: a column after every checked step */
} demo;

/* ------------------------------------------------------------------------ */
/* Failure reporting and checks                                              */
/* ------------------------------------------------------------------------ */

/* Reports that the library did something the contract rules out; the run
 * stops.  Always returns false so callers can `return fail(...)`. */
static bool fail(demo *d, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static bool fail(demo *d, const char *fmt, ...)
{
    va_list ap;
    fflush(d->out);
    fprintf(stderr, "carve demo: FAILED (%s%sCARVE_%s, step %d): ", d->section ? d->section : "",
            d->section ? ", " : "", cli_policy_name(d->policy), d->step);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return false;
}

static bool check_heap(demo *d)
{
    int rc = carve_check(d->heap);
    if (rc != CARVE_OK)
        return fail(d, "carve_check returned %d (%s)", rc, carve_strerror(rc));
    if (d->map != NULL)
        map_canvas_sample(d->map, d->heap, -1.0); /* x: the column number */
    return true;
}

/* carve_get_stats, plus the invariants every snapshot must satisfy. */
static bool get_stats(demo *d, carve_stats *st)
{
    memset(st, 0, sizeof *st);
    carve_get_stats(d->heap, st);
    if (st->used_bytes + st->free_bytes != st->capacity)
        return fail(d, "stats: used %zu + free %zu != capacity %zu", st->used_bytes, st->free_bytes,
                    st->capacity);
    if (st->largest_free > st->free_bytes)
        return fail(d, "stats: largest_free %zu > free_bytes %zu", st->largest_free,
                    st->free_bytes);
    return true;
}

static double fragmentation(const carve_stats *st)
{
    if (st->free_bytes == 0)
        return 0.0;
    return 1.0 - (double)st->largest_free / (double)st->free_bytes;
}

/* ------------------------------------------------------------------------ */
/* Finding blocks (carve_walk)                                               */
/* ------------------------------------------------------------------------ */

typedef struct find_ctx {
    const void *payload;
    carve_block found;
} find_ctx;

static int visit_find(const carve_block *b, void *ctx)
{
    find_ctx *f = ctx;
    if (b->kind == CARVE_BLOCK_FREE || b->payload != f->payload)
        return 0;
    f->found = *b;
    return WALK_FOUND;
}

/* The block whose payload starts at p, as carve_walk describes it. */
static bool block_info(demo *d, const void *p, carve_block *out)
{
    find_ctx f = {p, {0}};
    memset(out, 0, sizeof *out);
    int rc = carve_walk(d->heap, visit_find, &f);
    if (rc != WALK_FOUND)
        return fail(d, "carve_walk did not list a block just allocated (returned %d)", rc);
    *out = f.found;
    return true;
}

typedef struct free_snapshot {
    carve_block blocks[MAX_FREE_SNAPSHOT];
    size_t count;
    bool overflow;
} free_snapshot;

static int visit_collect_free(const carve_block *b, void *ctx)
{
    free_snapshot *s = ctx;
    if (b->kind != CARVE_BLOCK_FREE)
        return 0;
    if (s->count == MAX_FREE_SNAPSHOT) {
        s->overflow = true;
        return 0;
    }
    s->blocks[s->count++] = *b;
    return 0;
}

static bool snapshot_free(demo *d, free_snapshot *s)
{
    memset(s, 0, sizeof *s);
    int rc = carve_walk(d->heap, visit_collect_free, s);
    if (rc != CARVE_OK)
        return fail(d, "carve_walk returned %d (%s)", rc, carve_strerror(rc));
    if (s->overflow) /* the scenario never makes this many holes */
        return fail(d, "more than %d free blocks", MAX_FREE_SNAPSHOT);
    return true;
}

/* The free block of the snapshot that contains offset, or NULL. */
static const carve_block *free_block_at(const free_snapshot *s, size_t offset)
{
    for (size_t i = 0; i < s->count; i++) {
        const carve_block *b = &s->blocks[i];
        if (offset >= b->offset && offset - b->offset < b->size)
            return b;
    }
    return NULL;
}

/* The letter of the scenario block that covered offset in step 1 ('?' if
 * none): the name a hole keeps however it is later cut. */
static char label_at(const demo *d, size_t offset)
{
    for (size_t i = 0; i < d->block_count; i++) {
        const planned_block *b = &d->blocks[i];
        if (offset >= b->offset && offset - b->offset < b->size)
            return (char)('A' + i);
    }
    return '?';
}

/* ------------------------------------------------------------------------ */
/* The scenario, step by step                                                */
/* ------------------------------------------------------------------------ */

static void heading(demo *d, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static void heading(demo *d, const char *fmt, ...)
{
    va_list ap;
    fprintf(d->out, "%s", d->st.bold);
    va_start(ap, fmt);
    vfprintf(d->out, fmt, ap);
    va_end(ap);
    fprintf(d->out, "%s\n", d->st.reset);
}

static const char *policy_explanation(carve_policy p)
{
    switch (p) {
    case CARVE_GOOD_FIT:
        return "rounds a request up to its size class and takes a block from the\n"
               "first non-empty class at or above it: constant time, no list search.";
    case CARVE_FIRST_FIT:
        return "takes the lowest-addressed free block that fits (the classic\n"
               "textbook policy): simple, but it cuts up the blocks it meets first.";
    case CARVE_BEST_FIT:
        return "takes the smallest free block that fits, keeping big blocks\n"
               "whole for big requests, at the cost of searching for it.";
    }
    return "";
}

static bool start_heap(demo *d)
{
    carve_options opt = {0, d->policy, 0, NULL};
    d->heap = carve_init(demo_arena, d->opt->heap_size, &opt);
    if (d->heap == NULL)
        return fail(d, "carve_init on a %zu-byte buffer failed: %s", d->opt->heap_size,
                    strerror(errno));
    if (!check_heap(d) || !get_stats(d, &d->fresh))
        return false;
    if (d->fresh.used_bytes != 0 || d->fresh.live_blocks != 0)
        return fail(d, "a fresh heap reports %zu used bytes in %zu blocks", d->fresh.used_bytes,
                    d->fresh.live_blocks);
    d->unit = (d->fresh.capacity / DEMO_GRID) & ~(size_t)(CARVE_ALIGNMENT - 1u);
    if (d->unit < DEMO_MIN_UNIT)
        return fail(d,
                    "a %zu-byte buffer leaves only %zu bytes for blocks, too few for the "
                    "scenario",
                    d->opt->heap_size, d->fresh.capacity);
    return true;
}

/* A request that makes a block of exactly `units` grid units. */
static size_t request_for(const demo *d, unsigned units)
{
    return units * d->unit - CARVE_BLOCK_OVERHEAD;
}

static bool add_block(demo *d, size_t request)
{
    size_t index = d->block_count;
    char label = (char)('A' + index);
    void *p = carve_alloc(d->heap, request);
    if (p == NULL)
        return fail(d, "carve_alloc(%zu) for block %c failed: %s", request, label, strerror(errno));
    memset(p, label, request); /* so --hex shows whose bytes are whose */
    carve_block b;
    if (!block_info(d, p, &b))
        return false;
    if (b.usable < request)
        return fail(d, "block %c: usable size %zu < request %zu", label, b.usable, request);
    d->blocks[index] = (planned_block){p, request, b.offset, b.size};
    d->block_count++;
    return true;
}

static bool step1_fill(demo *d)
{
    carve_stats st;
    d->step = 1;
    for (size_t i = 0; i < PLANNED; i++) {
        if (!add_block(d, request_for(d, plan_units[i])))
            return false;
    }
    /* Block L takes whatever is left, so no free tail hides the holes. */
    if (!get_stats(d, &st))
        return false;
    if (st.largest_free > 0 && !add_block(d, st.largest_free))
        return false;
    if (!get_stats(d, &st) || !check_heap(d))
        return false;

    heading(d,
            "Step 1. Fill the heap with %zu blocks of mixed sizes (bytes asked):", d->block_count);
    for (size_t i = 0; i < d->block_count; i++) {
        bool line_end = i % 6 == 5 || i + 1 == d->block_count;
        fprintf(d->out, "%s%c %-*zu", i % 6 == 0 ? "        " : "", (char)('A' + i),
                line_end ? 0 : 8, d->blocks[i].request);
        if (line_end)
            fputc('\n', d->out);
    }
    fprintf(d->out,
            "        Each block also holds a header of %u bytes. The heap is full: %zu of %zu\n"
            "        bytes in use, %zu free.\n",
            CARVE_BLOCK_OVERHEAD, st.used_bytes, st.capacity, st.free_bytes);
    return true;
}

static bool step2_free_every_other(demo *d, policy_result *r)
{
    carve_stats st;
    d->step = 2;
    fprintf(d->out, "%sStep 2. Free every other block:", d->st.bold);
    for (size_t i = 0; i < d->block_count; i += 2) {
        planned_block *b = &d->blocks[i];
        int rc = carve_free(d->heap, b->payload);
        if (rc != CARVE_OK)
            return fail(d, "carve_free(block %c) returned %d (%s)", (char)('A' + i), rc,
                        carve_strerror(rc));
        b->payload = NULL;
        fprintf(d->out, " %c", (char)('A' + i));
    }
    fprintf(d->out, "%s\n", d->st.reset);
    if (!get_stats(d, &st) || !check_heap(d))
        return false;
    fprintf(d->out, "        %zu bytes are free again, in %zu holes between the live blocks:\n",
            st.free_bytes, st.free_blocks);
    free_snapshot holes;
    if (!snapshot_free(d, &holes))
        return false;
    const carve_block *biggest = NULL;
    for (size_t i = 0; i < holes.count; i++) {
        const carve_block *hole = &holes.blocks[i];
        char where[48];
        snprintf(where, sizeof where, "%c at %zu (%zu B)", label_at(d, hole->offset), hole->offset,
                 hole->size);
        bool line_end = i % 3 == 2 || i + 1 == holes.count;
        fprintf(d->out, "%s%-*s", i % 3 == 0 ? "        " : "", line_end ? 0 : 24, where);
        if (line_end)
            fputc('\n', d->out);
        if (biggest == NULL || hole->size > biggest->size)
            biggest = hole;
    }
    d->big_hole = '?';
    if (biggest != NULL)
        d->big_hole = label_at(d, biggest->offset);
    r->holes_free = st.free_bytes;
    r->holes_largest = st.largest_free;
    r->holes_count = st.free_blocks;
    return true;
}

static bool step3_map(demo *d)
{
    d->step = 3;
    heading(d, "Step 3. The map (carve_dump%s):", d->opt->hex ? "_ex with CARVE_DUMP_HEX" : "");
    fflush(d->out);
    if (d->opt->hex)
        carve_dump_ex(d->heap, d->out, CARVE_DUMP_BLOCKS | CARVE_DUMP_HEX);
    else
        carve_dump(d->heap, d->out);
    return check_heap(d);
}

/* Asks for a block of exactly largest_free bytes (it must succeed), frees it
 * and checks that the heap is back where it was. */
static bool prove_largest_free(demo *d, const carve_stats *before)
{
    void *p = carve_alloc(d->heap, before->largest_free);
    if (p == NULL)
        return fail(d, "largest_free is %zu but carve_alloc(%zu) failed: %s", before->largest_free,
                    before->largest_free, strerror(errno));
    int rc = carve_free(d->heap, p);
    if (rc != CARVE_OK)
        return fail(d, "carve_free returned %d (%s)", rc, carve_strerror(rc));
    carve_stats after;
    if (!get_stats(d, &after) || !check_heap(d))
        return false;
    if (after.free_bytes != before->free_bytes || after.largest_free != before->largest_free)
        return fail(d,
                    "alloc+free of the largest block changed the heap: free %zu -> %zu, "
                    "largest %zu -> %zu",
                    before->free_bytes, after.free_bytes, before->largest_free, after.largest_free);
    return true;
}

static bool step4_request_too_big(demo *d, policy_result *r)
{
    carve_stats st, after;
    d->step = 4;
    if (!get_stats(d, &st))
        return false;
    /* Halfway between the largest hole and all the free bytes: clearly more
     * than any hole, clearly less than what is free. */
    size_t request = (st.largest_free + (st.free_bytes - st.largest_free) / 2u) &
                     ~(size_t)(CARVE_ALIGNMENT - 1u);
    if (request <= st.largest_free || request > st.free_bytes)
        return fail(d, "the heap is not fragmented as planned (free %zu, largest %zu)",
                    st.free_bytes, st.largest_free);
    r->failed_request = request;

    errno = 0;
    void *p = carve_alloc(d->heap, request);
    int err = errno;
    if (p != NULL)
        return fail(d, "carve_alloc(%zu) succeeded although largest_free was %zu", request,
                    st.largest_free);
    if (err != ENOMEM)
        return fail(d, "carve_alloc(%zu) failed with errno %d, not ENOMEM", request, err);
    if (!get_stats(d, &after) || !check_heap(d))
        return false;
    if (after.failed_allocs != st.failed_allocs + 1u)
        return fail(d, "failed_allocs went from %llu to %llu after one failure",
                    (unsigned long long)st.failed_allocs, (unsigned long long)after.failed_allocs);

    heading(d, "Step 4. Ask for %zu bytes:", request);
    fprintf(d->out,
            "        %sFAILED%s (ENOMEM), although %zu bytes are free.\n"
            "        Why: a block must be contiguous, and the free bytes lie in %zu holes;\n"
            "        the largest hole holds a request of at most %zu bytes.\n"
            "        fragmentation = 1 - largest_free / free_bytes = 1 - %zu / %zu = %.1f%%\n",
            d->st.bad, d->st.reset, st.free_bytes, st.free_blocks, st.largest_free, st.largest_free,
            st.free_bytes, 100.0 * fragmentation(&st));
    if (!prove_largest_free(d, &st))
        return false;
    fprintf(d->out, "        A request of exactly %zu bytes does succeed (tried, then freed).\n",
            st.largest_free);
    return true;
}

/* One small request of step 5: where it went and which hole it came from. */
static bool followup(demo *d, size_t index, policy_result *r)
{
    free_snapshot before;
    carve_block b;
    size_t request = request_for(d, followup_units[index]);

    if (!snapshot_free(d, &before))
        return false;
    void *p = carve_alloc(d->heap, request);
    if (p == NULL)
        return fail(d, "carve_alloc(%zu) failed (%s) with a big enough hole free", request,
                    strerror(errno));
    memset(p, 'a' + (int)index, request);
    d->followups[index] = p;
    if (!block_info(d, p, &b) || !check_heap(d))
        return false;

    const carve_block *hole = free_block_at(&before, b.offset);
    if (hole == NULL)
        return fail(d, "the block at offset %zu was not free before carve_alloc", b.offset);
    char label = label_at(d, hole->offset);
    r->followup_hole[index] = label;
    fprintf(d->out, "        %4zu B -> offset %5zu, ", request, b.offset);
    if (b.size == hole->size)
        fprintf(d->out, "all of hole %c (%zu bytes): an exact fit\n", label, hole->size);
    else
        fprintf(d->out, "from hole %c (%zu bytes), leaving %zu of it free\n", label, hole->size,
                hole->size - b.size);
    return true;
}

static bool step5_small_requests(demo *d, policy_result *r)
{
    carve_stats st;
    d->step = 5;
    heading(d, "Step 5. Three small requests. Where does %s put them?", cli_policy_name(d->policy));
    for (size_t i = 0; i < FOLLOWUPS; i++) {
        if (!followup(d, i, r))
            return false;
    }
    if (!get_stats(d, &st))
        return false;
    fprintf(d->out, "        Now %zu bytes free, largest request %zu, fragmentation %.1f%%.\n",
            st.free_bytes, st.largest_free, 100.0 * fragmentation(&st));
    r->after_free = st.free_bytes;
    r->after_largest = st.largest_free;
    return true;
}

static bool step6_big_request(demo *d, policy_result *r)
{
    carve_stats st;
    d->step = 6;
    if (!get_stats(d, &st))
        return false;
    size_t request = r->holes_largest;
    r->big_request = request;
    heading(d,
            "Step 6. Ask again for %zu bytes, what the largest hole held after step 2:", request);

    errno = 0;
    void *p = carve_alloc(d->heap, request);
    int err = errno;
    if (p != NULL && request > st.largest_free)
        return fail(d, "carve_alloc(%zu) succeeded although largest_free was %zu", request,
                    st.largest_free);
    if (p == NULL && request <= st.largest_free)
        return fail(d, "carve_alloc(%zu) failed although largest_free was %zu", request,
                    st.largest_free);
    if (p == NULL && err != ENOMEM)
        return fail(d, "carve_alloc(%zu) failed with errno %d, not ENOMEM", request, err);
    if (!check_heap(d))
        return false;
    r->big_ok = (p != NULL);
    d->big_block = p;
    if (p != NULL) {
        carve_block b;
        if (!block_info(d, p, &b))
            return false;
        fprintf(d->out,
                "        %sOK%s at offset %zu: the small requests left a big enough hole whole.\n",
                d->st.ok, d->st.reset, b.offset);
    } else {
        bool cut = false;
        for (size_t i = 0; i < FOLLOWUPS; i++)
            cut = cut || r->followup_hole[i] == d->big_hole;
        fprintf(d->out, "        %sFAILED%s: ", d->st.bad, d->st.reset);
        if (cut)
            fprintf(d->out, "step 5 cut small blocks from hole %c, which held it.\n", d->big_hole);
        else
            fprintf(d->out, "no hole can hold it any more.\n");
        fprintf(d->out,
                "        With %zu bytes free, the largest request that fits is %zu bytes.\n",
                st.free_bytes, st.largest_free);
    }
    fprintf(d->out, "        The heap now (carve_dump_ex without the block list):\n");
    fflush(d->out);
    carve_dump_ex(d->heap, d->out, 0);
    return true;
}

/* Whether every one of the n bytes at p still holds `fill`. */
static bool holds_only(const void *p, int fill, size_t n)
{
    const unsigned char *bytes = p;
    for (size_t i = 0; i < n; i++) {
        if (bytes[i] != (unsigned char)fill)
            return false;
    }
    return true;
}

/* Every live block still holds what was written into it when it was made:
 * no step wrote into a live block (carve's own metadata included). */
static bool verify_contents(demo *d)
{
    for (size_t i = 0; i < d->block_count; i++) {
        const planned_block *b = &d->blocks[i];
        if (b->payload != NULL && !holds_only(b->payload, 'A' + (int)i, b->request))
            return fail(d, "block %c lost its contents", (char)('A' + i));
    }
    for (size_t i = 0; i < FOLLOWUPS; i++) {
        if (!holds_only(d->followups[i], 'a' + (int)i, request_for(d, followup_units[i])))
            return fail(d, "step-5 block %zu lost its contents", i + 1);
    }
    return true;
}

static bool free_live(demo *d, void *p, const char *what)
{
    int rc = carve_free(d->heap, p);
    if (rc != CARVE_OK)
        return fail(d, "carve_free(%s) returned %d (%s)", what, rc, carve_strerror(rc));
    return true;
}

static bool step7_free_everything(demo *d)
{
    carve_stats st;
    d->step = 7;
    if (!verify_contents(d))
        return false;
    for (size_t i = 0; i < d->block_count; i++) {
        if (d->blocks[i].payload != NULL) {
            char what[] = "block ?";
            what[6] = (char)('A' + i);
            if (!free_live(d, d->blocks[i].payload, what))
                return false;
            d->blocks[i].payload = NULL;
        }
    }
    for (size_t i = 0; i < FOLLOWUPS; i++) {
        if (!free_live(d, d->followups[i], "a step-5 block"))
            return false;
    }
    if (d->big_block != NULL && !free_live(d, d->big_block, "the step-6 block"))
        return false;
    if (!get_stats(d, &st) || !check_heap(d))
        return false;
    if (st.live_blocks != 0 || st.used_bytes != 0)
        return fail(d, "%zu blocks (%zu bytes) still live after freeing everything", st.live_blocks,
                    st.used_bytes);
    if (st.free_bytes != d->fresh.free_bytes || st.largest_free != d->fresh.largest_free)
        return fail(d, "freeing everything left free %zu / largest %zu, a fresh heap has %zu / %zu",
                    st.free_bytes, st.largest_free, d->fresh.free_bytes, d->fresh.largest_free);
    heading(d, "Step 7. Free everything:");
    fprintf(d->out,
            "        every live block kept its bytes; the holes merge back into one free\n"
            "        block (largest request %zu, as on a fresh heap). carve_check passed\n"
            "        after every step.\n",
            st.largest_free);
    return true;
}

static bool run_policy(demo *d, size_t number, size_t total, policy_result *r)
{
    memset(r, 0, sizeof *r);
    r->policy = d->policy;
    d->step = 0;
    d->block_count = 0;
    d->big_block = NULL;
    memset(d->followups, 0, sizeof d->followups);
    if (!start_heap(d))
        return false;
    r->capacity = d->fresh.capacity;

    fprintf(d->out, "%s==== CARVE_%s (policy %zu of %zu) ====%s\n", d->st.bold,
            cli_policy_name(d->policy), number, total, d->st.reset);
    fprintf(d->out, "%s %s\n", cli_policy_name(d->policy), policy_explanation(d->policy));
    fprintf(d->out,
            "A %zu-byte buffer: %zu bytes hold blocks, the other %zu hold carve's metadata.\n\n",
            d->opt->heap_size, d->fresh.capacity, d->opt->heap_size - d->fresh.capacity);

    return step1_fill(d) && step2_free_every_other(d, r) && step3_map(d) &&
           step4_request_too_big(d, r) && step5_small_requests(d, r) && step6_big_request(d, r) &&
           step7_free_everything(d);
}

/* ------------------------------------------------------------------------ */
/* Summary                                                                   */
/* ------------------------------------------------------------------------ */

static bool same_start(const policy_result *r, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        if (r[i].holes_free != r[0].holes_free || r[i].holes_largest != r[0].holes_largest ||
            r[i].holes_count != r[0].holes_count || r[i].failed_request != r[0].failed_request)
            return false;
    }
    return true;
}

static void print_summary(demo *d, const policy_result *r, size_t n)
{
    FILE *out = d->out;
    heading(d, "==== Summary: the same requests on every policy (bytes) ====");
    if (same_start(r, n)) {
        fprintf(out,
                "After step 2 every policy had the same map: %zu bytes free in %zu holes, the\n"
                "largest request %zu, fragmentation %.1f%%; the %zu-byte request of step 4\n"
                "failed on each.\n\n",
                r[0].holes_free, r[0].holes_count, r[0].holes_largest,
                100.0 * (1.0 - (double)r[0].holes_largest / (double)r[0].holes_free),
                r[0].failed_request);
    }
    fprintf(out, "%-10s  %-16s  %6s  %7s  %6s  %s\n", "policy", "step 5: holes", "free", "largest",
            "frag", "step 6");
    for (size_t i = 0; i < n; i++) {
        char holes[2 * FOLLOWUPS + 1];
        for (size_t k = 0; k < FOLLOWUPS; k++) {
            holes[2 * k] = r[i].followup_hole[k];
            holes[2 * k + 1] = ' ';
        }
        holes[2 * FOLLOWUPS - 1] = '\0';
        double frag =
            r[i].after_free == 0 ? 0.0 : 1.0 - (double)r[i].after_largest / (double)r[i].after_free;
        fprintf(out, "%-10s  %-16s  %6zu  %7zu  %5.1f%%  %zu B %s%s%s\n",
                cli_policy_name(r[i].policy), holes, r[i].after_free, r[i].after_largest,
                100.0 * frag, r[i].big_request, r[i].big_ok ? d->st.ok : d->st.bad,
                r[i].big_ok ? "OK" : "FAILED", d->st.reset);
    }
    fprintf(out, "\n"
                 "All policies merge free neighbours at once, yet where a policy puts small\n"
                 "blocks decides whether big requests still fit later. No policy that never\n"
                 "moves blocks avoids this for every sequence of requests (Robson's bound).\n");
}

/* ------------------------------------------------------------------------ */
/* Handles and compaction                                                    */
/* ------------------------------------------------------------------------ */

enum {
    HBLOCKS = 10,        /* handle blocks A..J; J takes what is left */
    HTABLE_ENTRIES = 16, /* max_handles: the table is made at carve_init, once */
    HPINNED = 3,         /* D stays pinned through the compaction */
    HREQUEST_UNITS = 10, /* steps 4 and 6 */
};

/* Sizes of A..I in grid units.  The blocks freed in step 2 (A, C, E, G, I)
 * leave holes of 4 units between live blocks of 2, so no hole holds the
 * 10-unit request; once the blocks after the pinned D slide down, the holes
 * E, G and I merge into 12 units after them. */
static const unsigned handle_units[HBLOCKS - 1] = {4, 2, 4, 2, 4, 2, 4, 2, 4};

typedef struct handle_block {
    carve_handle hd;       /* 0 once freed */
    size_t request;        /* bytes asked (and filled with the block's letter) */
    size_t offset;         /* where the block starts, from carve_walk */
    unsigned char *pinned; /* its address while the demo holds a pin, else NULL */
} handle_block;

typedef struct handle_demo {
    demo *d;
    carve_stats fresh;
    size_t unit;
    size_t request;
    handle_block b[HBLOCKS + 1]; /* A..J, and K: step 6's request */
} handle_demo;

static char hletter(size_t i)
{
    return (char)('A' + i);
}

/* Pins block i and returns its address (checked). */
static unsigned char *hpin(handle_demo *hdm, size_t i)
{
    unsigned char *p = carve_pin(hdm->d->heap, hdm->b[i].hd);
    if (p == NULL)
        fail(hdm->d, "carve_pin(%c) failed: %s", hletter(i), strerror(errno));
    return p;
}

static bool hunpin(handle_demo *hdm, size_t i)
{
    int rc = carve_unpin(hdm->d->heap, hdm->b[i].hd);
    if (rc != CARVE_OK)
        return fail(hdm->d, "carve_unpin(%c) returned %d (%s)", hletter(i), rc, carve_strerror(rc));
    return true;
}

/* Where block i is now (pinned for the look, then unpinned). */
static bool hlocate(handle_demo *hdm, size_t i, size_t *offset)
{
    carve_block info;
    unsigned char *p = hdm->b[i].pinned ? hdm->b[i].pinned : hpin(hdm, i);
    if (p == NULL || !block_info(hdm->d, p, &info))
        return false;
    if (info.kind != CARVE_BLOCK_HANDLE || info.usable < hdm->b[i].request)
        return fail(hdm->d, "carve_walk shows %c as kind %d with %zu usable bytes", hletter(i),
                    (int)info.kind, info.usable);
    if (hdm->b[i].pinned == NULL && !hunpin(hdm, i))
        return false;
    *offset = info.offset;
    return true;
}

/* Whether block i still holds its letter in every byte it asked for. */
static bool hintact(handle_demo *hdm, size_t i)
{
    unsigned char *p = hdm->b[i].pinned ? hdm->b[i].pinned : hpin(hdm, i);
    if (p == NULL)
        return false;
    bool ok = holds_only(p, hletter(i), hdm->b[i].request);
    if (hdm->b[i].pinned == NULL && !hunpin(hdm, i))
        return false;
    if (!ok)
        return fail(hdm->d, "block %c lost its contents", hletter(i));
    return true;
}

static bool hall_intact(handle_demo *hdm)
{
    for (size_t i = 0; i <= HBLOCKS; i++)
        if (hdm->b[i].hd != 0 && !hintact(hdm, i))
            return false;
    return true;
}

static bool hadd(handle_demo *hdm, size_t i, size_t request)
{
    demo *d = hdm->d;
    carve_handle hd = carve_halloc(d->heap, request);
    if (hd == 0)
        return fail(d, "carve_halloc(%zu) for block %c failed: %s", request, hletter(i),
                    strerror(errno));
    if (carve_hsize(d->heap, hd) < request)
        return fail(d, "carve_hsize(%c) is %zu, below the %zu asked", hletter(i),
                    carve_hsize(d->heap, hd), request);
    hdm->b[i] = (handle_block){hd, request, 0, NULL};
    unsigned char *p = hpin(hdm, i);
    if (p == NULL)
        return false;
    memset(p, hletter(i), request);
    return hunpin(hdm, i) && hlocate(hdm, i, &hdm->b[i].offset);
}

static bool hstart(handle_demo *hdm)
{
    demo *d = hdm->d;
    carve_options opt = {0, d->policy, HTABLE_ENTRIES, NULL};
    d->step = 0;
    d->heap = carve_init(demo_arena, d->opt->heap_size, &opt);
    if (d->heap == NULL)
        return fail(d, "carve_init with max_handles %d on a %zu-byte buffer failed: %s",
                    HTABLE_ENTRIES, d->opt->heap_size, strerror(errno));
    if (!check_heap(d) || !get_stats(d, &hdm->fresh))
        return false;
    hdm->unit = (hdm->fresh.largest_free / DEMO_GRID) & ~(size_t)(CARVE_ALIGNMENT - 1u);
    if (hdm->unit < DEMO_MIN_UNIT)
        return fail(d, "a %zu-byte buffer leaves %zu bytes for handle blocks, too few",
                    d->opt->heap_size, hdm->fresh.largest_free);
    hdm->request = HREQUEST_UNITS * hdm->unit - CARVE_HANDLE_OVERHEAD;
    heading(d, "==== Handles: blocks carve may move (CARVE_%s) ====", cli_policy_name(d->policy));
    fprintf(d->out, "%s",
            d->opt->handles_only
                ? "A block from carve_alloc never moves, so free space split between live\n"
                  "blocks stays split, and a request can fail while enough bytes are free.\n"
                : "The scenario above has no way out: a block never moves.\n");
    fprintf(d->out,
            "A handle (carve_halloc) names a block that carve may move whenever it is\n"
            "not pinned. The program pins a handle to get the block's address\n"
            "(carve_pin), uses the block, and unpins it (carve_unpin); in between the\n"
            "block stays put.\n"
            "A %zu-byte buffer with a handle table of %d entries (max_handles): %zu bytes\n"
            "are free for blocks.\n\n",
            d->opt->heap_size, HTABLE_ENTRIES, hdm->fresh.largest_free);
    return true;
}

static bool hstep1_fill(handle_demo *hdm)
{
    demo *d = hdm->d;
    carve_stats st;
    d->step = 1;
    for (size_t i = 0; i + 1 < HBLOCKS; i++)
        if (!hadd(hdm, i, handle_units[i] * hdm->unit - CARVE_HANDLE_OVERHEAD))
            return false;
    /* J takes the rest: a handle block costs CARVE_HANDLE_OVERHEAD where
     * largest_free counts a raw block's CARVE_BLOCK_OVERHEAD. */
    if (!get_stats(d, &st))
        return false;
    if (st.largest_free <= CARVE_HANDLE_OVERHEAD - CARVE_BLOCK_OVERHEAD)
        return fail(d, "only %zu bytes left for block J", st.largest_free);
    if (!hadd(hdm, HBLOCKS - 1, st.largest_free - (CARVE_HANDLE_OVERHEAD - CARVE_BLOCK_OVERHEAD)))
        return false;
    if (!get_stats(d, &st) || !check_heap(d))
        return false;
    if (st.live_handles != HBLOCKS)
        return fail(d, "stats: %zu live handles, %d allocated", st.live_handles, HBLOCKS);
    heading(d, "Step 1. Allocate %d handle blocks (carve_halloc) and fill each with its letter:",
            HBLOCKS);
    for (size_t i = 0; i < HBLOCKS; i++) {
        bool line_end = i % 6 == 5 || i + 1 == HBLOCKS;
        fprintf(d->out, "%s%c %-*zu", i % 6 == 0 ? "        " : "", hletter(i), line_end ? 0 : 8,
                hdm->b[i].request);
        if (line_end)
            fputc('\n', d->out);
    }
    fprintf(d->out,
            "        Each also holds %u bytes of carve's: its header and a link back to its\n"
            "        handle. The heap is full: %zu bytes free.\n",
            CARVE_HANDLE_OVERHEAD, st.free_bytes);
    return true;
}

static bool hstep2_free_and_pin(handle_demo *hdm)
{
    demo *d = hdm->d;
    carve_stats st;
    d->step = 2;
    carve_handle stale = hdm->b[0].hd;
    fprintf(d->out, "%sStep 2. Free every other block (carve_hfree):", d->st.bold);
    for (size_t i = 0; i < HBLOCKS; i += 2) {
        int rc = carve_hfree(d->heap, hdm->b[i].hd);
        if (rc != CARVE_OK)
            return fail(d, "carve_hfree(%c) returned %d (%s)", hletter(i), rc, carve_strerror(rc));
        hdm->b[i].hd = 0;
        fprintf(d->out, " %c", hletter(i));
    }
    fprintf(d->out, "%s\n", d->st.reset);
    errno = 0;
    if (carve_pin(d->heap, stale) != NULL || errno != EINVAL || carve_hsize(d->heap, stale) != 0)
        return fail(d, "the freed handle of A still answers (carve_pin, errno %d)", errno);
    if (!get_stats(d, &st) || !check_heap(d))
        return false;
    fprintf(d->out,
            "        A freed handle is dead for good: carve_pin(A) now returns NULL (EINVAL).\n"
            "        %zu bytes are free, in %zu holes; the largest holds a request of %zu.\n"
            "        The program is using B D F H J, so it pins them: they may not move.\n",
            st.free_bytes, st.free_blocks, st.largest_free);
    for (size_t i = 1; i < HBLOCKS; i += 2)
        if ((hdm->b[i].pinned = hpin(hdm, i)) == NULL)
            return false;
    if (!get_stats(d, &st))
        return false;
    if (st.pinned_handles != HBLOCKS / 2)
        return fail(d, "stats: %zu pinned handles, %d pinned", st.pinned_handles, HBLOCKS / 2);
    return true;
}

static bool hstep3_map(handle_demo *hdm, const char *what)
{
    demo *d = hdm->d;
    heading(d, "%s", what);
    fflush(d->out);
    if (d->opt->hex)
        carve_dump_ex(d->heap, d->out, CARVE_DUMP_BLOCKS | CARVE_DUMP_HEX);
    else
        carve_dump(d->heap, d->out);
    return check_heap(d);
}

static int visit_first_meta(const carve_block *b, void *ctx)
{
    if (b->kind != CARVE_BLOCK_META)
        return 0;
    *(carve_block *)ctx = *b;
    return WALK_FOUND;
}

/* The handle table is a block of carve's own; carve_walk reports it as
 * carve's metadata (there are no runs in this heap), and the reader should
 * know what the first block of the map is. */
static bool hname_table(handle_demo *hdm)
{
    carve_block table;
    memset(&table, 0, sizeof table);
    int rc = carve_walk(hdm->d->heap, visit_first_meta, &table);
    if (rc == WALK_FOUND)
        fprintf(hdm->d->out, "        The %zu-byte block at offset %zu is the handle table.\n",
                table.size, table.offset);
    else if (rc != CARVE_OK)
        return fail(hdm->d, "carve_walk returned %d (%s)", rc, carve_strerror(rc));
    return true;
}

static bool hstep4_request_fails(handle_demo *hdm)
{
    demo *d = hdm->d;
    carve_stats st, after;
    d->step = 4;
    if (!get_stats(d, &st))
        return false;
    if (hdm->request <= st.largest_free || hdm->request > st.free_bytes)
        return fail(d, "the heap is not fragmented as planned (free %zu, largest %zu, request %zu)",
                    st.free_bytes, st.largest_free, hdm->request);
    errno = 0;
    carve_handle hd = carve_halloc(d->heap, hdm->request);
    int err = errno;
    if (hd != 0)
        return fail(d, "carve_halloc(%zu) succeeded with every live block pinned", hdm->request);
    if (err != ENOMEM)
        return fail(d, "carve_halloc(%zu) failed with errno %d, not ENOMEM", hdm->request, err);
    if (!get_stats(d, &after) || !check_heap(d) || !hall_intact(hdm))
        return false;
    if (after.failed_allocs != st.failed_allocs + 1u || after.free_bytes != st.free_bytes)
        return fail(d, "a failed carve_halloc changed the heap (failed_allocs %llu -> %llu)",
                    (unsigned long long)st.failed_allocs, (unsigned long long)after.failed_allocs);
    heading(d, "Step 4. Ask for %zu bytes (carve_halloc):", hdm->request);
    fprintf(d->out,
            "        %sFAILED%s (ENOMEM), although %zu bytes are free: no hole holds it, and\n"
            "        every live block is pinned, so carve may not move one to merge the holes.\n"
            "        (An allocation that fails while blocks could move compacts by itself\n"
            "        first; here nothing can move.)\n",
            d->st.bad, d->st.reset, st.free_bytes);
    return true;
}

static bool hstep5_compact(handle_demo *hdm)
{
    demo *d = hdm->d;
    carve_stats st, after;
    d->step = 5;
    unsigned char *d_before = hdm->b[HPINNED].pinned;
    size_t before[HBLOCKS];
    for (size_t i = 1; i < HBLOCKS; i += 2) {
        before[i] = hdm->b[i].offset;
        if (i == HPINNED)
            continue;
        if (!hunpin(hdm, i))
            return false;
        hdm->b[i].pinned = NULL;
    }
    if (!get_stats(d, &st))
        return false;
    if (st.pinned_handles != 1)
        return fail(d, "stats: %zu pinned handles, 1 pinned", st.pinned_handles);
    size_t moved = carve_compact(d->heap, SIZE_MAX);
    if (!get_stats(d, &after) || !check_heap(d))
        return false;
    if (moved == 0)
        return fail(d, "carve_compact moved nothing, with 4 unpinned blocks above holes");
    if (after.bytes_moved != st.bytes_moved + moved || after.compactions != st.compactions + 1u)
        return fail(d,
                    "stats: bytes_moved %llu -> %llu and compactions %llu -> %llu after one "
                    "compaction of %zu bytes",
                    (unsigned long long)st.bytes_moved, (unsigned long long)after.bytes_moved,
                    (unsigned long long)st.compactions, (unsigned long long)after.compactions,
                    moved);
    if (after.free_bytes != st.free_bytes || after.used_bytes != st.used_bytes)
        return fail(d, "compaction changed the free bytes (%zu -> %zu)", st.free_bytes,
                    after.free_bytes);
    heading(d, "Step 5. The program unpins B F H J, keeps D pinned, and compacts:");
    fprintf(d->out, "        carve_compact(h, SIZE_MAX) moved %zu bytes:\n", moved);
    for (size_t i = 1; i < HBLOCKS; i += 2) {
        if (!hlocate(hdm, i, &hdm->b[i].offset))
            return false;
        if (i == HPINNED) {
            if (hdm->b[i].offset != before[i] || hdm->b[i].pinned != d_before)
                return fail(d, "pinned block D moved from %zu to %zu", before[i], hdm->b[i].offset);
            fprintf(d->out, "          %c stays at %5zu  (pinned)\n", hletter(i), before[i]);
        } else if (hdm->b[i].offset == before[i]) {
            fprintf(d->out, "          %c stays at %5zu  (nothing free below it)\n", hletter(i),
                    before[i]);
        } else {
            fprintf(d->out, "          %c %5zu -> %5zu\n", hletter(i), before[i], hdm->b[i].offset);
        }
    }
    if (!hall_intact(hdm))
        return false;
    if (after.largest_free < hdm->request + (CARVE_HANDLE_OVERHEAD - CARVE_BLOCK_OVERHEAD))
        return fail(d, "after compaction the largest free block holds %zu, not the %zu asked",
                    after.largest_free, hdm->request);
    fprintf(d->out,
            "        Every block kept its bytes and its handle. The %zu free bytes now lie in\n"
            "        %zu blocks; the largest holds a request of %zu (was %zu). Free space does\n"
            "        not flow through the pinned D, so what was below it stays there.\n",
            after.free_bytes, after.free_blocks, after.largest_free, st.largest_free);
    return hstep3_map(hdm, "        The map after compaction (carve_dump):");
}

static bool hstep6_request_succeeds(handle_demo *hdm)
{
    demo *d = hdm->d;
    hdm->d->step = 6;
    if (!hadd(hdm, HBLOCKS, hdm->request) || !check_heap(d))
        return false;
    heading(d, "Step 6. Ask again for %zu bytes:", hdm->request);
    fprintf(d->out,
            "        %sOK%s: block %c at offset %zu, in the space the compaction merged.\n"
            "        (Had the program not called carve_compact, this request would have\n"
            "        compacted the unpinned blocks by itself.)\n",
            d->st.ok, d->st.reset, hletter(HBLOCKS), hdm->b[HBLOCKS].offset);
    return true;
}

static bool hstep7_free_everything(handle_demo *hdm)
{
    demo *d = hdm->d;
    carve_stats st;
    d->step = 7;
    if (!hall_intact(hdm))
        return false;
    int rc = carve_hfree(d->heap, hdm->b[HPINNED].hd);
    if (rc != CARVE_ERR_PINNED)
        return fail(d, "carve_hfree of the pinned D returned %d (%s), not CARVE_ERR_PINNED", rc,
                    carve_strerror(rc));
    if (!hunpin(hdm, HPINNED))
        return false;
    hdm->b[HPINNED].pinned = NULL;
    for (size_t i = 0; i <= HBLOCKS; i++) {
        if (hdm->b[i].hd == 0)
            continue;
        rc = carve_hfree(d->heap, hdm->b[i].hd);
        if (rc != CARVE_OK)
            return fail(d, "carve_hfree(%c) returned %d (%s)", hletter(i), rc, carve_strerror(rc));
        hdm->b[i].hd = 0;
    }
    if (!get_stats(d, &st) || !check_heap(d))
        return false;
    if (st.live_handles != 0 || st.pinned_handles != 0 || st.used_bytes != hdm->fresh.used_bytes ||
        st.largest_free != hdm->fresh.largest_free)
        return fail(d,
                    "after freeing everything: %zu handles (%zu pinned), %zu used bytes, "
                    "largest %zu; a fresh heap had %zu used, largest %zu",
                    st.live_handles, st.pinned_handles, st.used_bytes, st.largest_free,
                    hdm->fresh.used_bytes, hdm->fresh.largest_free);
    heading(d, "Step 7. Free everything:");
    fprintf(d->out,
            "        carve_hfree(D) while D is pinned: CARVE_ERR_PINNED, nothing changes;\n"
            "        after carve_unpin it frees. D stayed at offset %zu the whole time, and the\n"
            "        address the program held stayed valid. The heap is whole again (largest\n"
            "        request %zu, as when fresh); carve_check passed after every step.\n",
            hdm->b[HPINNED].offset, st.largest_free);
    return true;
}

static bool run_handles(demo *d)
{
    handle_demo hdm;
    memset(&hdm, 0, sizeof hdm);
    hdm.d = d;
    d->section = "handles";
    bool ok = hstart(&hdm) && hstep1_fill(&hdm) && hstep2_free_and_pin(&hdm) &&
              hstep3_map(&hdm, "Step 3. The map (carve_dump; H marks handle blocks):") &&
              hname_table(&hdm) && hstep4_request_fails(&hdm) && hstep5_compact(&hdm) &&
              hstep6_request_succeeds(&hdm) && hstep7_free_everything(&hdm);
    d->section = NULL;
    return ok;
}

/* ------------------------------------------------------------------------ */
/* Command line                                                              */
/* ------------------------------------------------------------------------ */

void demo_help(FILE *out)
{
    fprintf(out,
            "Usage: carve demo [OPTIONS]\n"
            "\n"
            "Shows what carve does, on a small heap in a static buffer, once for each\n"
            "placement policy (GOOD_FIT, FIRST_FIT, BEST_FIT). It replays the scenario\n"
            "every allocator textbook uses:\n"
            "\n"
            "  1. fill the heap with blocks of mixed sizes, named A, B, C, ...;\n"
            "  2. free every other one, leaving holes between the live blocks;\n"
            "  3. print the heap's map (carve_dump);\n"
            "  4. ask for less than the free bytes but more than any hole holds: it\n"
            "     fails, and the demo shows why (largest free block, total free,\n"
            "     fragmentation = 1 - largest_free / free_bytes, from carve_get_stats);\n"
            "  5. make three small requests and show which hole the policy chose;\n"
            "  6. ask for what the largest hole held after step 2: whether it still\n"
            "     fits depends on the choices of step 5;\n"
            "  7. free everything and check that the heap is whole again.\n"
            "\n"
            "A table comparing the policies follows. Then the way out, with handles\n"
            "(blocks carve may move while they are not pinned):\n"
            "\n"
            "  1. allocate handle blocks A..J (carve_halloc) and fill them;\n"
            "  2. free every other one (carve_hfree) and pin the rest (carve_pin);\n"
            "  3. print the map;\n"
            "  4. ask for less than the free bytes but more than any hole: it fails,\n"
            "     because pinned blocks may not move;\n"
            "  5. unpin all but D and call carve_compact: the blocks slide down, D\n"
            "     stays where it is, the map after;\n"
            "  6. the same request now succeeds;\n"
            "  7. free everything (a pinned block refuses to be freed).\n"
            "\n"
            "The output is deterministic. Every step also runs carve_check and\n"
            "cross-checks the statistics and every block's contents: if the library\n"
            "misbehaves, the demo says so on stderr and exits with status 1.\n"
            "\n"
            "Options:\n"
            "  --policy NAME    run one policy only: good (GOOD_FIT, the default\n"
            "                   policy), first (FIRST_FIT) or best (BEST_FIT); the\n"
            "                   handles section uses it too (default GOOD_FIT)\n"
            "  --handles        the handles and compaction section only\n"
            "  --heap-size N    the buffer's size in bytes, %d to %d (suffixes K, M);\n"
            "                   default %d; the scenario scales with it\n"
            "  --hex            also show every live block's bytes in hex in step 3\n"
            "  --map FILE       also draw the heap after every step as a picture (.svg,\n"
            "                   or .png through a converter; see 'carve map --help')\n"
            "  --no-color       no ANSI colours (used only when stdout is a terminal\n"
            "                   and NO_COLOR is not set)\n"
            "  -h, --help       show this help\n",
            DEMO_MIN_HEAP, DEMO_MAX_HEAP, DEMO_DEFAULT_HEAP);
}

/* Parses argv into *opt; returns CLI_EXIT_OK, or the exit status to stop
 * with (-1 for "help was printed, exit 0"). */
static int parse_demo_options(int argc, char **argv, demo_options *opt)
{
    *opt = (demo_options){false, CARVE_GOOD_FIT, DEMO_DEFAULT_HEAP, false, false, false, NULL};
    for (int i = 1; i < argc;) {
        const char *arg = argv[i];
        const char *value = NULL;
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            demo_help(stdout);
            return -1;
        }
        if (strcmp(arg, "--hex") == 0) {
            opt->hex = true;
            i++;
        } else if (strcmp(arg, "--handles") == 0) {
            opt->handles_only = true;
            i++;
        } else if (strcmp(arg, "--no-color") == 0 || strcmp(arg, "--no-colour") == 0) {
            opt->no_color = true;
            i++;
        } else if (cli_option_value(argc, argv, &i, "--map", &value)) {
            if (value == NULL || value[0] == '\0')
                return cli_usage_error("demo", "--map needs a file name (.svg or .png)");
            if (!map_path_supported(value))
                return cli_usage_error(
                    "demo", "--map %s: the picture is SVG or PNG; name a .svg or .png file", value);
            opt->map_path = value;
        } else if (cli_option_value(argc, argv, &i, "--policy", &value)) {
            if (value == NULL)
                return cli_usage_error("demo", "--policy needs a name: good, first or best");
            if (!cli_parse_policy(value, &opt->policy))
                return cli_usage_error("demo", "unknown policy '%s' (use good, first or best)",
                                       value);
            opt->one_policy = true;
        } else if (cli_option_value(argc, argv, &i, "--heap-size", &value)) {
            if (value == NULL)
                return cli_usage_error("demo", "--heap-size needs a size in bytes");
            if (!cli_parse_size(value, &opt->heap_size) || opt->heap_size < DEMO_MIN_HEAP ||
                opt->heap_size > DEMO_MAX_HEAP)
                return cli_usage_error("demo",
                                       "bad heap size '%s': use %d to %d bytes (K, M allowed)",
                                       value, DEMO_MIN_HEAP, DEMO_MAX_HEAP);
        } else if (arg[0] == '-') {
            return cli_usage_error("demo", "unknown option '%s'", arg);
        } else {
            return cli_usage_error("demo", "unexpected argument '%s'", arg);
        }
    }
    return CLI_EXIT_OK;
}

/* The grid unit a heap of this size gives the scenario (0 if carve_init
 * refuses the size). */
static size_t unit_for_heap(size_t heap_size)
{
    carve_stats st;
    carve_heap *h = carve_init(demo_arena, heap_size, NULL);
    if (h == NULL)
        return 0;
    carve_get_stats(h, &st);
    return (st.capacity / DEMO_GRID) & ~(size_t)(CARVE_ALIGNMENT - 1u);
}

/* --map: the picture of every step sampled, the policies' runs first, then
 * the handles section. */
static bool demo_write_map(demo *d, size_t policies)
{
    char subtitle[256], why[512];
    snprintf(subtitle, sizeof subtitle,
             "a %zu-byte heap after every step: %s%s, then handles and compaction",
             d->opt->heap_size,
             d->opt->handles_only ? ""
             : policies > 1       ? "GOOD_FIT, FIRST_FIT, BEST_FIT"
                                  : cli_policy_name(d->opt->policy),
             d->opt->handles_only ? "(handles only)" : "");
    map_layout l = {1000, 560, "carve demo: the heap over the demo's steps", subtitle,
                    "steps (each carve_check of the demo adds a column)"};
    bool ok = map_canvas_write(d->map, d->opt->map_path, &l, why, sizeof why);
    if (!ok)
        fprintf(stderr, "carve demo: --map: %s\n", why);
    else
        fprintf(d->out, "Heap map written to %s.\n", d->opt->map_path);
    map_canvas_free(d->map);
    d->map = NULL;
    return ok;
}

int demo_main(int argc, char **argv)
{
    demo_options opt;
    int status = parse_demo_options(argc, argv, &opt);
    if (status != CLI_EXIT_OK)
        return status < 0 ? CLI_EXIT_OK : status;
    if (unit_for_heap(opt.heap_size) < DEMO_MIN_UNIT)
        return cli_usage_error("demo",
                               "a %zu-byte heap is too small for the scenario's %d blocks; "
                               "try --heap-size %d",
                               opt.heap_size, MAX_BLOCKS, DEMO_DEFAULT_HEAP);

    demo d;
    memset(&d, 0, sizeof d);
    d.out = stdout;
    d.opt = &opt;
    d.st = cli_use_color(stdout, opt.no_color)
               ? (style){"\033[1m", "\033[1;32m", "\033[1;31m", "\033[0m"}
               : (style){"", "", "", ""};

    if (opt.map_path != NULL && (d.map = map_canvas_new(opt.heap_size, 512, 400)) == NULL) {
        fprintf(stderr, "carve demo: out of memory\n");
        return CLI_EXIT_FAILURE;
    }
    const carve_policy *policies = opt.one_policy ? &opt.policy : all_policies;
    size_t count = opt.one_policy ? 1 : POLICY_COUNT;
    policy_result results[POLICY_COUNT];

    if (opt.handles_only) {
        fprintf(d.out, "carve %s demo: handles and compaction in a %zu-byte heap.\n\n",
                carve_version(), opt.heap_size);
    } else {
        fprintf(d.out, "carve %s demo: what happens inside a %zu-byte heap, policy by policy.\n\n",
                carve_version(), opt.heap_size);
        for (size_t i = 0; i < count; i++) {
            d.policy = policies[i];
            if (!run_policy(&d, i + 1, count, &results[i]))
                return CLI_EXIT_FAILURE;
            fputc('\n', d.out);
        }
        if (count > 1) {
            print_summary(&d, results, count);
            fputc('\n', d.out);
        }
    }
    d.policy = opt.one_policy ? opt.policy : CARVE_GOOD_FIT;
    if (!run_handles(&d))
        return CLI_EXIT_FAILURE;
    if (d.map != NULL && !demo_write_map(&d, count))
        return CLI_EXIT_FAILURE;
    if (fflush(d.out) != 0 || ferror(d.out)) {
        fprintf(stderr, "carve demo: error writing the output\n");
        return CLI_EXIT_FAILURE;
    }
    return CLI_EXIT_OK;
}
