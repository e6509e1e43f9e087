/*
 * gen_corpus: writes the seed corpus for fuzz_ops and fuzz_attach.
 *
 *   gen_corpus DIR      writes DIR/ops/seed-* and DIR/attach/seed-*
 *
 * The committed corpus under fuzz/corpus/ was made with it:
 *   cmake --build BUILD --target carve_fuzz_gen_corpus
 *   BUILD/fuzz/carve_fuzz_gen_corpus fuzz/corpus
 * Re-run it when the heap's layout changes (a new layout version makes the
 * old attach images plain garbage to carve_attach, which is still a valid
 * input, but no longer a deep one).
 *
 * ops seeds: a header (policy/flags, heap size, remainder) and random
 * 4-byte operations, for each policy with and without poisoning and runs;
 * seed-h*: the same with handle operations mixed in (a fixed or a growing
 * handle table, scrambling, poisoning);
 * seed-c*: the block-cache mode (byte 0 bit 7: a GOOD_FIT heap of 4-8 MiB
 * whose freed-block cache the operations reach), mostly general-sized
 * allocations and frees, double frees, reallocs and growth in place.
 * attach seeds: real heap images (mode 0: the bytes of a formatted heap with
 * live and free blocks, some with handle blocks and pins, at the remainder
 * it was made at), and parameter blocks for the build-then-damage modes 1
 * and 2 (some of them with handles).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "test_util.h"

static int write_file(const char *dir, const char *name, const unsigned char *a, size_t na,
                      const unsigned char *b, size_t nb)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL) {
        perror(path);
        return -1;
    }
    if (fwrite(a, 1, na, f) != na || (nb && fwrite(b, 1, nb, f) != nb)) {
        perror(path);
        fclose(f);
        return -1;
    }
    return fclose(f);
}

static int make_dir(const char *path)
{
    if (mkdir(path, 0777) != 0 && errno != EEXIST) {
        perror(path);
        return -1;
    }
    return 0;
}

/* An operation's size bits (fuzz_ops.c's size_from): 12 random bits of
 * mantissa from r, and the scale. */
static void put_size(unsigned char *op, uint64_t r, unsigned scale)
{
    unsigned v = (unsigned)((r >> 32) & 0xFFF) | (scale << 12);
    op[2] = (unsigned char)(v & 0xFF);
    op[3] = (unsigned char)(v >> 8);
}

/* Writes an ops seed as DIR/PREFIX<n, two digits>. */
static int write_seed(const char *dir, const char *prefix, int n, const unsigned char *buf,
                      size_t len)
{
    char name[64];
    snprintf(name, sizeof name, "%s%02d", prefix, n);
    return write_file(dir, name, buf, len, NULL, 0);
}

static int ops_seeds(const char *dir)
{
    const unsigned flag_bits[] = {0, 4, 16, 8 | 16};
    const unsigned units[] = {100, 4000, 20000};
    const size_t nops[] = {24, 96, 240};
    tu_rng rng;
    tu_rng_seed(&rng, 2024);
    int n = 0;
    for (unsigned pol = 0; pol < 3; pol++)
        for (size_t fi = 0; fi < sizeof flag_bits / sizeof flag_bits[0]; fi++)
            for (size_t ui = 0; ui < sizeof units / sizeof units[0]; ui++) {
                unsigned char buf[4 + 4 * 240];
                buf[0] = (unsigned char)(pol | flag_bits[fi]);
                buf[1] = (unsigned char)(units[ui] & 0xFF);
                buf[2] = (unsigned char)(units[ui] >> 8);
                buf[3] = (unsigned char)(pol * 21 + ui * 7 + 1);
                size_t k = nops[(pol + fi + ui) % 3];
                for (size_t i = 0; i < k; i++) {
                    unsigned char *op = buf + 4 + 4 * i;
                    uint64_t r = tu_rng_next(&rng);
                    /* Mostly allocations and frees; sizes mostly small. */
                    unsigned code = (unsigned)(r % 100);
                    op[0] = (unsigned char)(code < 50   ? code % 4
                                            : code < 70 ? 4 + code % 2
                                                        : code % 16);
                    op[1] = (unsigned char)(r >> 8);
                    unsigned scale = (unsigned)((r >> 16) % 100) < 80
                                         ? 4u + (unsigned)((r >> 24) % 5)
                                         : (unsigned)((r >> 24) % 16);
                    put_size(op, r, scale);
                }
                if (write_seed(dir, "seed-", n++, buf, 4 + 4 * k) != 0)
                    return -1;
            }
    return n;
}

