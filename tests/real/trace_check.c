/*
 * trace_check: validates a trace the shim wrote (CARVE_TRACE) against the
 * format: the "# carve-trace 1" first line, a "# command:" comment, lines
 * that parse, ids that are live exactly when the format says (no "a" of a
 * live id, no "f" or "r" of an id that is not live), "t" lines naming
 * threads in order of first appearance.  Prints a one-line summary.
 *
 *   trace_check FILE [MIN_CALLS [MIN_THREADS]]
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* An open-addressing set of live ids (id + 1 stored; 0 = empty, UINT64_MAX = deleted). */
static uint64_t *g_set;
static size_t g_cap, g_used, g_live;

static size_t slot_of(uint64_t id)
{
    uint64_t h = (id + 1) * 0x9E3779B97F4A7C15ull;
    return (size_t)(h ^ (h >> 32)) & (g_cap - 1);
}

static int set_has(uint64_t id)
{
    for (size_t i = slot_of(id);; i = (i + 1) & (g_cap - 1)) {
        if (g_set[i] == 0) {
            return 0;
        }
        if (g_set[i] == id + 1) {
            return 1;
        }
    }
}

static void set_grow(void);

static void set_add(uint64_t id)
{
    if ((g_used + 1) * 2 > g_cap) {
        set_grow();
    }
    size_t i = slot_of(id);
    while (g_set[i] != 0 && g_set[i] != UINT64_MAX) {
        i = (i + 1) & (g_cap - 1);
    }
    if (g_set[i] == 0) {
        g_used++;
    }
    g_set[i] = id + 1;
    g_live++;
}

static void set_del(uint64_t id)
{
    for (size_t i = slot_of(id);; i = (i + 1) & (g_cap - 1)) {
        if (g_set[i] == id + 1) {
            g_set[i] = UINT64_MAX;
            g_live--;
            return;
        }
    }
}

static void set_grow(void)
{
    uint64_t *old = g_set;
    size_t old_cap = g_cap;
    g_cap = g_cap ? g_cap * 2 : 1024;
    g_set = calloc(g_cap, sizeof *g_set);
    if (!g_set) {
        fprintf(stderr, "trace_check: out of memory\n");
        exit(2);
    }
    g_used = 0;
    g_live = 0;
    for (size_t i = 0; i < old_cap; i++) {
        if (old[i] != 0 && old[i] != UINT64_MAX) {
            set_add(old[i] - 1);
        }
    }
    free(old);
}

static int bad(unsigned long line, const char *why, const char *text)
{
    fprintf(stderr, "trace_check: line %lu: %s: %s", line, why, text);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: trace_check FILE [MIN_CALLS [MIN_THREADS]]\n");
        return 2;
    }
    unsigned long min_calls = argc > 2 ? strtoul(argv[2], NULL, 10) : 1;
    unsigned long min_threads = argc > 3 ? strtoul(argv[3], NULL, 10) : 1;
    FILE *f = fopen(argv[1], "r");
    if (!f) {
        perror(argv[1]);
        return 1;
    }
    set_grow();
    char buf[4096];
    unsigned long line = 0, calls = 0, threads = 1;
    int saw_command = 0;
    while (fgets(buf, sizeof buf, f)) {
        line++;
        if (line == 1) {
            if (strcmp(buf, "# carve-trace 1\n") != 0) {
                return bad(line, "not a carve trace header", buf);
            }
            continue;
        }
        if (buf[0] == '#') {
            saw_command |= strncmp(buf, "# command: ", 11) == 0;
            continue;
        }
        uint64_t a = 0, b = 0, c = 0;
        char op = 0, end = 0;
        int n = sscanf(buf, "%c %" SCNu64 " %" SCNu64 " %" SCNu64 "%c", &op, &a, &b, &c, &end);
        switch (op) {
        case 'a':
            if (n != 4 || c != 0) {
                n = sscanf(buf, "a %" SCNu64 " %" SCNu64 "%c", &a, &b, &end);
                if (n != 3 || end != '\n' || b == 0) {
                    return bad(line, "bad a line", buf);
                }
            }
            if (set_has(a)) {
                return bad(line, "id allocated while live", buf);
            }
            set_add(a);
            calls++;
            break;
        case 'c':
        case 'm':
            if (n != 5 || end != '\n' || b == 0 || c == 0) {
                return bad(line, "bad c/m line", buf);
            }
            if (op == 'm' && (b & (b - 1)) != 0) {
                return bad(line, "alignment not a power of two", buf);
            }
            if (set_has(a)) {
                return bad(line, "id allocated while live", buf);
            }
            set_add(a);
            calls++;
            break;
        case 'r':
            if (n != 5 || end != '\n' || c == 0) {
                return bad(line, "bad r line", buf);
            }
            if (!set_has(a)) {
                return bad(line, "realloc of an id that is not live", buf);
            }
            set_del(a);
            if (set_has(b)) {
                return bad(line, "realloc to an id that is live", buf);
            }
            set_add(b);
            calls++;
            break;
        case 'f':
            if (sscanf(buf, "f %" SCNu64 "%c", &a, &end) != 2 || end != '\n') {
                return bad(line, "bad f line", buf);
            }
            if (!set_has(a)) {
                return bad(line, "free of an id that is not live", buf);
            }
            set_del(a);
            calls++;
            break;
        case 't':
            if (sscanf(buf, "t %" SCNu64 "%c", &a, &end) != 2 || end != '\n') {
                return bad(line, "bad t line", buf);
            }
            if (a > threads) {
                return bad(line, "thread numbered out of order", buf);
            }
            if (a == threads) {
                threads++;
            }
            break;
        default:
            return bad(line, "unknown line", buf);
        }
    }
    fclose(f);
    if (line == 0) {
        fprintf(stderr, "trace_check: %s is empty\n", argv[1]);
        return 1;
    }
    if (!saw_command) {
        fprintf(stderr, "trace_check: no '# command:' comment\n");
        return 1;
    }
    if (calls < min_calls || threads < min_threads) {
        fprintf(stderr, "trace_check: %lu calls from %lu threads; expected at least %lu and %lu\n",
                calls, threads, min_calls, min_threads);
        return 1;
    }
    printf("trace_check: %s: %lu lines, %lu calls, %lu threads, %zu blocks live at the end\n",
           argv[1], line, calls, threads, g_live);
    return 0;
}
