/*
 * fork_trim_test: a fork() child still gives freed pages back to the OS
 * when the fork came while another thread was trimming.
 *
 * The shim lets one thread at a time trim (a flag claimed before
 * carve_trim and cleared after it).  A thread here frees in a loop; with
 * CARVE_TRIM_THRESHOLD=1 every free trims, so a fork() often finds the
 * thread holding the flag: the library's fork handler even keeps it there,
 * waiting at the heap's lock with the flag claimed until the fork is done
 * (about one fork in four, measured).  The child inherits the flag as it
 * was; left claimed, no thread of the child would ever trim again.  Each
 * child touches a large block, frees it and checks that its resident set
 * (from /proc/self/statm) dropped by most of the block.  Every child must
 * pass, whenever its fork came: the test counts failures, it times
 * nothing.
 *
 *   fork_trim_test [FORKS]      (under libcarve-malloc.so, CARVE_TRIM_THRESHOLD=1)
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "resident.h"

/* Blocks of about a KiB hit the window more often than large ones (a
 * quarter of the forks against a few percent at 1 MiB): their malloc and
 * free are quick, so more of the loop is spent inside it. */
#define CHURN_BLOCK ((size_t)1000)
#define CHILD_BLOCK ((size_t)4 << 20)

static atomic_int g_stop;

static void *churn(void *arg)
{
    (void)arg;
    while (!atomic_load(&g_stop)) {
        char *volatile p = malloc(CHURN_BLOCK);
        if (!p) {
            abort();
        }
        p[0] = 1;
        free(p);
    }
    return NULL;
}

/* 0 when freeing a touched CHILD_BLOCK gave most of its pages back. */
static int child_check(int k)
{
    alarm(10); /* a deadlock in the child fails the test instead of hanging it */
    char *guard = malloc(64);
    char *p = malloc(CHILD_BLOCK);
    char *tail = malloc(64); /* keeps p's pages off the heap's free tail */
    if (!guard || !p || !tail) {
        return 2;
    }
    /* One volatile write per page: a memset of a block freed unread may
     * be optimised away, and these pages must be resident. */
    for (size_t i = 0; i < CHILD_BLOCK; i += 4096) {
        ((volatile char *)p)[i] = 1;
    }
    size_t full = resident_bytes_of("fork_trim_test");
    free(p);
    size_t after = resident_bytes_of("fork_trim_test");
    if (after + CHILD_BLOCK / 2 > full) {
        fprintf(stderr, "fork_trim_test: child %d: freeing %zu KiB gave back %zu KiB\n", k,
                CHILD_BLOCK >> 10, full > after ? (full - after) >> 10 : 0);
        return 1;
    }
    free(guard);
    free(tail);
    return 0;
}

int main(int argc, char **argv)
{
    int forks = argc > 1 ? atoi(argv[1]) : 100;
    pthread_t t;
    if (pthread_create(&t, NULL, churn, NULL) != 0) {
        fprintf(stderr, "fork_trim_test: pthread_create failed\n");
        return 2;
    }
    int bad = 0;
    for (int k = 0; k < forks; k++) {
        fflush(stdout);
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            bad++;
            break;
        }
        if (pid == 0) {
            _exit(child_check(k)); /* _exit: the child's own check is all it does */
        }
        int st;
        if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            bad++;
        }
    }
    atomic_store(&g_stop, 1);
    pthread_join(t, NULL);
    printf("fork_trim_test: %d forks, %d children did not trim\n", forks, bad);
    return bad != 0;
}
