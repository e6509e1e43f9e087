/*
 * map.c: heap pictures (map.h) and `carve map TRACE -o heap.svg`.
 *
 * The SVG is written by hand: one <path> per state, each a list of
 * rectangles; a rectangle is a run of pixel rows of one state in one column,
 * extended to the right while the next columns have the very same run, so
 * a heap that does not change costs one rectangle, not one per column.
 */
#define _GNU_SOURCE /* open_memstream */

#include "map.h"

#include "cli.h"
#include "peers.h"
#include "replay.h"
#include "trace.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* What a pixel row shows; NONE is beyond the heap (not drawn). */
enum {
    ST_FREE = 0,
    ST_RAW,
    ST_HANDLE,
    ST_PINNED,
    ST_META,
    ST_QUARANTINED,
    ST_COUNT,
    ST_NONE = ST_COUNT,
};

static const char *const state_colour[ST_COUNT] = {"#e3e6ea", "#3a6ea5", "#3ba55c",
                                                   "#e0613a", "#6b6b6b", "#a64ca6"};
static const char *const state_label[ST_COUNT] = {
    "free",
    "raw block (carve_alloc)",
    "handle block (movable)",
    "pinned handle block",
    "carve metadata (control block, run headers, handle table)",
    "quarantined"};

struct map_canvas {
    size_t span;
    unsigned rows;
    size_t max_columns, columns;
    unsigned char *cell; /* columns x rows states, row 0 = lowest addresses */
    double *x;
    uint64_t *bytes; /* rows x ST_COUNT: one walk's bytes per row and state */
    bool seen[ST_COUNT];
    size_t first_block; /* one walk's lowest block offset */
};

map_canvas *map_canvas_new(size_t span, size_t max_columns, unsigned rows)
{
    if (span == 0 || max_columns == 0 || rows == 0)
        return NULL;
    map_canvas *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->span = span;
    c->rows = rows;
    c->max_columns = max_columns;
    c->cell = malloc(max_columns * rows);
    c->x = calloc(max_columns, sizeof *c->x);
    c->bytes = calloc((size_t)rows * ST_COUNT, sizeof *c->bytes);
    if (c->cell == NULL || c->x == NULL || c->bytes == NULL) {
        map_canvas_free(c);
        return NULL;
    }
    return c;
}

void map_canvas_free(map_canvas *c)
{
    if (c == NULL)
        return;
    free(c->cell);
    free(c->x);
    free(c->bytes);
    free(c);
}

/* ------------------------------------------------------------------------ */
/* Sampling                                                                  */
/* ------------------------------------------------------------------------ */

static int block_state(const carve_block *b)
{
    switch (b->kind) {
    case CARVE_BLOCK_FREE:
        return ST_FREE;
    case CARVE_BLOCK_RAW:
        return ST_RAW;
    case CARVE_BLOCK_HANDLE:
        return b->pinned ? ST_PINNED : ST_HANDLE;
    case CARVE_BLOCK_QUARANTINED:
        return ST_QUARANTINED;
    case CARVE_BLOCK_META:
        return ST_META;
    }
    return ST_META;
}

/* The first address of row r. */
static size_t row_start(const map_canvas *c, size_t r)
{
    return (size_t)((double)c->span * (double)r / (double)c->rows);
}

static int visit_map(const carve_block *b, void *ctx)
{
    map_canvas *c = ctx;
    if (b->offset >= c->span || b->size == 0)
        return 0;
    size_t end = b->offset + b->size < c->span ? b->offset + b->size : c->span;
    int st = block_state(b);
    c->seen[st] = true;
    if (b->offset < c->first_block)
        c->first_block = b->offset;
    size_t r = (size_t)((double)b->offset * (double)c->rows / (double)c->span);
    if (r >= c->rows)
        r = c->rows - 1u;
    while (r > 0 && row_start(c, r) > b->offset)
        r--;
    for (; r < c->rows; r++) {
        size_t lo = row_start(c, r), hi = row_start(c, r + 1u);
        if (lo >= end)
            break;
        size_t a = b->offset > lo ? b->offset : lo;
        size_t z = end < hi ? end : hi;
        if (z > a)
            c->bytes[r * ST_COUNT + (size_t)st] += z - a;
    }
    return 0;
}

