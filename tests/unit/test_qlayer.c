/* test_qlayer.c — a quantized layer: dequantization against a by-hand
 * reconstruction from the column codes, the product from codes against
 * X·What, tricks at 8 bits against X·W with held-out columns exact,
 * unbiasedness of <x, what> over 10^4 rotations (also below one bit, with
 * x's energy at the start, the end or everywhere), thread-count
 * independence, the effective-bits count, NaN weights. */
#include <stdlib.h>

#include "check.h"
#include "raana/bitpack.h"
#include "raana/qlayer.h"
#include "raana/rabitq.h"
#include "raana/rng.h"

static float *gaussian(size_t n, uint64_t seed)
{
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)raana_rng_normal(seed, 0, i);
    return x;
}

static raana_qlayer_params params(double bits, unsigned tricks, uint64_t key)
{
    raana_qlayer_params p = {bits, tricks, 0.003, key, RAANA_ENCODER_EXACT, 1, NULL, 0, 32};
    return p;
}

/* y[n][d_out] = x[n][d_in] w^T in double */
static void reference_product(const float *x, const float *w, int n, int d_in, int d_out, double *y)
{
    for (int t = 0; t < n; t++)
        for (int j = 0; j < d_out; j++) {
            double s = 0;
            for (int i = 0; i < d_in; i++)
                s += (double)x[(size_t)t * d_in + i] * w[(size_t)j * d_in + i];
            y[(size_t)t * d_out + j] = s;
        }
}

static double relative_diff(const float *a, const double *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++)
        num += (a[i] - b[i]) * (a[i] - b[i]), den += b[i] * b[i];
    return sqrt(num / den);
}

/* dequantize == inverse rotation of the column decodes, by hand */
static void test_dequantize_by_hand(void)
{
    const int d_in = 192, d_out = 40, bits = 3;
    float *w = gaussian((size_t)d_in * d_out, 1);
    raana_qlayer_params p = params(bits, 0, raana_rng_layer_key(9, "by.hand"));
    raana_qlayer q;
    raana_error err;
    CHECK_INT(raana_qlayer_quantize(w, d_in, d_out, &p, "by.hand", &q, &err), RAANA_OK);
    float *what = malloc((size_t)d_in * d_out * sizeof *what), *col = malloc(d_in * sizeof *col);
    CHECK_INT(raana_qlayer_dequantize(&q, what, &err), RAANA_OK);
    raana_rabitq_work *work = raana_rabitq_work_create(d_in);
    uint8_t codes[192], packed[192];
    float r;
    double worst = 0;
    int same_codes = 1;
    for (int j = 0; j < d_out; j++) {
        memcpy(col, w + (size_t)j * d_in, d_in * sizeof *col);
        raana_rotation_apply(&q.rot, col, 1);
        raana_rabitq_encode_column(col, d_in, bits, RAANA_ENCODER_EXACT, work, codes, &r);
        raana_pack_codes(codes, d_in, bits, packed);
        same_codes &= memcmp(packed, q.packed + (size_t)j * q.packed_bytes, q.packed_bytes) == 0;
        same_codes &= r == q.rescale[j];
        raana_rabitq_decode_column(codes, d_in, bits, r, col);
        raana_rotation_apply_inverse(&q.rot, col, 1);
        for (int i = 0; i < d_in; i++)
            worst = fmax(worst, fabs((double)col[i] - what[(size_t)j * d_in + i]));
    }
    CHECK(same_codes);
    CHECK(worst == 0);
    raana_rabitq_work_free(work);
    raana_qlayer_free(&q);
    free(w);
    free(what);
    free(col);
}

