/* test_huge_alloc.c — raana_malloc_large / raana_calloc_large
 * (src/util/huge_alloc.c) and raana_bytebuf_reserve: a large block starts
 * on a 2 MiB boundary, carries the kernel's huge-page advice (the "hg" flag
 * of its mapping in /proc/self/smaps) and holds what is written to it;
 * calloc's blocks are zero and an overflowing count fails; small blocks
 * are plain malloc. With RAANA_HUGE_PAGES=0 (ctest test_huge_alloc_off)
 * no mapping carries the advice. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "raana/bytebuf.h"
#include "raana/huge_alloc.h"

#define MIB ((size_t)1 << 20)

/* 1 when the mapping holding p has the VmFlags flag "hg" (MADV_HUGEPAGE),
 * 0 when it has not, -1 when /proc/self/smaps does not say. */
static int advised(const void *p)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    char line[512];
    int inside = 0, found = -1;
    while (f && found < 0 && fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' '))
            inside = (uintptr_t)p >= lo && (uintptr_t)p < hi;
        else if (inside && strncmp(line, "VmFlags:", 8) == 0)
            found = strstr(line, " hg") != NULL;
    }
    if (f)
        fclose(f);
    return found;
}

static int thp_in_kernel(void)
{
    return access("/sys/kernel/mm/transparent_hugepage/enabled", F_OK) == 0;
}

static void test_large_malloc(int advice_on)
{
    size_t n = 10 * MIB + 123;
    unsigned char *p = raana_malloc_large(n);
    CHECK(p != NULL);
    if (!p)
        return;
    if (advice_on)
        CHECK_INT((uintptr_t)p % (2 * MIB), 0);
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(i * 131 + 7);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        bad += p[i] != (unsigned char)(i * 131 + 7);
    CHECK_INT(bad, 0);
    int hg = advised(p + 4 * MIB);
    if (thp_in_kernel())
        CHECK_INT(hg, advice_on);
    else
        printf("  no transparent huge pages in this kernel: the advice is not checked\n");
    free(p);
}

static void test_large_calloc(void)
{
    size_t n = 3, size = 1500 * 1024; /* 4.4 MiB */
    unsigned char *p = raana_calloc_large(n, size);
    CHECK(p != NULL);
    size_t nonzero = 0;
    for (size_t i = 0; p && i < n * size; i++)
        nonzero += p[i] != 0;
    CHECK_INT(nonzero, 0);
    free(p);
    CHECK(raana_calloc_large(SIZE_MAX / 2, 4) == NULL); /* n * size overflows */
    CHECK(raana_calloc_large(SIZE_MAX / 4 + 1, 8) == NULL);
}

static void test_small(void)
{
    char *p = raana_malloc_large(100), *q = raana_calloc_large(10, 10);
    CHECK(p != NULL && q != NULL);
    if (p)
        memset(p, 1, 100);
    size_t nonzero = 0;
    for (int i = 0; q && i < 100; i++)
        nonzero += q[i] != 0;
    CHECK_INT(nonzero, 0);
    free(p);
    free(q);
}

/* reserve, then appends in pieces: the same bytes, one allocation, and a
 * large first allocation is a large block */
static void test_bytebuf_reserve(int advice_on)
{
    raana_bytebuf b = {0};
    size_t n = 5 * MIB, piece = 4096;
    unsigned char *src = malloc(n);
    for (size_t i = 0; src && i < n; i++)
        src[i] = (unsigned char)(i * 7 + i / 4099);
    raana_bytebuf_reserve(&b, n);
    CHECK(!b.failed && b.cap >= n + 1);
    char *first = b.data;
    for (size_t at = 0; src && at < n; at += piece)
        raana_bytebuf_put(&b, src + at, piece);
    CHECK(b.data == first); /* no reallocation */
    CHECK_INT(b.len, n);
    CHECK(src && b.data && memcmp(b.data, src, n) == 0 && b.data[n] == '\0');
    if (advice_on)
        CHECK_INT((uintptr_t)b.data % (2 * MIB), 0);
    free(b.data);
    free(src);
}

int main(void)
{
    const char *v = getenv("RAANA_HUGE_PAGES");
    int advice_on = !(v && strcmp(v, "0") == 0);
    printf("huge-page advice %s\n", advice_on ? "on" : "off (RAANA_HUGE_PAGES=0)");
    test_large_malloc(advice_on);
    test_large_calloc();
    test_small();
    test_bytebuf_reserve(advice_on);
    return check_summary("test_huge_alloc");
}
