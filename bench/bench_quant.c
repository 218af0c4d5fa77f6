/* bench_quant.c — speed of the RaBitQ-H quantizer (issue 3), as ratios to
 * one single-threaded cblas_sgemm of 4096x4096x4096 measured in the same
 * run: rotation, exact encode and fast encode of a 4096x4096 and a
 * 4096x11008 Gaussian layer at B = 1, 2, 3, 4, 6, 8, with one thread and
 * with all threads; and the fast encoder's cosine loss against exact.
 * Every time is the best of REPEATS runs (the machines here are shared and
 * noisy). Writes markdown to stdout (bench/run.sh puts it in RESULTS.md). */
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "raana/hadamard.h"
#include "raana/rabitq.h"
#include "raana/rng.h"

void openblas_set_num_threads(int);

#define REPEATS 3

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static double time_sgemm(void)
{
    const int n = 4096;
    float *a = malloc((size_t)n * n * 4), *b = malloc((size_t)n * n * 4),
          *c = malloc((size_t)n * n * 4);
    for (size_t i = 0; i < (size_t)n * n; i++)
        a[i] = (float)(i % 7) * 0.1f, b[i] = (float)(i % 5) * 0.1f;
    openblas_set_num_threads(1);
    double best = 1e30;
    for (int r = 0; r < REPEATS; r++) {
        double t0 = now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n);
        double t = now() - t0;
        best = t < best ? t : best;
    }
    free(a), free(b), free(c);
    return best;
}

/* Encodes every column (rows of w, length d_in); returns seconds and the
 * summed cosine. */
static double encode_once(const float *w, int d_in, int d_out, int bits, raana_encoder enc,
                          int threads, double *cos_sum)
{
    double total = 0, t0 = now();
#pragma omp parallel num_threads(threads) reduction(+ : total)
    {
        raana_rabitq_work *work = raana_rabitq_work_create(d_in);
        uint8_t *codes = malloc((size_t)d_in);
        float r;
#pragma omp for schedule(dynamic, 8)
        for (int j = 0; j < d_out; j++)
            total +=
                raana_rabitq_encode_column(w + (size_t)j * d_in, d_in, bits, enc, work, codes, &r);
        raana_rabitq_work_free(work);
        free(codes);
    }
    *cos_sum = total;
    return now() - t0;
}

static double encode_all(const float *w, int d_in, int d_out, int bits, raana_encoder enc,
                         int threads, double *cos_sum)
{
    double best = 1e30;
    for (int r = 0; r < REPEATS; r++) {
        double t = encode_once(w, d_in, d_out, bits, enc, threads, cos_sum);
        best = t < best ? t : best;
    }
    return best;
}

int main(int argc, char **argv)
{
    int max_threads = omp_get_max_threads();
    int quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    double sgemm = time_sgemm();
    printf("sgemm 4096^3, 1 thread, OpenBLAS core %s: %.3f s (%.1f GFLOP/s)\n\n",
           openblas_get_corename(), sgemm, 2.0 * 4096 * 4096 * 4096 / sgemm / 1e9);
    printf("| layer (d_in x d_out) | B | threads | rotation | exact encode | fast encode | fast "
           "cosine loss |\n");
    printf("|---|---|---|---|---|---|---|\n");
    const int shapes[2][2] = {{4096, 4096}, {4096, 11008}};
    const int all_bits[] = {1, 2, 3, 4, 6, 8};
    for (int s = 0; s < 2; s++) {
        int d_in = shapes[s][0], d_out = shapes[s][1];
        size_t n = (size_t)d_in * d_out;
        float *w0 = malloc(n * sizeof *w0), *w = malloc(n * sizeof *w);
        for (size_t i = 0; i < n; i++)
            w0[i] = (float)raana_rng_normal(1, (uint64_t)s, i);
        raana_rotation rot;
        raana_error err;
        raana_rotation_create(&rot, d_in, 99, &err);
        for (int threads = 1; threads <= max_threads;
             threads = threads == max_threads ? threads + 1 : max_threads) {
            double t_rot = 1e30;
            for (int r = 0; r < REPEATS; r++) {
                memcpy(w, w0, n * sizeof *w);
                double t0 = now();
#pragma omp parallel for num_threads(threads) schedule(static)
                for (int j = 0; j < d_out; j++)
                    raana_rotation_apply(&rot, w + (size_t)j * d_in, 1);
                double t = now() - t0;
                t_rot = t < t_rot ? t : t_rot;
            }
            for (size_t b = 0; b < sizeof all_bits / sizeof all_bits[0]; b++) {
                int bits = all_bits[b];
                if (quick && bits != 4)
                    continue;
                double ce, cf;
                double te = encode_all(w, d_in, d_out, bits, RAANA_ENCODER_EXACT, threads, &ce);
                double tf = encode_all(w, d_in, d_out, bits, RAANA_ENCODER_FAST, threads, &cf);
                printf("| %d x %d | %d | %d | %.4f (%.3f s) | %.3f (%.2f s) | %.4f (%.3f s) | %.1e "
                       "|\n",
                       d_in, d_out, bits, threads, t_rot / sgemm, t_rot, te / sgemm, te, tf / sgemm,
                       tf, (ce - cf) / ce);
                fflush(stdout);
            }
            if (threads == max_threads)
                break;
        }
        raana_rotation_free(&rot);
        free(w0), free(w);
    }
    return 0;
}
