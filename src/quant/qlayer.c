/* qlayer.c — quantizing one linear layer: tricks, rotation, per-column
 * RaBitQ codes, packing; dequantization; the product from codes (see
 * qlayer.h for the definitions). */
#include "raana/qlayer.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "raana/bitpack.h"
#include "raana/bits.h"
#include "raana/half_scaled.h"
#include "raana/huge_alloc.h"
#include "raana/ldlq.h"
#include "raana/lowrank.h"
#include "raana/qlayer_encode.h"
#include "raana/rabitq.h"
#include "raana/trick_terms.h"

/* Below one bit: how many rotated coordinates each region keeps (qlayer.h). */
static void sub_bit_layout(int d, int k, double bits, int *m_a, int *m_b)
{
    int m = (int)lround(bits * d);
    if (m < 1)
        m = 1;
    if (d == k) {
        *m_a = 0;
        *m_b = m > k ? k : m;
        return;
    }
    int a = (int)lround((double)m * (d - k) / d);
    a = a < 1 ? 1 : a > d - k ? d - k : a;
    int b = m - a;
    b = b < 1 ? 1 : b > k ? k : b;
    *m_a = a;
    *m_b = b;
}

void raana_qlayer_sub_bit_layout(int d_in, int k, double bits, int *m_a, int *m_b)
{
    sub_bit_layout(d_in, k, bits, m_a, m_b);
}

float raana_qlayer_coord_scale(const raana_qlayer *q, int i)
{
    if (q->bits >= 1)
        return 1.0f;
    int d = q->d_in, k = q->rot.k;
    if (i < q->m_a)
        return (float)(d - k) / (float)q->m_a;
    if (i >= d - k && i < d - k + q->m_b)
        return (float)k / (float)q->m_b;
    return 0.0f;
}

void raana_qlayer_free(raana_qlayer *q)
{
    raana_rotation_free(&q->rot);
    free(q->mu);
    free(q->row_scale);
    free(q->held_cols);
    free(q->held_values);
    free(q->packed);
    free(q->rescale);
    free(q->lowrank_a);
    free(q->lowrank_b);
    memset(q, 0, sizeof *q);
}

/* ---- tricks ------------------------------------------------------------------ */

raana_status raana_qlayer_trick_norm(const float *weight, int d_in, int d_out, unsigned tricks,
                                     double norm_col_rate, double *norm, raana_error *err)
{
    raana_qlayer q;
    raana_status st = RAANA_OK;
    raana_qlayer_params p = {.bits = 1, .tricks = tricks, .threads = 1};
    size_t n = (size_t)d_in * (size_t)d_out;
    float *w = malloc(n * sizeof *w);
    RAANA_CHECK(raana_qlayer_layout(d_in, d_out, &p, &q, err));
    if (!w)
        RAANA_FAIL_GOTO(err, RAANA_ERR_NOMEM, "out of memory for a %dx%d layer", d_out, d_in);
    RAANA_CHECK(raana_qlayer_find_terms(&q, weight, norm_col_rate, "trick norm", err));
    raana_trick_terms t = {d_in, d_out, q.mu, q.row_scale};
    for (int j = 0; j < d_out; j++) /* the tricked matrix, materialized */
        for (int i = 0; i < d_in; i++)
            w[(size_t)j * d_in + i] = raana_qlayer_is_held(&q, j)
                                          ? 0.0f
                                          : raana_tricked(&t, weight[(size_t)j * d_in + i], i);
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)w[i] * w[i];
    *norm = sqrt(s);
cleanup:
    free(w);
    raana_qlayer_free(&q);
    return st;
}

/* ---- encoding ------------------------------------------------------------------ */

/* The codes of every column, as one piece (qlayer_encode.h); w receives
 * the tricked, rotated layer; with a gram the codes are then re-chosen by
 * LDLQ (ldlq.h). */
static raana_status encode_layer(raana_qlayer *q, const float *weight, float *w,
                                 const raana_qlayer_params *p, raana_error *err)
{
    raana_status st = RAANA_OK;
    double *cosine = malloc((size_t)q->d_out * sizeof *cosine);
    q->packed = raana_calloc_large((size_t)q->d_out, q->packed_bytes);
    q->rescale = calloc((size_t)q->d_out, sizeof *q->rescale);
    if (!cosine || !q->packed || !q->rescale)
        RAANA_FAIL_GOTO(err, RAANA_ERR_NOMEM, "out of memory for a %dx%d layer", q->d_out, q->d_in);
    RAANA_CHECK(raana_qlayer_encode_piece(q, weight, 0, q->d_out, p->encoder, p->threads, w,
                                          q->packed, q->rescale, cosine, err));
    raana_qlayer_finish_codes(q, cosine); /* LDLQ's grid is the stored rescale */
    if (p->gram) {
        RAANA_CHECK(raana_ldlq_refine(q, w, p->gram, p->ldlq_damp, p->threads, err));
        if (q->side_bits == 16) /* LDLQ sets each column's unbiased rescale */
            raana_half_scaled_round(q->rescale, (size_t)q->d_out);
    }
cleanup:
    free(cosine);
    return st;
}

raana_status raana_qlayer_quantize(const float *weight, int d_in, int d_out,
                                   const raana_qlayer_params *p, const char *name, raana_qlayer *q,
                                   raana_error *err)
{
    raana_status st = RAANA_OK;
    float *w = NULL;
    RAANA_CHECK(raana_qlayer_layout(d_in, d_out, p, q, err));
    RAANA_CHECK(raana_qlayer_find_terms(q, weight, p->norm_col_rate, name, err));
    w = raana_malloc_large((size_t)d_in * (size_t)d_out * sizeof *w);
    if (!w)
        RAANA_FAIL_GOTO(err, RAANA_ERR_NOMEM, "%s: out of memory", name);
    if (encode_layer(q, weight, w, p, err) != RAANA_OK)
        RAANA_CHECK(raana_error_prefix(err, "%s", name));
cleanup:
    free(w);
    if (st != RAANA_OK)
        raana_qlayer_free(q);
    return st;
}

