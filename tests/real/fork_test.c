/*
 * fork_test: fork() while other threads allocate and free.  Each child
 * allocates, reallocates, checks and frees blocks, then exits 0 (through
 * exit, so the shim's exit handlers run in the child too).  An alarm turns
 * a deadlock in a child (a lock held across fork by a thread that does not
 * exist in the child) into a failure instead of a hang.
 *
 *   fork_test [FORKS]
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define THREADS 3

static atomic_int g_stop;

static void *churn(void *arg)
{
    uint64_t s = (uint64_t)(uintptr_t)arg * 977u + 1u;
    void *keep[128] = {0};
    while (!atomic_load(&g_stop)) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        size_t i = (size_t)(s >> 33) % 128;
        free(keep[i]);
        size_t n = 1 + (size_t)(s >> 40) % 5000;
        keep[i] = malloc(n);
        if (!keep[i]) {
            abort();
        }
        memset(keep[i], (int)i, n);
    }
    for (size_t i = 0; i < 128; i++) {
        free(keep[i]);
    }
    return NULL;
}

static int child_work(int k)
{
    alarm(5);
    char **v = malloc(1000 * sizeof *v);
    if (!v) {
        return 2;
    }
    for (int i = 0; i < 1000; i++) {
        v[i] = malloc((size_t)(i % 300) + 1);
        if (!v[i]) {
            return 3;
        }
        memset(v[i], (i + k) & 0xff, (size_t)(i % 300) + 1);
    }
    for (int i = 0; i < 1000; i += 2) {
        char *q = realloc(v[i], (size_t)(i % 300) + 2000);
        if (!q) {
            return 4;
        }
        v[i] = q;
    }
    for (int i = 0; i < 1000; i++) {
        for (size_t j = 0; j <= (size_t)(i % 300); j++) {
            if ((unsigned char)v[i][j] != (unsigned char)((i + k) & 0xff)) {
                return 5;
            }
        }
        free(v[i]);
    }
    free(v);
    return 0;
}

int main(int argc, char **argv)
{
    int forks = argc > 1 ? atoi(argv[1]) : 20;
    pthread_t t[THREADS];
    for (uintptr_t i = 0; i < THREADS; i++) {
        pthread_create(&t[i], NULL, churn, (void *)i);
    }
    int bad = 0;
    for (int k = 0; k < forks; k++) {
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            bad++;
            break;
        }
        if (pid == 0) {
            exit(child_work(k));
        }
        int st;
        if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            if (WIFSIGNALED(st)) {
                fprintf(stderr, "fork_test: child %d killed by signal %d%s\n", k, WTERMSIG(st),
                        WTERMSIG(st) == SIGALRM ? " (deadlocked?)" : "");
            } else {
                fprintf(stderr, "fork_test: child %d exited with %d\n", k, WEXITSTATUS(st));
            }
            bad++;
            break; /* one is enough: do not wait for every alarm */
        }
    }
    atomic_store(&g_stop, 1);
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
    }
    printf("fork_test: %d forks, %d failed\n", forks, bad);
    return bad != 0;
}
