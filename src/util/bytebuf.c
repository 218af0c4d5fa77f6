/* bytebuf.c — the growable byte buffer (see bytebuf.h). */
#include "raana/bytebuf.h"

#include <stdlib.h>
#include <string.h>

#include "raana/huge_alloc.h"

/* Room for n more bytes and the NUL; 0 when out of memory. The first
 * allocation of a large buffer gets huge pages (huge_alloc.h). */
static int grow(raana_bytebuf *b, size_t n)
{
    if (b->failed)
        return 0;
    if (b->len + n + 1 <= b->cap)
        return 1;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n + 1)
        cap *= 2;
    char *d = b->data ? realloc(b->data, cap) : raana_malloc_large(cap);
    if (!d) {
        b->failed = 1;
        return 0;
    }
    b->data = d, b->cap = cap;
    return 1;
}

void raana_bytebuf_reserve(raana_bytebuf *b, size_t n)
{
    (void)grow(b, n);
}

void raana_bytebuf_put(raana_bytebuf *b, const void *p, size_t n)
{
    if (!grow(b, n))
        return;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}
