/*
 * mmap_region.c: a sub-allocator over one mmap'd region.
 *
 * A program reserves one large region up front (64 MiB, MAP_NORESERVE: pages
 * cost nothing until touched) and lets carve manage it: many objects, one
 * mapping, one munmap to release them all.  Because carve keeps every piece
 * of its metadata inside the region and refers to blocks by offset, the heap
 * can also be reopened later with carve_attach, here on the same mapping (a
 * mapped file reopened after a restart works the same way).
 */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS, MAP_NORESERVE */

#include <carve.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

enum { REGION_SIZE = 64u << 20, OBJECTS = 20000 };

static int fail(const char *what)
{
    fprintf(stderr, "mmap_region: %s (errno: %s)\n", what, strerror(errno));
    return 1;
}

int main(void)
{
    void *region = mmap(NULL, REGION_SIZE, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (region == MAP_FAILED)
        return fail("mmap failed");

    carve_heap *heap = carve_init(region, REGION_SIZE, NULL);
    if (heap == NULL)
        return fail("carve_init failed");

    /* The table of objects lives in the heap too, so everything the program
     * needs is inside the region. */
    size_t *table = carve_calloc(heap, OBJECTS, sizeof *table);
    if (table == NULL)
        return fail("carve_calloc failed");
    for (size_t i = 0; i < OBJECTS; i++) {
        size_t size = 16 + (i * 37) % 2000; /* 16 B .. 2 KiB, deterministic */
        unsigned char *obj = carve_alloc(heap, size);
        if (obj == NULL)
            return fail("carve_alloc failed");
        memset(obj, (int)(i & 0xff), size);
        /* Store offsets, not pointers: they stay true wherever the region is mapped. */
        table[i] = (size_t)(obj - (unsigned char *)region);
    }

    carve_stats st;
    carve_get_stats(heap, &st);
    printf("%zu blocks live, %zu bytes used of %zu, peak %zu, largest free %zu\n", st.live_blocks,
           st.used_bytes, st.capacity, st.peak_used_bytes, st.largest_free);

    /* Reopen the heap from the memory alone, as a restarted program would:
     * it forgets its heap pointer and keeps only the offset of its root
     * object (in a file header, say).  carve_attach validates the region and
     * finds every block again; a wrong size is refused with EINVAL. */
    size_t table_offset = (size_t)((unsigned char *)table - (unsigned char *)region);
    heap = NULL;
    if (carve_attach(region, REGION_SIZE / 2) != NULL || errno != EINVAL)
        return fail("carve_attach accepted a wrong size");
    heap = carve_attach(region, REGION_SIZE);
    if (heap == NULL || carve_check(heap) != CARVE_OK)
        return fail("carve_attach did not reopen the heap");

    /* Every object is where the table says, with its contents; free them all. */
    table = (size_t *)((unsigned char *)region + table_offset);
    for (size_t i = 0; i < OBJECTS; i++) {
        unsigned char *obj = (unsigned char *)region + table[i];
        if (obj[0] != (unsigned char)(i & 0xff) || carve_free(heap, obj) != CARVE_OK)
            return fail("an object was lost across carve_attach");
    }
    if (carve_free(heap, table) != CARVE_OK || carve_check(heap) != CARVE_OK)
        return fail("the heap is damaged");
    carve_get_stats(heap, &st);
    printf("after freeing: %zu blocks live, %zu free blocks, largest free %zu\n", st.live_blocks,
           st.free_blocks, st.largest_free);

    /* One call gives every page back, whatever is still allocated in the
     * region (the objects were freed above only to prove they were found). */
    return munmap(region, REGION_SIZE) == 0 && st.live_blocks == 0 ? 0 : 1;
}
