/*
 * engine.h: replaying a trace on a carve heap or on this process's malloc.
 *
 * Every block gets a verifiable pattern: one 8-byte word in every 64 bytes
 * (so every cache line the program would have touched is touched) and the
 * block's last bytes, each word derived from the block's tag and its
 * position.  The pattern is checked when the block is freed or reallocated
 * (the part a realloc keeps) and at the end, so a replay that finishes also
 * proves no block was overwritten by another one or by the allocator.
 * calloc'd blocks are checked to read as zero first.
 *
 * All operations replay in one thread, in trace order, whatever `t` lines
 * say.
 */
#ifndef CARVE_TOOL_ENGINE_H
#define CARVE_TOOL_ENGINE_H

#include "trace.h"

#include <carve.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One live block of the replay. */
typedef struct replay_slot {
    unsigned char *ptr; /* NULL when no block is live in the slot */
    size_t size;        /* the bytes the trace asked for */
    uint64_t tag;       /* 1 + the index of the operation that wrote the pattern */
} replay_slot;

typedef void (*replay_sample_fn)(void *ctx, size_t ops_done, carve_heap *heap);

typedef struct replay_config {
    const trace *t;
    carve_heap *heap;          /* NULL: this process's malloc */
    const unsigned char *base; /* the heap's buffer, for footprint offsets */
    bool stop_at_failure;      /* end at the first failed allocation */
    bool track_footprint;      /* carve: the highest byte any live block reached */
    bool check_heap;           /* carve: carve_check at every sample and at the end */
    size_t samples;            /* sample() calls at evenly spaced points (and at the end) */
    replay_sample_fn sample;
    void *sample_ctx;
    bool progress; /* a progress bar on stderr once a run takes over 0.5 s */
    const char *progress_label;
} replay_config;

typedef struct replay_outcome {
    size_t ops_done;
    size_t failed_allocs;
    size_t first_failure_op; /* index of the first failed allocation (if any) */
    double seconds;          /* the operations only: not the final cleanup nor samples */
    size_t footprint;        /* track_footprint: highest end offset of a live block */
    bool error;              /* the replay stopped: a pattern or a library error */
    char message[512];
} replay_outcome;

/* Replays c->t.  slots must hold c->t->slot_count entries (contents
 * ignored).  Frees every block still live at the end, checking it.
 * Returns 0 when the replay ran through (failed allocations are counted,
 * not errors), -1 when it stopped on an error (message set) or, with
 * stop_at_failure, at a failed allocation. */
int replay_run(const replay_config *c, replay_slot *slots, replay_outcome *o);

#endif /* CARVE_TOOL_ENGINE_H */
