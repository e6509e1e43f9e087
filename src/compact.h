/*
 * compact.h: compaction.
 */
#ifndef CARVE_COMPACT_H
#define CARVE_COMPACT_H

#include "heap.h"

/* Slides unpinned handle blocks down into the free block before each, for
 * at most budget bytes copied; returns the bytes moved.  The lock is held. */
uint64_t compact_unlocked(carve_heap *h, uint64_t budget);

/* Slides the handle table's block into the free block just before it, if
 * there is one, and counts the move as a compaction; returns the bytes
 * moved.  With no handle live this leaves the free space on both sides of
 * the table as one block.  O(the table's size).  The lock is held. */
uint64_t compact_table_down(carve_heap *h);

#endif /* CARVE_COMPACT_H */