bool map_canvas_sample(map_canvas *c, carve_heap *h, double x)
{
    if (c->columns == c->max_columns)
        return false;
    memset(c->bytes, 0, (size_t)c->rows * ST_COUNT * sizeof *c->bytes);
    c->first_block = c->span;
    if (carve_walk(h, visit_map, c) != CARVE_OK)
        return false;
    /* Below the first block is the heap's control block: carve's own. */
    carve_block control = {0, c->first_block, 0, NULL, CARVE_BLOCK_META, 0};
    visit_map(&control, c);
    /* Ties go to the state listed first here: what is in use shows. */
    static const int priority[ST_COUNT] = {ST_PINNED,      ST_HANDLE, ST_RAW,
                                           ST_QUARANTINED, ST_META,   ST_FREE};
    unsigned char *col = c->cell + c->columns * c->rows;
    for (size_t r = 0; r < c->rows; r++) {
        const uint64_t *b = &c->bytes[r * ST_COUNT];
        int best = ST_NONE;
        for (size_t k = 0; k < ST_COUNT; k++) {
            int s = priority[k];
            if (b[s] > 0 && (best == ST_NONE || b[s] > b[best]))
                best = s;
        }
        col[r] = (unsigned char)best;
    }
    c->x[c->columns] = x < 0 ? (double)(c->columns + 1u) : x;
    c->columns++;
    return true;
}

/* ------------------------------------------------------------------------ */
/* SVG                                                                       */
/* ------------------------------------------------------------------------ */

static void xml_text(FILE *f, const char *s)
{
    for (; s != NULL && *s; s++) {
        switch (*s) {
        case '&':
            fputs("&amp;", f);
            break;
        case '<':
            fputs("&lt;", f);
            break;
        case '>':
            fputs("&gt;", f);
            break;
        case '"':
            fputs("&quot;", f);
            break;
        default:
            fputc(*s, f);
        }
    }
}

typedef struct open_rect {
    unsigned r0, r1; /* rows [r0, r1) */
    unsigned char state;
    size_t col0; /* first column */
} open_rect;

typedef struct plot {
    double left, top, width, height;
    size_t columns;
    unsigned rows;
    FILE *path[ST_COUNT];
} plot;

static void emit_rect(plot *p, const open_rect *o, size_t col_end)
{
    if (o->state >= ST_COUNT)
        return;
    double x0 = p->left + p->width * (double)o->col0 / (double)p->columns;
    double x1 = p->left + p->width * (double)col_end / (double)p->columns;
    double y1 = p->top + p->height - p->height * (double)o->r0 / (double)p->rows;
    double y0 = p->top + p->height - p->height * (double)o->r1 / (double)p->rows;
    fprintf(p->path[o->state], "M%.2f %.2fh%.2fv%.2fh%.2fz", x0, y0, x1 - x0, y1 - y0, x0 - x1);
}

/* Appends column col's runs to the paths, extending identical runs of the
 * previous column (open, *n of them, sorted by r0) and closing the rest. */
static void plot_column(plot *p, const unsigned char *cells, size_t col, open_rect *open, size_t *n,
                        open_rect *next)
{
    size_t m = 0, k = 0;
    for (unsigned r = 0; r < p->rows;) {
        unsigned e = r + 1u;
        while (e < p->rows && cells[e] == cells[r])
            e++;
        open_rect run = {r, e, cells[r], col};
        while (k < *n && open[k].r0 < r)
            emit_rect(p, &open[k++], col);
        if (k < *n && open[k].r0 == r && open[k].r1 == e && open[k].state == run.state)
            run.col0 = open[k++].col0;
        next[m++] = run;
        r = e;
    }
    while (k < *n)
        emit_rect(p, &open[k++], col);
    memcpy(open, next, m * sizeof *open);
    *n = m;
}

static void axis_label_x(char *buf, size_t len, double x)
{
    if (x >= 1e6)
        snprintf(buf, len, "%.2fM", x / 1e6);
    else if (x >= 1e4)
        snprintf(buf, len, "%.0fk", x / 1e3);
    else
        snprintf(buf, len, "%.0f", x);
}

