/*
 * diag.c: what the heap can tell about itself: status strings, counters,
 * the integrity walk, the block walk and the printed map.
 */
#include "index.h"
#include "gcache.h"
#include "handles.h"
#include "heap.h"
#include "small.h"
#include "threads.h"

#include <inttypes.h>

CARVE_EXPORT const char *carve_strerror(int status)
{
    switch (status) {
    case CARVE_OK:
        return "success";
    case CARVE_ERR_INVALID:
        return "invalid argument";
    case CARVE_ERR_NOMEM:
        return "not enough memory in the heap";
    case CARVE_ERR_NOT_OWNED:
        return "pointer or handle does not name a live block of this heap";
    case CARVE_ERR_DOUBLE_FREE:
        return "block is already free";
    case CARVE_ERR_PINNED:
        return "handle is pinned";
    case CARVE_ERR_CORRUPT:
        return "heap metadata failed an integrity check";
    default:
        return "unknown status";
    }
}

/* ---- counters ---------------------------------------------------------------- */

static size_t clamp_size(uint64_t v)
{
    return v > SIZE_MAX ? SIZE_MAX : (size_t)v;
}

/* What is exact (statistics, walks, the map) sees the heap with every
 * cache handed back: thread caches' slots and cached general blocks. */
static void drain_caches(carve_heap *h)
{
    if (h->flags & HEAP_TCACHE) {
        (void)tcache_drain_all(h);
    }
    if (h->flags & HEAP_GCACHE) {
        (void)gcache_empty(h);
    }
}

/* Free slots in runs are free bytes and free blocks (of one size); the
 * rest of a run's block (its header, bitmap and tail) counts as used.
 * Every cache and retained empty run is handed back first, so largest_free
 * is exact. */
static void stats_unlocked(carve_heap *h, carve_stats *out)
{
    (void)heap_reclaim_cached(h);
    uint64_t largest = index_largest(h);
    memset(out, 0, sizeof *out);
    out->capacity = clamp_size(h->arena_end - h->arena_begin);
    uint64_t live_slots = h->slot_allocs - h->slot_frees;
    out->used_bytes = clamp_size(h->used_public);
    out->free_bytes = clamp_size(h->free_bytes + (h->used_bytes - h->used_public));
    out->largest_free = largest ? clamp_size(bytes_of(largest) - HDR_SIZE) : 0;
    if (h->run_slots > live_slots && out->largest_free < CARVE_SMALL_MAX) {
        /* A free slot may hold more than the index's largest block. */
        for (unsigned cls = SMALL_CLASSES; cls-- > 0;) {
            if (slot_size_of(cls) <= out->largest_free) {
                break;
            }
            if (small_class_has_free_slot(h, cls)) {
                out->largest_free = (size_t)slot_size_of(cls);
                break;
            }
        }
    }
    out->live_blocks = clamp_size(h->live_blocks + live_slots);
    out->free_blocks = clamp_size(h->free_blocks + (h->run_slots - live_slots));
    out->live_handles = clamp_size(h->live_handles);
    out->pinned_handles = clamp_size(h->pinned_handles);
    out->peak_used_bytes = clamp_size(h->peak_used_bytes);
    out->allocs = h->allocs + h->slot_allocs;
    out->frees = h->frees + h->slot_frees;
    out->failed_allocs = h->failed_allocs;
    out->compactions = h->compactions;
    out->bytes_moved = h->bytes_moved;
}

CARVE_EXPORT void carve_get_stats(carve_heap *h, carve_stats *out)
{
    if (!h || !out) {
        return;
    }
    heap_enter(h);
    stats_unlocked(h, out);
    heap_leave(h);
}

/* ---- the integrity walk ---------------------------------------------------------- */

struct chain_totals {
    uint64_t used, free, live, free_blocks, quarantined;
    uint64_t handle_blocks, table_blocks;
    uint64_t cached_blocks, cached_bytes; /* gcache.h */
    struct slot_totals slots;
};

/* Walks the block chain: headers, boundary tags, no adjacent free blocks,
 * poison, and the sentinel at the end. */
