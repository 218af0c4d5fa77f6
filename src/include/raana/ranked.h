/* ranked.h — (key, index) pairs put in order of decreasing key, ties by
 * increasing index: the one ordering behind balance.c's LPT schedule,
 * quantize.c's per-rank layer order and trick_terms.c's largest columns.
 * Keys must not be NaN. */
#ifndef RAANA_RANKED_H
#define RAANA_RANKED_H

#include <stddef.h>

typedef struct {
    double key;
    int index;
} raana_ranked;

/* Sorts items[0..n) by key, largest first; equal keys by index, lowest first. */
void raana_ranked_sort_desc(raana_ranked *items, size_t n);

#endif
