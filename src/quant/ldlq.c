/* ldlq.c — LDLQ codes for a quantized layer (see ldlq.h): the damped gram
 * in the rotated basis, the Cholesky factor of its inverse, and the error
 * feedback over rotated coordinates in blocks (inside a block per column,
 * across blocks one sgemm). */
#include "raana/ldlq.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "raana/bitpack.h"
#include "raana/huge_alloc.h"

#define LDLQ_BLOCK 128

/* h[d][d] = R (s g s) R^T in float, full: g's upper triangle mirrored and
 * scaled by the norm_row scales, then every row rotated, the matrix
 * transposed, and every row rotated again (R A^T = (A R^T)^T). */
static void rotated_gram(const raana_qlayer *q, const float *gram, float *h, float *tmp)
{
    int d = q->d_in;
    for (int i = 0; i < d; i++)
        for (int j = 0; j < d; j++) {
            float v = i <= j ? gram[(size_t)i * d + j] : gram[(size_t)j * d + i];
            if (q->row_scale)
                v *= q->row_scale[i] * q->row_scale[j];
            tmp[(size_t)i * d + j] = v;
        }
    raana_rotation_apply(&q->rot, tmp, (size_t)d);
    for (int i = 0; i < d; i++)
        for (int j = 0; j < d; j++)
            h[(size_t)i * d + j] = tmp[(size_t)j * d + i];
    raana_rotation_apply(&q->rot, h, (size_t)d);
}

/* Reverses the d x d matrix's indices, (i, j) -> (d-1-i, d-1-j): in a
 * row-major array that is reversing the whole array. */
static void reverse_indices(float *a, size_t n)
{
    for (size_t k = 0; k < n / 2; k++) {
        float t = a[k];
        a[k] = a[n - 1 - k], a[n - 1 - k] = t;
    }
}

/* In place: h = H becomes U = J L^-1 J with J (H + lambda I) J = L L^T (J
 * reverses the indices); then U^T U = (H + lambda I)^-1 and U is upper
 * triangular. In f32: the damping bounds the condition number by about
 * d + 1. *usable = 0 when tr(H) is zero or not finite, or the factor
 * fails (h is then garbage). */
static void inverse_cholesky(float *h, int d, double damp, int *usable)
{
    size_t n = (size_t)d * (size_t)d;
    double tr = 0;
    for (int i = 0; i < d; i++)
        tr += h[(size_t)i * d + i];
    *usable = isfinite(tr) && tr > 0;
    if (!*usable)
        return;
    float lambda = (float)(damp * tr / d);
    reverse_indices(h, n);
    for (int i = 0; i < d; i++)
        h[(size_t)i * d + i] += lambda;
    /* the row-major lower triangle is the column-major upper one: LAPACK
     * works in place on it, with no transposed copy */
    lapack_int info = LAPACKE_spotrf(LAPACK_COL_MAJOR, 'U', d, h, d);
    if (info == 0)
        info = LAPACKE_strtri(LAPACK_COL_MAJOR, 'U', 'N', d, h, d);
    *usable = info == 0;
    if (!*usable)
        return;
    reverse_indices(h, n);      /* L^-1 (row-major lower) -> U (upper) */
    for (int i = 1; i < d; i++) /* below the diagonal: what potrf left of H */
        memset(h + (size_t)i * d, 0, (size_t)i * sizeof *h);
}

raana_status raana_ldlq_factor(const raana_qlayer *q, const float *gram, double damp, float *u,
                               int *usable, raana_error *err)
{
    size_t n = (size_t)q->d_in * (size_t)q->d_in;
    float *tmp = raana_malloc_large(n * sizeof *tmp);
    if (!tmp)
        return raana_fail(err, RAANA_ERR_NOMEM, "out of memory for a %dx%d LDLQ gram", q->d_in,
                          q->d_in);
    rotated_gram(q, gram, u, tmp);
    free(tmp);
    inverse_cholesky(u, q->d_in, damp, usable);
    return RAANA_OK;
}

/* One column's codes over rotated coordinates [i0, i1): rounds w[i] to its
 * grid, feeds the error forward inside the block and records e[i - i0]. */
static void feedback_block(float *w, const float *u, int d, int i0, int i1, float step, int bits,
                           uint8_t *codes, float *e)
{
    float center = (float)((1 << bits) - 1) * 0.5f, top = (float)((1 << bits) - 1);
    for (int i = i0; i < i1; i++) {
        float c = rintf(w[i] / step + center);
        c = !(c >= 0) ? 0 : c > top ? top : c; /* NaN (never from finite data) -> 0 */
        codes[i] = (uint8_t)c;
        float ei = (w[i] - step * (c - center)) / u[(size_t)i * d + i];
        const float *ui = u + (size_t)i * d;
        for (int k = i + 1; k < i1; k++)
            w[k] -= ei * ui[k];
        e[i - i0] = ei;
    }
}

