/* qlayer_encode.c — RaBitQ-H encoding of a layer in pieces of output
 * columns: the layout, the shared trick terms, one piece's codes, the
 * finish, one column's decoding and error (see qlayer_encode.h). */
#include "raana/qlayer_encode.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "raana/bitpack.h"
#include "raana/half_scaled.h"
#include "raana/rabitq.h"
#include "raana/trick_terms.h"

raana_status raana_qlayer_layout(int d_in, int d_out, const raana_qlayer_params *p, raana_qlayer *q,
                                 raana_error *err)
{
    memset(q, 0, sizeof *q);
    q->d_in = d_in, q->d_out = d_out, q->bits = p->bits, q->tricks = p->tricks, q->key = p->key;
    q->code_bits = p->bits < 1 ? 1 : (int)p->bits;
    q->side_bits = p->side_bits == 16 ? 16 : 32;
    RAANA_CALL(raana_rotation_create(&q->rot, d_in, p->key, err));
    q->n_kept = d_in;
    if (p->bits < 1) {
        raana_qlayer_sub_bit_layout(d_in, q->rot.k, p->bits, &q->m_a, &q->m_b);
        q->n_kept = q->m_a + q->m_b;
    }
    q->packed_bytes = raana_packed_size((size_t)q->n_kept, q->code_bits);
    if (q->tricks & RAANA_TRICK_CENTRALIZE)
        q->mu = calloc((size_t)d_in, sizeof *q->mu);
    if (q->tricks & RAANA_TRICK_NORM_ROW)
        q->row_scale = calloc((size_t)d_in, sizeof *q->row_scale);
    if (((q->tricks & RAANA_TRICK_CENTRALIZE) && !q->mu) ||
        ((q->tricks & RAANA_TRICK_NORM_ROW) && !q->row_scale))
        return raana_fail(err, RAANA_ERR_NOMEM, "out of memory for a %dx%d layer", d_out, d_in);
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

/* norm_col: the floor(rate * d_out) columns of largest norm (after the
 * other tricks), kept exactly as given in weight. */
static raana_status hold_out_columns(raana_qlayer *q, const float *weight, double rate,
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
    for (int h = 0; h < n; h++)
        memcpy(q->held_values + (size_t)h * d_in, weight + (size_t)q->held_cols[h] * d_in,
               (size_t)d_in * sizeof *weight);
    q->n_held = n;
    return RAANA_OK;
}

/* The centralize means and norm_row scales: the mean of each input channel
 * is subtracted; each channel i (a row of W) is then scaled to unit RMS, the
 * scale moving to the activations, X W = (X diag(s)) (diag(1/s) W). */
raana_status raana_qlayer_find_terms(raana_qlayer *q, const float *weight, double norm_col_rate,
                                     const char *name, raana_error *err)
{
    int d_in = q->d_in, d_out = q->d_out;
    int half = q->side_bits == 16; /* the stored values are the ones used */
    RAANA_CALL(check_finite(weight, d_in, d_out, name, err));
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
    if (q->tricks & RAANA_TRICK_NORM_COL)
        return hold_out_columns(q, weight, norm_col_rate, err);
    return RAANA_OK;
}

int raana_qlayer_is_held(const raana_qlayer *q, int j)
{
    int lo = 0, hi = q->n_held;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (q->held_cols[mid] < j)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < q->n_held && q->held_cols[lo] == j;
}

/* w = the piece's columns after the tricks (held-out ones zero), rotated. */
static void trick_and_rotate(const raana_qlayer *q, const float *weight, int c0, int n, int threads,
                             float *w)
{
    int d_in = q->d_in;
    raana_trick_terms t = {d_in, q->d_out, q->mu, q->row_scale};
    (void)threads; /* only read by the OpenMP pragma */
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int j = 0; j < n; j++) {
        const float *src = weight + (size_t)j * d_in;
        float *col = w + (size_t)j * d_in;
        if (raana_qlayer_is_held(q, c0 + j))
            memset(col, 0, (size_t)d_in * sizeof *col);
        else
            for (int i = 0; i < d_in; i++)
                col[i] = raana_tricked(&t, src[i], i);
        raana_rotation_apply(&q->rot, col, 1); /* zeros too, as the whole layer always did */
    }
}

