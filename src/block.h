/*
 * block.h: block layout.  Headers, boundary tags and free-list links, read
 * and written only through the accessors below.
 *
 * A block is a run of granules (16 bytes) starting with an 8-byte header
 * word; the payload follows the header and is 16-aligned.
 *
 *   header word:  bit 0      FREE       this block is in the free index
 *                 bit 1      PREV_FREE  the block before it is free, so the
 *                                       8 bytes before this header are that
 *                                       block's footer
 *                 bits 2-4   KIND       raw, handle, quarantined, run or handle
 *                                       table (live blocks only)
 *                 bits 5-43  size in granules (the whole block)
 *                 bits 44-63 check: a hash of bits 0-43, the header's own
 *                            offset and the heap's salt
 *
 *   free block:   [header][next ref][prev ref] ... [footer = copy of header]
 *   live block:   [header][payload .......................................]
 *
 * Invariants (checked by carve_check):
 *   - blocks tile the arena; no two free blocks are adjacent;
 *   - PREV_FREE of every block (and the sentinel) equals FREE of the block
 *     before it; a free block's footer equals its header;
 *   - every word that stops being a header (a block merged into another) is
 *     zeroed, so a stale pointer never finds a valid header: the check is
 *     keyed by the offset, so a header copied elsewhere is not valid there.
 */
#ifndef CARVE_BLOCK_H
#define CARVE_BLOCK_H

#include "internal.h"

#define HDR_FREE       UINT64_C(1)
#define HDR_PREV_FREE  UINT64_C(2)
#define HDR_KIND_SHIFT 2u
#define HDR_KIND_MASK  (UINT64_C(7) << HDR_KIND_SHIFT)
#define HDR_SIZE_SHIFT 5u
#define HDR_LOW_BITS   44u
#define HDR_LOW_MASK   ((UINT64_C(1) << HDR_LOW_BITS) - 1u)

/* KIND_HANDLE: a relocatable block whose last word names its handle-table
 * entry; KIND_RUN: a run of small slots (small.h); KIND_TABLE: the handle
 * table itself (handles.c) or the general blocks' cache record (gcache.h);
 * KIND_CACHED: a freed raw block held in that cache.  Only raw and handle
 * blocks are the user's. */
enum block_kind {
    KIND_RAW = 0,
    KIND_HANDLE = 1,
    KIND_QUARANTINE = 2,
    KIND_RUN = 3,
    KIND_TABLE = 4,
    KIND_CACHED = 5
};

CARVE_INLINE bool kind_is_users(unsigned kind)
{
    return kind == KIND_RAW || kind == KIND_HANDLE;
}

/* ---- the header word ------------------------------------------------------ */

/* The check: the top 20 bits of one multiply by an odd constant.  It is
 * read and written on every header the general heap touches (about a dozen
 * a W2 operation), so it is kept to a multiply.  What it must catch it does:
 * a multiply by an odd number carries every input bit into all the bits
 * above it, so any change to bits 0-43 (one flipped bit, or any difference
 * whose lowest set bit is below 44) moves the top 20 unless the difference
 * times the constant happens to clear them (about 1 in 2^20, like any 20-bit
 * check), a change to the check bits themselves shows at once, and a
 * header copied to another offset has its input moved by the offset's bits,
 * so it fails there the same way.  It guards against accidents (overruns,
 * stale pointers, stray writes), not against someone forging headers: the
 * salt is in the buffer for anyone to read. */
CARVE_INLINE uint64_t hdr_check_bits(const carve_heap *h, ref off, uint64_t low)
{
    return ((low ^ (off << 20) ^ h->salt) * UINT64_C(0x9e3779b97f4a7c15)) >> HDR_LOW_BITS;
}

CARVE_INLINE hword hdr_make(const carve_heap *h, ref off, uint64_t granules, uint64_t flags)
{
    uint64_t low = (granules << HDR_SIZE_SHIFT) | flags;
    return low | (hdr_check_bits(h, off, low) << HDR_LOW_BITS);
}

CARVE_INLINE bool hdr_valid(const carve_heap *h, ref off, hword w)
{
    return (w >> HDR_LOW_BITS) == hdr_check_bits(h, off, w & HDR_LOW_MASK);
}

CARVE_INLINE uint64_t hdr_granules(hword w)
{
    return (w & HDR_LOW_MASK) >> HDR_SIZE_SHIFT;
}

CARVE_INLINE bool hdr_is_free(hword w)
{
    return (w & HDR_FREE) != 0;
}

CARVE_INLINE bool hdr_prev_free(hword w)
{
    return (w & HDR_PREV_FREE) != 0;
}

CARVE_INLINE unsigned hdr_kind(hword w)
{
    return (unsigned)((w & HDR_KIND_MASK) >> HDR_KIND_SHIFT);
}

/* The flags of a header word without its size and check. */
CARVE_INLINE uint64_t hdr_flags(hword w)
{
    return w & (HDR_FREE | HDR_PREV_FREE | HDR_KIND_MASK);
}

/* ---- reading and writing blocks -------------------------------------------- */

CARVE_INLINE hword block_header(const carve_heap *h, ref b)
{
    return load64(at(h, b));
}

CARVE_INLINE void block_set_header(carve_heap *h, ref b, uint64_t granules, uint64_t flags)
{
    store64(at(h, b), hdr_make(h, b, granules, flags));
}

/* Rewrites only the PREV_FREE bit of the header at b (check recomputed). */
CARVE_INLINE void block_set_prev_free(carve_heap *h, ref b, bool prev_free)
{
    hword w = block_header(h, b);
    uint64_t flags = hdr_flags(w) & ~HDR_PREV_FREE;
    block_set_header(h, b, hdr_granules(w), flags | (prev_free ? HDR_PREV_FREE : 0));
}

