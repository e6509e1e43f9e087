/*
 * api_test: what every malloc promises, checked the same way with and
 * without the shim (the output must match): unique pointers for size 0,
 * ENOMEM on overflow and on impossible sizes, zeroed calloc, realloc
 * keeping contents, alignment of every aligned call, posix_memalign's
 * EINVAL and untouched errno, malloc_usable_size, errno kept by free, and
 * libc functions that allocate internally (strdup, fopen, qsort's buffer).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int g_failed;

/* Through volatile objects, so the compiler does not see (and warn about)
 * the impossible sizes and the use of a block after a realloc that failed
 * on purpose, and does not elide an allocation whose only use is the test
 * for NULL (clang does). */
static volatile size_t g_huge = SIZE_MAX;
static volatile size_t g_half = SIZE_MAX / 2;
static void *(*volatile g_malloc)(size_t) = malloc;
static void *(*volatile g_calloc)(size_t, size_t) = calloc;
static void *(*volatile g_realloc)(void *, size_t) = realloc;
static void *(*volatile g_reallocarray)(void *, size_t, size_t) = reallocarray;

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "api_test:%d: check failed: %s\n", __LINE__, #cond); \
            g_failed = 1;                                                        \
        }                                                                        \
    } while (0)

static int aligned(const void *p, size_t a)
{
    return ((uintptr_t)p & (a - 1u)) == 0;
}

static int cmp(const void *a, const void *b)
{
    int x = *(const int *)a;
    int y = *(const int *)b;
    return (x > y) - (x < y);
}

int main(void)
{
    /* malloc(0): a unique pointer that can be freed. */
    void *z1 = malloc(0);
    void *z2 = malloc(0);
    CHECK(z1 != NULL && z2 != NULL && z1 != z2);
    free(z1);
    free(z2);
    free(NULL);

    errno = 0;
    CHECK(g_malloc(g_huge) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(g_malloc(g_half) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(g_calloc(g_half, 4) == NULL && errno == ENOMEM);
    void *c0 = calloc(0, 5);
    CHECK(c0 != NULL);
    free(c0);

    /* calloc zeroes memory that was dirty before. */
    unsigned char *d = malloc(200000);
    CHECK(d != NULL);
    memset(d, 0xff, 200000);
    free(d);
    for (int k = 0; k < 4; k++) {
        unsigned char *c = calloc(1000, 200);
        CHECK(c != NULL);
        size_t nz = 0;
        for (size_t i = 0; i < 200000; i++) {
            nz += c[i] != 0;
        }
        CHECK(nz == 0);
        free(c);
    }

    /* realloc keeps contents, grows and shrinks; failure keeps the block. */
    char *r = realloc(NULL, 10);
    CHECK(r != NULL);
    memcpy(r, "123456789", 10);
    r = realloc(r, 100000);
    CHECK(r != NULL && strcmp(r, "123456789") == 0);
    r = realloc(r, 5);
    CHECK(r != NULL && memcmp(r, "12345", 5) == 0);
    errno = 0;
    CHECK(g_realloc(r, g_half) == NULL && errno == ENOMEM);
    CHECK(memcmp(r, "12345", 5) == 0);
    errno = 0;
    CHECK(g_reallocarray(r, g_half, 3) == NULL && errno == ENOMEM);
    r = g_reallocarray(r, 10, 10);
    CHECK(r != NULL && memcmp(r, "12345", 5) == 0);
    free(r);

    /* Aligned allocation. */
    void *p = NULL;
    errno = 1234;
    CHECK(posix_memalign(&p, 3, 10) == EINVAL);
    CHECK(posix_memalign(&p, sizeof(void *) / 2, 10) == EINVAL);
    CHECK(posix_memalign(&p, 0, 10) == EINVAL);
    CHECK(errno == 1234);
    for (size_t a = sizeof(void *); a <= 65536; a <<= 1) {
        CHECK(posix_memalign(&p, a, 100) == 0 && aligned(p, a));
        memset(p, 1, 100);
        free(p);
        void *q = aligned_alloc(a, 3 * a);
        CHECK(q != NULL && aligned(q, a));
        free(q);
        q = memalign(a, 17);
        CHECK(q != NULL && aligned(q, a));
        free(q);
    }
    CHECK(errno == 1234);
    CHECK(posix_memalign(&p, 64, 0) == 0);
    free(p);
    errno = 0;
    CHECK(posix_memalign(&p, 64, g_half) == ENOMEM);
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    void *v = valloc(10);
    CHECK(v != NULL && aligned(v, page));
    free(v);
    v = pvalloc(10);
    CHECK(v != NULL && aligned(v, page) && malloc_usable_size(v) >= page);
    free(v);

    /* malloc_usable_size. */
    CHECK(malloc_usable_size(NULL) == 0);
    for (size_t n = 1; n < 70000; n = n * 3 + 1) {
        void *u = malloc(n);
        CHECK(u != NULL && malloc_usable_size(u) >= n);
        memset(u, 7, malloc_usable_size(u));
        free(u);
    }

    /* free keeps errno. */
    void *e = malloc(50);
    errno = 4321;
    free(e);
    CHECK(errno == 4321);

    /* libc's own allocations. */
    char *s = strdup("carve");
    CHECK(s != NULL && strcmp(s, "carve") == 0);
    free(s);
    char *m = NULL;
    CHECK(asprintf(&m, "%d-%s", 42, "x") == 4 && strcmp(m, "42-x") == 0);
    free(m);
    FILE *f = fopen("/proc/self/statm", "r");
    CHECK(f != NULL);
    if (f) {
        fclose(f);
    }
    int *arr = malloc(100000 * sizeof *arr);
    CHECK(arr != NULL);
    for (int i = 0; i < 100000; i++) {
        arr[i] = (i * 7919) % 100003;
    }
    qsort(arr, 100000, sizeof *arr, cmp);
    for (int i = 1; i < 100000; i++) {
        CHECK(arr[i - 1] <= arr[i]);
    }
    free(arr);

    printf("api_test: %s\n", g_failed ? "FAILED" : "ok");
    return g_failed;
}
