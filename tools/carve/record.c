/*
 * record.c: `carve record [-o TRACE] -- CMD ARGS`: runs CMD with carve's
 * malloc shim preloaded (LD_PRELOAD=libcarve-malloc.so) and CARVE_TRACE set,
 * so the shim writes CMD's allocation trace.  A name ending in .gz gets the
 * trace gzip-compressed (the shim writes plain text to a temporary file
 * next to it, compressed when CMD is done).
 */
#define _GNU_SOURCE

#include "cli.h"
#include "peers.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef CARVE_TOOL_HAVE_ZLIB
#include <zlib.h>
#endif

#ifndef PATH_MAX
#define PATH_MAX 4096
#endif

#define SHIM_NAME "libcarve-malloc.so"

/* ------------------------------------------------------------------------ */
/* Finding the shim                                                          */
/* ------------------------------------------------------------------------ */

static bool readable(const char *path)
{
    struct stat st;
    return path != NULL && path[0] != '\0' && stat(path, &st) == 0 && S_ISREG(st.st_mode) &&
           access(path, R_OK) == 0;
}

/* The directory of this executable ("" when unknown). */
static void exe_dir(char *dir, size_t len)
{
    ssize_t n = readlink("/proc/self/exe", dir, len - 1u);
    dir[n > 0 ? n : 0] = '\0';
    char *slash = strrchr(dir, '/');
    if (slash != NULL)
        *slash = '\0';
    else
        dir[0] = '\0';
}

/* Where the shim is, in order: $CARVE_MALLOC_LIBRARY; the shim target of
 * the build tree the tool was built in; next to the tool, or in ../shim or
 * ../lib from it; the installed lib directory.  Returns false with the
 * places looked at in tried. */
static bool find_shim(char *out, size_t len, char *tried, size_t triedlen)
{
    char dir[PATH_MAX];
    exe_dir(dir, sizeof dir);
    const char *env = getenv("CARVE_MALLOC_LIBRARY");
    char near[4][PATH_MAX + 32];
    snprintf(near[0], sizeof near[0], "%s/" SHIM_NAME, dir);
    snprintf(near[1], sizeof near[1], "%s/../shim/" SHIM_NAME, dir);
    snprintf(near[2], sizeof near[2], "%s/../lib/" SHIM_NAME, dir);
    snprintf(near[3], sizeof near[3], "%s/../lib64/" SHIM_NAME, dir);
    const char *candidates[] = {
        env,
#ifdef CARVE_SHIM_BUILD_PATH
        CARVE_SHIM_BUILD_PATH,
#endif
        near[0],
        near[1],
        near[2],
        near[3],
#ifdef CARVE_SHIM_INSTALL_PATH
        CARVE_SHIM_INSTALL_PATH,
#endif
    };
    size_t used = 0;
    tried[0] = '\0';
    if (env != NULL && env[0] != '\0' && !readable(env)) {
        snprintf(tried, triedlen, "  CARVE_MALLOC_LIBRARY=%s (not a readable file)", env);
        return false; /* asked for explicitly: no silent fallback */
    }
    for (size_t i = 0; i < sizeof candidates / sizeof candidates[0]; i++) {
        if (candidates[i] == NULL || candidates[i][0] == '\0')
            continue;
        if (readable(candidates[i])) {
            if (realpath(candidates[i], out) != NULL)
                return true;
            /* A path cut short would preload some other file: skip it. */
            int n = snprintf(out, len, "%s", candidates[i]);
            if (n >= 0 && (size_t)n < len)
                return true;
        }
        int n = snprintf(tried + used, triedlen - used, "%s  %s", used ? "\n" : "", candidates[i]);
        if (n > 0 && used + (size_t)n < triedlen)
            used += (size_t)n;
    }
    return false;
}

