/* test_lowrank.c — low-rank compensation (lowrank.h): at full rank the
 * factors give back the weights up to their 16-bit rounding; at rank r the
 * weighted residual is the SVD's tail (Eckart-Young) and below what the
 * unweighted factors leave when one input channel dominates; the quantized
 * product and the dequantization agree with the factors in both; the
 * effective bits count 16 bits per factor entry; a flipped singular pair
 * stores the same bits; a factor beyond half precision's range fails. */
#include <stdlib.h>

#include "check.h"
#include "raana/lowrank.h"
#include "raana/qlayer.h"
#include "raana/rng.h"
#include "raana/svd.h"

enum { D_IN = 40, D_OUT = 24 };

static float *gaussian(size_t n, uint64_t seed)
{
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)raana_rng_normal(seed, 0, i);
    return x;
}

/* A diagonal gram: channel i's second moment 1 + i % 5, channel 3 heavy. */
static float *diag_gram(double heavy)
{
    float *g = calloc((size_t)D_IN * D_IN, sizeof *g);
    for (int i = 0; i < D_IN; i++)
        g[(size_t)i * D_IN + i] = (float)(i == 3 ? heavy : 1 + i % 5);
    return g;
}

static void quantize(const float *w, raana_qlayer *q)
{
    raana_qlayer_params p = {2, RAANA_TRICK_CENTRALIZE, 0, 77, RAANA_ENCODER_EXACT, 1, NULL, 0, 32};
    raana_error err;
    CHECK_INT(raana_qlayer_quantize(w, D_IN, D_OUT, &p, "lowrank", q, &err), RAANA_OK);
}

/* Factors of rank r for q against w with gram g; *tail = sqrt of the sum of
 * the squared singular values beyond r of the weighted error. */
static void compensate(const float *w, const float *g, raana_qlayer *q, int r, double *tail,
                       double *sqrt_h)
{
    int k = D_IN < D_OUT ? D_IN : D_OUT;
    double *m = malloc(sizeof(double) * D_IN * D_OUT), *s = malloc(sizeof(double) * k);
    double *us = malloc(sizeof(double) * D_IN * k), *vt = malloc(sizeof(double) * k * D_OUT);
    raana_error err;
    CHECK_INT(raana_lowrank_target(w, q, g, 0.01, m, sqrt_h, &err), RAANA_OK);
    CHECK_INT(raana_svd_local(m, D_IN, D_OUT, k, s, us, vt, &err), RAANA_OK);
    *tail = 0;
    for (int p = r; p < k; p++)
        *tail += s[p] * s[p];
    *tail = sqrt(*tail);
    /* the top r of the full SVD are the truncated SVD's: us and vt have ld D_IN and k */
    double *vt_r = malloc(sizeof(double) * r * D_OUT);
    for (int j = 0; j < D_OUT; j++)
        for (int p = 0; p < r; p++)
            vt_r[p + (size_t)j * r] = vt[p + (size_t)j * k];
    CHECK_INT(raana_lowrank_set_factors(q, r, s, us, vt_r, sqrt_h, &err), RAANA_OK);
    free(m), free(s), free(us), free(vt), free(vt_r);
}

/* ||(w - what) diag(sqrt_h)||_F with q's factors */
static double weighted_residual(const float *w, const raana_qlayer *q, const double *sqrt_h)
{
    float *what = malloc(sizeof(float) * D_IN * D_OUT);
    raana_error err;
    CHECK_INT(raana_qlayer_dequantize(q, what, &err), RAANA_OK);
    double sum = 0;
    for (int k = 0; k < D_IN * D_OUT; k++) {
        double e = ((double)w[k] - what[k]) * sqrt_h[k % D_IN];
        sum += e * e;
    }
    free(what);
    return sqrt(sum);
}

static void test_full_rank_and_tail(void)
{
    float *w = gaussian(D_IN * D_OUT, 5), *g = diag_gram(40);
    double sqrt_h[D_IN], tail, plain;
    raana_qlayer q;
    for (int r = D_OUT; r >= 3; r -= D_OUT - 3) {
        quantize(w, &q);
        compensate(w, g, &q, r, &tail, sqrt_h);
        raana_qlayer codes_only = q;
        codes_only.lowrank_rank = 0;
        plain = weighted_residual(w, &codes_only, sqrt_h);
        double res = weighted_residual(w, &q, sqrt_h);
        /* half rounding moves each factor entry by <= 2^-11 of it */
        CHECK(fabs(res - tail) <= 2e-3 * plain);
        if (r == D_OUT)
            CHECK(res <= 2e-3 * plain); /* everything removed */
        else
            CHECK(res < 0.9 * plain);
        printf("rank %d: weighted residual %.4g, SVD tail %.4g, codes alone %.4g\n", r, res, tail,
               plain);
        raana_qlayer_free(&q);
    }
    free(w), free(g);
}

