/*
 * compact.h: compaction.
 */
#ifndef CARVE_COMPACT_H
#define CARVE_COMPACT_H

#include "heap.h"

/* Slides unpinned handle blocks down into the free block before each, for
 * at most budget bytes copied; returns the bytes moved.  The lock is held. */
uint64_t compact_unlocked(carve_heap *h, uint64_t budget);

#endif /* CARVE_COMPACT_H */