/* Handle seeds: byte 0 sets bit 6 (max_handles 64) or not (a growing
 * table), bit 5 (CARVE_SCRAMBLE) and bit 2|4 (poison, no runs) on some; the
 * operations are half handle operations (16-31: halloc, pin, unpin, hfree,
 * hresize, compact with small budgets, bad handles). */
static int handle_ops_seeds(const char *dir)
{
    const unsigned flag_bits[] = {64, 0, 64 | 32, 64 | 4 | 16, 32};
    const unsigned units[] = {300, 3000, 30000};
    tu_rng rng;
    tu_rng_seed(&rng, 2026);
    int n = 0;
    for (unsigned pol = 0; pol < 3; pol++)
        for (size_t fi = 0; fi < sizeof flag_bits / sizeof flag_bits[0]; fi++)
            for (size_t ui = 0; ui < sizeof units / sizeof units[0]; ui++) {
                unsigned char buf[4 + 4 * 300];
                /* byte 0 % 3 is the policy: pick the flag byte's low bits
                 * so that it comes out right */
                unsigned b0 = flag_bits[fi];
                while (b0 % 3 != pol)
                    b0++;
                buf[0] = (unsigned char)b0;
                buf[1] = (unsigned char)(units[ui] & 0xFF);
                buf[2] = (unsigned char)(units[ui] >> 8);
                buf[3] = (unsigned char)(pol * 17 + ui * 5 + fi);
                size_t k = 60 + (size_t)tu_rng_below(&rng, 240);
                for (size_t i = 0; i < k; i++) {
                    unsigned char *op = buf + 4 + 4 * i;
                    uint64_t r = tu_rng_next(&rng);
                    unsigned code = (unsigned)(r % 100);
                    /* 16 halloc-or-hfree, 17-18 pin, 19 unpin, 20-21 hresize,
                     * 22 compact, 23 bad handles; raw ones in between. */
                    op[0] = (unsigned char)(code < 25   ? 16u
                                            : code < 35 ? 17u
                                            : code < 45 ? 19u
                                            : code < 55 ? 20u + code % 2
                                            : code < 62 ? 22u
                                            : code < 65 ? 23u
                                            : code < 68 ? 16u + code % 16
                                                        : code % 4);
                    op[1] = (unsigned char)((r >> 8) % 24); /* fewer slots: more hits */
                    unsigned scale = (unsigned)((r >> 16) % 100) < 80
                                         ? 4u + (unsigned)((r >> 24) % 5)
                                         : (unsigned)((r >> 24) % 16);
                    put_size(op, r, scale);
                }
                if (write_seed(dir, "seed-h", n++, buf, 4 + 4 * k) != 0)
                    return -1;
            }
    return n;
}

/* Block-cache seeds: byte 0 has bit 7 and a policy of GOOD_FIT (byte 0 % 3
 * == 0); with or without the lock, runs, the cache (bit 2: off) and a
 * handle table.  Sizes are general (257 B .. 64 KiB), so frees reach the
 * cache; in the smallest buffer, enough live bytes to close its gate. */
