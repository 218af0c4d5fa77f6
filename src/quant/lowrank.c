/* lowrank.c — low-rank compensation of a quantized layer (see lowrank.h):
 * the weighted error the SVD decomposes, the 16-bit factors from its top
 * triplets, and their use in dequantization and the quantized product. */
#include "raana/lowrank.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "raana/huge_alloc.h"
#include "raana/safetensors.h"
#include "raana/safetensors_write.h"

/* sqrt_h[i] = sqrt(h_i / mean h), h_i = G_ii + damp * mean(G_ii); 1 when
 * the gram's diagonal is zero or not finite (no input information). */
static void input_weights(const float *gram, int d_in, double damp, double *sqrt_h)
{
    double mean = 0;
    for (int i = 0; i < d_in; i++)
        mean += gram[(size_t)i * d_in + i];
    mean /= d_in;
    int usable = isfinite(mean) && mean > 0;
    for (int i = 0; i < d_in; i++) {
        double g = gram[(size_t)i * d_in + i];
        double h = usable && g >= 0 ? (g + damp * mean) / ((1 + damp) * mean) : 1;
        sqrt_h[i] = sqrt(h);
    }
}

raana_status raana_lowrank_target(const float *weight, const raana_qlayer *q, const float *gram,
                                  double damp, double *m, double *sqrt_h, raana_error *err)
{
    raana_status st = RAANA_OK;
    size_t d_in = (size_t)q->d_in, n = d_in * (size_t)q->d_out;
    float *what = raana_malloc_large(n * sizeof *what);
    if (!what)
        RAANA_FAIL_GOTO(err, RAANA_ERR_NOMEM, "out of memory for a %dx%d layer's error", q->d_out,
                        q->d_in);
    RAANA_CHECK(raana_qlayer_dequantize(q, what, err));
    input_weights(gram, q->d_in, damp, sqrt_h);
    for (size_t k = 0; k < n; k++)
        m[k] = ((double)weight[k] - what[k]) * sqrt_h[k % d_in];
cleanup:
    free(what);
    return st;
}

static raana_status to_half(double v, uint16_t *out, const char *which, raana_error *err)
{
    *out = raana_f32_to_f16((float)v);
    if (*out == 0x8000) /* -0 and +0 rebuild the same: store one */
        *out = 0;
    if (!isfinite(raana_f16_to_f32(*out)))
        return raana_fail(err, RAANA_ERR_NUMERIC,
                          "a low-rank factor entry of %s (%g) is outside the 16-bit float range",
                          which, v);
    return RAANA_OK;
}

/* A singular pair is defined up to its sign, which LAPACK and ScaLAPACK
 * choose differently: -1 when the output vector's entry of largest
 * magnitude (the first such) is negative, so that the stored factors do not
 * depend on which SVD made them. */
static double triplet_sign(const double *vt, int r, int p, size_t d_out)
{
    size_t best = 0;
    for (size_t j = 1; j < d_out; j++)
        if (fabs(vt[p + j * (size_t)r]) > fabs(vt[p + best * (size_t)r]))
            best = j;
    return vt[p + best * (size_t)r] < 0 ? -1.0 : 1.0;
}

raana_status raana_lowrank_set_factors(raana_qlayer *q, int r, const double *s, const double *us,
                                       const double *vt, const double *sqrt_h, raana_error *err)
{
    raana_status st = RAANA_OK;
    size_t d_in = (size_t)q->d_in, d_out = (size_t)q->d_out;
    uint16_t *a = malloc(d_out * (size_t)r * sizeof *a), *b = malloc((size_t)r * d_in * sizeof *b);
    if (!a || !b)
        RAANA_FAIL_GOTO(err, RAANA_ERR_NOMEM, "out of memory for rank-%d factors", r);
    for (int p = 0; p < r; p++) {
        double root = s[p] > 0 ? sqrt(s[p]) : 0, sign = triplet_sign(vt, r, p, d_out);
        for (size_t j = 0; j < d_out; j++)
            RAANA_CHECK(
                to_half(sign * vt[p + j * (size_t)r] * root, &a[j * (size_t)r + p], "A", err));
        for (size_t i = 0; i < d_in; i++) {
            double v = root > 0 ? sign * us[i + (size_t)p * d_in] / root / sqrt_h[i] : 0;
            RAANA_CHECK(to_half(v, &b[(size_t)p * d_in + i], "B", err));
        }
    }
    free(q->lowrank_a), free(q->lowrank_b);
    q->lowrank_rank = r, q->lowrank_a = a, q->lowrank_b = b;
    return RAANA_OK;
cleanup:
    free(a), free(b);
    return st;
}

void raana_lowrank_factors_f32(const raana_qlayer *q, float *a, float *b)
{
    size_t r = (size_t)q->lowrank_rank;
    for (size_t k = 0; k < (size_t)q->d_out * r; k++)
        a[k] = raana_f16_to_f32(q->lowrank_a[k]);
    for (size_t k = 0; k < r * (size_t)q->d_in; k++)
        b[k] = raana_f16_to_f32(q->lowrank_b[k]);
}

/* The factors as float in one allocation: *a then *b; NULL on failure. */
static float *factors_f32(const raana_qlayer *q, float **a, float **b)
{
    size_t r = (size_t)q->lowrank_rank;
    float *buf = malloc(r * ((size_t)q->d_out + (size_t)q->d_in) * sizeof *buf);
    if (!buf)
        return NULL;
    *a = buf, *b = buf + (size_t)q->d_out * r;
    raana_lowrank_factors_f32(q, *a, *b);
    return buf;
}

raana_status raana_lowrank_add(const raana_qlayer *q, float *what, raana_error *err)
{
    int r = q->lowrank_rank;
    float *a, *b, *buf;
    if (r <= 0)
        return RAANA_OK;
    if (!(buf = factors_f32(q, &a, &b)))
        return raana_fail(err, RAANA_ERR_NOMEM, "out of memory for rank-%d factors", r);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, q->d_out, q->d_in, r, 1.0f, a, r, b,
                q->d_in, 1.0f, what, q->d_in);
    free(buf);
    return RAANA_OK;
}

raana_status raana_lowrank_matmul_add(const raana_qlayer *q, const float *x, int n, float *y,
                                      raana_error *err)
{
    raana_status st = RAANA_OK;
    int r = q->lowrank_rank;
    float *a = NULL, *b = NULL, *buf = NULL, *t = NULL;
    if (r <= 0)
        return RAANA_OK;
    buf = factors_f32(q, &a, &b);
    t = malloc((size_t)n * (size_t)r * sizeof *t);
    if (!buf || !t)
        RAANA_FAIL_GOTO(err, RAANA_ERR_NOMEM, "out of memory for rank-%d factors", r);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, r, q->d_in, 1.0f, x, q->d_in, b,
                q->d_in, 0.0f, t, r);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, q->d_out, r, 1.0f, t, r, a, r, 1.0f, y,
                q->d_out);
cleanup:
    free(buf);
    free(t);
    return st;
}
