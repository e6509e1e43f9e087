/*
 * error_handling.c: the error handling a careful user writes.
 *
 * carve reports every failure and never changes the heap when a call fails:
 *   - pointer-returning calls return NULL and set errno: ENOMEM when the
 *     request does not fit, EINVAL when the request itself is wrong;
 *   - carve_free returns a carve_status; carve_strerror turns it into text;
 *   - a failed carve_realloc leaves the old block as it was;
 *   - carve_check walks the whole heap when something looks suspicious.
 * Each check below is what a program would do; here it also verifies it.
 */
#include <carve.h>

#include <errno.h>
#include <stdalign.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static alignas(64) unsigned char arena[8192];

/* Fails the example (exit status 1) when a check does not hold. */
#define EXPECT(cond)                                                            \
    do {                                                                        \
        if (!(cond)) {                                                          \
            fprintf(stderr, "%s:%d: expected %s\n", __FILE__, __LINE__, #cond); \
            return 1;                                                           \
        }                                                                       \
    } while (0)

/* Allocates and says why it could not: the two errno values mean different
 * things to a caller (retry smaller or later vs. fix the call). */
static void *checked_alloc(carve_heap *heap, size_t size)
{
    void *p = carve_alloc(heap, size);
    if (p == NULL) {
        int err = errno;
        printf("carve_alloc(%zu): %s\n", size,
               err == ENOMEM ? "out of memory in this heap" : "invalid request");
        errno = err; /* keep it for the caller: printf may change errno */
    }
    return p;
}

int main(void)
{
    carve_heap *heap = carve_init(arena, sizeof arena, NULL);
    EXPECT(heap != NULL);

    /* NULL + errno: EINVAL for a bad request, ENOMEM for one that cannot fit. */
    EXPECT(checked_alloc(heap, 0) == NULL && errno == EINVAL);
    EXPECT(checked_alloc(heap, sizeof arena) == NULL && errno == ENOMEM);
    EXPECT(carve_calloc(heap, SIZE_MAX / 2, 4) == NULL && errno == ENOMEM); /* overflow */
    EXPECT(carve_aligned_alloc(heap, 48, 64) == NULL && errno == EINVAL);   /* not 2^k */

    /* carve_free reports what it found; nothing changes on an error. */
    char *a = checked_alloc(heap, 100), *b = checked_alloc(heap, 100),
         *c = checked_alloc(heap, 100);
    EXPECT(a != NULL && b != NULL && c != NULL);
    int rc = carve_free(heap, b);
    EXPECT(rc == CARVE_OK);
    rc = carve_free(heap, b); /* b's neighbours are live, so b is still a free block */
    printf("second free of b: %s\n", carve_strerror(rc));
    EXPECT(rc == CARVE_ERR_DOUBLE_FREE);
    rc = carve_free(heap, a + 16); /* a pointer into the middle of a block */
    printf("free of an interior pointer: %s\n", carve_strerror(rc));
    EXPECT(rc == CARVE_ERR_NOT_OWNED);
    int on_stack;
    rc = carve_free(heap, &on_stack); /* memory that is not the heap's */
    printf("free of a foreign pointer: %s\n", carve_strerror(rc));
    EXPECT(rc == CARVE_ERR_NOT_OWNED);
    EXPECT(carve_free(heap, NULL) == CARVE_OK); /* like free(NULL) */

    /* Suspicious events happened: is the heap still sound?  (It must be:
     * the bad calls above were refused and changed nothing.) */
    EXPECT(carve_check(heap) == CARVE_OK);

    /* The realloc idiom: never assign the result straight back, or a failure
     * loses the only pointer to a block that is still live and intact. */
    memcpy(a, "keep me", sizeof "keep me");
    char *grown = carve_realloc(heap, a, sizeof arena);
    if (grown == NULL) {
        int err = errno; /* before printf, which may change errno */
        printf("realloc failed (%s); the old block is untouched: \"%s\"\n",
               err == ENOMEM ? "ENOMEM" : "EINVAL", a);
        EXPECT(err == ENOMEM && strcmp(a, "keep me") == 0);
    } else {
        a = grown;
    }
    EXPECT(carve_realloc(heap, b, 10) == NULL && errno == EINVAL); /* b was freed */

    EXPECT(carve_free(heap, a) == CARVE_OK && carve_free(heap, c) == CARVE_OK);
    EXPECT(carve_check(heap) == CARVE_OK);
    return 0;
}
