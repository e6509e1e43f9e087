/*
 * engine_realloc_test: when the pattern check after a realloc fails, the
 * replay's cleanup frees the block realloc returned, never the old pointer.
 *
 * A correct malloc never fails that check, so the fault is injected: this
 * file compiles the tool's engine.c with realloc and free renamed to the
 * wrappers below (macros defined after the system headers, so only
 * engine.c's calls are renamed).  The replay runs on this process's malloc,
 * as `carve replay --compare`'s glibc child does.  The injected realloc
 * moves the block and overwrites its first byte; the replay must stop with
 * "after realloc", then free the moved block and not free the old pointer
 * again (under glibc that second free aborts the child: "free(): double
 * free detected in tcache 2").
 *
 * Copyright (c) 2026 the carve authors.  MIT licence (see LICENSE).
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"

#define OLD_SIZE 100u
#define NEW_SIZE 5000u

static unsigned char *g_old;   /* the pointer the injected realloc moved away from */
static unsigned char *g_moved; /* the block it returned */
static int g_old_frees;        /* frees of g_old by the engine: must stay 0 */
static bool g_moved_freed;

/* Moves the block to a new one whose first byte is overwritten.  The old
 * block stays allocated until the end of the test, so that no later
 * allocation gets its address and a free of it is always the stale one. */
static void *fault_realloc(void *p, size_t n)
{
    unsigned char *q = malloc(n);
    if (q == NULL) {
        return NULL;
    }
    memcpy(q, p, OLD_SIZE < n ? OLD_SIZE : n);
    q[0] ^= 0xffu;
    g_old = p;
    g_moved = q;
    return q;
}

static void fault_free(void *p)
{
    if (p != NULL && p == g_old) {
        g_old_frees++; /* counted, not freed: the old block is still ours */
        return;
    }
    if (p != NULL && p == g_moved) {
        g_moved_freed = true;
    }
    free(p);
}

#define realloc fault_realloc
#define free    fault_free
#include "engine.c"
#undef realloc
#undef free

int main(void)
{
    /* a 1 100; a 2 100; r 1 3 5000; f 2; f 3 (the realloc is op 2) */
    trace_op ops[] = {
        {OLD_SIZE, 0, TRACE_MALLOC, 0},  {OLD_SIZE, 1, TRACE_MALLOC, 0},
        {NEW_SIZE, 0, TRACE_REALLOC, 0}, {0, 1, TRACE_FREE, 0},
        {0, 0, TRACE_FREE, 0},
    };
    uint32_t lines[] = {2, 3, 4, 5, 6};
    trace t;
    memset(&t, 0, sizeof t);
    t.path = "injected.trace";
    t.ops = ops;
    t.lines = lines;
    t.op_count = sizeof ops / sizeof ops[0];
    t.slot_count = 2;
    replay_config c;
    memset(&c, 0, sizeof c);
    c.t = &t; /* heap NULL: this process's malloc */
    replay_slot slots[2];
    replay_outcome o;
    int rc = replay_run(&c, slots, &o);
    int bad = 0;
    if (rc != -1 || !o.error || strstr(o.message, "after realloc") == NULL) {
        fprintf(stderr,
                "engine_realloc_test: the replay did not stop on the overwritten block "
                "(rc %d, message '%s')\n",
                rc, o.message);
        bad = 1;
    }
    if (g_old_frees != 0) {
        fprintf(stderr,
                "engine_realloc_test: FAILED: cleanup freed the pointer realloc had moved away "
                "from (a double free under glibc)\n");
        bad = 1;
    }
    if (!g_moved_freed) {
        fprintf(stderr,
                "engine_realloc_test: FAILED: cleanup did not free the block realloc returned\n");
        bad = 1;
    }
    free(g_old);
    if (bad == 0) {
        printf("engine_realloc_test: ok (%s)\n", o.message);
    }
    return bad;
}