static int cache_ops_seeds(const char *dir)
{
    const unsigned flag_bits[] = {0, 8, 16, 4, 64};
    const unsigned units[] = {0, 20000, 65535};
    tu_rng rng;
    tu_rng_seed(&rng, 2027);
    int n = 0;
    for (size_t fi = 0; fi < sizeof flag_bits / sizeof flag_bits[0]; fi++)
        for (size_t ui = 0; ui < sizeof units / sizeof units[0]; ui++) {
            unsigned char buf[4 + 4 * 400];
            unsigned b0 = 128u | flag_bits[fi];
            while (b0 % 3 != 0)
                b0++;
            buf[0] = (unsigned char)b0;
            buf[1] = (unsigned char)(units[ui] & 0xFF);
            buf[2] = (unsigned char)(units[ui] >> 8);
            buf[3] = (unsigned char)(fi * 9 + ui * 3 + 5);
            size_t k = 150 + (size_t)tu_rng_below(&rng, 250);
            for (size_t i = 0; i < k; i++) {
                unsigned char *op = buf + 4 + 4 * i;
                uint64_t r = tu_rng_next(&rng);
                unsigned code = (unsigned)(r % 100);
                /* 0-3 alloc or free, 4-5 realloc, 7 double free, 13 realloc
                 * near the old size (growth in place), 8 bad pointers, 10
                 * a full check, 14 a trim (it empties the caches first), 9
                 * the largest_free probe, 11 attach. */
                op[0] = (unsigned char)(code < 60   ? code % 4
                                        : code < 70 ? 4u + code % 2
                                        : code < 78 ? 7u
                                        : code < 86 ? 13u
                                        : code < 90 ? 8u
                                        : code < 93 ? 10u
                                        : code < 95 ? 14u
                                        : code < 97 ? 9u
                                        : code < 98 ? 11u
                                                    : 16u);
                /* scales 5-7 and 12-14: up to 8, 16, 32 and 64 KiB
                 * (size_from in fuzz_ops.c); in the smallest buffer only
                 * the large ones, in all 64 slots: about 2 MiB live,
                 * past the gate, so the cache sheds */
                static const unsigned scales[] = {12, 13, 14, 5, 6, 7};
                op[1] = (unsigned char)((r >> 8) % (ui == 0 ? 64u : 48u));
                unsigned scale = scales[(r >> 24) % (ui == 0 ? 3u : 6u)];
                put_size(op, r, scale);
                if (op[0] == 14u) { /* a trim: pages of 4 KiB, blocks of 4 KiB and up */
                    op[2] = (unsigned char)((12u + (r >> 32) % 12u) << 3);
                    op[3] = 0;
                }
            }
            if (write_seed(dir, "seed-c", n++, buf, 4 + 4 * k) != 0)
                return -1;
        }
    return n;
}

/* A heap with some history: raw blocks, and with handles also handle
 * blocks, some pinned (pins are part of the image), some freed. */
static void history(carve_heap *h, uint64_t seed, int handles)
{
    tu_rng rng;
    tu_rng_seed(&rng, seed);
    void *p[24] = {0};
    carve_handle hd[24] = {0};
    for (int step = 0; step < 60; step++) {
        size_t i = (size_t)tu_rng_below(&rng, 24);
        if (handles && i % 2 == 1) {
            if (hd[i] == 0) {
                size_t s = tu_rng_log_uniform(&rng, 0, 10);
                hd[i] = carve_halloc(h, s);
                void *q = hd[i] ? carve_pin(h, hd[i]) : NULL;
                if (q != NULL) {
                    tu_fill(q, i, s);
                    if (step % 3 != 0)
                        carve_unpin(h, hd[i]); /* a third stay pinned */
                }
            } else if (carve_hfree(h, hd[i]) == CARVE_OK) {
                hd[i] = 0;
            }
            continue;
        }
        if (p[i] == NULL) {
            size_t s = tu_rng_log_uniform(&rng, 0, 10);
            p[i] = step % 5 == 2 ? carve_aligned_alloc(h, 64, s) : carve_alloc(h, s);
            if (p[i] != NULL)
                tu_fill(p[i], i, s);
        } else {
            carve_free(h, p[i]);
            p[i] = NULL;
        }
    }
    if (handles)
        (void)carve_compact(h, 256); /* a slice of compaction: part of the history */
}

