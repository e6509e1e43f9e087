/* The smallest real user of an installed carve: format a static buffer,
 * allocate, free, check.  Exits non-zero when anything is off. */
#include <carve.h>

#include <stdio.h>
#include <string.h>

static _Alignas(64) unsigned char arena[64 * 1024];

int main(void)
{
    if (strcmp(carve_version(), CARVE_VERSION_STRING) != 0) {
        fprintf(stderr, "header %s, library %s\n", CARVE_VERSION_STRING, carve_version());
        return 1;
    }
    carve_heap *heap = carve_init(arena, sizeof arena, NULL);
    if (heap == NULL) {
        perror("carve_init");
        return 1;
    }
    char *text = carve_alloc(heap, 32);
    if (text == NULL) {
        perror("carve_alloc");
        return 1;
    }
    strcpy(text, "hello from carve");
    if (carve_free(heap, text) != CARVE_OK || carve_check(heap) != CARVE_OK) {
        fprintf(stderr, "free or check failed\n");
        return 1;
    }
    printf("carve %s: ok\n", carve_version());
    return 0;
}
