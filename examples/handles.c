/* Relocatable blocks: the handle discipline, and compaction one slice per frame.
 *
 * A handle names a block that carve may move whenever it is not pinned, so
 * the heap can merge its free space instead of failing while bytes are free.
 * The rule: pin, use the pointer, unpin, and never keep the pointer after
 * the unpin (the next compaction may move the block).  In your tests, the
 * CARVE_SCRAMBLE flag moves every unpinned block on every allocation, so a
 * pointer kept too long shows up at once. */
#include <carve.h>
#include <stdint.h>
#include <stdio.h>

enum { SLOTS = 256, FRAMES = 60, SLICE = 16 * 1024 };

static _Alignas(64) unsigned char arena[1 << 20];
static carve_handle slot[SLOTS]; /* 0 = empty; a handle stays valid wherever its block goes */

static uint32_t next_random(void) /* xorshift32: the same run every time */
{
    static uint32_t x = 2463534242u;
    x ^= x << 13;
    x ^= x >> 17;
    return x ^= x << 5;
}

/* A block of 1..4 KiB for slot i, its number written in it. */
static int fill(carve_heap *h, int i)
{
    if (!(slot[i] = carve_halloc(h, 1024 + next_random() % 3072)))
        return -1;
    int *p = carve_pin(h, slot[i]); /* pinned: the block stays put... */
    if (!p)
        return -1;
    *p = i;                         /* ...while the program uses p */
    return carve_unpin(h, slot[i]); /* p is dead from here on */
}

/* Whether slot i still holds its number, wherever its block is now. */
static int intact(carve_heap *h, int i)
{
    const int *p = carve_pin(h, slot[i]);
    int ok = p != NULL && *p == i;
    return carve_unpin(h, slot[i]) == CARVE_OK && ok;
}

/* Prints the free space: how many pieces, and the share the largest misses. */
static double fragmentation(carve_heap *h, const char *when)
{
    carve_stats st;
    carve_get_stats(h, &st);
    double frag = 100.0 * (1.0 - (double)st.largest_free / (double)st.free_bytes);
    printf("%-9s %3zu free blocks, fragmentation %5.1f%%\n", when, st.free_blocks, frag);
    return frag;
}

int main(void)
{
    carve_heap *h = carve_init(arena, sizeof arena, NULL);
    if (!h)
        return 1;
    for (int i = 0; i < SLOTS; i++) /* about 640 KiB of blocks... */
        if (fill(h, i) != 0)
            return 1;
    for (int i = 0; i < SLOTS; i += 2) { /* ...then a hole between every two */
        if (carve_hfree(h, slot[i]) != CARVE_OK)
            return 1;
        slot[i] = 0; /* a freed handle is never valid again */
    }
    double before = fragmentation(h, "start:"), after = before;

    for (int frame = 1; frame <= FRAMES; frame++) {
        /* The frame's own churn: scratch blocks that live for the frame... */
        carve_handle scratch[3];
        for (int k = 0; k < 3; k++)
            if (!(scratch[k] = carve_halloc(h, 256 + next_random() % 8192)))
                return 1;
        for (int k = 0; k < 3; k++)
            if (carve_hfree(h, scratch[k]) != CARVE_OK)
                return 1;
        if (frame % 5 == 0) { /* ...and now and then a long-lived block replaced */
            int i = 1 + 2 * (int)(next_random() % (SLOTS / 2));
            if (carve_hfree(h, slot[i]) != CARVE_OK || fill(h, i) != 0)
                return 1;
        }
        /* At most SLICE bytes moved per frame: a pause the frame can afford. */
        if (carve_compact(h, SLICE) > SLICE)
            return 1; /* never happens: the budget is a hard cap */
        if (frame % 6 == 0) {
            char when[32];
            snprintf(when, sizeof when, "frame %d:", frame);
            after = fragmentation(h, when);
        }
    }
    for (int i = 0; i < SLOTS; i++) /* every block kept its contents through the moves */
        if (slot[i] && (!intact(h, i) || carve_hfree(h, slot[i]) != CARVE_OK))
            return 1;
    return carve_check(h) == CARVE_OK && after < before ? 0 : 1;
}
