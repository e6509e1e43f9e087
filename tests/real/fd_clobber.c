/*
 * fd_clobber: a program that treats every descriptor above stderr as its
 * own, as daemons and shells do, run under the shim by fd-test.sh.  It puts
 * its own file at the low numbers, allocates enough for the shim to write
 * trace lines (more than the trace's 256 KiB buffer), writes two lines to
 * its file and exits normally (so CARVE_STATS prints its line).  The file
 * must hold only those two lines.
 *
 *   fd_clobber close FILE    close 3..63, then open FILE (it gets 3)
 *   fd_clobber dup2all FILE  open FILE and dup2 it onto every other open
 *                            descriptor from 3 up (the shim's included)
 */
#define _POSIX_C_SOURCE 200809L
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static void say(int fd, const char *s)
{
    if (write(fd, s, strlen(s)) != (ssize_t)strlen(s)) {
        perror("fd_clobber: write");
        exit(2);
    }
}

int main(int argc, char **argv)
{
    if (argc != 3 || (strcmp(argv[1], "close") != 0 && strcmp(argv[1], "dup2all") != 0)) {
        fprintf(stderr, "usage: fd_clobber close|dup2all FILE\n");
        return 2;
    }
    int own;
    if (strcmp(argv[1], "close") == 0) {
        for (int fd = 3; fd < 64; fd++) {
            (void)close(fd);
        }
        own = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    } else {
        own = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
        struct rlimit rl;
        int limit = 1024;
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
            limit = rl.rlim_cur < 65536 ? (int)rl.rlim_cur : 65536;
        }
        for (int fd = 3; own >= 0 && fd < limit; fd++) {
            if (fd != own && fcntl(fd, F_GETFD) >= 0 && dup2(own, fd) < 0) {
                perror("fd_clobber: dup2");
                return 2;
            }
        }
    }
    if (own < 0) {
        perror(argv[2]);
        return 2;
    }
    say(own, "program data\n");
    for (int i = 0; i < 100000; i++) {
        void *volatile p = malloc(100);
        free(p);
    }
    say(own, "program end\n");
    return 0;
}
