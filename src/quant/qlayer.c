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

/* Rotated coordinate index of kept coordinate p. */
static int kept_index(const raana_qlayer *q, int p)
{
    if (q->bits >= 1)
        return p;
    return p < q->m_a ? p : q->d_in - q->rot.k + (p - q->m_a);
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

/* norm_col: the floor(rate * d_out) columns of largest norm (after the
 * other tricks) are kept exactly, as given in `weight`, and zeroed in w
 * before quantization. */
static raana_status hold_out_columns(raana_qlayer *q, const float *weight, float *w, double rate,
                                     raana_error *err)
{
    int d_in = q->d_in, n = (int)floor(rate * q->d_out);
    if (n <= 0)
        return RAANA_OK;
    q->held_cols = malloc((size_t)n * sizeof *q->held_cols);
    q->held_values = malloc((size_t)n * (size_t)d_in * sizeof *q->held_values);
    if (!q->held_cols || !q->held_values)
        return raana_fail(err, RAANA_ERR_NOMEM, "out of memory holding out %d columns", n);
    raana_trick_terms t = {d_in, q->d_out, q->mu, q->row_scale};
    RAANA_CALL(raana_trick_largest_columns(&t, weight, n, q->held_cols, err));
    for (int h = 0; h < n; h++) {
        size_t at = (size_t)q->held_cols[h] * d_in;
        memcpy(q->held_values + (size_t)h * d_in, weight + at, (size_t)d_in * sizeof *weight);
        memset(w + at, 0, (size_t)d_in * sizeof *w);
    }
    q->n_held = n;
    return RAANA_OK;
}

/* w = weight after the tricks in q->tricks (fills q's trick terms; q->mu and
 * q->row_scale must be allocated when their trick is on). The centralize
 * means and norm_row scales: the mean of each input channel is subtracted;
 * each channel i (a row of W) is then scaled to unit RMS, the scale moving to
 * the activations, X W = (X diag(s)) (diag(1/s) W). */
static raana_status apply_tricks(raana_qlayer *q, const float *weight, float *w, double rate,
                                 raana_error *err)
{
    int d_in = q->d_in, d_out = q->d_out;
    int half = q->side_bits == 16; /* the stored values are the ones used */
    if (q->mu) {
        RAANA_CALL(raana_trick_means(weight, d_in, d_out, q->mu, err));
        if (half)
            raana_half_scaled_round(q->mu, (size_t)d_in);
    }
    if (q->row_scale) {
        RAANA_CALL(raana_trick_row_scales(weight, d_in, d_out, q->mu, q->row_scale, err));
        if (half)
            raana_half_scaled_round(q->row_scale, (size_t)d_in);
    }
    raana_trick_terms t = {d_in, d_out, q->mu, q->row_scale};
    for (int j = 0; j < d_out; j++)
        for (int i = 0; i < d_in; i++)
            w[(size_t)j * d_in + i] = raana_tricked(&t, weight[(size_t)j * d_in + i], i);
    if (q->tricks & RAANA_TRICK_NORM_COL)
        return hold_out_columns(q, weight, w, rate, err);
    return RAANA_OK;
}

raana_status raana_qlayer_trick_norm(const float *weight, int d_in, int d_out, unsigned tricks,
                                     double norm_col_rate, double *norm, raana_error *err)
{
    raana_qlayer q;
    memset(&q, 0, sizeof q);
    q.d_in = d_in, q.d_out = d_out, q.tricks = tricks;
    size_t n = (size_t)d_in * (size_t)d_out;
    float *w = malloc(n * sizeof *w);
    if (tricks & RAANA_TRICK_CENTRALIZE)
        q.mu = calloc((size_t)d_in, sizeof *q.mu);
    if (tricks & RAANA_TRICK_NORM_ROW)
        q.row_scale = calloc((size_t)d_in, sizeof *q.row_scale);
    raana_status st = RAANA_OK;
    if (!w || ((tricks & RAANA_TRICK_CENTRALIZE) && !q.mu) ||
        ((tricks & RAANA_TRICK_NORM_ROW) && !q.row_scale))
        RAANA_FAIL_GOTO(err, RAANA_ERR_NOMEM, "out of memory for a %dx%d layer", d_out, d_in);
    RAANA_CHECK(apply_tricks(&q, weight, w, norm_col_rate, err));
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

/* Encodes every rotated column of w in parallel; returns the mean cosine. */
static raana_status encode_columns(raana_qlayer *q, const float *w, raana_encoder encoder,
                                   int threads, raana_error *err)
{
    raana_status st = RAANA_OK;
    int d_in = q->d_in, d_out = q->d_out, n_kept = q->n_kept, failed = 0;
    /* per-column cosines, summed in column order afterwards: the mean must not
     * depend on how columns were spread over threads */
    double *cosines = malloc((size_t)d_out * sizeof *cosines), cos_sum = 0;
    if (!cosines)
        RAANA_FAIL_GOTO(err, RAANA_ERR_NOMEM, "out of memory in the column encoder");
    (void)threads; /* only read by the OpenMP pragma */
#pragma omp parallel num_threads(threads) reduction(| : failed)
    {
        raana_rabitq_work *work = raana_rabitq_work_create(n_kept);
        float *kept = malloc((size_t)n_kept * sizeof *kept);
        uint8_t *codes = malloc((size_t)n_kept);
        if (!work || !kept || !codes)
            failed = 1;
#pragma omp for schedule(dynamic, 8)
        for (int j = 0; j < d_out; j++) {
            if (failed)
                continue;
            const float *col = w + (size_t)j * d_in;
            for (int p = 0; p < n_kept; p++)
                kept[p] = col[kept_index(q, p)];
            cosines[j] = raana_rabitq_encode_column(kept, n_kept, q->code_bits, encoder, work,
                                                    codes, &q->rescale[j]);
            raana_pack_codes(codes, (size_t)n_kept, q->code_bits,
                             q->packed + (size_t)j * q->packed_bytes);
        }
        raana_rabitq_work_free(work);
        free(kept);
        free(codes);
    }
    if (failed)
        RAANA_FAIL_GOTO(err, RAANA_ERR_NOMEM, "out of memory in the column encoder");
    for (int j = 0; j < d_out; j++)
        cos_sum += cosines[j];
    /* held-out columns were zeroed and count as cosine 1: leave them out */
    q->mean_cosine = d_out > q->n_held ? (cos_sum - q->n_held) / (d_out - q->n_held) : 1.0;
cleanup:
    free(cosines);
    return st;
}

static raana_status allocate(raana_qlayer *q, raana_error *err)
{
    size_t d_in = (size_t)q->d_in, d_out = (size_t)q->d_out;
    q->packed_bytes = raana_packed_size((size_t)q->n_kept, q->code_bits);
    q->packed = raana_calloc_large(d_out, q->packed_bytes);
    q->rescale = calloc(d_out, sizeof *q->rescale);
    if (q->tricks & RAANA_TRICK_CENTRALIZE)
        q->mu = calloc(d_in, sizeof *q->mu);
    if (q->tricks & RAANA_TRICK_NORM_ROW)
        q->row_scale = calloc(d_in, sizeof *q->row_scale);
    if (!q->packed || !q->rescale || ((q->tricks & RAANA_TRICK_CENTRALIZE) && !q->mu) ||
        ((q->tricks & RAANA_TRICK_NORM_ROW) && !q->row_scale))
        return raana_fail(err, RAANA_ERR_NOMEM, "out of memory for a %zux%zu layer", d_out, d_in);
    return RAANA_OK;
}

static raana_status check_finite(const float *weight, int d_in, int d_out, const char *name,
                                 raana_error *err)
{
    size_t n = (size_t)d_in * (size_t)d_out;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(weight[i]))
            return raana_fail(err, RAANA_ERR_NUMERIC, "%s: weight holds %s at [%zu][%zu]", name,
                              isnan(weight[i]) ? "NaN" : "an infinite value", i / (size_t)d_in,
                              i % (size_t)d_in);
    return RAANA_OK;
}

/* w = weight after the tricks, rotated column by column, then encoded;
 * with a gram, the codes are then re-chosen by LDLQ (ldlq.h). */
static raana_status encode_layer(raana_qlayer *q, const float *weight, float *w,
                                 const raana_qlayer_params *p, raana_error *err)
{
    int d_in = q->d_in, d_out = q->d_out;
    RAANA_CALL(apply_tricks(q, weight, w, p->norm_col_rate, err));
#pragma omp parallel for num_threads(p->threads) schedule(static)
    for (int j = 0; j < d_out; j++)
        raana_rotation_apply(&q->rot, w + (size_t)j * d_in, 1);
    RAANA_CALL(encode_columns(q, w, p->encoder, p->threads, err));
    if (q->side_bits == 16) /* LDLQ's grid is the stored rescale */
        raana_half_scaled_round(q->rescale, (size_t)d_out);
    if (p->gram) {
        RAANA_CALL(raana_ldlq_refine(q, w, p->gram, p->ldlq_damp, p->threads, err));
        if (q->side_bits == 16) /* LDLQ sets each column's unbiased rescale */
            raana_half_scaled_round(q->rescale, (size_t)d_out);
    }
    return RAANA_OK;
}

raana_status raana_qlayer_quantize(const float *weight, int d_in, int d_out,
                                   const raana_qlayer_params *p, const char *name, raana_qlayer *q,
                                   raana_error *err)
{
    raana_status st = RAANA_OK;
    float *w = NULL;
    memset(q, 0, sizeof *q);
    RAANA_CHECK(check_finite(weight, d_in, d_out, name, err));
    q->d_in = d_in, q->d_out = d_out, q->bits = p->bits, q->tricks = p->tricks, q->key = p->key;
    q->code_bits = p->bits < 1 ? 1 : (int)p->bits;
    q->side_bits = p->side_bits == 16 ? 16 : 32;
    RAANA_CHECK(raana_rotation_create(&q->rot, d_in, p->key, err));
    q->n_kept = d_in;
    if (p->bits < 1) {
        sub_bit_layout(d_in, q->rot.k, p->bits, &q->m_a, &q->m_b);
        q->n_kept = q->m_a + q->m_b;
    }
    w = raana_malloc_large((size_t)d_in * (size_t)d_out * sizeof *w);
    if (!w)
        RAANA_FAIL_GOTO(err, RAANA_ERR_NOMEM, "%s: out of memory", name);
    RAANA_CHECK(allocate(q, err));
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
        raana_unpack_codes(q->packed + (size_t)j * q->packed_bytes, (size_t)n_kept, q->code_bits,
                           codes);
        raana_rabitq_decode_column(codes, n_kept, q->code_bits, q->rescale[j], vals);
        memset(col, 0, (size_t)d_in * sizeof *col);
        for (int p = 0; p < n_kept; p++) {
            int i = kept_index(q, p);
            col[i] = vals[p] * raana_qlayer_coord_scale(q, i);
        }
        raana_rotation_apply_inverse(&q->rot, col, 1);
        for (int i = 0; q->row_scale && i < d_in; i++)
            col[i] *= q->row_scale[i];
        for (int i = 0; q->mu && i < d_in; i++)
            col[i] += q->mu[i];
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
            int i = kept_index(q, p);
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