/* ---- decoding and the product ------------------------------------------------ */

static int held_slot(const raana_qlayer *q, int j)
{
    for (int h = 0; h < q->n_held; h++)
        if (q->held_cols[h] == j)
            return h;
    return -1;
}

raana_status raana_qlayer_dequantize(const raana_qlayer *q, float *what, raana_error *err)
{
    int d_in = q->d_in, n_kept = q->n_kept;
    raana_status st = RAANA_OK;
    uint8_t *codes = malloc((size_t)n_kept);
    float *vals = malloc((size_t)n_kept * sizeof *vals);
    if (!codes || !vals)
        RAANA_FAIL_GOTO(err, RAANA_ERR_NOMEM, "out of memory dequantizing a layer");
    for (int j = 0; j < q->d_out; j++) {
        float *col = what + (size_t)j * d_in;
        int h = held_slot(q, j);
        if (h >= 0) {
            memcpy(col, q->held_values + (size_t)h * d_in, (size_t)d_in * sizeof *col);
            continue; /* exact original values, mu not added */
        }
        raana_qlayer_decode_column(q, q->packed + (size_t)j * q->packed_bytes, q->rescale[j], codes,
                                   vals, col);
    }
    RAANA_CHECK(raana_lowrank_add(q, what, err));
cleanup:
    free(codes);
    free(vals);
    return st;
}

/* Rotated, truncated, scaled activations: xk[n][n_kept]. */
static void prepare_activations(const raana_qlayer *q, const float *x, int n, float *xs, float *xk)
{
    int d_in = q->d_in;
    memcpy(xs, x, (size_t)n * d_in * sizeof *xs);
    for (int t = 0; t < n; t++) {
        float *row = xs + (size_t)t * d_in;
        if (q->row_scale)
            for (int i = 0; i < d_in; i++)
                row[i] *= q->row_scale[i];
        raana_rotation_apply(&q->rot, row, 1);
        for (int p = 0; p < q->n_kept; p++) {
            int i = raana_qlayer_kept_index(q, p);
            xk[(size_t)t * q->n_kept + p] = row[i] * raana_qlayer_coord_scale(q, i);
        }
    }
}

#define MATMUL_BLOCK 256

raana_status raana_qlayer_matmul(const raana_qlayer *q, const float *x, int n, float *y,
                                 raana_error *err)
{
    int d_in = q->d_in, d_out = q->d_out, n_kept = q->n_kept;
    float center = (float)((1 << q->code_bits) - 1) * 0.5f;
    float *xs = malloc((size_t)n * d_in * sizeof *xs);
    float *xk = malloc((size_t)n * n_kept * sizeof *xk);
    float *c = malloc((size_t)MATMUL_BLOCK * n_kept * sizeof *c);
    float *blk = malloc((size_t)n * MATMUL_BLOCK * sizeof *blk);
    uint8_t *codes = malloc((size_t)n_kept);
    raana_status st = RAANA_OK;
    if (!xs || !xk || !c || !blk || !codes)
        RAANA_FAIL_GOTO(err, RAANA_ERR_NOMEM, "out of memory in the quantized product");
    prepare_activations(q, x, n, xs, xk);
    for (int j0 = 0; j0 < d_out; j0 += MATMUL_BLOCK) {
        int nb = d_out - j0 < MATMUL_BLOCK ? d_out - j0 : MATMUL_BLOCK;
        /* codes minus their center: half-integers, exact in f32 */
        for (int jj = 0; jj < nb; jj++) {
            raana_unpack_codes(q->packed + (size_t)(j0 + jj) * q->packed_bytes, (size_t)n_kept,
                               q->code_bits, codes);
            for (int p = 0; p < n_kept; p++)
                c[(size_t)jj * n_kept + p] = (float)codes[p] - center;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, nb, n_kept, 1.0f, xk, n_kept, c,
                    n_kept, 0.0f, blk, nb);
        for (int t = 0; t < n; t++)
            for (int jj = 0; jj < nb; jj++)
                y[(size_t)t * d_out + j0 + jj] = q->rescale[j0 + jj] * blk[(size_t)t * nb + jj];
    }
    for (int t = 0; t < n; t++) {
        const float *xt = x + (size_t)t * d_in;
        float *yt = y + (size_t)t * d_out;
        if (q->mu) {
            float xmu = cblas_sdot(d_in, xt, 1, q->mu, 1);
            for (int j = 0; j < d_out; j++)
                yt[j] += xmu;
        }
        for (int h = 0; h < q->n_held; h++)
            yt[q->held_cols[h]] = cblas_sdot(d_in, xt, 1, q->held_values + (size_t)h * d_in, 1);
    }
    RAANA_CHECK(raana_lowrank_matmul_add(q, x, n, y, err));
cleanup:
    free(xs);
    free(xk);
    free(c);
    free(blk);
    free(codes);
    return st;
}

double raana_qlayer_effective_bits(const raana_qlayer *q)
{
    raana_layer_bits b = raana_layer_bits_count(q->d_in, q->d_out, q->packed_bytes, q->n_held,
                                                q->mu != NULL, q->row_scale != NULL);
    raana_layer_bits_add_factors(&b, q->d_in, q->d_out, q->lowrank_rank);
    raana_layer_bits_set_side(&b, q->d_in, q->d_out, q->side_bits);
    return raana_layer_bits_per_weight(&b);
}
