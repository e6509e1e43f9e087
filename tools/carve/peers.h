/*
 * peers.h: other mallocs, each measured as the real malloc of a child
 * process.  The tool re-executes itself (/proc/self/exe) with the peer's
 * library in LD_PRELOAD and a hidden option; the child checks that malloc
 * really resolves into that library, does the work and prints one result
 * line on stdout.  glibc is the child without a preload.
 */
#ifndef CARVE_TOOL_PEERS_H
#define CARVE_TOOL_PEERS_H

#include <limits.h>
#include <stddef.h>

#ifndef PATH_MAX
#define PATH_MAX 4096
#endif

typedef struct tool_peer {
    const char *name;   /* "glibc", "jemalloc", ... */
    const char *soname; /* the library to preload; NULL for glibc */
    const char *marker; /* a substring of the path malloc must resolve into */
    char path[PATH_MAX];
    char missing[PATH_MAX + 128]; /* why it cannot run, or "" */
} tool_peer;

extern tool_peer tool_peers[];
extern const size_t tool_peer_count;

/* The peer of that name, or NULL. */
tool_peer *tool_peer_find(const char *name);

/* Finds the peer's library (fills path, or missing with the reason). */
void tool_peer_locate(tool_peer *p);

/* In the child: 0 when malloc resolves into a library whose path contains
 * marker, else -1 with the reason in why. */
int tool_peer_verify(const char *marker, char *why, size_t whylen);

/* Runs /proc/self/exe with argv (argv[0] is only a name) and the peer's
 * preload, and returns the last line of its stdout that starts with "ok "
 * in out (without the newline).  0 on success; -1 with why otherwise (the
 * child's "err ..." line, or how it ended). */
int tool_peer_spawn(const tool_peer *p, char *const argv[], char *out, size_t outlen, char *why,
                    size_t whylen);

/* Runs image (a path) with argv and this process's environment, with
 * LD_PRELOAD=preload instead of any LD_PRELOAD (none when preload is NULL);
 * its stdout into out (NUL-terminated, cut at len - 1 bytes).  Returns its
 * wait status, or -1 with errno when it could not start.  carve-bench's
 * peer and callgrind children run this way too. */
int tool_spawn_capture(const char *image, char *const argv[], const char *preload, char *out,
                       size_t len);

/* How a child with that wait status (or -1 and errno) ended, for a message. */
void tool_describe_status(int status, char *why, size_t whylen);

/* Runs file (found in PATH) with argv, with `extra` (NAME=VALUE strings,
 * NULL-terminated) added to this process's environment; LD_PRELOAD=... in
 * extra is put in front of any LD_PRELOAD already set.  Waits for it and
 * returns its wait status, or -1 with errno when it could not start. */
int tool_spawn_wait(const char *file, char *const argv[], char *const extra[]);

/* Runs file (found in PATH) with argv, stderr to /dev/null, and returns its
 * stdout in out (NUL-terminated, cut at len - 1 bytes).  Returns its wait
 * status (0: it exited with 0), or -1 with errno when it could not start. */
int tool_spawn_output(const char *file, char *const argv[], char *out, size_t len);

#endif /* CARVE_TOOL_PEERS_H */
