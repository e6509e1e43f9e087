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

/* Where an aligned block lands in the heap, and so every space figure,
 * depends on the buffer's address modulo the block's alignment: a buffer
 * at an address that is a multiple of the trace's largest alignment makes
 * the figures depend on the trace, the policy and the size only, not on
 * where the kernel (ASLR) put the mapping.  That alignment is capped at
 * REPLAY_BUFFER_ALIGN_MAX (reserving it costs address space, not memory);
 * a trace asking for more is replayed on a buffer aligned to the cap, and
 * replay_warn_alignment says its figures may vary from run to run. */
#define REPLAY_BUFFER_ALIGN_MAX ((size_t)1 << (sizeof(void *) >= 8u ? 30u : 24u))

/* The alignment replay_buffer_map should give a buffer for t: the larger
 * of the page size and t's largest alignment, at most the cap. */
size_t replay_buffer_alignment(const trace *t);

/* A warning on stderr ("carve CMD: warning: ...") when t asks for an
 * alignment above REPLAY_BUFFER_ALIGN_MAX; nothing otherwise. */
void replay_warn_alignment(const char *cmd, const trace *t);

/* size bytes at an address that is a multiple of alignment (a power of
 * two; at most the page size means any page).  NULL with errno. */
unsigned char *replay_buffer_map(size_t size, size_t alignment);
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
