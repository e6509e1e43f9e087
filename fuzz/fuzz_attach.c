/*
 * fuzz_attach: libFuzzer harness for carve_attach and everything after it.
 *
 * carve_attach reads memory that may come from a file or another process, so
 * it must refuse (NULL, EINVAL) anything that is not a heap, and whatever it
 * accepts must be safe to use: no call may crash or touch memory outside the
 * buffer, whatever the bytes say.  Three ways to make the bytes:
 *
 *   mode 0  [0][remainder][image...]        the input itself is the buffer
 *           (the seed corpus holds real heap images made by gen_corpus);
 *   mode 1  [1][params x6][xor bytes...]    a valid heap built from params,
 *           then the input XOR-ed over it from a chosen offset (all-zero
 *           XOR bytes leave it valid);
 *   mode 2  [2][params x6][4-byte flips...] the same heap with single bytes
 *           flipped at chosen offsets (deep, sparse damage).
 *   params: policy/flags, size (2 bytes), remainder, build seed, XOR offset;
 *   the flags byte: % 3 policy, bit 2 CARVE_POISON, bit 3 CARVE_NO_RUNS,
 *   bit 4 the heap gets handle blocks too (some pinned), bit 5 with
 *   max_handles 32 (else the table grows).
 *
 * On whatever attach accepts it runs every call: check, stats, walk, dump
 * with hex, usable_size, alloc/calloc/aligned/realloc, the handle calls
 * (pin, hsize, unpin, hresize on handle values from the input and likely
 * ones; halloc, hfree; compact with a budget from the input), free of
 * walked and new blocks.  The buffer's surroundings are ASan-poisoned, and every block the
 * heap reports is range-checked before the harness touches it.  When
 * carve_check says the attached heap is sound, everything must then work
 * exactly: frees succeed, nothing overlaps, and the heap checks clean after.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"

#define MAX_IMAGE (1u << 20)
#define MAX_WALK  4096u
#define NNEW      10u

#define FUZZ_CHECK(cond, ...)                                                               \
    do {                                                                                    \
        if (!(cond)) {                                                                      \
            fprintf(stderr, "fuzz_attach: check failed at %s:%d: %s: ", __FILE__, __LINE__, \
                    #cond);                                                                 \
            fprintf(stderr, __VA_ARGS__);                                                   \
            fputc('\n', stderr);                                                            \
            abort();                                                                        \
        }                                                                                   \
    } while (0)

static FILE *devnull(void)
{
    static FILE *f;
    if (f == NULL)
        f = fopen("/dev/null", "w");
    return f;
}

typedef struct walked {
    size_t n;
    int overflow;
    carve_block b[MAX_WALK];
} walked;

static int collect(const carve_block *b, void *ctx)
{
    walked *w = (walked *)ctx;
    if (w->n >= MAX_WALK) {
        w->overflow = 1;
        return 1; /* stop: a visitor's non-zero value ends the walk */
    }
    w->b[w->n++] = *b;
    return 0;
}

/* The handles build_heap left live (and the freed ones, stale), for
 * exercise_handles to try on the damaged copy. */
static carve_handle g_built[64];
static size_t g_nbuilt;

/* Builds a heap with some history from a seed; with handles, handle
 * blocks too (a third of them left pinned, some freed). */
static void build_heap(carve_heap *h, uint64_t seed, int handles)
{
    tu_rng rng;
    tu_rng_seed(&rng, seed);
    void *p[32] = {0};
    carve_handle hd[32] = {0};
    for (int step = 0; step < 80; step++) {
        size_t i = (size_t)tu_rng_below(&rng, 32);
        if (handles && i % 2 == 1) {
            if (hd[i] == 0) {
                size_t s = tu_rng_log_uniform(&rng, 0, 12);
                hd[i] = carve_halloc(h, s);
                void *q = hd[i] ? carve_pin(h, hd[i]) : NULL;
                if (q != NULL) {
                    tu_fill(q, i, s);
                    if (step % 3 != 0)
                        carve_unpin(h, hd[i]);
                }
            } else if (carve_hfree(h, hd[i]) == CARVE_OK) {
                if (g_nbuilt < 64)
                    g_built[g_nbuilt++] = hd[i]; /* stale now */
                hd[i] = 0;
            }
            continue;
        }
        if (p[i] == NULL) {
            size_t s = tu_rng_log_uniform(&rng, 0, 12);
            p[i] = step % 7 == 3 ? carve_aligned_alloc(h, 128, s) : carve_alloc(h, s);
            if (p[i] != NULL)
                tu_fill(p[i], i, s);
        } else if (step % 3 == 0) {
            void *q = carve_realloc(h, p[i], tu_rng_log_uniform(&rng, 0, 12));
            if (q != NULL)
                p[i] = q;
        } else {
            carve_free(h, p[i]);
            p[i] = NULL;
        }
    }
    for (size_t i = 0; i < 32; i++)
        if (hd[i] != 0 && g_nbuilt < 64)
            g_built[g_nbuilt++] = hd[i];
}

