/* bench_util.h — what the single-thread kernel benchmarks (bench_llama.c,
 * bench_attention.c) share: a monotonic clock, the peak resident memory,
 * random matrices from raana's counter-based generator, and the sgemm rate
 * of this machine, measured in the same run, that their rates are compared
 * against. */
#ifndef RAANA_BENCH_UTIL_H
#define RAANA_BENCH_UTIL_H

#include <cblas.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

#include "raana/rng.h"

static inline double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static inline double peak_rss_mib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0;
}

/* n values uniform in [-scale/2, scale/2) (the caller frees them). */
static inline float *random_matrix(size_t n, uint64_t seed, float scale)
{
    float *m = malloc(n * sizeof *m);
    for (size_t i = 0; i < n; i++)
        m[i] = scale * (float)(raana_rng_uniform(seed, 0, i) - 0.5);
    return m;
}

/* GFLOP/s of a 2048^3 sgemm, the best of 3. */
static inline double sgemm_rate(void)
{
    const int n = 2048;
    float *a = random_matrix((size_t)n * n, 1, 1), *b = random_matrix((size_t)n * n, 2, 1),
          *c = malloc((size_t)n * n * 4);
    double best = 1e30;
    for (int r = 0; r < 3; r++) {
        double t0 = now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n);
        double el = now() - t0;
        best = el < best ? el : best;
    }
    free(a), free(b), free(c);
    return 2.0 * n * n * n / best / 1e9;
}

#endif
