/*
 * peers.c: child processes for peer mallocs (see peers.h) and for
 * `carve record`.
 */
#define _GNU_SOURCE /* dladdr, pipe2, environ */

#include "peers.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define TOOL_SANITIZED 1
#endif
#endif
#ifndef TOOL_SANITIZED
#define TOOL_SANITIZED 0
#endif

tool_peer tool_peers[] = {
    {"glibc", NULL, "libc.so", "", ""},
    {"jemalloc", "libjemalloc.so.2", "libjemalloc", "", ""},
    {"mimalloc", "libmimalloc.so.2", "libmimalloc", "", ""},
    {"tcmalloc", "libtcmalloc_minimal.so.4", "libtcmalloc", "", ""},
};
const size_t tool_peer_count = sizeof tool_peers / sizeof tool_peers[0];

tool_peer *tool_peer_find(const char *name)
{
    for (size_t i = 0; i < tool_peer_count; i++)
        if (strcmp(tool_peers[i].name, name) == 0)
            return &tool_peers[i];
    return NULL;
}

/* The directory libc was loaded from: Debian's multiarch directory, where
 * the peers' packages put their libraries too. */
static void libc_dir(char *dir, size_t len)
{
    Dl_info info;
    void *sym = dlsym(RTLD_DEFAULT, "fopen");
    dir[0] = '\0';
    if (sym == NULL || dladdr(sym, &info) == 0 || info.dli_fname == NULL)
        return;
    snprintf(dir, len, "%s", info.dli_fname);
    char *slash = strrchr(dir, '/');
    if (slash != NULL)
        *slash = '\0';
    else
        dir[0] = '\0';
}

void tool_peer_locate(tool_peer *p)
{
    p->path[0] = p->missing[0] = '\0';
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__) || TOOL_SANITIZED
    snprintf(p->missing, sizeof p->missing,
             "not measured in a sanitizer build (the sanitizer owns malloc)");
    return;
#endif
    if (p->soname == NULL)
        return;
    char dir[PATH_MAX], usr[PATH_MAX + 8];
    libc_dir(dir, sizeof dir);
    snprintf(usr, sizeof usr, "/usr%s", dir);
    const char *dirs[] = {dir, usr, "/usr/local/lib", "/usr/lib64", "/usr/lib", "/lib"};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        char candidate[2 * PATH_MAX];
        if (dirs[i][0] == '\0')
            continue;
        int n = snprintf(candidate, sizeof candidate, "%s/%s", dirs[i], p->soname);
        if (n > 0 && (size_t)n < sizeof p->path && access(candidate, R_OK) == 0) {
            memcpy(p->path, candidate, (size_t)n + 1u);
            return;
        }
    }
    snprintf(p->missing, sizeof p->missing, "%s not found (apt-get install %s)", p->soname,
             strcmp(p->name, "tcmalloc") == 0   ? "libgoogle-perftools-dev"
             : strcmp(p->name, "jemalloc") == 0 ? "libjemalloc-dev"
                                                : "libmimalloc-dev");
}

