/*
 * trace.c: the trace reader.  Strict: every line either is a call the format
 * defines, with numbers that parse and ids that make sense at that point of
 * the trace, or the whole trace is refused with the line and the reason.
 */
#define _POSIX_C_SOURCE 200809L

#include "trace.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifdef CARVE_TOOL_HAVE_ZLIB
#include <zlib.h>
#else
/* Without zlib: plain files through stdio, and gzip refused (read_lines). */
typedef FILE *gzFile;
#define Z_OK                0
#define gzdopen(fd, mode)   fdopen(fd, mode)
#define gzbuffer(f, size)   ((void)(f), (void)(size))
#define gzread(f, buf, len) ((int)fread(buf, 1, len, f))
#define gzclose(f)          fclose(f)
#endif

enum {
    LINE_MAX_LEN = 4096,
    MAX_DISTINCT_THREADS = TRACE_MAX_THREADS, /* counted exactly up to this many */
};

/* ------------------------------------------------------------------------ */
/* id -> slot: open addressing with linear probing and backward-shift       */
/* deletion (no tombstones, so a long trace never degrades the table).      */
/* ------------------------------------------------------------------------ */

typedef struct id_entry {
    uint64_t id;
    uint32_t slot;
    uint32_t used;
} id_entry;

typedef struct id_map {
    id_entry *e;
    size_t cap; /* a power of two */
    size_t count;
} id_map;

static size_t id_hash(uint64_t id, size_t cap)
{
    uint64_t x = id * 0x9E3779B97F4A7C15ull;
    x ^= x >> 29;
    return (size_t)(x & (uint64_t)(cap - 1u));
}

static id_entry *id_find(const id_map *m, uint64_t id)
{
    if (m->cap == 0)
        return NULL;
    for (size_t i = id_hash(id, m->cap);; i = (i + 1u) & (m->cap - 1u)) {
        if (!m->e[i].used)
            return NULL;
        if (m->e[i].id == id)
            return &m->e[i];
    }
}

static int id_grow(id_map *m)
{
    size_t cap = m->cap ? m->cap * 2u : 1024u;
    id_entry *e = calloc(cap, sizeof *e);
    if (e == NULL)
        return -1;
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->e[i].used)
            continue;
        size_t j = id_hash(m->e[i].id, cap);
        while (e[j].used)
            j = (j + 1u) & (cap - 1u);
        e[j] = m->e[i];
    }
    free(m->e);
    m->e = e;
    m->cap = cap;
    return 0;
}

/* The caller knows id is absent. */
static int id_insert(id_map *m, uint64_t id, uint32_t slot)
{
    if ((m->count + 1u) * 2u > m->cap && id_grow(m) != 0)
        return -1;
    size_t i = id_hash(id, m->cap);
    while (m->e[i].used)
        i = (i + 1u) & (m->cap - 1u);
    m->e[i] = (id_entry){id, slot, 1u};
    m->count++;
    return 0;
}

static void id_remove(id_map *m, id_entry *gone)
{
    size_t mask = m->cap - 1u;
    size_t hole = (size_t)(gone - m->e);
    m->e[hole].used = 0;
    m->count--;
    /* Shift back every entry of the cluster that the hole now cuts off
     * from its home position. */
    for (size_t i = (hole + 1u) & mask; m->e[i].used; i = (i + 1u) & mask) {
        size_t home = id_hash(m->e[i].id, m->cap);
        bool reachable = hole <= i ? (home > hole && home <= i) : (home > hole || home <= i);
        if (reachable)
            continue;
        m->e[hole] = m->e[i];
        m->e[i].used = 0;
        hole = i;
    }
}

/* ------------------------------------------------------------------------ */
/* The parser's state                                                        */
/* ------------------------------------------------------------------------ */

