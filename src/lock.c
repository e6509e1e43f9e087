/*
 * lock.c: the mutexes behind CARVE_THREADSAFE and CARVE_SHARED.
 */
#include "lock.h"

#include "carve.h"

#include <errno.h>

int lock_init(carve_lock *l, unsigned flags)
{
    pthread_mutexattr_t attr;
    int err = pthread_mutexattr_init(&attr);
    if (err != 0) {
        return err;
    }
    if (flags & CARVE_SHARED) {
        err = pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
#if defined(PTHREAD_MUTEX_ROBUST)
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

bool lock_acquire(carve_lock *l)
{
    int err = pthread_mutex_lock(&l->mutex);
#if defined(PTHREAD_MUTEX_ROBUST)
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
    pthread_mutex_unlock(&l->mutex);
}

void lock_destroy(carve_lock *l)
{
    pthread_mutex_destroy(&l->mutex);
}