raana_status raana_qlayer_encode_piece(const raana_qlayer *q, const float *weight, int c0, int n,
                                       raana_encoder encoder, int threads, float *w,
                                       uint8_t *packed, float *rescale, double *cosine,
                                       raana_error *err)
{
    int d_in = q->d_in, n_kept = q->n_kept, failed = 0;
    trick_and_rotate(q, weight, c0, n, threads, w);
#pragma omp parallel num_threads(threads) reduction(| : failed)
    {
        raana_rabitq_work *work = raana_rabitq_work_create(n_kept);
        float *kept = malloc((size_t)n_kept * sizeof *kept);
        uint8_t *codes = malloc((size_t)n_kept);
        if (!work || !kept || !codes)
            failed = 1;
#pragma omp for schedule(dynamic, 8)
        for (int j = 0; j < n; j++) {
            if (failed)
                continue;
            const float *col = w + (size_t)j * d_in;
            for (int p = 0; p < n_kept; p++)
                kept[p] = col[raana_qlayer_kept_index(q, p)];
            cosine[j] = raana_rabitq_encode_column(kept, n_kept, q->code_bits, encoder, work, codes,
                                                   &rescale[j]);
            raana_pack_codes(codes, (size_t)n_kept, q->code_bits,
                             packed + (size_t)j * q->packed_bytes);
        }
        raana_rabitq_work_free(work);
        free(kept);
        free(codes);
    }
    if (failed)
        return raana_fail(err, RAANA_ERR_NOMEM, "out of memory in the column encoder");
    return RAANA_OK;
}

void raana_qlayer_finish_codes(raana_qlayer *q, const double *cosine)
{
    double sum = 0;
    for (int j = 0; j < q->d_out; j++)
        sum += cosine[j];
    /* held-out columns were zeroed and count as cosine 1: leave them out */
    q->mean_cosine = q->d_out > q->n_held ? (sum - q->n_held) / (q->d_out - q->n_held) : 1.0;
    if (q->side_bits == 16)
        raana_half_scaled_round(q->rescale, (size_t)q->d_out);
}

void raana_qlayer_decode_column(const raana_qlayer *q, const uint8_t *packed, float rescale,
                                uint8_t *codes, float *vals, float *col)
{
    int d_in = q->d_in, n_kept = q->n_kept;
    raana_unpack_codes(packed, (size_t)n_kept, q->code_bits, codes);
    raana_rabitq_decode_column(codes, n_kept, q->code_bits, rescale, vals);
    memset(col, 0, (size_t)d_in * sizeof *col);
    for (int p = 0; p < n_kept; p++) {
        int i = raana_qlayer_kept_index(q, p);
        col[i] = vals[p] * raana_qlayer_coord_scale(q, i);
    }
    raana_rotation_apply_inverse(&q->rot, col, 1);
    for (int i = 0; q->row_scale && i < d_in; i++)
        col[i] *= q->row_scale[i];
    for (int i = 0; q->mu && i < d_in; i++)
        col[i] += q->mu[i];
}

void raana_qlayer_column_error(const float *what, const float *w, int d_in, double *diff,
                               double *ref)
{
    double d2 = 0, r2 = 0;
    for (int i = 0; i < d_in; i++) {
        double d = (double)what[i] - w[i];
        d2 += d * d, r2 += (double)w[i] * w[i];
    }
    *diff = d2, *ref = r2;
}

double raana_qlayer_relative_error(const double *diff, const double *ref, int n)
{
    double d = 0, r = 0;
    for (int j = 0; j < n; j++)
        d += diff[j], r += ref[j];
    return r > 0 ? sqrt(d / r) : sqrt(d);
}