static int attach_seeds(const char *dir)
{
    int n = 0;
    /* Mode 0: real images; with handles (a fixed or a growing table) too. */
    const size_t sizes[] = {0 /* min + 512 */, 4096, 12288, 16384, 32768};
    const size_t rems[] = {0, 33};
    for (unsigned pol = 0; pol < 3; pol++)
        for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++)
            for (size_t ri = 0; ri < 2; ri++) {
                int handles = si >= 3;
                carve_options o;
                memset(&o, 0, sizeof o);
                o.policy = (carve_policy)pol;
                if (si == 2 && ri == 1)
                    o.flags = CARVE_POISON;
                if (handles && ri == 0)
                    o.max_handles = 32;
                size_t size = sizes[si] ? sizes[si] : carve_min_buffer_size(&o) + 512;
                tu_region r;
                if (tu_region_make(&r, size, rems[ri], 64, 0) != 0)
                    return -1;
                carve_heap *h = carve_init(r.buf, size, &o);
                if (h == NULL) {
                    fprintf(stderr, "gen_corpus: init(%zu) failed\n", size);
                    return -1;
                }
                history(h, pol * 10 + si * 3 + ri, handles);
                unsigned char head[2] = {0, (unsigned char)rems[ri]};
                char name[64];
                snprintf(name, sizeof name, "seed-image-%02d", n++);
                int rc = write_file(dir, name, head, 2, r.buf, size);
                tu_region_free(&r);
                if (rc != 0)
                    return -1;
            }
    /* Modes 1 and 2: params, then no damage / a little damage; params byte
     * 1 bit 4 adds handles to the built heap, bit 5 gives it a fixed table
     * (see fuzz_attach.c). */
    const unsigned units[] = {64, 1000, 20000};
    const unsigned hbits[] = {0, 16, 16 | 32};
    for (unsigned mode = 1; mode <= 2; mode++)
        for (unsigned pol = 0; pol < 3; pol++)
            for (size_t ui = 0; ui < 3; ui++)
                for (size_t hi = 0; hi < 3; hi++) {
                    if (hi > 0 && ui == 0)
                        continue; /* the smallest heap has no room for handles */
                    unsigned char buf[8 + 16];
                    buf[0] = (unsigned char)mode;
                    buf[1] = (unsigned char)(pol | (ui == 1 ? 4u : 0u) |
                                             (ui == 0 && pol == 2 ? 8u : 0u) | hbits[hi]);
                    buf[2] = (unsigned char)(units[ui] & 0xFF);
                    buf[3] = (unsigned char)(units[ui] >> 8);
                    buf[4] = (unsigned char)(pol * 13 + ui);
                    buf[5] = (unsigned char)(pol * 3 + ui + mode);
                    buf[6] = (unsigned char)(ui * 5);
                    buf[7] = 0;
                    memset(buf + 8, 0, 16);
                    size_t len = 8;
                    if (pol == 1) { /* some damage */
                        buf[8] = 0x40;
                        buf[9] = 0x01;
                        buf[10] = 0;
                        buf[11] = 0x80;
                        len = 12;
                    } else if (pol == 2) {
                        len = 24; /* zero XOR: a valid heap */
                    }
                    char name[64];
                    snprintf(name, sizeof name, "seed-mode%u-%02d", mode, n++);
                    if (write_file(dir, name, buf, len, NULL, 0) != 0)
                        return -1;
                }
    return n;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR   (writes DIR/ops and DIR/attach)\n", argv[0]);
        return 2;
    }
    char ops[4096], att[4096];
    snprintf(ops, sizeof ops, "%s/ops", argv[1]);
    snprintf(att, sizeof att, "%s/attach", argv[1]);
    if (make_dir(argv[1]) || make_dir(ops) || make_dir(att))
        return 1;
    int a = ops_seeds(ops);
    int ah = handle_ops_seeds(ops);
    int ac = cache_ops_seeds(ops);
    int b = attach_seeds(att);
    if (a < 0 || ah < 0 || ac < 0 || b < 0)
        return 1;
    printf("gen_corpus: %d ops seeds (%d with handles, %d in the block-cache mode) in %s, "
           "%d attach seeds in %s\n",
           a + ah + ac, ah, ac, ops, b, att);
    return 0;
}