/* A word that is no longer a header: zeroed so no stale pointer matches it. */
/* Erases a header that stops being one (its block merged into another).
 * The compaction cursor never points at anything but a header: a slice
 * that resumed at a place that is now inside a block would read the
 * payload, which the block's owner may be writing right then (a pinned
 * block, from another thread). */
CARVE_INLINE void block_erase_header(carve_heap *h, ref b)
{
    store64(at(h, b), 0);
    if (h->compact_cursor == b) {
        h->compact_cursor = 0;
    }
}

CARVE_INLINE uint64_t bytes_of(uint64_t granules)
{
    return granules << GRANULE_SHIFT;
}

CARVE_INLINE ref block_next(ref b, uint64_t granules)
{
    return b + bytes_of(granules);
}

CARVE_INLINE void *block_payload(const carve_heap *h, ref b)
{
    return at(h, b + HDR_SIZE);
}

/* Free blocks: links live in the payload, the footer in the last word. */
CARVE_INLINE ref free_next(const carve_heap *h, ref b)
{
    return load64(at(h, b + 8));
}

CARVE_INLINE ref free_prev(const carve_heap *h, ref b)
{
    return load64(at(h, b + 16));
}

CARVE_INLINE void free_set_next(carve_heap *h, ref b, ref next)
{
    store64(at(h, b + 8), next);
}

CARVE_INLINE void free_set_prev(carve_heap *h, ref b, ref prev)
{
    store64(at(h, b + 16), prev);
}

/* Writes header and footer of a free block at b. */
CARVE_INLINE void block_make_free(carve_heap *h, ref b, uint64_t granules)
{
    hword w = hdr_make(h, b, granules, HDR_FREE);
    store64(at(h, b), w);
    store64(at(h, b + bytes_of(granules) - 8), w);
}

/* Whether off can be a block header inside the arena (range and alignment). */
CARVE_INLINE bool block_offset_plausible(const carve_heap *h, ref off)
{
    return off >= h->arena_begin && off < h->arena_end && ((off - h->arena_begin) & 15u) == 0;
}

/* ---- block.c --------------------------------------------------------------- */

/* Reads the header at b, an offset known to be granule-aligned and within
 * [arena_begin, arena_end] (a block's physical successor, or a pointer that
 * was range-checked), and validates it (check, size inside the arena).
 * Returns false when it cannot be trusted.  b == arena_end reads the
 * sentinel. */
CARVE_INLINE bool block_read_placed(const carve_heap *h, ref b, hword *out)
{
    hword w = block_header(h, b);
    if (b == h->arena_end) { /* the sentinel: an empty, permanently live block */
        *out = w;
        return hdr_valid(h, b, w) && hdr_granules(w) == 0 && !hdr_is_free(w);
    }
    if (!hdr_valid(h, b, w)) {
        return false;
    }
    uint64_t g = hdr_granules(w);
    if (g < MIN_GRANULES || g > (h->arena_end - b) >> GRANULE_SHIFT) {
        return false;
    }
    *out = w;
    return true;
}

/* The same for any offset b: false also when b cannot be a header (outside
 * the arena or misaligned). */
CARVE_INLINE bool block_read(const carve_heap *h, ref b, hword *out)
{
    return (b == h->arena_end || block_offset_plausible(h, b)) && block_read_placed(h, b, out);
}

/* Reads the header at any offset b when the caller knows what the block
 * must be: true when b can be a header and the header's low bits, PREV_FREE
 * aside (a neighbour's state, which may change), are exactly `low` (size,
 * kind, free bit: one comparison).  The size in low is at least
 * MIN_GRANULES; a block that would pass the arena's end fails.  The header's
 * check bits are not looked at (block_read_expecting does).  The header in
 * *out either way when b is plausible. */
CARVE_INLINE bool block_reads_as(const carve_heap *h, ref b, uint64_t low, hword *out)
{
    if (!block_offset_plausible(h, b)) {
        return false;
    }
    hword w = block_header(h, b);
    *out = w;
    return (w & (HDR_LOW_MASK & ~HDR_PREV_FREE)) == low &&
           (low >> HDR_SIZE_SHIFT) <= (h->arena_end - b) >> GRANULE_SHIFT;
}

/* block_reads_as, and the header's check holds too. */
CARVE_INLINE bool block_read_expecting(const carve_heap *h, ref b, uint64_t low, hword *out)
{
    return block_reads_as(h, b, low, out) && hdr_valid(h, b, *out);
}

/* The low bits block_read_expecting wants for a live block of g granules
 * and kind `kind`. */
CARVE_INLINE uint64_t live_low_bits(uint64_t g, unsigned kind)
{
    return (g << HDR_SIZE_SHIFT) | ((uint64_t)kind << HDR_KIND_SHIFT);
}

/* The free block before b (b's header has PREV_FREE), validated through its
 * footer and header; 0 when they fail their checks. */
ref block_prev_free(const carve_heap *h, ref b, hword *prev_w);

/* Whether off is the start of a block: walks the chain from the arena start
 * (O(n); only on error paths, to tell an interior pointer from an
 * overwritten header).  Returns 1 yes, 0 no, -1 the walk met a bad header. */
int block_is_boundary(const carve_heap *h, ref off);

/* Poisoning (CARVE_POISON): the payload of a free block past its links and
 * before its footer holds POISON_BYTE. */
void block_poison(carve_heap *h, ref b, uint64_t granules);
bool block_poison_intact(const carve_heap *h, ref b, uint64_t granules);

#endif /* CARVE_BLOCK_H */
