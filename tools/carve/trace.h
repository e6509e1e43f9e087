/*
 * trace.h: allocation traces (docs: /work/shared/trace-format.md, and
 * docs/tools.md): reading one into memory, checked line by line.
 *
 * A trace names blocks by ids; the reader turns them into dense slot numbers
 * (an id's slot is free for reuse once the block is freed, so there are as
 * many slots as blocks were ever live at once) and a realloc keeps its
 * block's slot.  A replay then needs one array indexed by slot, no hashing.
 */
#ifndef CARVE_TOOL_TRACE_H
#define CARVE_TOOL_TRACE_H

#include <stddef.h>
#include <stdint.h>

typedef enum trace_op_kind {
    TRACE_MALLOC = 0,
    TRACE_CALLOC,
    TRACE_ALIGNED,
    TRACE_REALLOC,
    TRACE_FREE,
} trace_op_kind;

/* One call.  size is the bytes asked for (count x size for calloc; 0 for a
 * free); align_log2 is log2 of an aligned allocation's alignment. */
typedef struct trace_op {
    uint64_t size;
    uint32_t slot;
    uint8_t kind;
    uint8_t align_log2;
} trace_op;

typedef struct trace {
    char *path;
    trace_op *ops;
    uint32_t *lines; /* lines[i]: the line of ops[i] in the file */
    size_t op_count;
    size_t slot_count;      /* the most blocks live at once */
    size_t counts[5];       /* operations of each trace_op_kind */
    size_t threads;         /* distinct thread numbers seen (1 when no `t` line) */
    int threads_over_limit; /* 1: more than TRACE_MAX_THREADS, counted up to it */
    size_t thread_switches;
    size_t lines_read;
    uint64_t peak_live;      /* the most requested bytes live at once */
    uint64_t floor;          /* the most bytes live at once, each request rounded up to 16 */
    uint64_t need;           /* the floor with each block counted as trace_need() (>= floor) */
    size_t end_live;         /* blocks still live at the end (never freed) */
    unsigned align_log2_max; /* log2 of the largest alignment an `m` line asks (0: none) */
    int compressed;          /* 1 when the file was gzip-compressed */
    int from_stream;         /* 1 when read from a pipe or a device: its size is unknown */
    uint64_t file_bytes;     /* the file's size (compressed size for gzip); 0 for a stream */
} trace;

enum {
    TRACE_ERROR_LEN = 512,
    TRACE_MAX_THREADS = 65536, /* distinct thread numbers counted exactly */
};

/* Reads the trace at path, plain or gzip-compressed (told apart by the
 * gzip magic bytes), a file or a stream (a pipe, /dev/stdin: read once).
 * Returns 0, or -1 with a message in err of the form "PATH:LINE: reason"
 * (or "PATH: reason" when the file cannot be read).
 * On failure *t holds nothing to free. */
int trace_load(const char *path, trace *t, char *err, size_t errlen);

void trace_free(trace *t);

/* The request a replay makes for a trace size: malloc(0) still returns a
 * distinct block, so 0 is asked as 1 (carve and some callers refuse 0). */
static inline size_t trace_request(uint64_t size)
{
    return size == 0 ? 1u : (size_t)size;
}

/* A request rounded up to the 16-byte granule of the aligned floor. */
static inline uint64_t trace_aligned(uint64_t size)
{
    uint64_t s = size == 0 ? 1u : size;
    return (s + 15u) & ~(uint64_t)15u;
}

/* Bytes an aligned request asks of a heap beyond its size: carve serves an
 * alignment above 16 from a free block of size + alignment + 32 bytes
 * (include/carve.h, carve_get_stats), so a heap sized from the floor alone
 * may have no room for it (an `m` line of 16 bytes aligned to 32 MiB). */
static inline uint64_t trace_alignment_slack(unsigned align_log2)
{
    return align_log2 > 4u ? ((uint64_t)1 << align_log2) + 32u : 0u;
}

/* What a block may take from a heap while it is placed: its aligned size
 * plus its alignment slack.  A trace's `need` is the peak of these sums. */
static inline uint64_t trace_need(uint64_t size, unsigned align_log2)
{
    return trace_aligned(size) + trace_alignment_slack(align_log2);
}

#endif /* CARVE_TOOL_TRACE_H */
