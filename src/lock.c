/*
 * lock.c: the mutexes behind CARVE_THREADSAFE and CARVE_SHARED, and the
 * user's lock hooks.
 */
#define _POSIX_C_SOURCE 200809L /* robust mutexes, under -std=c11 */

#include "lock.h"

#include <errno.h>
#include <string.h>

int lock_init(carve_lock *l, unsigned flags)
{
    memset(&l->hooks, 0, sizeof l->hooks);
    pthread_mutexattr_t attr;
    int err = pthread_mutexattr_init(&attr);
    if (err != 0) {
        return err;
    }
    if (flags & CARVE_SHARED) {
        err = pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
#if defined(CARVE_HAVE_ROBUST_MUTEX)
        /* Robust where the platform has it: a process that dies holding the
         * lock does not wedge every other process on the heap. */
        if (err == 0) {
            err = pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
        }
#endif
    }
    if (err == 0) {
        err = pthread_mutex_init(&l->mutex, &attr);
    }
    pthread_mutexattr_destroy(&attr);
    return err;
}

bool lock_hooks_valid(const carve_lock_hooks *hooks)
{
    return hooks != NULL && hooks->lock != NULL && hooks->unlock != NULL;
}

void lock_set_hooks(carve_lock *l, const carve_lock_hooks *hooks)
{
    l->hooks = *hooks;
}

bool lock_acquire(carve_lock *l)
{
    if (l->hooks.lock) {
        l->hooks.lock(l->hooks.ctx);
        return false;
    }
    int err = pthread_mutex_lock(&l->mutex);
#if defined(CARVE_HAVE_ROBUST_MUTEX)
    if (err == EOWNERDEAD) {
        /* We own the lock now; mark it usable again.  Repairing whatever the
         * dead owner left half-done is the caller's business. */
        pthread_mutex_consistent(&l->mutex);
        return true;
    }
#endif
    (void)err;
    return false;
}

void lock_release(carve_lock *l)
{
    if (l->hooks.unlock) {
        l->hooks.unlock(l->hooks.ctx);
        return;
    }
    pthread_mutex_unlock(&l->mutex);
}

bool lock_held_or_unknown(const carve_lock *l)
{
    return !l->hooks.held || l->hooks.held(l->hooks.ctx) != 0;
}

void lock_destroy(carve_lock *l)
{
    if (!l->hooks.lock) {
        pthread_mutex_destroy(&l->mutex);
    }
}