/* codes[d_out][d_in] by the error feedback on w (overwritten); columns with
 * skip[j] set are left alone (their e is 0). */
static void feedback(const raana_qlayer *q, float *w, const float *u, const uint8_t *skip,
                     uint8_t *codes, float *e, int threads)
{
    int d = q->d_in, d_out = q->d_out;
    (void)threads; /* only read by the OpenMP pragma */
    for (int i0 = 0; i0 < d; i0 += LDLQ_BLOCK) {
        int i1 = i0 + LDLQ_BLOCK < d ? i0 + LDLQ_BLOCK : d;
#pragma omp parallel for num_threads(threads) schedule(static)
        for (int j = 0; j < d_out; j++) {
            float *ej = e + (size_t)j * LDLQ_BLOCK;
            memset(ej, 0, LDLQ_BLOCK * sizeof *ej);
            if (!skip[j])
                feedback_block(w + (size_t)j * d, u, d, i0, i1, q->rescale[j], q->code_bits,
                               codes + (size_t)j * d, ej);
        }
        if (i1 < d)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, d_out, d - i1, i1 - i0, -1.0f, e,
                        LDLQ_BLOCK, u + (size_t)i0 * d + i1, d, 1.0f, w + i1, d);
    }
}

/* cos(t, codes - center); *tt = |t|^2, *tc = <t, codes - center>. */
static double codes_cosine(const float *t, const uint8_t *codes, int d, double center, double *tt,
                           double *tc)
{
    double cc = 0;
    *tt = *tc = 0;
    for (int i = 0; i < d; i++) {
        double c = codes[i] - center;
        *tt += (double)t[i] * t[i], *tc += t[i] * c, cc += c * c;
    }
    return *tt > 0 && cc > 0 ? *tc / sqrt(*tt * cc) : 1.0;
}

/* Column j takes its new codes, packed, with the unbiased rescale
 * |t|^2 / <t, c - center>, unless their cosine to the target t is below
 * half the exact codes' (a degenerate column: it keeps those); returns the
 * cosine of what it keeps. */
static double adopt_codes(raana_qlayer *q, int j, const float *t, const uint8_t *codes,
                          uint8_t *old)
{
    int d = q->d_in;
    double center = ((1 << q->code_bits) - 1) * 0.5, tt, tc, tt_old, tc_old;
    uint8_t *packed = q->packed + (size_t)j * q->packed_bytes;
    raana_unpack_codes(packed, (size_t)d, q->code_bits, old);
    double cos_old = codes_cosine(t, old, d, center, &tt_old, &tc_old);
    double cos_new = codes_cosine(t, codes, d, center, &tt, &tc);
    if (!(tc > 0 && tt > 0 && cos_new > 0.5 * cos_old))
        return cos_old;
    raana_pack_codes(codes, (size_t)d, q->code_bits, packed);
    q->rescale[j] = (float)(tt / tc);
    return cos_new;
}

raana_status raana_ldlq_refine(raana_qlayer *q, const float *target, const float *gram, double damp,
                               int threads, raana_error *err)
{
    if (q->bits < 1)
        return RAANA_OK;
    int d = q->d_in, d_out = q->d_out, usable = 0;
    size_t n = (size_t)d * (size_t)d_out;
    raana_status st = RAANA_OK;
    float *u = raana_malloc_large((size_t)d * (size_t)d * sizeof *u);
    float *w = raana_malloc_large(n * sizeof *w);
    float *e = malloc((size_t)d_out * LDLQ_BLOCK * sizeof *e);
    uint8_t *codes = raana_malloc_large(n), *skip = calloc((size_t)d_out, 1);
    uint8_t *old = malloc((size_t)d);
    if (!u || !w || !e || !codes || !skip || !old)
        RAANA_FAIL_GOTO(err, RAANA_ERR_NOMEM, "out of memory for LDLQ on a %dx%d layer", d_out, d);
    RAANA_CHECK(raana_ldlq_factor(q, gram, damp, u, &usable, err));
    if (!usable)
        goto cleanup;
    for (int j = 0; j < d_out; j++) /* a zero column has no grid: it stays */
        skip[j] = !(q->rescale[j] > 0 && isfinite(q->rescale[j])) ? 2 : 0;
    for (int h = 0; h < q->n_held; h++)
        skip[q->held_cols[h]] = 1;
    memcpy(w, target, n * sizeof *w);
    feedback(q, w, u, skip, codes, e, threads);
    double cos_sum = 0;
    for (int j = 0; j < d_out; j++)
        if (!skip[j])
            cos_sum += adopt_codes(q, j, target + (size_t)j * d, codes + (size_t)j * d, old);
        else if (skip[j] == 2)
            cos_sum += 1.0; /* as the encoder counts a zero column */
    q->mean_cosine = d_out > q->n_held ? cos_sum / (d_out - q->n_held) : 1.0;
cleanup:
    free(u);
    free(w);
    free(e);
    free(codes);
    free(skip);
    free(old);
    return st;
}
