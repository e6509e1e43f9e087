/*
 * lock.h: the lock layer.  Public entry points take the heap's lock and call
 * the unlocked core; nothing below heap.c's entry points knows a lock exists.
 *
 * Modes: none (the default: no cost at all), an in-process mutex
 * (CARVE_THREADSAFE), a process-shared, robust mutex living inside the
 * buffer (CARVE_SHARED), and the user's own lock through carve_lock_hooks.
 */
#ifndef CARVE_LOCK_H
#define CARVE_LOCK_H

#include "carve.h"

#include <pthread.h>
#include <stdbool.h>

typedef struct carve_lock {
    pthread_mutex_t mutex;
    /* The user's lock, when hooks.lock is set.  Function pointers are only
     * meaningful in the process that stored them, which is why a heap with
     * hooks is reattached with carve_attach_with_lock(). */
    carve_lock_hooks hooks;
} carve_lock;

/* Initialises the built-in mutex for these heap flags; returns 0 or an
 * errno value. */
int lock_init(carve_lock *l, unsigned flags);
/* Whether hooks can serve as a heap's lock (lock and unlock both set). */
bool lock_hooks_valid(const carve_lock_hooks *hooks);
/* Installs the user's hooks (lock_hooks_valid holds). */
void lock_set_hooks(carve_lock *l, const carve_lock_hooks *hooks);

/* Takes the lock.  Returns true when the previous owner died holding it
 * (a CARVE_SHARED heap whose user process crashed): the caller then owns a
 * lock over metadata that may be half-updated. */
bool lock_acquire(carve_lock *l);
void lock_release(carve_lock *l);
/* Debug builds: whether the caller holds a user lock that can tell (true
 * when it cannot, or for the built-in mutex, which does not record its
 * owner). */
bool lock_held_or_unknown(const carve_lock *l);
void lock_destroy(carve_lock *l);

#endif /* CARVE_LOCK_H */