static bool write_svg(const map_canvas *c, FILE *f, const map_layout *l)
{
    double W = l->width, H = l->height;
    plot p = {78.0, 58.0, W - 78.0 - 24.0, H - 58.0 - 92.0, c->columns, c->rows, {NULL}};
    char *text[ST_COUNT] = {NULL};
    size_t text_len[ST_COUNT] = {0};
    for (int s = 0; s < ST_COUNT; s++) {
        p.path[s] = open_memstream(&text[s], &text_len[s]);
        if (p.path[s] == NULL)
            return false;
    }
    open_rect *open = calloc(c->rows, sizeof *open);
    open_rect *next = calloc(c->rows, sizeof *next);
    size_t n = 0;
    if (open == NULL || next == NULL) {
        free(open);
        free(next);
        return false;
    }
    for (size_t col = 0; col < c->columns; col++)
        plot_column(&p, c->cell + col * c->rows, col, open, &n, next);
    for (size_t k = 0; k < n; k++)
        emit_rect(&p, &open[k], c->columns);
    free(open);
    free(next);

    fprintf(f,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%u\" height=\"%u\" "
            "viewBox=\"0 0 %u %u\" font-family=\"sans-serif\" font-size=\"12\">\n"
            "<rect width=\"100%%\" height=\"100%%\" fill=\"#ffffff\"/>\n",
            l->width, l->height, l->width, l->height);
    fprintf(f, "<text x=\"%.0f\" y=\"22\" font-size=\"16\" font-weight=\"bold\">", p.left);
    xml_text(f, l->title);
    fprintf(f, "</text>\n<text x=\"%.0f\" y=\"42\" fill=\"#444\">", p.left);
    xml_text(f, l->subtitle);
    fprintf(f, "</text>\n");
    fprintf(f,
            "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"#fafafa\" "
            "stroke=\"none\"/>\n",
            p.left, p.top, p.width, p.height);
    for (int s = 0; s < ST_COUNT; s++) {
        fclose(p.path[s]);
        if (text_len[s] > 0)
            fprintf(f, "<path fill=\"%s\" shape-rendering=\"crispEdges\" d=\"%s\"/>\n",
                    state_colour[s], text[s]);
        free(text[s]);
    }
    fprintf(f,
            "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"none\" "
            "stroke=\"#333\"/>\n",
            p.left, p.top, p.width, p.height);
    /* y axis: addresses from the heap's start, upwards */
    for (int i = 0; i <= 4; i++) {
        double y = p.top + p.height - p.height * i / 4.0;
        char a[32];
        cli_format_bytes(a, sizeof a, (uint64_t)((double)c->span * i / 4.0));
        fprintf(f,
                "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"#333\"/>"
                "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"end\">%s</text>\n",
                p.left - 5, y, p.left, y, p.left - 8, y + 4, a);
    }
    fprintf(f,
            "<text transform=\"translate(16 %.2f) rotate(-90)\" text-anchor=\"middle\">"
            "address (offset in the heap)</text>\n",
            p.top + p.height / 2);
    /* x axis: time */
    for (int i = 0; i <= 4 && c->columns > 0; i++) {
        size_t col = (size_t)((double)(c->columns - 1u) * i / 4.0);
        double x = p.left + p.width * ((double)col + 0.5) / (double)c->columns;
        char a[32];
        axis_label_x(a, sizeof a, c->x[col]);
        fprintf(f,
                "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"#333\"/>"
                "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"middle\">%s</text>\n",
                x, p.top + p.height, x, p.top + p.height + 5, x, p.top + p.height + 18, a);
    }
    fprintf(f, "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"middle\">", p.left + p.width / 2,
            p.top + p.height + 36);
    xml_text(f, l->x_label);
    fprintf(f, "</text>\n");
    /* legend: every state, in a row */
    double lx = p.left, ly = p.top + p.height + 54;
    for (int s = 0; s < ST_COUNT; s++) {
        if (s == ST_QUARANTINED && !c->seen[s])
            continue;
        double w = 30.0 + 7.0 * (double)strlen(state_label[s]);
        if (lx > p.left && lx + w > W - 8) {
            lx = p.left;
            ly += 20;
        }
        fprintf(f,
                "<rect x=\"%.2f\" y=\"%.2f\" width=\"14\" height=\"14\" fill=\"%s\" "
                "stroke=\"#333\"/><text x=\"%.2f\" y=\"%.2f\">%s</text>\n",
                lx, ly, state_colour[s], lx + 19, ly + 12, state_label[s]);
        lx += w;
    }
    fprintf(f, "</svg>\n");
    return true;
}

