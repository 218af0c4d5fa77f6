/* bench_quant_cost.c — calibrates the quantize stage's cost model
 * (balance.h, issue 11): times what the stage does per layer
 * (raana_qlayer_quantize with the default tricks, then the dequantization
 * that measures the error), one thread, on Gaussian layers of 2^21 weights
 * of several shapes at several bits with both encoders; fits
 *   ns per weight = BASE                       (B = 1: no code search)
 *   + exact: EXACT0 + EXACT1 M,  fast: FAST     (B >= 2, M = 2^(B-1) - 1)
 * by least squares, and prints the model's error per row and the sgemm
 * rate of the same run with the BLAS core (markdown for bench/RESULTS.md).
 * Usage: OPENBLAS_NUM_THREADS=1 bench_quant_cost */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "raana/balance.h"
#include "raana/blas_info.h"
#include "raana/qlayer.h"
#include "raana/rng.h"

#define REPEATS 5
#define WEIGHTS (1 << 21)

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static double sgemm_gflops(void)
{
    const int n = 2048;
    float *a = calloc((size_t)n * n, 4), *b = calloc((size_t)n * n, 4),
          *c = calloc((size_t)n * n, 4);
    double best = 1e30;
    for (size_t i = 0; a && b && c && i < (size_t)n * n; i++)
        a[i] = (float)(i % 7) * 0.1f, b[i] = (float)(i % 5) * 0.1f;
    for (int r = 0; a && b && c && r < REPEATS; r++) {
        double t0 = now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n);
        best = fmin(best, now() - t0);
    }
    free(a), free(b), free(c);
    return 2.0 * n * n * n / best / 1e9;
}

/* Nanoseconds per weight of one layer through the stage's steps. */
static double layer_ns(const float *w, int d_in, int d_out, int bits, raana_encoder enc)
{
    raana_qlayer_params p = {bits, RAANA_TRICK_CENTRALIZE | RAANA_TRICK_NORM_COL, 0.003, 7, enc, 1, NULL, 0, 32};
    float *what = malloc((size_t)d_in * d_out * sizeof *what);
    double best = 1e30;
    for (int r = 0; what && r < REPEATS; r++) {
        raana_qlayer q;
        raana_error err;
        double t0 = now();
        if (raana_qlayer_quantize(w, d_in, d_out, &p, "bench", &q, &err) != RAANA_OK)
            break;
        raana_qlayer_dequantize(&q, what, &err);
        best = fmin(best, now() - t0);
        raana_qlayer_free(&q);
    }
    free(what);
    return 1e9 * best / ((double)d_in * d_out);
}

/* Least squares y = a + b x over n points. */
static void fit_line(const double *x, const double *y, int n, double *a, double *b)
{
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    for (int i = 0; i < n; i++)
        sx += x[i], sy += y[i], sxx += x[i] * x[i], sxy += x[i] * y[i];
    double det = n * sxx - sx * sx;
    *b = det != 0 ? (n * sxy - sx * sy) / det : 0;
    *a = (sy - *b * sx) / n;
}

int main(void)
{
    static const int d_ins[] = {512, 1024, 2048, 4096};
    static const int all_bits[] = {1, 2, 3, 4, 5, 6, 8};
    enum { N_D = 4, N_B = 7 };
    double ns[N_D][N_B][2];
    float *w = malloc(WEIGHTS * sizeof *w);
    if (!w)
        return 1;
    for (size_t i = 0; i < WEIGHTS; i++)
        w[i] = (float)raana_rng_normal(3, 0, i);
    raana_blas_info blas;
    raana_blas_info_read(&blas);
    printf("BLAS core %s, %d thread(s); sgemm 2048^3: %.1f GFLOP/s\n\n", blas.core, blas.threads,
           sgemm_gflops());
    for (int d = 0; d < N_D; d++)
        for (int b = 0; b < N_B; b++)
            for (int e = 0; e < 2; e++)
                ns[d][b][e] = layer_ns(w, d_ins[d], WEIGHTS / d_ins[d], all_bits[b],
                                       e ? RAANA_ENCODER_FAST : RAANA_ENCODER_EXACT);
    /* BASE: the mean of the B = 1 rows (no code search), both encoders */
    double base = 0, ex0, ex1, fast = 0, xs[N_D * N_B], ys[N_D * N_B];
    for (int d = 0; d < N_D; d++)
        base += (ns[d][0][0] + ns[d][0][1]) / (2 * N_D);
    int n = 0;
    for (int d = 0; d < N_D; d++)
        for (int b = 1; b < N_B; b++, n++) {
            fast += (ns[d][b][1] - base) / (N_D * (N_B - 1));
            xs[n] = ldexp(1, all_bits[b] - 1) - 1, ys[n] = ns[d][b][0] - base;
        }
    fit_line(xs, ys, n, &ex0, &ex1);
    printf("fit (ns per weight): BASE %.2f  EXACT0 %.2f  EXACT1 %.3f  FAST %.2f\n\n", base, ex0,
           ex1, fast);
    printf("| d_in x d_out | B | exact ns/w | model | fast ns/w | model "
           "|\n|---|---|---|---|---|---|\n");
    double worst = 0, sum_model = 0, sum_meas = 0;
    for (int d = 0; d < N_D; d++)
        for (int b = 0; b < N_B; b++) {
            int d_out = WEIGHTS / d_ins[d];
            double scale = 1e9 / ((double)d_ins[d] * d_out), model[2];
            for (int e = 0; e < 2; e++) {
                model[e] =
                    scale * raana_quantize_cost(d_ins[d], d_out, all_bits[b],
                                                e ? RAANA_ENCODER_FAST : RAANA_ENCODER_EXACT);
                worst = fmax(worst, fabs(model[e] / ns[d][b][e] - 1));
                sum_model += model[e], sum_meas += ns[d][b][e];
            }
            printf("| %d x %d | %d | %.1f | %.1f | %.1f | %.1f |\n", d_ins[d], d_out, all_bits[b],
                   ns[d][b][0], model[0], ns[d][b][1], model[1]);
        }
    printf(
        "\nmodel (balance.c) against this run: worst row %.0f%% off, all rows summed %.0f%% off\n",
        100 * worst, 100 * fabs(sum_model / sum_meas - 1));
    free(w);
    return 0;
}