/* ------------------------------------------------------------------------ */
/* gzip                                                                      */
/* ------------------------------------------------------------------------ */

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Compresses the file at from into to (gzip, level 6). */
static int gzip_file(const char *from, const char *to)
{
#ifndef CARVE_TOOL_HAVE_ZLIB
    (void)from;
    fprintf(stderr, "carve record: cannot write %s: this carve tool was built without zlib\n", to);
    return -1;
#else
    FILE *in = fopen(from, "rb");
    if (in == NULL) {
        fprintf(stderr, "carve record: the shim wrote no trace (%s: %s)\n", from, strerror(errno));
        return -1;
    }
    gzFile out = gzopen(to, "wb6");
    if (out == NULL) {
        fprintf(stderr, "carve record: cannot write %s: %s\n", to, strerror(errno));
        fclose(in);
        return -1;
    }
    char buf[1 << 16];
    size_t got;
    int rc = 0;
    while ((got = fread(buf, 1, sizeof buf, in)) > 0) {
        if (gzwrite(out, buf, (unsigned)got) != (int)got) {
            int zerr;
            fprintf(stderr, "carve record: writing %s: %s\n", to, gzerror(out, &zerr));
            rc = -1;
            break;
        }
    }
    if (ferror(in)) {
        fprintf(stderr, "carve record: reading %s: %s\n", from, strerror(errno));
        rc = -1;
    }
    fclose(in);
    if (gzclose(out) != Z_OK && rc == 0) {
        fprintf(stderr, "carve record: writing %s failed\n", to);
        rc = -1;
    }
    return rc;
#endif
}

/* ------------------------------------------------------------------------ */
/* What the shim wrote                                                       */
/* ------------------------------------------------------------------------ */

/* Whether the plain trace at path holds a call: a line that is neither a
 * comment nor empty.  The shim writes its header at start-up, so a trace
 * can exist and still record nothing. */
static bool trace_has_calls(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return false;
    char line[256];
    bool calls = false, line_start = true;
    while (!calls && fgets(line, sizeof line, f) != NULL) {
        if (line_start && line[0] != '#' && line[0] != '\n')
            calls = true;
        line_start = strchr(line, '\n') != NULL; /* a long comment spans reads */
    }
    fclose(f);
    return calls;
}

/* Whether the shim stopped recording before the command ended: it then
 * appends "# recording stopped: WHY" to the trace (shim/trace.c), and WHY
 * (without its newline) is copied to why. */
static bool trace_stopped(const char *path, char *why, size_t len)
{
    static const char mark[] = "# recording stopped: ";
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return false;
    char line[512];
    bool stopped = false, line_start = true;
    while (!stopped && fgets(line, sizeof line, f) != NULL) {
        if (line_start && strncmp(line, mark, sizeof mark - 1) == 0) {
            stopped = true;
            line[strcspn(line, "\n")] = '\0';
            snprintf(why, len, "%s", line + sizeof mark - 1);
        }
        line_start = strchr(line, '\n') != NULL;
    }
    fclose(f);
    return stopped;
}

/* ------------------------------------------------------------------------ */
/* Command line                                                              */
/* ------------------------------------------------------------------------ */

void record_help(FILE *out)
{
    fprintf(out, "Usage: carve record [-o TRACE] -- COMMAND [ARGS...]\n"
                 "\n"
                 "Runs COMMAND with carve's malloc shim preloaded (LD_PRELOAD=" SHIM_NAME ")\n"
                 "and CARVE_TRACE=TRACE in its environment, so that every malloc, calloc,\n"
                 "realloc, aligned allocation and free it makes is served by carve and\n"
                 "written to TRACE in the carve trace format (replay it with 'carve replay',\n"
                 "draw it with 'carve map'). Child processes inherit the environment: see\n"
                 "shim/README.md for what the shim records for them.\n"
                 "\n"
                 "The shim is looked for in $CARVE_MALLOC_LIBRARY, in the build tree the tool\n"
                 "was built in, next to the tool (., ../shim, ../lib) and in the installed\n"
                 "lib directory.\n"
                 "\n"
                 "Options:\n"
                 "  -o, --output TRACE  where to write the trace (default carve.trace); a name\n"
                 "                      ending in .gz is gzip-compressed. A directory, a path\n"
                 "                      that exists and is not a regular file, or one that\n"
                 "                      cannot be created is a bad command line\n"
                 "  -h, --help          show this help\n"
                 "\n"
                 "Only COMMAND's own process is recorded: a command that replaces itself\n"
                 "with another program (env, sh -c 'exec ...', a pyenv shim) leaves a trace\n"
                 "with no calls, which is reported as a failure; run the real program.\n"
                 "TRACE may not contain '%%': for one trace per process, set CARVE_TRACE\n"
                 "yourself (shim/README.md).\n"
                 "\n"
                 "Exit status: COMMAND's (128 + N when a signal N ended it); 1 when the\n"
                 "trace could not be written, or not in full (the shim stopped recording:\n"
                 "the trace is kept, incomplete), or records no call (COMMAND's status\n"
                 "instead when that is not 0); 2 a bad command line; 127 when COMMAND\n"
                 "could not be started.\n");
}

