/* bytebuf.h — a growable byte buffer for building a file in memory (the
 * safetensors header, the resume files): appends never fail one by one;
 * running out of memory sets `failed`, later appends do nothing, and the
 * caller checks `failed` once at the end. The bytes are always followed by
 * a NUL, so text built in it is a C string. No MPI, no files. */
#ifndef RAANA_BYTEBUF_H
#define RAANA_BYTEBUF_H

#include <stddef.h>

typedef struct {
    char *data; /* NULL until the first append; the caller frees it */
    size_t len, cap;
    int failed;
} raana_bytebuf;

/* Makes room for n more bytes at once (a caller that knows the size
 * avoids the copies of doubling). */
void raana_bytebuf_reserve(raana_bytebuf *b, size_t n);

/* Appends n bytes of p. */
void raana_bytebuf_put(raana_bytebuf *b, const void *p, size_t n);

#endif
