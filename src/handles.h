/*
 * handles.h: the handle table and relocatable (handle) blocks.
 *
 * The table is one live general block of kind TABLE; its payload is an
 * array of 16-byte entries.  A live entry holds the offset of its block, a
 * generation and a pin count; a free entry holds block 0 and, in place of
 * the pin count, 1 + the index of the next free entry.  A handle is
 * (generation << 32) | (index + 1), so 0 is never a handle and a handle
 * whose entry has since been freed (generation bumped) never matches.
 *
 * A handle block is a general block of kind HANDLE whose last 8 bytes hold
 * its entry's index: compaction walks blocks in address order and finds
 * each block's entry from it, without searching.
 *
 * carve_pin / carve_unpin's fast path (handles.c) reads an entry's gen and
 * pins as one native 64-bit word and tells a free entry by block 0, so the
 * field order of struct hentry and that encoding are part of its contract.
 *
 * Invariants (checked by carve_check): every live entry names a HANDLE block
 * whose trailer names the entry back; every HANDLE block is named by its
 * entry; the free entries form one chain of hcap - live_handles entries;
 * pinned_handles counts the live entries with pins > 0.
 */
#ifndef CARVE_HANDLES_H
#define CARVE_HANDLES_H

#include "heap.h"

struct hentry {
    uint64_t block; /* offset of the handle's block; 0 = a free entry */
    uint32_t gen;   /* generation: bumped when the entry is freed, never 0 */
    uint32_t pins;  /* pin count; for a free entry, 1 + the next free index
                     * (gen and pins: one word for the pin fast path) */
};

#define HANDLE_TRAILER     8u  /* the index at the end of a handle block */
#define HANDLE_TABLE_FIRST 64u /* entries of a growing table at first */

/* Makes the table with cap entries (carve_init, when max_handles is set);
 * false when it does not fit. */
bool handles_table_create(carve_heap *h, uint64_t cap);

/* The entry a handle block names in its trailer, if that entry names the
 * block back and the table is sound; NULL otherwise. */
struct hentry *handle_entry_of_block(const carve_heap *h, ref b, hword w);

/* CARVE_SCRAMBLE: moves every unpinned handle block to a new block (each
 * once), so a pointer kept across an unpin goes stale at once. */
void scramble_unlocked(carve_heap *h);

/* For carve_check: whether the table and every entry agree with the
 * handle blocks the chain walk counted. */
bool handles_are_sound(const carve_heap *h, uint64_t handle_blocks, uint64_t table_blocks);

/* The pin count of handle block b (for carve_walk). */
unsigned handle_pins_of_block(const carve_heap *h, ref b, hword w);

#endif /* CARVE_HANDLES_H */
