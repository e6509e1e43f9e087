/* The README's example: a heap in a buffer you own, used like malloc. */
#include <carve.h>
#include <stdio.h>

static _Alignas(64) unsigned char arena[1 << 20]; /* any memory you own */

int main(void)
{
    carve_heap *h = carve_init(arena, sizeof arena, NULL); /* CARVE_GOOD_FIT */
    if (!h)
        return 1;
    char *msg = carve_alloc(h, 64);
    int *nums = carve_calloc(h, 1000, sizeof *nums);
    if (!msg || !nums)
        return 1;
    snprintf(msg, 64, "hello from inside a caller-owned buffer");
    nums = carve_realloc(h, nums, 2000 * sizeof *nums); /* grows in place if it can */
    carve_stats st;
    carve_get_stats(h, &st);
    printf("%s: %zu of %zu bytes used, largest free %zu\n", msg, st.used_bytes, st.capacity,
           st.largest_free);
    if (carve_free(h, msg) != CARVE_OK || carve_free(h, msg) != CARVE_ERR_DOUBLE_FREE)
        return 1; /* a second free is reported, never followed */
    carve_free(h, nums);
    return carve_check(h) == CARVE_OK ? 0 : 1;
}