/* ------------------------------------------------------------------------ */
/* PNG through a converter                                                   */
/* ------------------------------------------------------------------------ */

/* Whether running argv succeeds and prints something containing needle. */
static bool command_says(char *const argv[], const char *needle)
{
    char out[1024];
    return tool_spawn_output(argv[0], argv, out, sizeof out) == 0 && strstr(out, needle) != NULL;
}

static bool to_png(const char *svg, const char *png, char *why, size_t whylen)
{
    char *rsvg[] = {"rsvg-convert", "--format=png", "-o", (char *)png, (char *)svg, NULL};
    char *magick[] = {"convert", "-background", "white", (char *)svg, (char *)png, NULL};
    char **argv = NULL;
    char *rsvg_version[] = {"rsvg-convert", "--version", NULL};
    char *magick_version[] = {"convert", "-version", NULL};
    if (command_says(rsvg_version, "rsvg"))
        argv = rsvg;
    else if (command_says(magick_version, "Version: ImageMagick"))
        argv = magick;
    if (argv == NULL) {
        snprintf(why, whylen,
                 "no SVG to PNG converter is installed (neither rsvg-convert nor ImageMagick's "
                 "convert): apt-get install librsvg2-bin, or ask for a .svg");
        return false;
    }
    int status = tool_spawn_wait(argv[0], argv, NULL);
    if (status != 0) {
        snprintf(why, whylen, "%s failed (status %d) converting %s", argv[0], status, svg);
        return false;
    }
    return true;
}

