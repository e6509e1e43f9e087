/*
 * replay.h: what `carve replay` offers `carve map` and the tests: a trace
 * replayed on a carve heap in a given buffer, and the smallest heap a trace
 * fits in.
 */
#ifndef CARVE_TOOL_REPLAY_H
#define CARVE_TOOL_REPLAY_H

#include "engine.h"
#include "trace.h"

#include <carve.h>

#include <stdbool.h>
#include <stddef.h>

/* What a carve replay does besides replaying (all off when NULL). */
typedef struct replay_carve_extras {
    bool stop_at_failure, track_footprint, check_heap, progress;
    size_t samples;
    replay_sample_fn sample;
    void *sample_ctx;
    const char *progress_label;
} replay_carve_extras;

/* The buffer a replay uses by default: 2 x the trace's need (the floor,
 * each aligned request counted with its alignment slack) + 16 MiB, reserved
 * (MAP_NORESERVE): only the pages the heap touches cost memory. */
size_t replay_default_heap_size(const trace *t);
unsigned char *replay_buffer_map(size_t size); /* NULL with errno */
void replay_buffer_unmap(unsigned char *p, size_t size);

/* Replays t on a fresh heap (policy, no flags) made from buffer[0, size).
 * st, if not NULL, receives the heap's statistics after the replay (before
 * the final cleanup is visible: the counters are cumulative).  Returns
 * replay_run's result; o->error with a message when carve_init fails. */
int replay_carve(const trace *t, unsigned char *buffer, size_t size, carve_policy policy,
                 const replay_carve_extras *x, replay_outcome *o, carve_stats *st);

typedef struct replay_min {
    size_t bytes;     /* the smallest heap size found that fits */
    size_t fails;     /* a size known not to fit, bytes - fails <= precision */
    size_t precision; /* max(512 B, floor / 1000) */
    size_t probes;    /* replays it took */
} replay_min;

/* The smallest heap the whole trace replays in without a failed
 * allocation, by bisection between the floor (nothing fits below) and
 * start (0: the default size; doubled until it fits, up to 64 x the need
 * + 1 MiB).  0, or -1 with why. */
int replay_find_min(const trace *t, carve_policy policy, size_t start, replay_min *m, char *why,
                    size_t whylen);

#endif /* CARVE_TOOL_REPLAY_H */