/* The shim would expand %p in the name into one file per process, none of
 * them the TRACE this command checks and compresses; the user who wants
 * those is told how to ask the shim directly. */
static int refuse_percent(const char *output)
{
    char shim[PATH_MAX], tried[4 * PATH_MAX];
    if (!find_shim(shim, sizeof shim, tried, sizeof tried))
        snprintf(shim, sizeof shim, "/path/to/" SHIM_NAME);
    return cli_usage_error(
        "record",
        "-o '%s': a trace name may not contain '%%'. carve record writes one trace, of the "
        "command's own process. For one trace per process, run the command under the shim "
        "yourself:\n  CARVE_TRACE='NAME.%%p.trace' LD_PRELOAD=%s COMMAND\n(the shim puts each "
        "process's pid in place of %%p, and %%%% stands for '%%'; it writes plain text only, "
        "gzip the files afterwards; see shim/README.md)",
        output, shim);
}

/* The trace is a file the shim creates when the command starts and this
 * command checks when it ends: a directory, a device or a path whose
 * directory is missing or not writable would only show then, as a trace
 * that was never written, blamed on the command.  So -o must name a
 * regular file or none, in a directory where one can be created; it is
 * tried here, and what this check created is removed again. */
static int refuse_unwritable_output(const char *output)
{
    struct stat st;
    bool existed = stat(output, &st) == 0;
    if (existed && S_ISDIR(st.st_mode))
        return cli_usage_error("record",
                               "-o '%s' is a directory; the trace is a file: give its name "
                               "(e.g. -o '%s/carve.trace')",
                               output, output);
    if (existed && !S_ISREG(st.st_mode))
        return cli_usage_error("record",
                               "-o '%s' is not a regular file: carve record writes the "
                               "trace there, reads it back and removes it if it records "
                               "nothing; give a file name",
                               output);
    int fd = open(output, O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0)
        return cli_usage_error("record", "-o '%s': cannot create the trace there: %s", output,
                               strerror(errno));
    close(fd);
    if (!existed)
        unlink(output);
    return CLI_EXIT_OK;
}

/* The options before the command: -o in *output, the command's index in
 * *command.  CLI_EXIT_OK, a usage error's status, or -1 after --help. */
static int parse_record_options(int argc, char **argv, const char **output, int *command)
{
    int i = 1;
    while (i < argc) {
        const char *arg = argv[i];
        const char *value = NULL;
        if (strcmp(arg, "--") == 0) {
            i++;
            break;
        }
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            record_help(stdout);
            return -1;
        }
        if (cli_option_value(argc, argv, &i, "--output", &value) ||
            cli_option_value(argc, argv, &i, "-o", &value)) {
            if (value == NULL || value[0] == '\0')
                return cli_usage_error("record", "-o needs a file name");
            if (strchr(value, '%') != NULL)
                return refuse_percent(value);
            *output = value;
        } else if (arg[0] == '-') {
            return cli_usage_error("record", "unknown option '%s'", arg);
        } else {
            break; /* the command, without "--" */
        }
    }
    if (i >= argc)
        return cli_usage_error("record", "which command? (carve record -- COMMAND ARGS)");
    *command = i;
    return refuse_unwritable_output(*output);
}

/* After the command ended with exit_status: checks what the shim wrote at
 * trace_path, compresses it into output when gz, and says how it went.
 * Returns the status carve record exits with. */