static bool chain_is_sound(const carve_heap *h, struct chain_totals *t)
{
    bool prev_free = false;
    ref b = h->arena_begin;
    while (b < h->arena_end) {
        hword w;
        if (!block_read(h, b, &w) || hdr_prev_free(w) != prev_free) {
            return false;
        }
        uint64_t g = hdr_granules(w);
        if (hdr_is_free(w)) {
            if (prev_free || load64(at(h, b + bytes_of(g) - 8)) != w || hdr_kind(w) != KIND_RAW) {
                return false;
            }
            if ((h->flags & CARVE_POISON) && !block_poison_intact(h, b, g)) {
                return false;
            }
            t->free += bytes_of(g);
            t->free_blocks++;
        } else {
            unsigned kind = hdr_kind(w);
            if (kind == KIND_QUARANTINE) {
                t->quarantined++;
            } else if (kind == KIND_RUN) {
                if (g != RUN_BLOCK_GRANULES || !small_run_is_sound(h, b, &t->slots)) {
                    return false;
                }
            } else if (kind == KIND_TABLE) {
                t->table_blocks++;
            } else if (kind == KIND_CACHED) {
                t->cached_blocks++;
                t->cached_bytes += bytes_of(g);
            } else if (kind == KIND_RAW || kind == KIND_HANDLE) {
                t->live++;
                t->handle_blocks += kind == KIND_HANDLE ? 1u : 0u;
            } else {
                return false;
            }
            t->used += bytes_of(g);
        }
        prev_free = hdr_is_free(w);
        b = block_next(b, g);
    }
    hword end;
    return b == h->arena_end && block_read(h, b, &end) && hdr_prev_free(end) == prev_free;
}

/* Whether a (in the list before b) may precede b under the heap's policy. */
static bool list_order_holds(const carve_heap *h, ref a, ref b)
{
    switch ((carve_policy)h->policy) {
    case CARVE_FIRST_FIT:
        return a < b;
    case CARVE_BEST_FIT: {
        uint64_t ga = hdr_granules(block_header(h, a));
        uint64_t gb = hdr_granules(block_header(h, b));
        return ga < gb || (ga == gb && a < b);
    }
    case CARVE_GOOD_FIT:
    default:
        return true;
    }
}

/* Walks every class list: bitmaps agree with the heads, every node is a
 * free block of that class, back links agree, the policy's order holds.
 * Returns the number of nodes, or UINT64_MAX on a violation. */
static uint64_t index_node_count(const carve_heap *h)
{
    uint64_t nodes = 0;
    uint64_t valid_fl = (UINT64_C(1) << h->fl_count) - 1u;
    if (h->fl_bitmap & ~valid_fl) {
        return UINT64_MAX;
    }
    for (unsigned fl = 0; fl < h->fl_count; fl++) {
        bool fl_bit = (h->fl_bitmap >> fl) & 1u;
        if (fl_bit != (h->sl_bitmap[fl] != 0)) {
            return UINT64_MAX;
        }
        for (unsigned sl = 0; sl < SL_COUNT; sl++) {
            unsigned cls = fl * SL_COUNT + sl;
            if (((h->sl_bitmap[fl] >> sl) & 1u) != (h->heads[cls] != 0)) {
                return UINT64_MAX;
            }
            bool bad = false;
            ref prev = 0;
            for (ref b = list_step(h, 0, cls, &bad); b; b = list_step(h, b, cls, &bad)) {
                if ((prev && !list_order_holds(h, prev, b)) || ++nodes > h->free_blocks) {
                    return UINT64_MAX;
                }
                prev = b;
            }
            if (bad) {
                return UINT64_MAX;
            }
        }
    }
    return nodes;
}

int check_unlocked(carve_heap *h)
{
    struct chain_totals t;
    struct tcache_sums cached;
    int caches;
    do {
        memset(&t, 0, sizeof t);
        /* A fork() child's inheritance of its parent's threads' caches is
         * not a fault: they go back first (this changes nothing in the
         * parent). */
        if ((h->flags & HEAP_TCACHE) && control_is_valid(h)) {
            (void)tcache_adopt_orphans(h);
        }
        if (!control_is_valid(h) || !chain_is_sound(h, &t)) {
            return CARVE_ERR_CORRUPT;
        }
        /* Slots that thread caches hold or have handed out without telling
         * the heap's counters yet (threads.h).  Nor is a cache that a
         * process of a shared heap left busy when it died a fault: the
         * caches go back, and the walk above is out of date. */
        caches = tcache_sums(h, &cached);
    } while (caches < 0);
    uint64_t record_blocks;
    if (caches == 0 || !gcache_is_sound(h, t.cached_blocks, t.cached_bytes, &record_blocks)) {
        return CARVE_ERR_CORRUPT;
    }
    bool counters_agree =
        t.used == h->used_bytes && t.free == h->free_bytes && t.live == h->live_blocks &&
        t.free_blocks == h->free_blocks && t.quarantined == h->quarantined_blocks &&
        t.slots.runs == h->runs && t.slots.slots == h->run_slots &&
        t.slots.live_slots == h->slot_allocs - h->slot_frees + cached.slots &&
        t.slots.free_slot_bytes == h->used_bytes - h->used_public - cached.bytes - t.cached_bytes &&
        t.slots.own == cached.own;
    if (h->runs_on ? !small_lists_are_sound(h, &t.slots, cached.listed) : t.slots.runs != 0) {
        return CARVE_ERR_CORRUPT;
    }
    if (!handles_are_sound(h, t.handle_blocks, t.table_blocks - record_blocks)) {
        return CARVE_ERR_CORRUPT;
    }
    /* A quarantined block is the trace of a write after free: the heap
     * stays usable, but it is not healthy. */
    if (!counters_agree || t.quarantined != 0 || index_node_count(h) != t.free_blocks) {
        return CARVE_ERR_CORRUPT;
    }
    return CARVE_OK;
}

