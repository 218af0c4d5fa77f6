/* bench_allocate.c — AllocateBits on a Llama-2-70B-shaped instance (560
 * layers, true shapes, random coefficients): time and memory of the exact
 * DP and of the Lagrangian fallback (target: both under a second), and the
 * fallback's gap. For scale, the authors' DP keeps whole partial solutions
 * in every state (O(L^2 R) memory; DESIGN: 3.3 GB and 11.7 s for a 7B model
 * at 2.1 bits). */
#include <math.h>
#include <stdio.h>
#include <time.h>

#include "raana/allocate.h"
#include "raana/rng.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

int main(void)
{
    uint64_t size[560];
    double coef[560];
    const uint64_t shapes[7] = {8192ull * 8192,  8192ull * 1024,  8192ull * 1024, 8192ull * 8192,
                                8192ull * 28672, 8192ull * 28672, 28672ull * 8192};
    for (int l = 0; l < 560; l++)
        size[l] = shapes[l % 7], coef[l] = exp(6 * raana_rng_uniform(70, 0, (uint64_t)l) - 3);
    const double sets[2][10] = {{1, 2, 3, 4, 5, 6, 7, 8}, {0.5, 0.75, 1, 2, 3, 4, 5, 6, 7, 8}};
    const int n_sets[2] = {8, 10};
    printf("| candidates | avg bits | exact DP | DP back-pointers | Lagrangian + repair | gap "
           "bound |\n");
    printf("|---|---|---|---|---|---|\n");
    for (int s = 0; s < 2; s++)
        for (double avg = 2.1; avg < 4.2; avg += 1.0) {
            raana_alloc_problem p = {560, size, coef, n_sets[s], sets[s], avg, NULL};
            raana_alloc_result dp, lag;
            raana_error err;
            double t0 = now();
            raana_allocate_bits(&p, RAANA_ALLOC_DEFAULT_MAX_CELLS, &dp, &err);
            double t_dp = now() - t0;
            t0 = now();
            raana_allocate_bits_lagrangian(&p, &lag, &err);
            double t_lag = now() - t0;
            printf("| %s | %.1f | %.3f s | %.1f MiB | %.4f s | %.1e |\n",
                   s ? "0.5, 0.75, 1..8" : "1..8", avg, t_dp, dp.dp_cells / 1048576.0, t_lag,
                   (lag.cost - lag.lower_bound) / lag.cost);
            raana_alloc_result_free(&dp);
            raana_alloc_result_free(&lag);
        }
    return 0;
}
