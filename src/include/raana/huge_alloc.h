/* huge_alloc.h — allocations of large buffers (weights, layer copies,
 * activations) backed by transparent huge pages where the kernel allows
 * it. With 4 KiB pages every large buffer costs one page fault per 4 KiB
 * on first touch: on a 4-block Llama-2-7B-shaped job that was 2.9 million
 * faults and a quarter of the wall time in the kernel (bench/RESULTS.md,
 * "Huge pages"). The kernel's default THP mode on Debian is "madvise", so
 * the program has to ask (docs/DECISIONS.md, "Huge pages for large
 * buffers"). Free the result with free(). */
#ifndef RAANA_HUGE_ALLOC_H
#define RAANA_HUGE_ALLOC_H

#include <stddef.h>

/* Buffers from this size on are advised; smaller ones are plain malloc. */
#define RAANA_HUGE_ALLOC_MIN ((size_t)2 << 20)

/* malloc(bytes) / calloc(n, size); a large block is aligned to 2 MiB and
 * advised with madvise(MADV_HUGEPAGE) over its whole 2 MiB pages. The advice
 * is best effort (a kernel without THP ignores it) and never changes the
 * contents. RAANA_HUGE_PAGES=0 in the environment turns it off (the
 * benchmark's baseline). */
void *raana_malloc_large(size_t bytes);
void *raana_calloc_large(size_t n, size_t size);

#endif
