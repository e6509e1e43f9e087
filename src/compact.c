/*
 * compact.c: compaction.
 *
 * Compaction slides each unpinned handle block (and the handle table's own
 * block) down into the free block just before it: the free space moves up past the block and merges
 * with whatever free space follows.  One pass from the start of the arena leaves every run of
 * movable blocks packed against the block before it, and all the free space between two barriers
 * (raw blocks, runs, the handle table, pinned blocks) merged into one block after them.  Each move
 * copies the block once (memmove, the regions may overlap), so the cost is the bytes moved plus the
 * blocks visited.
 *
 * The budget is a hard cap on bytes copied.  A budgeted walk stops at the
 * first movable block that costs more than what is left (a later call, with
 * a fresh budget, starts there), so a slice visits only the blocks up to
 * where its budget ran out; going on to look for smaller blocks further up
 * made every slice walk to the end of the heap (a 64 KiB slice of a 64 MiB
 * heap took up to a millisecond).  A block that costs more than the whole
 * budget could never move in a slice of this size, so it is passed over.
 * Every move leaves the heap consistent, so the walk can stop anywhere.
 */
#include "compact.h"

#include "handles.h"
#include "index.h"

#include <errno.h>

bool heap_compact_for(carve_heap *h, uint64_t g)
{
    if (h->htable == 0 || h->free_bytes < bytes_of(g)) {
        return false; /* nothing can move (no table: no handle either), or no room at all */
    }
    if (h->live_handles > h->pinned_handles) {
        (void)compact_unlocked(h, UINT64_MAX);
    } else {
        (void)heap_reclaim_cached(h);
        (void)compact_table_down(h);
    }
    return true;
}

/* What slide_down did. */
enum slide { SLIDE_REFUSED, SLIDE_MOVED, SLIDE_QUARANTINED };

/* Moves movable block m (header mw) down into free block f (fg granules)
 * just before it; the caller then points m's owner (its handle entry, or
 * the control block for the handle table) at f.  SLIDE_REFUSED, changing
 * nothing, when the neighbourhood fails a check.  With CARVE_POISON the
 * free blocks the move writes over (f, and the next block if it is free)
 * are checked first, since their poison is the only record of a write
 * after free: a damaged one is quarantined, as an allocation would, and
 * when that is f, m stays (SLIDE_QUARANTINED; m's header changed). */
static enum slide slide_down(carve_heap *h, ref f, uint64_t fg, ref m, hword mw)
{
    uint64_t mg = hdr_granules(mw);
    ref n = block_next(m, mg);
    hword nw;
    if (!list_links_valid(h, f, class_of(fg)) || !block_read(h, n, &nw) ||
        (hdr_is_free(nw) && !list_links_valid(h, n, class_of(hdr_granules(nw))))) {
        return SLIDE_REFUSED;
    }
    if (heap_quarantine_if_damaged(h, f, fg)) {
        return SLIDE_QUARANTINED;
    }
    if (hdr_is_free(nw) && heap_quarantine_if_damaged(h, n, hdr_granules(nw))) {
        nw = block_header(h, n); /* now a live (quarantined) block */
    }
    index_remove(h, f, fg);
    memmove(at(h, f + HDR_SIZE), at(h, m + HDR_SIZE), (size_t)(bytes_of(mg) - HDR_SIZE));
    /* f's own predecessor is live (free blocks never touch): no PREV_FREE. */
    block_set_header(h, f, mg, hdr_flags(mw) & ~HDR_PREV_FREE);
    ref hole = block_next(f, mg);
    uint64_t hole_g = fg;
    if (m > hole) {
        block_erase_header(h, m); /* the old header now lies inside the hole */
    }
    if (hdr_is_free(nw)) {
        uint64_t ng = hdr_granules(nw);
        index_remove(h, n, ng);
        block_erase_header(h, n);
        hole_g += ng;
    } else {
        block_set_prev_free(h, n, true);
    }
    block_make_free(h, hole, hole_g);
    if (h->flags & CARVE_POISON) {
        block_poison(h, hole, hole_g);
    }
    index_insert(h, hole, hole_g);
    return SLIDE_MOVED;
}

/* Where m's owner keeps its offset, if m may move now: an unpinned handle
 * block's entry, or the handle table's own block.  NULL when it may not. */