static bool has_suffix(const char *s, const char *suffix)
{
    if (s == NULL)
        return false;
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

bool map_path_supported(const char *path)
{
    return has_suffix(path, ".svg") || has_suffix(path, ".SVG") || has_suffix(path, ".png") ||
           has_suffix(path, ".PNG");
}

bool map_canvas_write(const map_canvas *c, const char *path, const map_layout *l, char *why,
                      size_t whylen)
{
    bool png = has_suffix(path, ".png") || has_suffix(path, ".PNG");
    char svg_path[4096 + 32];
    if (png)
        snprintf(svg_path, sizeof svg_path, "%s.%ld.svg", path, (long)getpid());
    else
        snprintf(svg_path, sizeof svg_path, "%s", path);
    FILE *f = fopen(svg_path, "w");
    if (f == NULL) {
        snprintf(why, whylen, "cannot write %s: %s", svg_path, strerror(errno));
        return false;
    }
    bool ok = write_svg(c, f, l);
    if (fclose(f) != 0 || !ok) {
        snprintf(why, whylen, "writing %s failed", svg_path);
        return false;
    }
    if (png) {
        ok = to_png(svg_path, path, why, whylen);
        unlink(svg_path);
    }
    return ok;
}

/* ------------------------------------------------------------------------ */
/* carve map                                                                 */
/* ------------------------------------------------------------------------ */

typedef struct map_options {
    const char *trace;
    const char *output;
    carve_policy policy;
    size_t heap_size; /* 0: default, and the picture shows what was used */
    unsigned width, height;
    size_t columns;
} map_options;

void map_help(FILE *out)
{
    fprintf(out,
            "Usage: carve map TRACE -o FILE.svg [OPTIONS]\n"
            "\n"
            "Replays TRACE (as 'carve replay' does) and draws the heap over it: time\n"
            "(operations) across, address up, each pixel coloured by the state holding\n"
            "most of its bytes: free, raw block, handle block, pinned handle block, or\n"
            "carve's own metadata. The heap is sampled with carve_walk at evenly spaced\n"
            "points (one per pixel column by default). Fragmentation shows as grey holes\n"
            "between the coloured blocks.\n"
            "\n"
            "The SVG is plain text. With -o FILE.png it is converted by rsvg-convert\n"
            "(librsvg2-bin) or ImageMagick's convert; without either the command says so\n"
            "and fails (write a .svg instead).\n"
            "\n"
            "Options:\n"
            "  -o, --output FILE  the picture: a .svg, or a .png through a converter;\n"
            "                     required\n"
            "  --policy NAME      good (default), first or best\n"
            "  --heap-size N      the buffer's size; the picture then shows the whole heap.\n"
            "                     Default: a large buffer, and the picture shows addresses up\n"
            "                     to the highest byte the replay used (the same in every\n"
            "                     run: the buffer is aligned as 'carve replay' aligns it)\n"
            "  --width N          picture width in pixels (default 1000)\n"
            "  --height N         picture height in pixels (default 560)\n"
            "  --columns N        samples in time (default: one per pixel column)\n"
            "  -h, --help         show this help\n"
            "\n"
            "Exit status: 0 success; 1 a bad trace, a library error, a picture that could\n"
            "not be written, or failed allocations (a heap too small for the trace: the\n"
            "picture is written all the same); 2 a bad command line.\n");
}

static int parse_uint(const char *name, const char *value, size_t lo, size_t hi, size_t *out)
{
    char *end;
    if (value == NULL || value[0] < '0' || value[0] > '9')
        return cli_usage_error("map", "%s needs a number", name);
    unsigned long long v = strtoull(value, &end, 10);
    if (*end != '\0' || v < lo || v > hi)
        return cli_usage_error("map", "bad %s '%s': use %zu to %zu", name, value, lo, hi);
    *out = (size_t)v;
    return CLI_EXIT_OK;
}

static int parse_map_options(int argc, char **argv, map_options *o)
{
    *o = (map_options){NULL, NULL, CARVE_GOOD_FIT, 0, 1000, 560, 0};
    for (int i = 1; i < argc;) {
        const char *arg = argv[i], *value = NULL;
        size_t n = 0;
        int rc = 0;
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            map_help(stdout);
            return -1;
        }
        if (cli_option_value(argc, argv, &i, "-o", &value) ||
            cli_option_value(argc, argv, &i, "--output", &value)) {
            if (value == NULL || value[0] == '\0')
                return cli_usage_error("map", "-o needs a file name");
            if (!map_path_supported(value))
                return cli_usage_error(
                    "map", "-o %s: the picture is SVG or PNG; name a .svg or .png file", value);
            o->output = value;
        } else if (cli_option_value(argc, argv, &i, "--policy", &value)) {
            if (value == NULL || !cli_parse_policy(value, &o->policy))
                return cli_usage_error("map", "--policy needs good, first or best");
        } else if (cli_option_value(argc, argv, &i, "--heap-size", &value)) {
            if (value == NULL || !cli_parse_size(value, &o->heap_size) ||
                o->heap_size < carve_min_buffer_size(NULL))
                return cli_usage_error("map", "--heap-size needs a size of at least %zu bytes",
                                       carve_min_buffer_size(NULL));
        } else if (cli_option_value(argc, argv, &i, "--width", &value)) {
            if ((rc = parse_uint("--width", value, 300, 20000, &n)) != CLI_EXIT_OK)
                return rc;
            o->width = (unsigned)n;
        } else if (cli_option_value(argc, argv, &i, "--height", &value)) {
            if ((rc = parse_uint("--height", value, 250, 20000, &n)) != CLI_EXIT_OK)
                return rc;
            o->height = (unsigned)n;
        } else if (cli_option_value(argc, argv, &i, "--columns", &value)) {
            if ((rc = parse_uint("--columns", value, 1, 100000, &n)) != CLI_EXIT_OK)
                return rc;
            o->columns = n;
        } else if (arg[0] == '-' && arg[1] != '\0') {
            return cli_usage_error("map", "unknown option '%s'", arg);
        } else if (o->trace != NULL) {
            return cli_usage_error("map", "one trace at a time ('%s' and '%s')", o->trace, arg);
        } else {
            o->trace = arg;
            i++;
        }
    }
    if (o->trace == NULL) {
        cli_usage_error("map", "which trace? (carve map TRACE -o FILE.svg)");
        return CLI_EXIT_USAGE;
    }
    if (o->output == NULL) {
        cli_usage_error("map", "where to? (-o FILE.svg or -o FILE.png)");
        return CLI_EXIT_USAGE;
    }
    return CLI_EXIT_OK;
}

typedef struct map_ctx {
    map_canvas *canvas;
} map_ctx;

static void map_sample_fn(void *ctx, size_t ops_done, carve_heap *heap)
{
    map_ctx *m = ctx;
    map_canvas_sample(m->canvas, heap, (double)ops_done);
}

/* The picture of a heap too small for the trace is still worth having (it
 * shows where the room ran out), so it is written; but the replay failed,
 * as `carve replay` says of the same heap, and the exit status tells. */