CARVE_EXPORT int carve_check(carve_heap *h)
{
    if (!h) {
        return CARVE_ERR_INVALID;
    }
    heap_enter(h);
    int st = check_unlocked(h);
    heap_leave(h);
    return st;
}

/* ---- the block walk ------------------------------------------------------------------ */

static carve_block_kind public_kind(hword w)
{
    if (hdr_is_free(w)) {
        return CARVE_BLOCK_FREE;
    }
    switch (hdr_kind(w)) {
    case KIND_HANDLE:
        return CARVE_BLOCK_HANDLE;
    case KIND_QUARANTINE:
        return CARVE_BLOCK_QUARANTINED;
    case KIND_TABLE:
        return CARVE_BLOCK_META;
    default:
        return CARVE_BLOCK_RAW;
    }
}

static void describe_block(carve_heap *h, ref b, hword w, carve_block *out)
{
    uint64_t size = bytes_of(hdr_granules(w));
    out->offset = (size_t)b;
    out->size = clamp_size(size);
    out->kind = public_kind(w);
    bool handle = out->kind == CARVE_BLOCK_HANDLE;
    bool user = out->kind == CARVE_BLOCK_RAW || handle;
    out->usable = user ? clamp_size(size - HDR_SIZE - (handle ? HANDLE_TRAILER : 0u)) : 0;
    out->payload = user ? block_payload(h, b) : NULL;
    out->pinned = handle ? handle_pins_of_block(h, b, w) : 0u;
}

static int walk_unlocked(carve_heap *h, int (*visit)(const carve_block *b, void *ctx), void *ctx)
{
    for (ref b = h->arena_begin; b < h->arena_end;) {
        hword w;
        if (!block_read(h, b, &w)) {
            return CARVE_ERR_CORRUPT;
        }
        int r;
        if (!hdr_is_free(w) && hdr_kind(w) == KIND_RUN) {
            struct slot_totals ignored;
            memset(&ignored, 0, sizeof ignored);
            if (!small_run_is_sound(h, b, &ignored)) {
                return CARVE_ERR_CORRUPT;
            }
            r = small_walk_run(h, b, visit, ctx);
        } else {
            carve_block info;
            describe_block(h, b, w, &info);
            r = visit(&info, ctx);
        }
        if (r != 0) {
            return r;
        }
        b = block_next(b, hdr_granules(w));
    }
    return CARVE_OK;
}

CARVE_EXPORT int carve_walk(carve_heap *h, int (*visit)(const carve_block *b, void *ctx), void *ctx)
{
    if (!h || !visit) {
        return CARVE_ERR_INVALID;
    }
    heap_enter(h);
    drain_caches(h);
    int r = walk_unlocked(h, visit, ctx);
    heap_leave(h);
    return r;
}

/* ---- the printed map ---------------------------------------------------------------- */

#define PICTURE_CELLS 64u

static const char *policy_name(uint32_t policy)
{
    switch (policy) {
    case CARVE_FIRST_FIT:
        return "first-fit";
    case CARVE_BEST_FIT:
        return "best-fit";
    default:
        return "good-fit";
    }
}

static const char *kind_name(carve_block_kind kind)
{
    switch (kind) {
    case CARVE_BLOCK_FREE:
        return "free";
    case CARVE_BLOCK_HANDLE:
        return "handle";
    case CARVE_BLOCK_QUARANTINED:
        return "quarantined";
    case CARVE_BLOCK_META:
        return "carve metadata";
    default:
        return "raw";
    }
}

static double percent(uint64_t part, uint64_t whole)
{
    return whole ? 100.0 * (double)part / (double)whole : 0.0;
}

static void dump_summary(carve_heap *h, FILE *out)
{
    carve_stats s;
    stats_unlocked(h, &s);
    double frag =
        s.free_bytes ? 100.0 * (1.0 - (double)s.largest_free / (double)s.free_bytes) : 0.0;
    if (frag < 0.0) {
        frag = 0.0;
    }
    fprintf(out, "carve heap: %s, buffer %" PRIu64 " bytes, capacity %zu bytes%s%s%s\n",
            policy_name(h->policy), h->buffer_size, s.capacity,
            (h->flags & CARVE_SHARED) ? ", shared" : "",
            (h->flags & CARVE_THREADSAFE) ? ", thread-safe" : "",
            (h->flags & CARVE_POISON) ? ", poison" : "");
    fprintf(out, "  used %zu bytes (%.1f%%) in %zu blocks, free %zu bytes in %zu blocks\n",
            s.used_bytes, percent(s.used_bytes, s.capacity), s.live_blocks, s.free_bytes,
            s.free_blocks);
    fprintf(out, "  largest free request %zu bytes, fragmentation %.1f%%, peak used %zu bytes\n",
            s.largest_free, frag, s.peak_used_bytes);
    fprintf(out, "  allocs %" PRIu64 ", frees %" PRIu64 ", failed %" PRIu64 "\n", s.allocs, s.frees,
            s.failed_allocs);
}

