/*
 * bad_free: a program with a bug the shim must stop on, as glibc does
 * (the test expects SIGABRT and carve-malloc's message on stderr).
 *
 *   bad_free double|foreign|interior|realloc-foreign|realloc-freed
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    static char not_heap[64];
    /* volatile: the compiler must not see (and warn about) the bugs. */
    char *volatile foreign = not_heap + 16;
    const char *mode = argc > 1 ? argv[1] : "";
    char *p = malloc(100);
    char *volatile alias = p;
    char *volatile interior = p + 32;
    if (strcmp(mode, "double") == 0) {
        free(p);
        free(alias);
    } else if (strcmp(mode, "foreign") == 0) {
        free(foreign);
    } else if (strcmp(mode, "interior") == 0) {
        free(interior);
    } else if (strcmp(mode, "realloc-foreign") == 0) {
        void *q = realloc(foreign, 10);
        (void)q;
    } else if (strcmp(mode, "realloc-freed") == 0) {
        free(p);
        void *q = realloc(alias, 200);
        (void)q;
    } else {
        fprintf(stderr, "usage: bad_free double|foreign|interior|realloc-foreign|realloc-freed\n");
        return 2;
    }
    puts("bad_free: the bug went unnoticed");
    return 0;
}