static int finish_trace(const char *cmd, const char *trace_path, const char *output, bool gz,
                        int exit_status)
{
    struct stat st;
    if (stat(trace_path, &st) != 0 || st.st_size == 0) {
        fprintf(stderr,
                "carve record: no trace: the shim wrote %s at %s. Either '%s' made no "
                "allocation, or it ignored LD_PRELOAD (a static or setuid program), or it "
                "ended with _exit() before the shim wrote its buffer\n",
                stat(trace_path, &st) != 0 ? "nothing" : "an empty file", trace_path, cmd);
        unlink(trace_path);
        return exit_status != 0 ? exit_status : CLI_EXIT_FAILURE;
    }
    char why[512];
    bool stopped = trace_stopped(trace_path, why, sizeof why);
    if (!stopped && !trace_has_calls(trace_path)) {
        fprintf(stderr,
                "carve record: no trace: the shim recorded no allocation call of '%s' (%s "
                "holds only its header). The shim records the process it starts in and "
                "nothing that process exec's, so a command that replaces itself with another "
                "program (env, sh -c 'exec ...', a pyenv or rbenv shim, a wrapper script "
                "ending in exec) leaves an empty trace: run the real program, e.g. carve "
                "record -- /usr/bin/perl ... rather than carve record -- env perl ... (or, to "
                "record every process, set CARVE_TRACE with %%p yourself: shim/README.md)\n",
                cmd, trace_path);
        unlink(trace_path);
        return exit_status != 0 ? exit_status : CLI_EXIT_FAILURE;
    }
    if (gz) {
        int rc = gzip_file(trace_path, output);
        unlink(trace_path);
        if (rc != 0)
            return CLI_EXIT_FAILURE;
    }
    if (stopped) {
        /* Kept: the calls before the stop replay, but the trace is not the
         * whole run, which the exit status must not hide. */
        fprintf(stderr,
                "carve record: the trace in %s is incomplete: the shim stopped recording "
                "while '%s' ran (%s); it holds the calls made before that\n",
                output, cmd, why);
        return exit_status != 0 ? exit_status : CLI_EXIT_FAILURE;
    }
    fprintf(stderr, "carve record: trace written to %s\n", output);
    return exit_status;
}

int record_main(int argc, char **argv)
{
    const char *output = "carve.trace";
    int i = 1;
    int usage = parse_record_options(argc, argv, &output, &i);
    if (usage != CLI_EXIT_OK)
        return usage < 0 ? CLI_EXIT_OK : usage;

    char shim[PATH_MAX], tried[4 * PATH_MAX];
    if (!find_shim(shim, sizeof shim, tried, sizeof tried)) {
        fprintf(stderr,
                "carve record: cannot find " SHIM_NAME " (carve's malloc shim); looked at:\n%s\n"
                "Build it (the shim/ directory) or set CARVE_MALLOC_LIBRARY to its path.\n",
                tried);
        return CLI_EXIT_FAILURE;
    }

    bool gz = ends_with(output, ".gz");
#ifndef CARVE_TOOL_HAVE_ZLIB
    if (gz) {
        fprintf(stderr,
                "carve record: %s: this carve tool was built without zlib, so it "
                "writes plain traces only (drop the .gz)\n",
                output);
        return CLI_EXIT_FAILURE;
    }
#endif
    char plain[PATH_MAX + 32];
    if (gz)
        snprintf(plain, sizeof plain, "%s.%ld.tmp", output, (long)getpid());
    else
        snprintf(plain, sizeof plain, "%s", output);
    char *abs = NULL;
    char trace_path[2 * PATH_MAX];
    if (plain[0] != '/' && (abs = getcwd(NULL, 0)) != NULL) /* the command may chdir */
        snprintf(trace_path, sizeof trace_path, "%s/%s", abs, plain);
    else
        snprintf(trace_path, sizeof trace_path, "%s", plain);
    free(abs);
    /* -o has no '%', but the directory made absolute above may: the shim
     * would expand it all the same. */
    if (strchr(trace_path, '%') != NULL) {
        fprintf(stderr,
                "carve record: cannot record to %s: the shim reads '%%' in CARVE_TRACE as "
                "%%p (the pid) or %%%%; give -o a path without '%%'\n",
                trace_path);
        return CLI_EXIT_FAILURE;
    }
    unlink(trace_path); /* a trace left from an earlier run must not pass for this one's */

    char preload[PATH_MAX + 16], trace_env[2 * PATH_MAX + 16];
    snprintf(preload, sizeof preload, "LD_PRELOAD=%s", shim);
    snprintf(trace_env, sizeof trace_env, "CARVE_TRACE=%s", trace_path);
    char *extra[] = {preload, trace_env, NULL};
    int status = tool_spawn_wait(argv[i], argv + i, extra);
    if (status < 0) {
        fprintf(stderr, "carve record: cannot run '%s': %s\n", argv[i], strerror(errno));
        unlink(trace_path);
        return 127;
    }
    int exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (WIFSIGNALED(status))
        fprintf(stderr,
                "carve record: '%s' was killed by signal %d (%s); the trace may be cut "
                "short\n",
                argv[i], WTERMSIG(status), strsignal(WTERMSIG(status)));
    return finish_trace(argv[i], trace_path, output, gz, exit_status);
}