/* The picture: one character per 1/64 of the arena. */
struct picture {
    uint64_t begin, span;
    uint64_t live[PICTURE_CELLS], free[PICTURE_CELLS];
    unsigned char special[PICTURE_CELLS];
};

static int picture_add(const carve_block *b, void *ctx)
{
    struct picture *pic = ctx;
    uint64_t lo = (uint64_t)b->offset - pic->begin;
    uint64_t hi = lo + (uint64_t)b->size;
    for (uint64_t c = lo * PICTURE_CELLS / pic->span; c < PICTURE_CELLS; c++) {
        uint64_t c_lo = pic->span * c / PICTURE_CELLS;
        uint64_t c_hi = pic->span * (c + 1u) / PICTURE_CELLS;
        if (c_lo >= hi) {
            break;
        }
        uint64_t overlap = (hi < c_hi ? hi : c_hi) - (lo > c_lo ? lo : c_lo);
        if (b->kind == CARVE_BLOCK_FREE) {
            pic->free[c] += overlap;
        } else {
            pic->live[c] += overlap;
        }
        if (b->kind == CARVE_BLOCK_HANDLE && pic->special[c] == 0) {
            pic->special[c] = 'H';
        } else if (b->kind == CARVE_BLOCK_QUARANTINED) {
            pic->special[c] = '!';
        }
    }
    return 0;
}

static void dump_picture(carve_heap *h, FILE *out)
{
    struct picture pic;
    memset(&pic, 0, sizeof pic);
    pic.begin = h->arena_begin;
    pic.span = h->arena_end - h->arena_begin;
    (void)walk_unlocked(h, picture_add, &pic);
    fputs("  map |", out);
    for (unsigned c = 0; c < PICTURE_CELLS; c++) {
        int ch = pic.live[c] && pic.free[c] ? '%' : pic.live[c] ? '#' : '.';
        fputc(pic.special[c] ? pic.special[c] : ch, out);
    }
    fputs("|\n        # live  . free  % both  H handles  ! quarantined\n", out);
}

static void dump_hex(const unsigned char *p, size_t n, FILE *out)
{
    for (size_t row = 0; row < n; row += 16) {
        fprintf(out, "      +%06zx ", row);
        for (size_t i = row; i < row + 16; i++) {
            if (i < n) {
                fprintf(out, " %02x", p[i]);
            } else {
                fputs("   ", out);
            }
        }
        fputs("  |", out);
        for (size_t i = row; i < row + 16 && i < n; i++) {
            fputc(p[i] >= 0x20 && p[i] < 0x7f ? p[i] : '.', out);
        }
        fputs("|\n", out);
    }
}

struct block_lines {
    FILE *out;
    unsigned flags;
};

static int block_line(const carve_block *b, void *ctx)
{
    const struct block_lines *bl = ctx;
    fprintf(bl->out, "  %10zu %10zu %10zu  %s\n", b->offset, b->size, b->usable,
            kind_name(b->kind));
    if ((bl->flags & CARVE_DUMP_HEX) && b->payload) {
        dump_hex(b->payload, b->usable, bl->out);
    }
    return 0;
}

static void dump_blocks(carve_heap *h, FILE *out, unsigned flags)
{
    struct block_lines bl = {out, flags};
    fprintf(out, "  %10s %10s %10s  %s\n", "offset", "size", "usable", "kind");
    if (walk_unlocked(h, block_line, &bl) == CARVE_ERR_CORRUPT) {
        fputs("  !! a header fails its check: the walk stops here\n", out);
    }
}

CARVE_EXPORT void carve_dump_ex(carve_heap *h, FILE *out, unsigned flags)
{
    if (!h || !out) {
        return;
    }
    heap_enter(h);
    dump_summary(h, out);
    dump_picture(h, out);
    if (flags & (CARVE_DUMP_BLOCKS | CARVE_DUMP_HEX)) {
        dump_blocks(h, out, flags);
    }
    heap_leave(h);
}

CARVE_EXPORT void carve_dump(carve_heap *h, FILE *out)
{
    carve_dump_ex(h, out, CARVE_DUMP_BLOCKS);
}