int tool_peer_verify(const char *marker, char *why, size_t whylen)
{
    Dl_info info;
    void *sym = dlsym(RTLD_DEFAULT, "malloc");
    if (sym == NULL || dladdr(sym, &info) == 0 || info.dli_fname == NULL) {
        snprintf(why, whylen, "cannot tell which library provides malloc");
        return -1;
    }
    if (strstr(info.dli_fname, marker) == NULL) {
        snprintf(why, whylen, "malloc comes from %s, not %s (the preload did not take)",
                 info.dli_fname, marker);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Environments                                                              */
/* ------------------------------------------------------------------------ */

/* environ with each NAME=VALUE of extra set (replacing the same NAME);
 * LD_PRELOAD in extra goes in front of an existing one.  keep_preload false
 * drops an existing LD_PRELOAD that extra does not set.  The strings of
 * environ are shared; the new ones are listed in owned (NULL-terminated). */
static char **build_environment(char *const extra[], int keep_preload, char ***owned)
{
    size_t n = 0, m = 0;
    while (environ[n] != NULL)
        n++;
    while (extra != NULL && extra[m] != NULL)
        m++;
    char **env = calloc(n + m + 1u, sizeof *env);
    *owned = calloc(m + 1u, sizeof **owned);
    if (env == NULL || *owned == NULL) {
        free(env);
        free(*owned);
        return NULL;
    }
    const char *old_preload = NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const char *e = environ[i];
        if (strncmp(e, "LD_PRELOAD=", 11) == 0) {
            old_preload = e + 11;
            continue;
        }
        int replaced = 0;
        for (size_t j = 0; j < m; j++) {
            size_t len = strcspn(extra[j], "=");
            if (strncmp(e, extra[j], len) == 0 && e[len] == '=')
                replaced = 1;
        }
        if (!replaced)
            env[k++] = environ[i];
    }
    size_t o = 0;
    int preload_set = 0;
    for (size_t j = 0; j < m; j++) {
        if (strncmp(extra[j], "LD_PRELOAD=", 11) == 0 && old_preload != NULL &&
            old_preload[0] != '\0' && keep_preload) {
            size_t len = strlen(extra[j]) + strlen(old_preload) + 2u;
            char *s = malloc(len);
            if (s == NULL)
                break;
            snprintf(s, len, "%s:%s", extra[j], old_preload);
            env[k++] = s;
            (*owned)[o++] = s;
            preload_set = 1;
            continue;
        }
        if (strncmp(extra[j], "LD_PRELOAD=", 11) == 0)
            preload_set = 1;
        env[k++] = extra[j];
    }
    if (!preload_set && keep_preload && old_preload != NULL) {
        /* give back the LD_PRELOAD we skipped: find it again */
        for (size_t i = 0; i < n; i++)
            if (strncmp(environ[i], "LD_PRELOAD=", 11) == 0)
                env[k++] = environ[i];
    }
    env[k] = NULL;
    return env;
}

static void free_environment(char **env, char **owned)
{
    for (size_t i = 0; owned != NULL && owned[i] != NULL; i++)
        free(owned[i]);
    free(owned);
    free(env);
}

void tool_describe_status(int status, char *why, size_t whylen)
{
    if (status < 0)
        snprintf(why, whylen, "could not start: %s", strerror(errno));
    else if (WIFSIGNALED(status))
        snprintf(why, whylen, "killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else
        snprintf(why, whylen, "exited with status %d and no result", WEXITSTATUS(status));
}

/* ------------------------------------------------------------------------ */
/* Peer children                                                             */
/* ------------------------------------------------------------------------ */

/* Runs file (found in PATH when search, else a path) with argv and env, its
 * stdout into out (up to len - 1 bytes, NUL-terminated; stderr to /dev/null
 * when quiet).  Returns the wait status, or -1 with errno. */
static int spawn_capture(const char *file, bool search, bool quiet, char *const argv[], char **env,
                         char *out, size_t len)
{
    out[0] = '\0';
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0)
        return -1;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
    if (quiet)
        posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    int rc = search ? posix_spawnp(&pid, file, &fa, NULL, argv, env)
                    : posix_spawn(&pid, file, &fa, NULL, argv, env);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    if (rc != 0) {
        close(fds[0]);
        errno = rc;
        return -1;
    }
    size_t used = 0;
    for (;;) {
        char scratch[256];
        ssize_t got = used + 1u < len ? read(fds[0], out + used, len - 1u - used)
                                      : read(fds[0], scratch, sizeof scratch);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        if (used + 1u < len)
            used += (size_t)got;
    }
    out[used] = '\0';
    close(fds[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    return status;
}

int tool_spawn_capture(const char *image, char *const argv[], const char *preload, char *out,
                       size_t len)
{
    char setting[PATH_MAX + 16];
    snprintf(setting, sizeof setting, "LD_PRELOAD=%s", preload != NULL ? preload : "");
    char *extra[] = {preload != NULL ? setting : NULL, NULL};
    char **owned = NULL;
    char **env = build_environment(extra, 0, &owned);
    if (env == NULL) {
        errno = ENOMEM;
        return -1;
    }
    int status = spawn_capture(image, false, false, argv, env, out, len);
    free_environment(env, owned);
    return status;
}

int tool_peer_spawn(const tool_peer *p, char *const argv[], char *out, size_t outlen, char *why,
                    size_t whylen)
{
    if (p->missing[0] != '\0') {
        snprintf(why, whylen, "%s", p->missing);
        return -1;
    }
    char captured[4096] = "";
    int status = tool_spawn_capture("/proc/self/exe", argv, p->soname != NULL ? p->path : NULL,
                                    captured, sizeof captured);
    char *found = NULL, *err = NULL;
    for (char *line = captured; line != NULL && *line != '\0';) {
        char *nl = strchr(line, '\n');
        if (nl != NULL)
            *nl = '\0';
        if (strncmp(line, "ok ", 3) == 0)
            found = line;
        else if (strncmp(line, "err ", 4) == 0)
            err = line;
        line = nl != NULL ? nl + 1 : NULL;
    }
    if (found != NULL && status == 0) {
        snprintf(out, outlen, "%s", found);
        return 0;
    }
    if (err != NULL)
        snprintf(why, whylen, "%s", err + 4);
    else
        tool_describe_status(status, why, whylen);
    return -1;
}

/* ------------------------------------------------------------------------ */
/* A command with more environment                                           */
/* ------------------------------------------------------------------------ */

int tool_spawn_wait(const char *file, char *const argv[], char *const extra[])
{
    char **owned = NULL;
    char **env = build_environment(extra, 1, &owned);
    if (env == NULL) {
        errno = ENOMEM;
        return -1;
    }
    pid_t pid;
    int rc = posix_spawnp(&pid, file, NULL, NULL, argv, env);
    free_environment(env, owned);
    if (rc != 0) {
        errno = rc;
        return -1;
    }
    /* The command owns the terminal's Ctrl-C; we wait for it to end. */
    struct sigaction ignore = {0}, old_int, old_quit;
    ignore.sa_handler = SIG_IGN;
    sigaction(SIGINT, &ignore, &old_int);
    sigaction(SIGQUIT, &ignore, &old_quit);
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            status = -1;
            break;
        }
    }
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGQUIT, &old_quit, NULL);
    return status;
}

int tool_spawn_output(const char *file, char *const argv[], char *out, size_t len)
{
    return spawn_capture(file, true, true, argv, environ, out, len);
}
