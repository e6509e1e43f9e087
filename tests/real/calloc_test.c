/*
 * calloc_test: calloc under the shim returns zeroed memory without
 * touching pages the program never touches, as glibc does (its large
 * callocs are fresh mmap'd pages): calloc(1, 512 MiB) must not raise the
 * resident set by more than a small part of that (from /proc/self/statm).
 * Large callocs over memory the program dirtied and freed must still be
 * zero, to the last byte, at both ends, and so must a large block of which
 * some pages were dirtied (resident) and the rest never touched.
 *
 * Run under libcarve-malloc.so with CARVE_TRIM_THRESHOLD=0, so that freed
 * pages stay resident (dirty) for the callocs that reuse them.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "resident.h"

#define MIB ((size_t)1 << 20)

static size_t resident_bytes(void)
{
    return resident_bytes_of("calloc_test");
}

static int all_zero(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] != 0) {
            fprintf(stderr, "calloc_test: FAILED: byte %zu of %zu is %u\n", i, n, p[i]);
            return 0;
        }
    }
    return 1;
}

/* Dirties a block of count * size bytes, frees it and callocs the same
 * size (carve hands the same place back, or another; either must be 0). */
static int dirty_then_calloc(size_t count, size_t size)
{
    unsigned char *d = malloc(count * size);
    if (d == NULL) {
        return 0;
    }
    memset(d, 0xa5, count * size);
    free(d);
    unsigned char *p = calloc(count, size);
    int ok = p != NULL && all_zero(p, count * size);
    free(p);
    return ok;
}

int main(void)
{
    size_t big = 512 * MIB;
    size_t before = resident_bytes();
    unsigned char *p = calloc(1, big);
    size_t after = resident_bytes();
    if (p == NULL) {
        fprintf(stderr, "calloc_test: calloc(1, 512 MiB) failed\n");
        return 1;
    }
    size_t grew = after > before ? after - before : 0;
    printf("calloc_test: calloc(1, 512 MiB) raised the resident set by %zu KiB\n", grew >> 10);
    if (grew > 64 * MIB) {
        fprintf(stderr, "calloc_test: FAILED: calloc touched the pages it zeroes (%zu MiB)\n",
                grew / MIB);
        return 1;
    }
    /* Sampled: a full scan would make every page resident. */
    for (size_t i = 0; i < big; i += big / 64 - 1) {
        if (p[i] != 0) {
            fprintf(stderr, "calloc_test: FAILED: byte %zu is not zero\n", i);
            return 1;
        }
    }
    if (p[big - 1] != 0) {
        fprintf(stderr, "calloc_test: FAILED: the last byte is not zero\n");
        return 1;
    }

    /* One page in 64 dirtied (8 MiB), the block freed and asked for again:
     * wherever it lands, every dirtied byte must read zero. */
    size_t stride = 64 * 4096;
    for (size_t i = 0; i + 100 < big; i += stride) {
        p[i + 100] = 0xa5;
    }
    free(p);
    p = calloc(1, big);
    size_t again = resident_bytes();
    if (p == NULL) {
        fprintf(stderr, "calloc_test: the second calloc(1, 512 MiB) failed\n");
        return 1;
    }
    for (size_t i = 0; i + 100 < big; i += stride) {
        if (p[i + 100] != 0 || p[i] != 0) {
            fprintf(stderr, "calloc_test: FAILED: byte %zu of the reused block is not zero\n",
                    i + 100);
            return 1;
        }
    }
    if (again > before + 64 * MIB) {
        fprintf(stderr, "calloc_test: FAILED: the reused calloc made %zu MiB resident\n",
                (again - before) / MIB);
        return 1;
    }
    free(p);

    /* Odd sizes, so that the block ends inside a page; and sizes around the
     * point where the shim changes method. */
    static const size_t sizes[][2] = {{1, 8 * MIB},    {3, 1000001},         {1, 128 * 1024 - 16},
                                      {1, 128 * 1024}, {1, 128 * 1024 + 16}, {4096, 4096 + 1},
                                      {7, 12345},      {1, 3 * 4096 + 5}};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        if (!dirty_then_calloc(sizes[i][0], sizes[i][1])) {
            fprintf(stderr, "calloc_test: FAILED for calloc(%zu, %zu)\n", sizes[i][0], sizes[i][1]);
            return 1;
        }
    }
    printf("calloc_test: ok\n");
    return 0;
}
