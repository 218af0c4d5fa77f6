/* ranked.c — the decreasing-key, increasing-index order of raana_ranked
 * items (see ranked.h). */
#include "raana/ranked.h"

#include <stdlib.h>

static int by_key_desc_then_index(const void *a, const void *b)
{
    const raana_ranked *x = a, *y = b;
    if (x->key != y->key)
        return x->key > y->key ? -1 : 1;
    return (x->index > y->index) - (x->index < y->index);
}

void raana_ranked_sort_desc(raana_ranked *items, size_t n)
{
    qsort(items, n, sizeof *items, by_key_desc_then_index);
}
