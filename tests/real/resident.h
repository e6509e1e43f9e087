/*
 * resident.h: the resident set of the calling process, for the shim's
 * memory tests (rss_test, calloc_test).
 *
 * Copyright (c) 2026 the carve authors.  MIT licence (see LICENSE).
 */
#ifndef CARVE_TESTS_REAL_RESIDENT_H
#define CARVE_TESTS_REAL_RESIDENT_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* Bytes resident now (/proc/self/statm); exits 2, naming who, when it
 * cannot be read. */
static inline size_t resident_bytes_of(const char *who)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0;
    unsigned long rss = 0;
    if (!f || fscanf(f, "%lu %lu", &size, &rss) != 2) {
        fprintf(stderr, "%s: cannot read /proc/self/statm\n", who);
        exit(2);
    }
    fclose(f);
    return (size_t)rss * (size_t)sysconf(_SC_PAGESIZE);
}

#endif
