/*
 * map.h: pictures of a heap over time.  A map_canvas collects columns, each
 * a carve_walk of the heap at one moment, with the address range cut into
 * pixel rows and each row coloured by the state that holds most of its
 * bytes (free, raw, handle, pinned, carve's own metadata); then writes an
 * SVG by hand (and a PNG through rsvg-convert or ImageMagick when asked).
 */
#ifndef CARVE_TOOL_MAP_H
#define CARVE_TOOL_MAP_H

#include <carve.h>

#include <stdbool.h>
#include <stddef.h>

typedef struct map_canvas map_canvas;

typedef struct map_layout {
    unsigned width, height; /* of the whole picture, pixels */
    const char *title;
    const char *subtitle;
    const char *x_label; /* "operations", "step" */
} map_layout;

/* A canvas for up to max_columns samples of the addresses [0, span) from
 * the heap pointer, drawn with rows pixel rows.  NULL when out of memory. */
map_canvas *map_canvas_new(size_t span, size_t max_columns, unsigned rows);

/* Adds a column: the heap now, at time x (an operation count, a step; a
 * negative x stands for the column's number, from 1).
 * False when the canvas is full or the walk reports corruption. */
bool map_canvas_sample(map_canvas *c, carve_heap *h, double x);

/* Whether path names a picture map_canvas_write can make: it ends in .svg
 * or .png (either case).  The commands refuse any other name before doing
 * any work, rather than write SVG into, say, a .txt file. */
bool map_path_supported(const char *path);

/* Writes the picture to path: SVG, or PNG when path ends in .png (through
 * a converter; false with the reason in why when none is installed).
 * False with why on any error. */
bool map_canvas_write(const map_canvas *c, const char *path, const map_layout *l, char *why,
                      size_t whylen);

void map_canvas_free(map_canvas *c);

#endif /* CARVE_TOOL_MAP_H */