/* [p, p + n) inside the buffer. */
static int inside(const tu_region *r, const void *p, size_t n)
{
    return tu_region_contains(r, p, n);
}

/* The handle calls on an attached heap.  Handle values come from the input
 * (its last 64 bytes) and, for a heap built here, the handles build_heap
 * made (live, pinned or freed).  Whatever a pin returns lies inside
 * the buffer; on a sound heap it is a walked handle block's payload with
 * carve_hsize bytes, new handle blocks do not overlap live blocks, a
 * compaction keeps the heap sound, and what the harness pinned it unpins
 * and what it made it frees. */
static void exercise_handles(const tu_region *r, carve_heap *h, int sound, const uint8_t *data,
                             size_t len)
{
    /* The caller's walk is stale (its allocations may have compacted the
     * heap): walk again, and again after anything that moves blocks. */
    static walked now_w;
    const walked *w = &now_w;
#define REWALK()                                                            \
    do {                                                                    \
        memset(&now_w, 0, sizeof now_w);                                    \
        int wr_ = carve_walk(h, collect, &now_w);                           \
        FUZZ_CHECK(!sound || wr_ == CARVE_OK || now_w.overflow, "re-walk"); \
    } while (0)
    REWALK();
    carve_handle cand[8 + 64 + 1];
    size_t n = 0;
    for (size_t k = 0; k < 8 && 8 * (k + 1) <= len; k++)
        memcpy(&cand[n++], data + len - 8 * (k + 1), 8);
    for (size_t k = 0; k < g_nbuilt; k++)
        cand[n++] = g_built[k];
    cand[n++] = 0;
    for (size_t k = 0; k < n; k++) {
        size_t hs = carve_hsize(h, cand[k]);
        errno = 0;
        unsigned char *p = (unsigned char *)carve_pin(h, cand[k]);
        if (p == NULL) {
            FUZZ_CHECK(errno == EINVAL || errno == EIO || errno == EOVERFLOW, "pin errno %d",
                       errno);
            if (sound)
                FUZZ_CHECK(hs == 0 || errno == EOVERFLOW, "hsize %zu of a handle pin refuses", hs);
        } else {
            FUZZ_CHECK(inside(r, p, hs), "pinned block %p+%zu outside the buffer", (void *)p, hs);
            if (sound) {
                int found = 0;
                for (size_t i = 0; i < w->n && !found; i++)
                    found = w->b[i].kind == CARVE_BLOCK_HANDLE && w->b[i].payload == p &&
                            w->b[i].usable == hs;
                FUZZ_CHECK(found || w->overflow, "pin gave %p+%zu, not a walked handle block",
                           (void *)p, hs);
                memset(p, 0x3C, hs);
            }
            int st = carve_unpin(h, cand[k]);
            FUZZ_CHECK(st == CARVE_OK || (!sound && st == CARVE_ERR_CORRUPT), "unpin = %d", st);
        }
        size_t want = 1 + (size_t)(cand[k] % 4096u);
        int st = carve_hresize(h, cand[k], want);
        FUZZ_CHECK(st >= CARVE_OK && st <= CARVE_ERR_CORRUPT, "hresize = %d", st);
        if (st == CARVE_OK) {
            p = (unsigned char *)carve_pin(h, cand[k]);
            FUZZ_CHECK(p != NULL || !sound, "a resized handle does not pin");
            if (p != NULL) {
                size_t us = carve_hsize(h, cand[k]);
                FUZZ_CHECK(us >= want && inside(r, p, us), "resized block %p+%zu", (void *)p, us);
                carve_unpin(h, cand[k]);
            }
            REWALK();
        }
    }
    /* New handles, then a compaction, then they go. */
    REWALK();
    carve_handle mine[4] = {0};
    carve_stats st0;
    carve_get_stats(h, &st0);
    for (size_t k = 0; k < 4; k++) {
        size_t req = 1 + (len > k + 8 ? data[len - 9 - k] : 0) * (k + 1) * 13;
        mine[k] = carve_halloc(h, req);
        if (mine[k] == 0)
            continue;
        unsigned char *p = (unsigned char *)carve_pin(h, mine[k]);
        FUZZ_CHECK(p != NULL || !sound, "a new handle does not pin");
        if (p == NULL)
            continue;
        size_t us = carve_hsize(h, mine[k]);
        FUZZ_CHECK(us >= req && inside(r, p, us), "new handle block %p+%zu", (void *)p, us);
        carve_stats now;
        carve_get_stats(h, &now);
        if (sound && now.compactions == st0.compactions) /* nothing moved: the walk holds */
            for (size_t i = 0; i < w->n; i++) {
                const carve_block *b = &w->b[i];
                if (b->kind != CARVE_BLOCK_RAW && b->kind != CARVE_BLOCK_HANDLE)
                    continue;
                const unsigned char *q = (const unsigned char *)b->payload;
                FUZZ_CHECK(p + us <= q || q + b->usable <= p,
                           "new handle block overlaps a live block");
            }
        memset(p, 0x3D, us);
        carve_unpin(h, mine[k]);
    }
    size_t budget = len > 0 ? (size_t)data[len / 2] << (data[len - 1] % 16u) : 0;
    if (len > 1 && data[len - 2] == 0xFF)
        budget = SIZE_MAX;
    size_t moved = carve_compact(h, budget);
    FUZZ_CHECK(moved <= budget, "compact(%zu) moved %zu", budget, moved);
    if (sound)
        FUZZ_CHECK(carve_check(h) == CARVE_OK, "a sound heap failed its check after compaction");
    for (size_t k = 0; k < 4; k++) {
        if (mine[k] == 0)
            continue;
        int st = carve_hfree(h, mine[k]);
        FUZZ_CHECK(st == CARVE_OK || !sound, "hfree of a new handle = %d", st);
        if (st == CARVE_OK)
            FUZZ_CHECK(carve_pin(h, mine[k]) == NULL, "a freed handle still pins");
    }
#undef REWALK
}

