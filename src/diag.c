/*
 * diag.c: what the heap can tell about itself: status strings, counters,
 * the integrity walk, the block walk and the printed map.
 */
#include "index.h"

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

static void stats_unlocked(carve_heap *h, carve_stats *out)
{
    uint64_t largest = index_largest(h);
    memset(out, 0, sizeof *out);
    out->capacity = clamp_size(h->arena_end - h->arena_begin);
    out->used_bytes = clamp_size(h->used_bytes);
    out->free_bytes = clamp_size(h->free_bytes);
    out->largest_free = largest ? clamp_size(bytes_of(largest) - HDR_SIZE) : 0;
    out->live_blocks = clamp_size(h->live_blocks);
    out->free_blocks = clamp_size(h->free_blocks);
    out->live_handles = clamp_size(h->live_handles);
    out->pinned_handles = clamp_size(h->pinned_handles);
    out->peak_used_bytes = clamp_size(h->peak_used_bytes);
    out->allocs = h->allocs;
    out->frees = h->frees;
    out->failed_allocs = h->failed_allocs;
    out->compactions = h->compactions;
    out->bytes_moved = h->bytes_moved;
}

CARVE_EXPORT void carve_get_stats(carve_heap *h, carve_stats *out)
{
    if (!h || !out) {
        return;
    }
    heap_lock_for_diag(h);
    stats_unlocked(h, out);
    heap_unlock_for_diag(h);
}

/* ---- the integrity walk ---------------------------------------------------------- */

struct chain_totals {
    uint64_t used, free, live, free_blocks, quarantined;
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
            } else if (kind == KIND_RAW || kind == KIND_HANDLE) {
                t->live++;
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
    struct chain_totals t = {0, 0, 0, 0, 0};
    if (!control_is_valid(h) || !chain_is_sound(h, &t)) {
        return CARVE_ERR_CORRUPT;
    }
    bool counters_agree = t.used == h->used_bytes && t.free == h->free_bytes &&
                          t.live == h->live_blocks && t.free_blocks == h->free_blocks &&
                          t.quarantined == h->quarantined_blocks;
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
    heap_lock_for_diag(h);
    int st = check_unlocked(h);
    heap_unlock_for_diag(h);
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
    out->usable = out->kind == CARVE_BLOCK_FREE ? 0 : clamp_size(size - HDR_SIZE);
    out->payload = out->kind == CARVE_BLOCK_FREE ? NULL : block_payload(h, b);
    out->pinned = 0;
}

static int walk_unlocked(carve_heap *h, int (*visit)(const carve_block *b, void *ctx), void *ctx)
{
    for (ref b = h->arena_begin; b < h->arena_end;) {
        hword w;
        if (!block_read(h, b, &w)) {
            return CARVE_ERR_CORRUPT;
        }
        carve_block info;
        describe_block(h, b, w, &info);
        int r = visit(&info, ctx);
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
    heap_lock_for_diag(h);
    int r = walk_unlocked(h, visit, ctx);
    heap_unlock_for_diag(h);
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
    double frag = s.free_bytes ? 100.0 * (1.0 - (double)s.largest_free / (double)s.free_bytes) : 0.0;
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

/* One character per 1/64 of the arena: '#' all live, '.' all free, '%'
 * both, 'H' handle blocks, '!' quarantined. */
static void dump_picture(carve_heap *h, FILE *out)
{
    uint64_t span = h->arena_end - h->arena_begin;
    uint64_t live[PICTURE_CELLS] = {0};
    uint64_t freeb[PICTURE_CELLS] = {0};
    unsigned char special[PICTURE_CELLS] = {0};
    for (ref b = h->arena_begin; b < h->arena_end;) {
        hword w;
        if (!block_read(h, b, &w)) {
            break;
        }
        uint64_t lo = b - h->arena_begin;
        uint64_t hi = lo + bytes_of(hdr_granules(w));
        carve_block_kind kind = public_kind(w);
        for (unsigned c = (unsigned)(lo * PICTURE_CELLS / span); c < PICTURE_CELLS; c++) {
            uint64_t c_lo = span * c / PICTURE_CELLS;
            uint64_t c_hi = span * (c + 1u) / PICTURE_CELLS;
            if (c_lo >= hi) {
                break;
            }
            uint64_t overlap = (hi < c_hi ? hi : c_hi) - (lo > c_lo ? lo : c_lo);
            if (kind == CARVE_BLOCK_FREE) {
                freeb[c] += overlap;
            } else {
                live[c] += overlap;
                if (kind == CARVE_BLOCK_HANDLE && special[c] == 0) {
                    special[c] = 'H';
                } else if (kind == CARVE_BLOCK_QUARANTINED) {
                    special[c] = '!';
                }
            }
        }
        b = block_next(b, hdr_granules(w));
    }
    fputs("  map |", out);
    for (unsigned c = 0; c < PICTURE_CELLS; c++) {
        char ch = live[c] && freeb[c] ? '%' : live[c] ? '#' : '.';
        fputc(special[c] ? special[c] : ch, out);
    }
    fputs("|  (# live  . free  % both)\n", out);
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

static void dump_blocks(carve_heap *h, FILE *out, unsigned flags)
{
    fprintf(out, "  %10s %10s %10s  %s\n", "offset", "size", "usable", "kind");
    for (ref b = h->arena_begin; b < h->arena_end;) {
        hword w;
        if (!block_read(h, b, &w)) {
            fprintf(out, "  %10" PRIu64 "  !! header fails its check: the walk stops here\n", b);
            return;
        }
        carve_block info;
        describe_block(h, b, w, &info);
        fprintf(out, "  %10zu %10zu %10zu  %s\n", info.offset, info.size, info.usable,
                kind_name(info.kind));
        if ((flags & CARVE_DUMP_HEX) && info.payload) {
            dump_hex(info.payload, info.usable, out);
        }
        b = block_next(b, hdr_granules(w));
    }
}

CARVE_EXPORT void carve_dump_ex(carve_heap *h, FILE *out, unsigned flags)
{
    if (!h || !out) {
        return;
    }
    heap_lock_for_diag(h);
    dump_summary(h, out);
    dump_picture(h, out);
    if (flags & (CARVE_DUMP_BLOCKS | CARVE_DUMP_HEX)) {
        dump_blocks(h, out, flags);
    }
    heap_unlock_for_diag(h);
}

CARVE_EXPORT void carve_dump(carve_heap *h, FILE *out)
{
    carve_dump_ex(h, out, CARVE_DUMP_BLOCKS);
}
