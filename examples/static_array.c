/*
 * static_array.c: the embedded case.
 *
 * A heap in a static array: no operating system, no malloc, nothing but the
 * memory the program already owns.  A firmware image would do exactly this
 * (printf here only narrates; carve itself never prints or calls the OS).
 *
 * It sizes the arena with the sizing helpers, then allocates and frees a few
 * message buffers, as a protocol stack would.
 */
#include <carve.h>

#include <stdalign.h>
#include <stdio.h>
#include <string.h>

/* The whole heap.  Any alignment works (carve aligns what it needs inside
 * the buffer); 64 wastes nothing in front of the heap's control block. */
enum { ARENA_SIZE = 16384 };
static alignas(64) unsigned char arena[ARENA_SIZE];

/* A message as an embedded program might queue it. */
typedef struct message {
    unsigned id;
    size_t length;
    char text[]; /* the payload follows the header in the same block */
} message;

static message *message_new(carve_heap *heap, unsigned id, const char *text)
{
    size_t length = strlen(text) + 1;
    message *m = carve_alloc(heap, sizeof *m + length);
    if (m == NULL)
        return NULL; /* errno is ENOMEM: the arena is full */
    m->id = id;
    m->length = length;
    memcpy(m->text, text, length);
    return m;
}

int main(void)
{
    /* Sizing: how small may the arena be, how big can one block get? */
    size_t min_size = carve_min_buffer_size(NULL);
    size_t max_alloc = carve_max_alloc_size(sizeof arena, NULL);
    printf("smallest arena: %zu bytes; largest block in %zu bytes: %zu bytes\n", min_size,
           sizeof arena, max_alloc);
    if (sizeof arena < min_size || max_alloc == 0)
        return 1;

    /* NULL options: CARVE_GOOD_FIT, no locking (one thread), no poisoning. */
    carve_heap *heap = carve_init(arena, sizeof arena, NULL);
    if (heap == NULL)
        return 1;

    /* Queue a few messages, then release the first and the third. */
    static const char *const texts[] = {"boot", "sensor 12: 21.5 C", "link up", "ack 7"};
    message *queue[4];
    for (unsigned i = 0; i < 4; i++) {
        queue[i] = message_new(heap, i, texts[i]);
        if (queue[i] == NULL)
            return 1;
    }
    if (carve_free(heap, queue[0]) != CARVE_OK || carve_free(heap, queue[2]) != CARVE_OK)
        return 1;

    /* A new message reuses the space just freed. */
    message *reply = message_new(heap, 4, "reply to 1");
    if (reply == NULL || strcmp(queue[1]->text, texts[1]) != 0)
        return 1;

    carve_stats st;
    carve_get_stats(heap, &st);
    printf("%zu blocks live, %zu of %zu bytes used, largest free request %zu\n", st.live_blocks,
           st.used_bytes, st.capacity, st.largest_free);

    /* Release everything: the arena is back to one free block, and the
     * largest block the sizing helper promised fits. */
    if (carve_free(heap, queue[1]) != CARVE_OK || carve_free(heap, queue[3]) != CARVE_OK ||
        carve_free(heap, reply) != CARVE_OK)
        return 1;
    void *big = carve_alloc(heap, max_alloc);
    if (big == NULL || carve_free(heap, big) != CARVE_OK)
        return 1;
    return carve_check(heap) == CARVE_OK ? 0 : 1;
}