static void exercise(const tu_region *r, carve_heap *h, const uint8_t *data, size_t len)
{
    static walked w;
    unsigned char *buf = r->buf;
    size_t size = r->size;
    FUZZ_CHECK((unsigned char *)h >= buf && (unsigned char *)h < buf + 64 && tu_is_aligned(h, 64),
               "attach returned %p for buffer %p", (void *)h, (void *)buf);

    int sound = carve_check(h);
    FUZZ_CHECK(sound == CARVE_OK || sound == CARVE_ERR_CORRUPT, "check = %d", sound);
    carve_stats st;
    carve_get_stats(h, &st);
    if (sound == CARVE_OK) {
        FUZZ_CHECK(st.used_bytes + st.free_bytes == st.capacity, "used + free != capacity");
        FUZZ_CHECK(st.capacity <= size, "capacity %zu > buffer %zu", st.capacity, size);
        FUZZ_CHECK(st.largest_free <= st.free_bytes, "largest_free > free_bytes");
    }

    memset(&w, 0, sizeof w);
    int wr = carve_walk(h, collect, &w);
    FUZZ_CHECK(wr == CARVE_OK || wr == CARVE_ERR_CORRUPT || (wr == 1 && w.overflow), "walk = %d",
               wr);
    if (sound == CARVE_OK)
        FUZZ_CHECK(wr == CARVE_OK || w.overflow, "a sound heap's walk failed");
    size_t live = 0;
    for (size_t i = 0; i < w.n; i++) {
        const carve_block *b = &w.b[i];
        unsigned char *start = (unsigned char *)h + b->offset;
        FUZZ_CHECK(b->offset < size && b->size <= size && inside(r, start, b->size),
                   "walk reported block %zu+%zu outside the buffer", b->offset, b->size);
        if (b->kind == CARVE_BLOCK_RAW || b->kind == CARVE_BLOCK_HANDLE) {
            FUZZ_CHECK(b->payload != NULL && inside(r, b->payload, b->usable),
                       "walk reported payload %p+%zu outside the buffer", b->payload, b->usable);
            size_t us = carve_usable_size(h, b->payload);
            FUZZ_CHECK(inside(r, b->payload, us), "usable_size %zu runs past the buffer", us);
            if (sound == CARVE_OK) {
                /* A handle block's payload is no raw block: usable_size may
                 * say 0 for it (it does), or its size. */
                FUZZ_CHECK(us == b->usable || (b->kind == CARVE_BLOCK_HANDLE && us == 0),
                           "usable_size %zu, walk says %zu", us, b->usable);
                memset(b->payload, 0x6E, b->usable); /* the owner may write every usable byte */
                live++;
            }
        }
    }
    if (devnull() != NULL)
        carve_dump_ex(h, devnull(), CARVE_DUMP_BLOCKS | CARVE_DUMP_HEX);
    if (sound == CARVE_OK && wr == CARVE_OK)
        FUZZ_CHECK(live == st.live_blocks, "walk found %zu live blocks, stats %zu", live,
                   st.live_blocks);

    /* New blocks: inside the buffer, and on a sound heap, disjoint from every
     * live block and from each other. */
    unsigned char *mine[NNEW] = {0};
    size_t mine_us[NNEW] = {0};
    for (size_t k = 0; k < NNEW; k++) {
        size_t req = 1 + (len > k ? data[len - 1 - k] : 0) * (k + 1) * 7;
        unsigned char *p = k == 7   ? carve_calloc(h, 3, req)
                           : k == 8 ? carve_aligned_alloc(h, 256, req)
                           : k == 9 ? carve_alloc(h, st.largest_free ? st.largest_free / 2 : 1)
                                    : carve_alloc(h, req);
        if (p == NULL)
            continue;
        size_t us = carve_usable_size(h, p);
        FUZZ_CHECK(inside(r, p, us), "new block %p+%zu outside the buffer", (void *)p, us);
        if (sound == CARVE_OK) {
            /* A heap that compacted itself to make room has moved its
             * handle blocks since the walk; raw blocks never move. */
            carve_stats now;
            carve_get_stats(h, &now);
            int moved = now.compactions != st.compactions;
            for (size_t i = 0; i < w.n; i++) {
                const carve_block *b = &w.b[i];
                if (b->kind != CARVE_BLOCK_RAW && (b->kind != CARVE_BLOCK_HANDLE || moved))
                    continue;
                const unsigned char *q = (const unsigned char *)b->payload;
                FUZZ_CHECK(p + us <= q || q + b->usable <= p, "new block overlaps a live one");
            }
            for (size_t j = 0; j < k; j++)
                if (mine[j] != NULL)
                    FUZZ_CHECK(p + us <= mine[j] || mine[j] + mine_us[j] <= p,
                               "new blocks overlap");
            memset(p, 0x2A, us);
        }
        mine[k] = p;
        mine_us[k] = us;
    }
    if (mine[0] != NULL) {
        unsigned char *q = carve_realloc(h, mine[0], 3000);
        if (q != NULL) {
            size_t us = carve_usable_size(h, q);
            FUZZ_CHECK(inside(r, q, us), "realloc'd block outside the buffer");
            mine[0] = q;
            mine_us[0] = us;
            if (sound == CARVE_OK)
                memset(q, 0x2B, us);
        }
    }
    exercise_handles(r, h, sound == CARVE_OK && wr == CARVE_OK, data, len);

    /* Free what the walk found, then ours. */
    for (size_t i = 0; i < w.n; i++) {
        const carve_block *b = &w.b[i];
        if (b->kind != CARVE_BLOCK_RAW)
            continue;
        int fr = carve_free(h, b->payload);
        FUZZ_CHECK(fr >= CARVE_OK && fr <= CARVE_ERR_CORRUPT, "free = %d", fr);
        if (sound == CARVE_OK)
            FUZZ_CHECK(fr == CARVE_OK, "free of a walked block of a sound heap = %d", fr);
    }
    for (size_t k = 0; k < NNEW; k++) {
        if (mine[k] == NULL)
            continue;
        int fr = carve_free(h, mine[k]);
        if (sound == CARVE_OK)
            FUZZ_CHECK(fr == CARVE_OK, "free of a new block of a sound heap = %d", fr);
    }
    int after = carve_check(h);
    FUZZ_CHECK(after == CARVE_OK || after == CARVE_ERR_CORRUPT, "check = %d", after);
    if (sound == CARVE_OK && wr == CARVE_OK) {
        FUZZ_CHECK(after == CARVE_OK, "a sound heap became corrupt through the API");
        carve_get_stats(h, &st);
        /* What is left: the handle blocks (the harness cannot name them all),
         * and the handle table if there is one; no raw block, no run. */
        FUZZ_CHECK(st.live_blocks == st.live_handles, "blocks left: %zu live, %zu handles",
                   st.live_blocks, st.live_handles);
        memset(&w, 0, sizeof w);
        FUZZ_CHECK(carve_walk(h, collect, &w) == CARVE_OK || w.overflow, "walk after");
        size_t used = 0, meta = 0;
        for (size_t i = 0; i < w.n && !w.overflow; i++) {
            FUZZ_CHECK(w.b[i].kind != CARVE_BLOCK_RAW, "a raw block is left");
            used += w.b[i].kind == CARVE_BLOCK_FREE ? 0 : w.b[i].size;
            meta += w.b[i].kind == CARVE_BLOCK_META;
        }
        FUZZ_CHECK(w.overflow || used == st.used_bytes, "used_bytes %zu, the walk finds %zu",
                   st.used_bytes, used);
        FUZZ_CHECK(meta <= 1, "%zu carve blocks left (a run?) after every raw block was freed",
                   meta);
    }
    carve_get_stats(h, &st);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    if (len < 2)
        return 0;
    unsigned mode = data[0] % 3u;
    tu_region r;
    g_nbuilt = 0;
    if (mode == 0) {
        size_t size = len - 2;
        if (size > MAX_IMAGE)
            size = MAX_IMAGE;
        if (tu_region_make(&r, size, data[1] % 64u, 64, 0) != 0)
            return 0;
        memcpy(r.buf, data + 2, size);
    } else {
        if (len < 8)
            return 0;
        carve_options o;
        memset(&o, 0, sizeof o);
        o.policy = (carve_policy)(data[1] % 3u);
        o.flags = ((data[1] & 4u) ? (unsigned)CARVE_POISON : 0u) |
                  ((data[1] & 8u) ? (unsigned)CARVE_NO_RUNS : 0u);
        o.max_handles = (data[1] & 32u) ? 32u : 0u;
        unsigned units = (unsigned)data[2] | ((unsigned)data[3] << 8);
        size_t size = carve_min_buffer_size(&o) + 16u * (size_t)units;
        if (tu_region_make(&r, size, data[4] % 64u, 64, 0) != 0)
            return 0;
        carve_heap *h = carve_init(r.buf, size, &o);
        FUZZ_CHECK(h != NULL, "init(%zu) failed", size);
        build_heap(h, data[5], (data[1] & 16u) != 0);
        const uint8_t *rest = data + 8;
        size_t nrest = len - 8;
        if (mode == 1) {
            size_t start = (((size_t)data[6] | ((size_t)data[7] << 8)) * 8u) % size;
            for (size_t i = 0; i < nrest && start + i < size; i++)
                r.buf[start + i] ^= rest[i];
        } else {
            for (size_t i = 0; i + 4 <= nrest; i += 4) {
                size_t off =
                    ((size_t)rest[i] | ((size_t)rest[i + 1] << 8) | ((size_t)rest[i + 2] << 16)) %
                    size;
                r.buf[off] ^= rest[i + 3];
            }
        }
    }
    errno = 0;
    carve_heap *h = carve_attach(r.buf, r.size);
    if (h == NULL)
        FUZZ_CHECK(errno == EINVAL, "attach failed with errno %d", errno);
    else
        exercise(&r, h, data, len);
    FUZZ_CHECK(tu_region_guards_ok(&r), "guard zone written");
    tu_region_free(&r);
    return 0;
}