static void test_product_from_codes(void)
{
    const double bits[] = {0.5, 0.75, 1, 2, 4, 8};
    const int dims[] = {192, 576, 256};
    const unsigned tricks[] = {0, RAANA_TRICK_CENTRALIZE | RAANA_TRICK_NORM_COL |
                                      RAANA_TRICK_NORM_ROW};
    const int d_out = 400, n = 7;
    for (size_t di = 0; di < 3; di++)
        for (size_t bi = 0; bi < 6; bi++)
            for (size_t ti = 0; ti < 2; ti++) {
                int d_in = dims[di];
                float *w = gaussian((size_t)d_in * d_out, 2 + di),
                      *x = gaussian((size_t)n * d_in, 3);
                for (int i = 0; i < d_in * d_out; i++)
                    w[i] += 0.3f; /* a mean for centralize to remove */
                raana_qlayer_params p = params(bits[bi], tricks[ti], 77);
                raana_qlayer q;
                raana_error err;
                CHECK_INT(raana_qlayer_quantize(w, d_in, d_out, &p, "prod", &q, &err), RAANA_OK);
                CHECK_INT(q.n_held, tricks[ti] ? 1 : 0);
                float *what = malloc((size_t)d_in * d_out * sizeof *what);
                float *y = malloc((size_t)n * d_out * sizeof *y);
                double *ref = malloc((size_t)n * d_out * sizeof *ref);
                CHECK_INT(raana_qlayer_dequantize(&q, what, &err), RAANA_OK);
                CHECK_INT(raana_qlayer_matmul(&q, x, n, y, &err), RAANA_OK);
                reference_product(x, what, n, d_in, d_out, ref);
                double rel = relative_diff(y, ref, (size_t)n * d_out);
                if (rel > 1e-5)
                    printf("  d_in %d bits %g tricks %u: product rel diff %.3g\n", d_in, bits[bi],
                           tricks[ti], rel);
                CHECK(rel <= 1e-5);
                raana_qlayer_free(&q);
                free(w), free(x), free(what), free(y), free(ref);
            }
}

static void test_tricks_at_8_bits(void)
{
    const int d_in = 576, d_out = 1000, n = 5;
    float *w = gaussian((size_t)d_in * d_out, 4), *x = gaussian((size_t)n * d_in, 5);
    for (int i = 0; i < d_in; i++) /* outlier columns 10 and 700, and a mean */
        w[10 * d_in + i] *= 30, w[700 * d_in + i] *= 25;
    for (int i = 0; i < d_in * d_out; i++)
        w[i] += 0.5f;
    raana_qlayer_params p = params(8, RAANA_TRICK_CENTRALIZE | RAANA_TRICK_NORM_COL, 3);
    p.norm_col_rate = 0.004; /* 4 columns */
    p.threads = 2;
    raana_qlayer q;
    raana_error err;
    CHECK_INT(raana_qlayer_quantize(w, d_in, d_out, &p, "tricks", &q, &err), RAANA_OK);
    CHECK_INT(q.n_held, 4);
    int has10 = 0, has700 = 0;
    for (int h = 0; h < q.n_held; h++)
        has10 |= q.held_cols[h] == 10, has700 |= q.held_cols[h] == 700;
    CHECK(has10 && has700);
    float *what = malloc((size_t)d_in * d_out * sizeof *what),
          *y = malloc((size_t)n * d_out * sizeof *y);
    double *ref = malloc((size_t)n * d_out * sizeof *ref);
    CHECK_INT(raana_qlayer_dequantize(&q, what, &err), RAANA_OK);
    for (int h = 0; h < q.n_held; h++) {
        size_t at = (size_t)q.held_cols[h] * d_in;
        CHECK(memcmp(what + at, w + at, d_in * sizeof *w) == 0); /* exact */
    }
    CHECK_INT(raana_qlayer_matmul(&q, x, n, y, &err), RAANA_OK);
    reference_product(x, w, n, d_in, d_out, ref);
    double rel = relative_diff(y, ref, (size_t)n * d_out);
    printf("  8 bits with tricks: |XWhat - XW| / |XW| = %.2e, mean cosine %.6f\n", rel,
           q.mean_cosine);
    CHECK(rel <= 1e-2);
    raana_qlayer_free(&q);
    free(w), free(x), free(what), free(y), free(ref);
}

/* Over many independent rotations, mean <x, what> is within 3 standard
 * errors of <x, w>: for each x in {energy in the first 10% of
 * coordinates, in the last 10%, everywhere}. */