typedef struct parser {
    trace *t;
    const char *path;
    size_t line;
    char *err;
    size_t errlen;
    id_map ids;
    uint32_t *free_slots; /* slots of freed blocks, reused first */
    size_t free_slot_count, free_slot_cap;
    uint64_t *slot_aligned; /* the aligned size of each live slot's block */
    uint64_t *slot_size;    /* its requested size */
    uint64_t *slot_need;    /* its trace_need() */
    size_t slot_cap;
    size_t op_cap;
    uint64_t live, live_aligned, live_need;
    id_map threads; /* the thread numbers seen (a set: slot unused) */
    uint64_t current_thread;
} parser;

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static int
fail(parser *p, const char *fmt, ...)
{
    int n = snprintf(p->err, p->errlen, "%s:%zu: ", p->path, p->line);
    if (n >= 0 && (size_t)n < p->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static int grow(void **array, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : 256u;
    while (n < need)
        n *= 2u;
    void *a = realloc(*array, n * elem);
    if (a == NULL)
        return -1;
    *array = a;
    *cap = n;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Fields                                                                    */
/* ------------------------------------------------------------------------ */

static const char *skip_blanks(const char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    return s;
}

/* The next field: a run of non-blank characters.  NULL at the end of the line. */
static const char *next_field(const char **cursor, size_t *len)
{
    const char *s = skip_blanks(*cursor);
    if (*s == '\0')
        return NULL;
    const char *e = s;
    while (*e != '\0' && *e != ' ' && *e != '\t')
        e++;
    *len = (size_t)(e - s);
    *cursor = e;
    return s;
}

/* Parses field `what` as a decimal number (digits only, up to 2^64 - 1). */
static int parse_number(parser *p, const char **cursor, const char *what, uint64_t *out)
{
    size_t len = 0;
    const char *f = next_field(cursor, &len);
    if (f == NULL)
        return fail(p, "missing %s", what);
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (f[i] < '0' || f[i] > '9')
            return fail(p, "bad %s '%.*s': not a decimal number", what, (int)(len > 40 ? 40 : len),
                        f);
        uint64_t d = (uint64_t)(f[i] - '0');
        if (v > (UINT64_MAX - d) / 10u)
            return fail(p, "bad %s '%.*s': too large", what, (int)(len > 40 ? 40 : len), f);
        v = v * 10u + d;
    }
    *out = v;
    return 0;
}

static int expect_end(parser *p, const char *cursor)
{
    size_t len = 0;
    const char *f = next_field(&cursor, &len);
    if (f != NULL)
        return fail(p, "unexpected '%.*s' after the last field", (int)(len > 40 ? 40 : len), f);
    return 0;
}

static int parse_size(parser *p, const char **cursor, uint64_t *out)
{
    if (parse_number(p, cursor, "size", out) != 0)
        return -1;
    if (*out > (uint64_t)SIZE_MAX / 2u)
        return fail(p, "size %llu is larger than this machine can allocate",
                    (unsigned long long)*out);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Blocks                                                                    */
/* ------------------------------------------------------------------------ */

static int note_thread(parser *p, uint64_t thread);

static int push_op(parser *p, trace_op_kind kind, uint32_t slot, uint64_t size, unsigned align_log2)
{
    trace *t = p->t;
    if (t->threads == 0 && note_thread(p, p->current_thread) != 0)
        return -1; /* the calls before the first `t` line are thread 0's */
    if (t->op_count == p->op_cap) {
        size_t cap = p->op_cap;
        if (grow((void **)&t->ops, &cap, t->op_count + 1u, sizeof *t->ops) != 0)
            return fail(p, "out of memory");
        cap = p->op_cap;
        if (grow((void **)&t->lines, &cap, t->op_count + 1u, sizeof *t->lines) != 0)
            return fail(p, "out of memory");
        p->op_cap = cap;
    }
    t->ops[t->op_count] = (trace_op){size, slot, (uint8_t)kind, (uint8_t)align_log2};
    t->lines[t->op_count] = p->line > UINT32_MAX ? UINT32_MAX : (uint32_t)p->line;
    t->op_count++;
    t->counts[kind]++;
    return 0;
}

/* align_log2: the block's alignment (0 but for an aligned request; a
 * realloc does not keep it). */
static void account(parser *p, uint32_t slot, uint64_t size, unsigned align_log2)
{
    p->slot_size[slot] = size;
    p->slot_aligned[slot] = trace_aligned(size);
    p->slot_need[slot] = trace_need(size, align_log2);
    p->live += size;
    p->live_aligned += p->slot_aligned[slot];
    p->live_need += p->slot_need[slot];
    if (p->live > p->t->peak_live)
        p->t->peak_live = p->live;
    if (p->live_aligned > p->t->floor)
        p->t->floor = p->live_aligned;
    if (p->live_need > p->t->need)
        p->t->need = p->live_need;
}

static void unaccount(parser *p, uint32_t slot)
{
    p->live -= p->slot_size[slot];
    p->live_aligned -= p->slot_aligned[slot];
    p->live_need -= p->slot_need[slot];
}

/* A new live block named id; its slot in *slot. */
static int new_block(parser *p, uint64_t id, uint32_t *slot)
{
    if (id_find(&p->ids, id) != NULL)
        return fail(p, "id %llu is allocated twice (it is still live)", (unsigned long long)id);
    if (p->free_slot_count > 0) {
        *slot = p->free_slots[--p->free_slot_count];
    } else {
        if (p->t->slot_count >= UINT32_MAX)
            return fail(p, "more than 2^32 - 1 blocks live at once");
        size_t n = p->t->slot_count;
        size_t cap = p->slot_cap;
        if (grow((void **)&p->slot_size, &cap, n + 1u, sizeof *p->slot_size) != 0)
            return fail(p, "out of memory");
        cap = p->slot_cap;
        if (grow((void **)&p->slot_aligned, &cap, n + 1u, sizeof *p->slot_aligned) != 0)
            return fail(p, "out of memory");
        cap = p->slot_cap;
        if (grow((void **)&p->slot_need, &cap, n + 1u, sizeof *p->slot_need) != 0)
            return fail(p, "out of memory");
        p->slot_cap = cap;
        *slot = (uint32_t)n;
        p->t->slot_count = n + 1u;
    }
    if (id_insert(&p->ids, id, *slot) != 0)
        return fail(p, "out of memory");
    return 0;
}

static int live_block(parser *p, uint64_t id, const char *call, id_entry **out)
{
    *out = id_find(&p->ids, id);
    if (*out == NULL)
        return fail(p, "%s of id %llu, which is not live (never allocated, or already freed)", call,
                    (unsigned long long)id);
    return 0;
}

static int release_slot(parser *p, uint32_t slot)
{
    if (grow((void **)&p->free_slots, &p->free_slot_cap, p->free_slot_count + 1u,
             sizeof *p->free_slots) != 0)
        return fail(p, "out of memory");
    p->free_slots[p->free_slot_count++] = slot;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Lines                                                                     */
/* ------------------------------------------------------------------------ */

static int line_malloc(parser *p, const char *c)
{
    uint64_t id = 0, size = 0;
    uint32_t slot = 0;
    if (parse_number(p, &c, "id", &id) != 0 || parse_size(p, &c, &size) != 0 ||
        expect_end(p, c) != 0 || new_block(p, id, &slot) != 0)
        return -1;
    account(p, slot, size, 0);
    return push_op(p, TRACE_MALLOC, slot, size, 0);
}

static int line_calloc(parser *p, const char *c)
{
    uint64_t id = 0, count = 0, size = 0;
    uint32_t slot = 0;
    if (parse_number(p, &c, "id", &id) != 0 || parse_number(p, &c, "count", &count) != 0 ||
        parse_size(p, &c, &size) != 0 || expect_end(p, c) != 0)
        return -1;
    if (count != 0 && size > UINT64_MAX / count)
        return fail(p, "calloc(%llu, %llu): the product overflows", (unsigned long long)count,
                    (unsigned long long)size);
    uint64_t product = count * size;
    if (product > (uint64_t)SIZE_MAX / 2u)
        return fail(p, "calloc(%llu, %llu): size %llu is larger than this machine can allocate",
                    (unsigned long long)count, (unsigned long long)size,
                    (unsigned long long)product);
    if (new_block(p, id, &slot) != 0)
        return -1;
    account(p, slot, product, 0);
    return push_op(p, TRACE_CALLOC, slot, product, 0);
}

static int line_aligned(parser *p, const char *c)
{
    uint64_t id = 0, alignment = 0, size = 0;
    uint32_t slot = 0;
    if (parse_number(p, &c, "id", &id) != 0 || parse_number(p, &c, "alignment", &alignment) != 0 ||
        parse_size(p, &c, &size) != 0 || expect_end(p, c) != 0)
        return -1;
    if (alignment == 0 || (alignment & (alignment - 1u)) != 0)
        return fail(p, "alignment %llu is not a power of two", (unsigned long long)alignment);
    if (alignment > (uint64_t)SIZE_MAX / 4u)
        return fail(p, "alignment %llu is larger than this machine can allocate",
                    (unsigned long long)alignment);
    unsigned log2 = 0;
    while (((uint64_t)1 << log2) < alignment)
        log2++;
    if (new_block(p, id, &slot) != 0)
        return -1;
    if (log2 > p->t->align_log2_max)
        p->t->align_log2_max = log2;
    account(p, slot, size, log2);
    return push_op(p, TRACE_ALIGNED, slot, size, log2);
}

static int line_realloc(parser *p, const char *c)
{
    uint64_t id = 0, new_id = 0, size = 0;
    id_entry *e = NULL;
    if (parse_number(p, &c, "id", &id) != 0 || parse_number(p, &c, "new id", &new_id) != 0 ||
        parse_size(p, &c, &size) != 0 || expect_end(p, c) != 0 ||
        live_block(p, id, "realloc", &e) != 0)
        return -1;
    uint32_t slot = e->slot;
    if (new_id != id) {
        if (id_find(&p->ids, new_id) != NULL)
            return fail(p, "realloc to id %llu, which is already live (allocated twice)",
                        (unsigned long long)new_id);
        id_remove(&p->ids, e);
        if (id_insert(&p->ids, new_id, slot) != 0)
            return fail(p, "out of memory");
    }
    unaccount(p, slot);
    account(p, slot, size, 0);
    return push_op(p, TRACE_REALLOC, slot, size, 0);
}

static int line_free(parser *p, const char *c)
{
    uint64_t id = 0;
    id_entry *e = NULL;
    if (parse_number(p, &c, "id", &id) != 0 || expect_end(p, c) != 0 ||
        live_block(p, id, "free", &e) != 0)
        return -1;
    uint32_t slot = e->slot;
    id_remove(&p->ids, e);
    unaccount(p, slot);
    if (release_slot(p, slot) != 0)
        return -1;
    return push_op(p, TRACE_FREE, slot, 0, 0);
}

static int line_thread(parser *p, const char *c)
{
    uint64_t thread = 0;
    if (parse_number(p, &c, "thread", &thread) != 0 || expect_end(p, c) != 0)
        return -1;
    if (thread != p->current_thread)
        p->t->thread_switches++;
    p->current_thread = thread;
    return note_thread(p, thread);
}

/* Counts thread as seen: a hash set, as a trace may name tens of
 * thousands of threads and switch between them on every other line.  Past
 * MAX_DISTINCT_THREADS new numbers are no longer kept (the set stays
 * bounded); the trace says its count is a lower bound. */
static int note_thread(parser *p, uint64_t thread)
{
    if (id_find(&p->threads, thread) != NULL)
        return 0;
    if (p->t->threads >= MAX_DISTINCT_THREADS) {
        p->t->threads_over_limit = 1;
        return 0;
    }
    if (id_insert(&p->threads, thread, 0) != 0)
        return fail(p, "out of memory");
    p->t->threads++;
    return 0;
}

/* The header is exactly "# carve-trace VERSION": the format names that line
 * and nothing else, so trailing text is refused rather than ignored. */
static int check_header(parser *p, const char *line)
{
    static const char magic[] = "# carve-trace ";
    if (strncmp(line, magic, sizeof magic - 1u) != 0)
        return fail(p, "missing header: the first line must be '# carve-trace 1' (is this a "
                       "carve trace?)");
    const char *c = line + sizeof magic - 1u;
    uint64_t version = 0;
    if (parse_number(p, &c, "format version", &version) != 0)
        return -1;
    if (version != 1)
        return fail(p, "unsupported format version %llu (this reader knows version 1)",
                    (unsigned long long)version);
    if (strcmp(line, "# carve-trace 1") != 0)
        return fail(p, "bad header '%.40s': the first line must be exactly '# carve-trace 1'",
                    line);
    return 0;
}

static int parse_line(parser *p, char *line)
{
    size_t len = strlen(line); /* the reader took the newline off */
    /* Lines end in LF alone (the recorder never writes a CR); a CR is the
     * sign of a file converted to DOS line endings, which is named rather
     * than reported as a bad field. */
    if (len > 0 && line[len - 1] == '\r')
        return fail(p, "the line ends in CR LF (DOS line endings); traces use LF only "
                       "(convert with dos2unix or tr -d '\\r')");
    if (p->line == 1)
        return check_header(p, line);
    const char *s = skip_blanks(line);
    if (*s == '#' || *s == '\0')
        return 0; /* a comment, or an empty line: no call */
    /* An operation letter alone ("t") goes on to its parser, which reports
     * the missing field. */
    if (s[1] != ' ' && s[1] != '\t' && s[1] != '\0')
        return fail(p, "unknown operation '%.*s' (expected a, c, m, r, f or t)",
                    (int)strcspn(s, " \t") > 40 ? 40 : (int)strcspn(s, " \t"), s);
    switch (s[0]) {
    case 'a':
        return line_malloc(p, s + 1);
    case 'c':
        return line_calloc(p, s + 1);
    case 'm':
        return line_aligned(p, s + 1);
    case 'r':
        return line_realloc(p, s + 1);
    case 'f':
        return line_free(p, s + 1);
    case 't':
        return line_thread(p, s + 1);
    default:
        return fail(p, "unknown operation '%c' (expected a, c, m, r, f or t)", s[0]);
    }
}

/* ------------------------------------------------------------------------ */
/* The file                                                                  */
/* ------------------------------------------------------------------------ */

static void parser_release(parser *p)
{
    free(p->ids.e);
    free(p->free_slots);
    free(p->slot_size);
    free(p->slot_aligned);
    free(p->slot_need);
    free(p->threads.e);
}

/* -1 (reported at the current line) when reading the file failed. */
static int stream_error(parser *p, gzFile gz)
{
#ifndef CARVE_TOOL_HAVE_ZLIB
    if (ferror(gz))
        return fail(p, "cannot read on: %s", strerror(errno));
    return 0;
#else
    int zerr = Z_OK;
    const char *msg = gzerror(gz, &zerr);
    if (zerr == Z_OK || zerr == Z_STREAM_END)
        return 0;
    if (zerr == Z_BUF_ERROR)
        return fail(p, "the compressed data ends early (a truncated file?)");
    return fail(p, "cannot read on: %s", zerr == Z_ERRNO ? strerror(errno) : msg);
#endif
}

/* ------------------------------------------------------------------------ */
/* Lines out of the stream                                                   */
/* ------------------------------------------------------------------------ */

/* The file is read in chunks and cut into lines here, rather than with
 * gzgets: gzgets stops at a newline only, so a NUL byte would end the
 * line as strlen sees it and hide the rest (a NUL followed by more than a
 * line's length would even make the rest a line of its own); here a line
 * is whatever lies between two newlines, whatever bytes it holds. */
enum {
    READ_CHUNK = 1 << 17,
    /* a chunk, a line's leftover from the chunk before, and its NUL */
    READ_BUFFER = READ_CHUNK + LINE_MAX_LEN + 2,
};

typedef struct line_reader {
    gzFile gz;
    char *buf; /* READ_BUFFER bytes; [start, end) not yet handed out */
    size_t start, end;
    bool eof;
} line_reader;

typedef enum line_status {
    LINE_OK,        /* a line, NUL-terminated in place of its newline */
    LINE_END,       /* no more lines */
    LINE_TOO_LONG,  /* a line longer than LINE_MAX_LEN: its first bytes */
    LINE_READ_FAIL, /* reading the stream failed */
} line_status;

/* Moves the bytes not handed out to the front, then reads a chunk behind
 * them (one byte is always left for the NUL of a last line). */
static line_status refill(line_reader *r)
{
    size_t left = r->end - r->start;
    memmove(r->buf, r->buf + r->start, left);
    r->start = 0;
    r->end = left;
    int got = gzread(r->gz, r->buf + r->end, (unsigned)(READ_BUFFER - 1u - r->end));
    if (got < 0)
        return LINE_READ_FAIL;
    if (got == 0)
        r->eof = true;
    r->end += (size_t)got;
    return LINE_OK;
}

/* The next line in *line (*len bytes, without its newline; *newline false
 * for a last line that has none). */
static line_status next_line(line_reader *r, char **line, size_t *len, bool *newline)
{
    for (;;) {
        char *s = r->buf + r->start;
        size_t avail = r->end - r->start;
        char *nl = memchr(s, '\n', avail);
        size_t n = nl != NULL ? (size_t)(nl - s) : avail;
        *line = s;
        if (n > LINE_MAX_LEN) {
            *len = LINE_MAX_LEN + 1u;
            return LINE_TOO_LONG;
        }
        if (nl != NULL || (r->eof && avail > 0)) {
            s[n] = '\0';
            *len = n;
            *newline = nl != NULL;
            r->start += nl != NULL ? n + 1u : n;
            return LINE_OK;
        }
        if (r->eof)
            return LINE_END;
        if (refill(r) != LINE_OK)
            return LINE_READ_FAIL;
    }
}

/* A line holding a NUL byte is refused: it is not text, and nothing after
 * the NUL would be seen by the parser. */
static int check_no_nul(parser *p, const char *line, size_t len)
{
    const char *nul = memchr(line, '\0', len);
    if (nul != NULL)
        return fail(p,
                    "NUL byte at byte %zu of the line: a trace is text (a binary or "
                    "damaged file?)",
                    (size_t)(nul - line) + 1u);
    return 0;
}

/* One line read: checked for NUL bytes, then parsed. */
static int take_line(parser *p, gzFile gz, line_status status, char *line, size_t len, bool newline)
{
    if (check_no_nul(p, line, len) != 0)
        return -1;
    if (status == LINE_TOO_LONG)
        return fail(p, "line longer than %d bytes", LINE_MAX_LEN);
    if (!newline && stream_error(p, gz) != 0)
        return -1; /* a last line cut short by a damaged stream: say why */
    return parse_line(p, line);
}

/* A tool built without zlib reads a gzip stream as the bytes it is: it is
 * recognised by its magic bytes at the start of the first chunk and
 * refused ("PATH: reason", as it has no line to blame). */
static int refuse_gzip_without_zlib(parser *p, const line_reader *r)
{
#ifdef CARVE_TOOL_HAVE_ZLIB
    (void)p;
    (void)r;
    return 0;
#else
    if (r->end < 2u || (unsigned char)r->buf[0] != 0x1fu || (unsigned char)r->buf[1] != 0x8bu)
        return 0;
    snprintf(p->err, p->errlen,
             "%s: gzip-compressed, but this carve tool was built without zlib (install "
             "zlib1g-dev and rebuild, or gunzip the trace)",
             p->path);
    return -1;
#endif
}

static int read_lines(parser *p, gzFile gz)
{
    line_reader r = {gz, malloc(READ_BUFFER), 0, 0, false};
    if (r.buf == NULL)
        return fail(p, "out of memory");
    int rc = 0;
    line_status status = refill(&r); /* the first chunk, whose start tells gzip */
    if (status == LINE_OK && refuse_gzip_without_zlib(p, &r) != 0) {
        free(r.buf);
        return -1;
    }
    while (status == LINE_OK) {
        char *line = NULL;
        size_t len = 0;
        bool newline = true;
        status = next_line(&r, &line, &len, &newline);
        if (status == LINE_END || status == LINE_READ_FAIL)
            break; /* a read error is reported below, on the line it stopped */
        p->line++;
        if (take_line(p, gz, status, line, len, newline) != 0) {
            rc = -1;
            break;
        }
    }
    if (rc == 0) {
        p->line++;
        rc = stream_error(p, gz);
        if (rc == 0 && status == LINE_READ_FAIL)
            rc = fail(p, "cannot read on: %s", strerror(errno));
        p->line--;
        if (rc == 0 && p->line == 0) {
            p->line = 1;
            rc = fail(p, "empty file: missing header '# carve-trace 1'");
        }
    }
    free(r.buf);
    return rc;
}

/* Whether this machine's memory could hold the trace's live blocks at their
 * peak (its aligned floor): every replay writes a pattern into each block,
 * so a trace beyond that would push the machine into swap or the OOM
 * killer instead of failing.  True when the memory size is unknown. */
static bool floor_fits_memory(const trace *t, uint64_t *memory)
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages <= 0 || page <= 0)
        return true;
    *memory = (uint64_t)pages * (uint64_t)page;
    return t->floor <= *memory;
}

/* Opens the trace once, as a file descriptor handed to zlib, which reads a
 * stream that is not gzip as it is: the file is read through zlib only,
 * from its start, so a pipe or /dev/stdin (which cannot be read twice)
 * works like a file.  NULL with "PATH: reason" in err. */
static gzFile open_trace(const char *path, trace *t, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    if (S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(EISDIR));
        close(fd);
        return NULL;
    }
    /* A pipe's size is known only once read; a stream's is not shown. */
    t->from_stream = !S_ISREG(st.st_mode);
    t->file_bytes = S_ISREG(st.st_mode) && st.st_size > 0 ? (uint64_t)st.st_size : 0u;
    gzFile gz = gzdopen(fd, "rb");
    if (gz == NULL) {
        snprintf(err, errlen, "%s: cannot open: %s", path, errno ? strerror(errno) : "zlib");
        close(fd);
        return NULL;
    }
    gzbuffer(gz, 1u << 17);
#ifdef CARVE_TOOL_HAVE_ZLIB
    t->compressed = !gzdirect(gz); /* looks at the stream's first bytes */
#endif
    return gz;
}

int trace_load(const char *path, trace *t, char *err, size_t errlen)
{
    memset(t, 0, sizeof *t);
    parser p;
    memset(&p, 0, sizeof p);
    p.t = t;
    p.path = path;
    p.err = err;
    p.errlen = errlen;
    err[0] = '\0';

    gzFile gz = open_trace(path, t, err, errlen);
    if (gz == NULL)
        return -1;
    t->path = strdup(path);
    int rc = t->path == NULL ? -1 : read_lines(&p, gz);
    gzclose(gz);
    t->lines_read = p.line;
    t->end_live = p.ids.count;
    if (t->threads == 0)
        t->threads = 1;
    parser_release(&p);
    if (rc != 0) {
        if (err[0] == '\0')
            snprintf(err, errlen, "%s: out of memory", path);
        trace_free(t);
        return -1;
    }
    uint64_t memory = 0;
    if (!floor_fits_memory(t, &memory)) {
        snprintf(err, errlen,
                 "%s: its live blocks reach %llu bytes at their peak, more than this machine's "
                 "%llu bytes of memory; a replay writes into every block, so it cannot run here",
                 path, (unsigned long long)t->floor, (unsigned long long)memory);
        trace_free(t);
        return -1;
    }
    return 0;
}

void trace_free(trace *t)
{
    free(t->path);
    free(t->ops);
    free(t->lines);
    memset(t, 0, sizeof *t);
}