static ref *movable_owner(carve_heap *h, ref m, hword mw)
{
    if (hdr_is_free(mw)) {
        return NULL;
    }
    if (hdr_kind(mw) == KIND_TABLE && m == h->htable) {
        return &h->htable;
    }
    struct hentry *e = hdr_kind(mw) == KIND_HANDLE ? handle_entry_of_block(h, m, mw) : NULL;
    return e && e->pins == 0 ? &e->block : NULL;
}

/* One compaction walk over [from, to): slides what the budget allows.
 * Returns the offset where a later call should resume (the free block
 * before the first movable block it could not afford), or 0 when it left
 * nothing behind that a budget this size could move. */
static ref compact_range(carve_heap *h, ref from, ref to, uint64_t budget, uint64_t *moved)
{
    for (ref b = from; b < to;) {
        hword w;
        if (!block_read(h, b, &w)) {
            return 0; /* damage: stop; carve_check reports it */
        }
        uint64_t g = hdr_granules(w);
        ref m = block_next(b, g);
        hword mw;
        if (hdr_is_free(w) && m < h->arena_end && block_read(h, m, &mw)) {
            ref *owner = movable_owner(h, m, mw);
            uint64_t cost = bytes_of(hdr_granules(mw)) - HDR_SIZE;
            if (owner && cost <= budget - *moved) {
                enum slide done = slide_down(h, b, g, m, mw);
                if (done == SLIDE_REFUSED) {
                    return 0;
                }
                if (done == SLIDE_MOVED) {
                    *owner = b;
                    *moved += cost;
                    continue; /* b is now the moved block; the hole follows it */
                }
                b = m; /* b was quarantined: m stays, and the walk goes on */
                continue;
            }
            if (owner && cost <= budget) {
                return b; /* too big for what is left: a later call starts here */
            }
        }
        b = m;
    }
    return 0;
}

/* Counts a compaction that moved `moved` bytes (none: not a compaction). */
static void count_compaction(carve_heap *h, uint64_t moved)
{
    if (moved) {
        h->compactions++;
        h->bytes_moved += moved;
    }
}

uint64_t compact_table_down(carve_heap *h)
{
    ref t = h->htable;
    hword tw;
    hword pw;
    if (t == 0 || !block_read(h, t, &tw) || !hdr_prev_free(tw)) {
        return 0;
    }
    ref p = block_prev_free(h, t, &pw);
    if (p == 0 || slide_down(h, p, hdr_granules(pw), t, tw) != SLIDE_MOVED) {
        return 0;
    }
    h->htable = p;
    uint64_t moved = bytes_of(hdr_granules(tw)) - HDR_SIZE;
    count_compaction(h, moved);
    return moved;
}

uint64_t compact_unlocked(carve_heap *h, uint64_t budget)
{
    uint64_t moved = 0;
    /* Cached slots and blocks and empty retained runs would be barriers. */
    (void)heap_reclaim_cached(h);
    /* A budgeted slice carries on where the last one stopped, so it costs
     * the blocks it visits, not the whole heap.  If it reaches the end with
     * budget left it starts over from the beginning and walks to the end:
     * stopping at the old cursor would leave the hole it pushes up stuck in
     * front of blocks the first part already packed.  A full compaction
     * always walks the whole heap.  The cursor is only a hint: if no valid
     * header is there the walk starts over, and a false one can do no harm
     * (sliding needs a free block that its list links vouch for). */
    ref start = budget == UINT64_MAX ? 0 : h->compact_cursor;
    hword w;
    if (start == 0 || start >= h->arena_end || !block_read(h, start, &w)) {
        start = h->arena_begin;
    }
    ref resume = compact_range(h, start, h->arena_end, budget, &moved);
    if (resume == 0 && start != h->arena_begin && moved < budget) {
        resume = compact_range(h, h->arena_begin, h->arena_end, budget, &moved);
    }
    h->compact_cursor = resume;
    count_compaction(h, moved);
    return moved;
}

CARVE_EXPORT size_t carve_compact(carve_heap *h, size_t max_bytes_moved)
{
    if (!h) {
        return 0;
    }
    heap_enter(h);
    uint64_t moved = compact_unlocked(h, max_bytes_moved);
    heap_debug_check(h);
    heap_leave(h);
    return (size_t)moved;
}
