/*
 * cancel_test: a thread cancelled while it allocates, under the shim with
 * CARVE_TRACE on.  glibc's malloc family has no cancellation point, so a
 * deferred cancel must not act inside it: the shim's trace writes its
 * buffer with write(2) under its lock, and a cancel acted on there unwinds
 * out of malloc with the lock held (the next malloc of any thread waits for
 * ever).
 *
 * The worker cancels itself, then makes enough malloc/free calls for the
 * trace buffer (256 KiB) to be written several times; the only cancellation
 * point of its own comes after them (pthread_testcancel).  It must get
 * there: a worker that ended inside the loop was cancelled inside the shim.
 * No timing is involved.  Run with CARVE_TRACE set and the shim preloaded.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PAIRS 200000 /* at least 4 bytes a line: > 1.5 MB of trace */

static atomic_int g_reached_end;

static void *worker(void *arg)
{
    (void)arg;
    pthread_cancel(pthread_self()); /* deferred: pending until a cancellation point */
    for (int i = 0; i < PAIRS; i++) {
        void *volatile p = malloc(32);
        free(p);
    }
    atomic_store(&g_reached_end, 1);
    pthread_testcancel();
    return NULL;
}

/* write(2) and _exit: after a failure the trace lock may be held, and
 * stdio or exit() would allocate (and wait for ever). */
static void say(const char *s)
{
    ssize_t ignored = write(STDOUT_FILENO, s, strlen(s));
    (void)ignored;
}

int main(void)
{
    alarm(120); /* a hang guard for the checks below, not a measurement */
    pthread_t t;
    void *result = NULL;
    if (pthread_create(&t, NULL, worker, NULL) != 0 || pthread_join(t, &result) != 0) {
        say("cancel_test: cannot run the worker thread\n");
        return 2;
    }
    if (result != PTHREAD_CANCELED) {
        say("cancel_test: the worker was not cancelled\n");
        _exit(1);
    }
    if (!atomic_load(&g_reached_end)) {
        say("cancel_test: FAILED: the cancel acted inside malloc or free (a cancellation "
            "point in the shim)\n");
        _exit(1);
    }
    /* The trace lock is free: this thread allocates and exits (the shim's
     * exit flush takes the lock too). */
    void *volatile p = malloc(100);
    free(p);
    say("cancel_test: ok\n");
    return 0;
}
