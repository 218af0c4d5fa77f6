/* huge_alloc.c — malloc and calloc with transparent-huge-page advice for
 * large buffers (see huge_alloc.h). */
#define _GNU_SOURCE
#include "raana/huge_alloc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define HUGE_PAGE ((uintptr_t)2 << 20)

static int advice_wanted(void)
{
    static int wanted = -1; /* read once; the environment does not change */
    if (wanted < 0) {
        const char *v = getenv("RAANA_HUGE_PAGES");
        wanted = !(v && strcmp(v, "0") == 0);
    }
    return wanted;
}

static void advise_huge(void *p, size_t bytes)
{
#ifdef MADV_HUGEPAGE
    if (!p || bytes < RAANA_HUGE_ALLOC_MIN || !advice_wanted())
        return;
    uintptr_t first = ((uintptr_t)p + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
    uintptr_t last = ((uintptr_t)p + bytes) & ~(HUGE_PAGE - 1);
    if (last > first)
        (void)madvise((void *)first, last - first, MADV_HUGEPAGE); /* advice only */
#else
    (void)p, (void)bytes;
#endif
}

/* A large block starts on a huge-page boundary, so that every whole 2 MiB
 * of it can be one huge page (a malloc'd block starts 16 bytes into a page:
 * a 4 MiB buffer would hold only one whole huge page). */
void *raana_malloc_large(size_t bytes)
{
    if (bytes < RAANA_HUGE_ALLOC_MIN || !advice_wanted())
        return malloc(bytes);
    void *p = NULL;
    if (posix_memalign(&p, HUGE_PAGE, bytes) != 0)
        return NULL;
    advise_huge(p, bytes);
    return p;
}

void *raana_calloc_large(size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size)
        return NULL;
    size_t bytes = n * size;
    if (bytes < RAANA_HUGE_ALLOC_MIN || !advice_wanted())
        return calloc(n, size);
    void *p = raana_malloc_large(bytes);
    if (p)
        memset(p, 0, bytes); /* faults the pages in, as huge pages */
    return p;
}
