/*
 * lock.h: the lock layer.  Public entry points take the heap's lock and call
 * the unlocked core; nothing below heap.c's entry points knows a lock exists.
 *
 * Modes: none (the default: no cost at all), an in-process mutex
 * (CARVE_THREADSAFE) and a process-shared, robust mutex living inside the
 * buffer (CARVE_SHARED).
 */
#ifndef CARVE_LOCK_H
#define CARVE_LOCK_H

#include <pthread.h>
#include <stdbool.h>

typedef struct carve_lock {
    pthread_mutex_t mutex;
} carve_lock;

/* Initialises the lock for these heap flags; returns 0 or an errno value. */
int lock_init(carve_lock *l, unsigned flags);
/* Takes the lock.  Returns true when the previous owner died holding it
 * (a CARVE_SHARED heap whose user process crashed): the caller then owns a
 * lock over metadata that may be half-updated. */
bool lock_acquire(carve_lock *l);
void lock_release(carve_lock *l);
void lock_destroy(carve_lock *l);

#endif /* CARVE_LOCK_H */