/* With channel 3 a hundred times heavier, the weighted factors leave less
 * weighted error than factors fitted with every channel equal. */
static void test_weighting(void)
{
    float *w = gaussian(D_IN * D_OUT, 6), *heavy = diag_gram(400), *flat = diag_gram(1);
    for (int i = 0; i < D_IN; i++)
        flat[(size_t)i * D_IN + i] = 1;
    double sh_heavy[D_IN], sh_flat[D_IN], tail;
    raana_qlayer a, b;
    quantize(w, &a);
    quantize(w, &b);
    compensate(w, heavy, &a, 2, &tail, sh_heavy);
    compensate(w, flat, &b, 2, &tail, sh_flat);
    double ra = weighted_residual(w, &a, sh_heavy), rb = weighted_residual(w, &b, sh_heavy);
    printf("weighted residual: weighted factors %.4g, unweighted %.4g\n", ra, rb);
    CHECK(ra < 0.95 * rb);
    raana_qlayer_free(&a), raana_qlayer_free(&b);
    free(w), free(heavy), free(flat);
}

/* Y = X What^T from the codes equals X times the dequantized weights, and
 * the effective bits count the factors. */
static void test_product_and_bits(void)
{
    enum { N = 7 };
    float *w = gaussian(D_IN * D_OUT, 7), *g = diag_gram(10), *x = gaussian(N * D_IN, 8);
    float *what = malloc(sizeof(float) * D_IN * D_OUT), *y = malloc(sizeof(float) * N * D_OUT);
    double sqrt_h[D_IN], tail;
    raana_qlayer q;
    raana_error err;
    quantize(w, &q);
    double base = raana_qlayer_effective_bits(&q);
    compensate(w, g, &q, 3, &tail, sqrt_h);
    CHECK_NEAR(raana_qlayer_effective_bits(&q), base + 16.0 * 3 * (D_IN + D_OUT) / (D_IN * D_OUT),
               1e-12);
    CHECK_INT(raana_qlayer_dequantize(&q, what, &err), RAANA_OK);
    CHECK_INT(raana_qlayer_matmul(&q, x, N, y, &err), RAANA_OK);
    double diff = 0, ref = 0;
    for (int t = 0; t < N; t++)
        for (int j = 0; j < D_OUT; j++) {
            double s = 0;
            for (int i = 0; i < D_IN; i++)
                s += (double)x[t * D_IN + i] * what[j * D_IN + i];
            diff += (s - y[t * D_OUT + j]) * (s - y[t * D_OUT + j]), ref += s * s;
        }
    CHECK(sqrt(diff / ref) <= 1e-5);
    raana_qlayer_free(&q);
    free(w), free(g), free(x), free(what), free(y);
}

/* (u, v) and (-u, -v) are the same singular pair: the same stored bits. A
 * singular value too large for half precision fails. */
static void test_sign_and_range(void)
{
    float *w = gaussian(D_IN * D_OUT, 9);
    raana_qlayer a, b;
    quantize(w, &a);
    quantize(w, &b);
    double s[1] = {4}, us[D_IN], vt[D_OUT], neg_us[D_IN], neg_vt[D_OUT], sqrt_h[D_IN];
    for (int i = 0; i < D_IN; i++)
        us[i] = 4 * sin(i + 1.0) / sqrt(D_IN), neg_us[i] = -us[i], sqrt_h[i] = 1;
    for (int j = 0; j < D_OUT; j++)
        vt[j] = cos(j + 0.5) / sqrt(D_OUT), neg_vt[j] = -vt[j];
    raana_error err;
    CHECK_INT(raana_lowrank_set_factors(&a, 1, s, us, vt, sqrt_h, &err), RAANA_OK);
    CHECK_INT(raana_lowrank_set_factors(&b, 1, s, neg_us, neg_vt, sqrt_h, &err), RAANA_OK);
    CHECK(memcmp(a.lowrank_a, b.lowrank_a, sizeof(uint16_t) * D_OUT) == 0);
    CHECK(memcmp(a.lowrank_b, b.lowrank_b, sizeof(uint16_t) * D_IN) == 0);
    s[0] = 1e12;
    for (int i = 0; i < D_IN; i++)
        us[i] *= 1e12 / 4;
    CHECK_INT(raana_lowrank_set_factors(&a, 1, s, us, vt, sqrt_h, &err), RAANA_ERR_NUMERIC);
    CHECK(strstr(err.msg, "16-bit float range") != NULL);
    CHECK_INT(a.lowrank_rank, 1); /* the failed call left the earlier factors */
    raana_qlayer_free(&a), raana_qlayer_free(&b);
    free(w);
}

int main(void)
{
    test_full_rank_and_tail();
    test_weighting();
    test_product_and_bits();
    test_sign_and_range();
    return check_summary("test_lowrank");
}