static int report_failed_allocs(const trace *t, const replay_outcome *out)
{
    if (out->failed_allocs == 0)
        return CLI_EXIT_OK;
    fprintf(stderr,
            "carve map: %zu allocations failed (the first at line %u): the heap is too small "
            "for this trace; 'carve replay --find-min' finds the smallest that fits\n",
            out->failed_allocs, (unsigned)t->lines[out->first_failure_op]);
    return CLI_EXIT_FAILURE;
}

int map_main(int argc, char **argv)
{
    map_options o;
    int status = parse_map_options(argc, argv, &o);
    if (status != CLI_EXIT_OK)
        return status < 0 ? CLI_EXIT_OK : status;
    if (o.trace == NULL || o.output == NULL)
        return CLI_EXIT_USAGE; /* reported by parse_map_options */
    trace t;
    char err[TRACE_ERROR_LEN];
    if (trace_load(o.trace, &t, err, sizeof err) != 0) {
        fprintf(stderr, "carve map: %s\n", err);
        return CLI_EXIT_FAILURE;
    }
    size_t size = o.heap_size ? o.heap_size : replay_default_heap_size(&t);
    replay_warn_alignment("map", &t);
    unsigned char *buffer = replay_buffer_map(size, replay_buffer_alignment(&t));
    if (buffer == NULL) {
        fprintf(stderr, "carve map: cannot map %zu bytes: %s\n", size, strerror(errno));
        trace_free(&t);
        return CLI_EXIT_FAILURE;
    }
    /* Pass 1: how high the heap reaches (the picture's address range). */
    replay_outcome out;
    carve_stats st;
    replay_carve_extras x1 = {.track_footprint = true};
    if (replay_carve(&t, buffer, size, o.policy, &x1, &out, &st) != 0) {
        fprintf(stderr, "carve map: %s\n", out.message);
        status = CLI_EXIT_FAILURE;
        goto done;
    }
    size_t span = st.capacity;
    if (o.heap_size == 0) {
        span = out.footprint + out.footprint / 20u; /* 5% headroom above the top */
        span = span < 4096u ? 4096u : (span + 4095u) & ~(size_t)4095u;
    }
    unsigned rows = o.height - 150u;
    size_t columns = o.columns ? o.columns : o.width - 102u;
    if (t.op_count > 0 && columns > t.op_count)
        columns = t.op_count;
    map_ctx m = {map_canvas_new(span, columns + 1u, rows)};
    if (m.canvas == NULL) {
        fprintf(stderr, "carve map: out of memory\n");
        status = CLI_EXIT_FAILURE;
        goto done;
    }
    /* Pass 2: the same replay, sampled. */
    replay_carve_extras x2 = {.samples = columns,
                              .sample = map_sample_fn,
                              .sample_ctx = &m,
                              .progress = true,
                              .progress_label = "map"};
    if (replay_carve(&t, buffer, size, o.policy, &x2, &out, &st) != 0) {
        fprintf(stderr, "carve map: %s\n", out.message);
        status = CLI_EXIT_FAILURE;
    } else {
        char title[512], subtitle[512], a[32], b[32];
        const char *base = strrchr(t.path, '/');
        snprintf(title, sizeof title, "carve heap map: %s", base ? base + 1 : t.path);
        snprintf(subtitle, sizeof subtitle,
                 "%s, %s buffer; %zu operations; peak live %s; %zu failed allocations",
                 cli_policy_name(o.policy), cli_format_bytes(a, sizeof a, size), t.op_count,
                 cli_format_bytes(b, sizeof b, t.peak_live), out.failed_allocs);
        map_layout l = {o.width, o.height, title, subtitle,
                        "operations replayed (time); one column per sample"};
        if (!map_canvas_write(m.canvas, o.output, &l, err, sizeof err)) {
            fprintf(stderr, "carve map: %s\n", err);
            status = CLI_EXIT_FAILURE;
        } else {
            printf("carve map: wrote %s: %zu samples over %zu operations, addresses 0 to %s "
                   "(%s)\n",
                   o.output, columns, t.op_count, cli_format_bytes(a, sizeof a, span),
                   o.heap_size ? "the whole heap" : "the highest byte used, plus 5%");
            status = report_failed_allocs(&t, &out);
        }
    }
    map_canvas_free(m.canvas);
done:
    replay_buffer_unmap(buffer, size);
    trace_free(&t);
    return status;
}