static void check_unbiased(int d, double bits, int trials)
{
    const int n = 3;
    float *w = gaussian((size_t)d, 100 + (uint64_t)d), *x = calloc((size_t)n * d, sizeof *x);
    for (int i = 0; i < d; i++) {
        double g = raana_rng_normal(200, (uint64_t)d, (uint64_t)i);
        if (i < d / 10)
            x[i] = (float)g; /* first */
        if (i >= d - d / 10)
            x[d + i] = (float)g;                      /* last */
        x[2 * d + i] = (float)(g * 0.5 + 0.5 * w[i]); /* everywhere, correlated with w */
    }
    double truth[3] = {0}, sum[3] = {0}, sum2[3] = {0};
    for (int t = 0; t < n; t++)
        for (int i = 0; i < d; i++)
            truth[t] += (double)x[(size_t)t * d + i] * w[i];
    raana_error err;
    for (int r = 0; r < trials; r++) {
        raana_qlayer_params p = params(bits, 0, raana_rng_u64(42, (uint64_t)d, (uint64_t)r));
        raana_qlayer q;
        float y[3];
        if (raana_qlayer_quantize(w, d, 1, &p, "unbiased", &q, &err) != RAANA_OK ||
            raana_qlayer_matmul(&q, x, n, y, &err) != RAANA_OK) {
            CHECK(0);
            return;
        }
        for (int t = 0; t < n; t++)
            sum[t] += y[t], sum2[t] += (double)y[t] * y[t];
        raana_qlayer_free(&q);
    }
    for (int t = 0; t < n; t++) {
        double mean = sum[t] / trials, var = sum2[t] / trials - mean * mean;
        double se = sqrt(var / trials), z = (mean - truth[t]) / se;
        if (fabs(z) > 3)
            printf("  d %d bits %g x%d: mean %.5f truth %.5f se %.5f z %.2f\n", d, bits, t, mean,
                   truth[t], se, z);
        CHECK(fabs(z) <= 3);
    }
    free(w);
    free(x);
}

/* RAANA_TEST_QUICK (set for the sanitizer build by tests/CMakeLists.txt):
 * 2000 rotations instead of 10000 (500 at d = 11008, whose rotations are
 * most of the test's time under the sanitizers), the same statistical check
 * with wider standard errors; the Release build runs the full count. */
static void test_unbiased(void)
{
    const int quick = getenv("RAANA_TEST_QUICK") != NULL;
    const int trials = quick ? 2000 : 10000, wide = quick ? 500 : 10000;
    check_unbiased(576, 0.5, trials);
    check_unbiased(576, 0.75, trials);
    check_unbiased(11008, 0.5, wide);
    check_unbiased(11008, 0.75, wide);
    check_unbiased(576, 1, trials);
    check_unbiased(576, 2, trials);
    check_unbiased(192, 4, trials);
}

static void test_threads_and_bits(void)
{
    const int d_in = 576, d_out = 300;
    float *w = gaussian((size_t)d_in * d_out, 6);
    raana_qlayer ref, q;
    raana_error err;
    uint64_t key = raana_rng_layer_key(1234, "model.layers.0.mlp.down_proj");
    raana_qlayer_params p = params(3, RAANA_TRICK_CENTRALIZE | RAANA_TRICK_NORM_COL, key);
    CHECK_INT(raana_qlayer_quantize(w, d_in, d_out, &p, "t", &ref, &err), RAANA_OK);
    for (int threads = 2; threads <= 4; threads++) {
        p.threads = threads;
        CHECK_INT(raana_qlayer_quantize(w, d_in, d_out, &p, "t", &q, &err), RAANA_OK);
        CHECK(memcmp(q.packed, ref.packed, (size_t)d_out * ref.packed_bytes) == 0);
        CHECK(memcmp(q.rescale, ref.rescale, d_out * sizeof *q.rescale) == 0);
        CHECK(q.mean_cosine == ref.mean_cosine); /* bit for bit: summed in column order */
        raana_qlayer_free(&q);
    }
    /* stored bits: 3-bit codes (576*3/8 = 216 bytes per column), a 32-bit
     * rescale per column, mu (32 bits per input), no held-out column here */
    CHECK_INT(ref.packed_bytes, 216);
    CHECK_INT(ref.n_held, 0);
    CHECK_NEAR(raana_qlayer_effective_bits(&ref),
               3 + 32.0 / d_in + 32.0 / d_out + 16.0 * ((d_in + 7) / 8) / ((double)d_in * d_out),
               1e-12);
    raana_qlayer_free(&ref);
    /* NaN is refused with the layer name */
    w[5] = NAN;
    CHECK_INT(raana_qlayer_quantize(w, d_in, d_out, &p, "model.layers.0.mlp.down_proj", &q, &err),
              RAANA_ERR_NUMERIC);
    CHECK_MSG(err, "model.layers.0.mlp.down_proj", "NaN", "[0][5]");
    free(w);
}

int main(void)
{
    test_dequantize_by_hand();
    test_product_from_codes();
    test_tricks_at_8_bits();
    test_threads_and_bits();
    test_unbiased();
    return check_summary("test_qlayer");
}
