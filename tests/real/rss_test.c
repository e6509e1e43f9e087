/*
 * rss_test: resident memory follows live memory under the shim.  It
 * allocates and touches 256 MiB in 1 MiB blocks with small live blocks
 * between them (so the freed space stays in many separate free blocks, not
 * one merged tail), frees the big blocks and checks that the resident set
 * (from /proc/self/statm) dropped by most of what was freed; then it uses
 * the memory again to show the released pages still work.
 *
 * Run under libcarve-malloc.so (with its default trim settings).
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "resident.h"

#define BIG   ((size_t)1 << 20)
#define COUNT 256

static size_t resident_bytes(void)
{
    return resident_bytes_of("rss_test");
}

int main(void)
{
    static char *big[COUNT];
    static char *small[COUNT];
    size_t before = resident_bytes();
    for (int i = 0; i < COUNT; i++) {
        big[i] = malloc(BIG);
        small[i] = malloc(64);
        if (!big[i] || !small[i]) {
            fprintf(stderr, "rss_test: out of memory\n");
            return 1;
        }
        memset(big[i], i, BIG);
        memset(small[i], i, 64);
    }
    size_t full = resident_bytes();
    for (int i = 0; i < COUNT; i++) {
        free(big[i]);
    }
    size_t after = resident_bytes();
    size_t mib = (size_t)1 << 20;
    printf("rss_test: resident %zu MiB at start, %zu MiB with 256 MiB live, %zu MiB after "
           "freeing it\n",
           before / mib, full / mib, after / mib);
    if (full < before + 200 * mib) {
        fprintf(stderr, "rss_test: touching 256 MiB did not raise the resident set\n");
        return 1;
    }
    if (after > full - 200 * mib) {
        fprintf(stderr, "rss_test: FAILED: freeing 256 MiB gave back only %zu MiB\n",
                (full - after) / mib);
        return 1;
    }
    /* The released pages serve new blocks. */
    for (int i = 0; i < COUNT; i++) {
        big[i] = malloc(BIG);
        if (!big[i]) {
            return 1;
        }
        memset(big[i], 0x5a, BIG);
    }
    for (int i = 0; i < COUNT; i++) {
        for (size_t j = 0; j < 64; j++) {
            if (small[i][j] != (char)i) {
                fprintf(stderr, "rss_test: a live block changed\n");
                return 1;
            }
        }
        if (big[i][BIG - 1] != 0x5a) {
            return 1;
        }
        free(big[i]);
        free(small[i]);
    }
    printf("rss_test: ok\n");
    return 0;
}
