/* bench_qmatmul.c — the quantized product (issue 11): Y = X What^T computed
 * from the codes by raana_qlayer_matmul, on a 4096 x 11008 layer (d_in 4096,
 * d_out 11008, Llama-2-7B's gate/up shape) with 512 tokens, at B = 2, 3 and
 * 4 and the default tricks, against one cblas_sgemm of the same product
 * with the dense f32 weight, measured in the same run (target at B = 4:
 * <= 1.5x sgemm). Also the one-time dequantization raana-eval does instead
 * (container_model.c rebuilds What, then its forward pass uses sgemm), and
 * the product's agreement with X What^T. One thread, best of REPEATS.
 * Usage: bench_qmatmul [D_IN D_OUT TOKENS] */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raana/qlayer.h"
#include "raana/rng.h"

#include "bench_util.h"

void openblas_set_num_threads(int);
char *openblas_get_corename(void);

#define REPEATS 3

static double time_sgemm(const float *x, const float *w, float *y, int n, int d_in, int d_out)
{
    double best = 1e30;
    for (int r = 0; r < REPEATS; r++) {
        double t0 = now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, d_out, d_in, 1.0f, x, d_in, w, d_in,
                    0.0f, y, d_out);
        double el = now() - t0;
        best = el < best ? el : best;
    }
    return best;
}

/* Best time of raana_qlayer_matmul after one untimed call (the first call
 * of a run pays page faults that later ones do not); -1 on failure. */
static double time_qmatmul(const raana_qlayer *q, const float *x, float *y, int n)
{
    double best = 1e30;
    raana_error err;
    for (int r = -1; r < REPEATS; r++) {
        double t0 = now();
        if (raana_qlayer_matmul(q, x, n, y, &err) != RAANA_OK) {
            fprintf(stderr, "bench_qmatmul: %s\n", err.msg);
            return -1;
        }
        double el = now() - t0;
        if (r >= 0)
            best = el < best ? el : best;
    }
    return best;
}

static double time_dequantize(const raana_qlayer *q, float *what)
{
    double best = 1e30;
    raana_error err;
    for (int r = 0; r < REPEATS; r++) {
        double t0 = now();
        if (raana_qlayer_dequantize(q, what, &err) != RAANA_OK) {
            fprintf(stderr, "bench_qmatmul: %s\n", err.msg);
            return -1;
        }
        double el = now() - t0;
        best = el < best ? el : best;
    }
    return best;
}

/* max |a - b| / max |b| */
static double max_rel_diff(const float *a, const float *b, size_t n)
{
    double diff = 0, scale = 0;
    for (size_t i = 0; i < n; i++) {
        diff = fmax(diff, fabs((double)a[i] - b[i]));
        scale = fmax(scale, fabs((double)b[i]));
    }
    return diff / scale;
}

static int bench_bits(int bits, const float *w, const float *x, int n, int d_in, int d_out,
                      double t_sgemm, float *what, float *y, float *y_ref)
{
    raana_qlayer_params p = {bits,
                             RAANA_TRICK_CENTRALIZE | RAANA_TRICK_NORM_COL,
                             0.003,
                             raana_rng_layer_key(7, "bench.qmatmul"),
                             RAANA_ENCODER_FAST,
                             1,
                             NULL,
                             0,
                             32};
    raana_qlayer q;
    raana_error err;
    if (raana_qlayer_quantize(w, d_in, d_out, &p, "bench.qmatmul", &q, &err) != RAANA_OK) {
        fprintf(stderr, "bench_qmatmul: %s\n", err.msg);
        return 1;
    }
    double t_deq = time_dequantize(&q, what);
    double t_q = time_qmatmul(&q, x, y, n);
    int rc = t_deq < 0 || t_q < 0;
    if (!rc) {
        time_sgemm(x, what, y_ref, n, d_in, d_out); /* X What^T, dense */
        printf("| %d | %.3f s | **%.2f** | %.3f s (%.2f) | %.1e |\n", bits, t_q, t_q / t_sgemm,
               t_deq, t_deq / t_sgemm, max_rel_diff(y, y_ref, (size_t)n * d_out));
    }
    raana_qlayer_free(&q);
    return rc;
}

int main(int argc, char **argv)
{
    int d_in = argc > 3 ? atoi(argv[1]) : 4096, d_out = argc > 3 ? atoi(argv[2]) : 11008,
        n = argc > 3 ? atoi(argv[3]) : 512;
    if (d_in < 1 || d_out < 1 || n < 1) {
        fprintf(stderr, "usage: bench_qmatmul [D_IN D_OUT TOKENS]\n");
        return 2;
    }
    openblas_set_num_threads(1);
    size_t nw = (size_t)d_in * d_out;
    float *w = random_matrix(nw, 11, 2.0f / sqrtf((float)d_in));
    float *x = random_matrix((size_t)n * d_in, 12, 2.0f);
    float *what = malloc(nw * sizeof *what), *y = malloc((size_t)n * d_out * sizeof *y),
          *y_ref = malloc((size_t)n * d_out * sizeof *y_ref);
    if (!w || !x || !what || !y || !y_ref) {
        fprintf(stderr, "bench_qmatmul: out of memory\n");
        return 1;
    }
    memset(what, 0, nw * sizeof *what); /* first touch outside the timed calls */
    memset(y, 0, (size_t)n * d_out * sizeof *y);
    double t_sgemm = time_sgemm(x, w, y_ref, n, d_in, d_out);
    printf("OpenBLAS core %s, one thread. %d tokens through a %d x %d layer (d_in x d_out); "
           "sgemm of the same product with the f32 weight: %.3f s (%.1f GFLOP/s).\n\n",
           openblas_get_corename(), n, d_in, d_out, t_sgemm, 2.0 * n * (double)nw / t_sgemm / 1e9);
    printf("| B | quantized product | / sgemm | dequantize once (/ sgemm) | max rel. diff to X "
           "What^T |\n");
    printf("|---|---|---|---|---|\n");
    int rc = 0;
    for (int bits = 2; bits <= 4 && !rc; bits++)
        rc = bench_bits(bits, w, x, n, d_in, d_out, t_sgemm, what, y, y_ref);
    free(w), free(x), free(what), free(y), free(y_ref);
    return rc;
}
