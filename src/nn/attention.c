/* attention.c — blocked causal grouped-query attention, forward (online
 * softmax) and activation-gradient backward (recomputed tile probabilities),
 * on OpenBLAS sgemm tiles (see attention.h). */
#include "raana/attention.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

static int tile_edge(const raana_attention_shape *s)
{
    int b = s->block > 0 ? s->block : RAANA_ATTENTION_BLOCK;
    return b < s->t ? b : (s->t > 0 ? s->t : 1);
}

size_t raana_attention_work_floats(const raana_attention_shape *s)
{
    size_t b = (size_t)tile_edge(s);
    /* forward: scores, running max and sum; backward: P, dP, and D per row */
    return 2 * b * b + 2 * b + (size_t)(s->t > 0 ? s->t : 1);
}

static int min_int(int a, int b)
{
    return a < b ? a : b;
}

static size_t lse_stride(const raana_attention_shape *s)
{
    return (size_t)(s->lse_stride > 0 ? s->lse_stride : s->t);
}

/* One key tile of the online softmax for query rows [i0, i0 + nq): the
 * scores in sc[nq][ld] become probabilities relative to the new running
 * maximum; ctx rows are rescaled to that maximum. Keys past a row's own
 * position are masked. */
static void online_softmax_tile(float *sc, int ld, int nq, int nk, int i0, int j0, float *mx,
                                float *sum, float *ctx, int ctx_stride, int hd)
{
    for (int r = 0; r < nq; r++) {
        float *row = sc + (size_t)r * ld;
        int valid = min_int(nk, i0 + r - j0 + 1); /* keys j0 .. i0 + r */
        if (valid <= 0) {
            memset(row, 0, (size_t)nk * sizeof *row);
            continue;
        }
        float m = mx[r];
        for (int j = 0; j < valid; j++)
            m = row[j] > m ? row[j] : m;
        float alpha = mx[r] == -INFINITY ? 0.0f : expf(mx[r] - m), add = 0;
        for (int j = 0; j < valid; j++)
            add += row[j] = expf(row[j] - m);
        for (int j = valid; j < nk; j++)
            row[j] = 0;
        sum[r] = sum[r] * alpha + add;
        mx[r] = m;
        if (alpha != 1.0f) {
            float *c = ctx + (size_t)r * ctx_stride;
            for (int d = 0; d < hd; d++)
                c[d] *= alpha;
        }
    }
}

static void forward_head(const raana_attention_shape *s, int hh, const float *q, const float *k,
                         const float *v, float *ctx, float *lse, float *work)
{
    int t = s->t, hd = s->head_dim, b = tile_edge(s);
    int qs = s->n_heads * hd, kvs = s->n_kv_heads * hd, kvh = hh / (s->n_heads / s->n_kv_heads);
    float scale = 1.0f / sqrtf((float)hd), *sc = work, *mx = sc + (size_t)b * b, *sum = mx + b;
    const float *kh = k + (size_t)kvh * hd, *vh = v + (size_t)kvh * hd;
    for (int i0 = s->q_begin; i0 < t; i0 += b) {
        int nq = min_int(b, t - i0);
        const float *qi = q + (size_t)i0 * qs + (size_t)hh * hd;
        float *ci = ctx + (size_t)i0 * qs + (size_t)hh * hd;
        for (int r = 0; r < nq; r++) {
            mx[r] = -INFINITY, sum[r] = 0;
            memset(ci + (size_t)r * qs, 0, (size_t)hd * sizeof *ci);
        }
        for (int j0 = 0; j0 < i0 + nq; j0 += b) { /* tiles above the diagonal skipped */
            int nk = min_int(b, i0 + nq - j0);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, nk, hd, scale, qi, qs,
                        kh + (size_t)j0 * kvs, kvs, 0.0f, sc, b);
            online_softmax_tile(sc, b, nq, nk, i0, j0, mx, sum, ci, qs, hd);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, hd, nk, 1.0f, sc, b,
                        vh + (size_t)j0 * kvs, kvs, 1.0f, ci, qs);
        }
        for (int r = 0; r < nq; r++) {
            float inv = 1.0f / sum[r], *c = ci + (size_t)r * qs;
            for (int d = 0; d < hd; d++)
                c[d] *= inv;
            lse[(size_t)hh * lse_stride(s) + i0 + r] = mx[r] + logf(sum[r]);
        }
    }
}

void raana_attention_forward(const raana_attention_shape *s, const float *q, const float *k,
                             const float *v, float *ctx, float *lse, float *work)
{
    for (int hh = 0; hh < s->n_heads; hh++)
        forward_head(s, hh, q, k, v, ctx, lse, work);
}

/* Scores sc[nq][ld] become probabilities exp(score - lse_row), masked. */
static void recompute_probabilities(float *sc, int ld, int nq, int nk, int i0, int j0,
                                    const float *lse_rows)
{
    for (int r = 0; r < nq; r++) {
        float *row = sc + (size_t)r * ld;
        int valid = min_int(nk, i0 + r - j0 + 1);
        for (int j = 0; j < nk; j++)
            row[j] = j < valid ? expf(row[j] - lse_rows[r]) : 0.0f;
    }
}

/* dP[nq][ld] becomes dS = P * (dP - D_row). */
static void score_gradient(float *dp, const float *p, int ld, int nq, int nk, const float *d_rows)
{
    for (int r = 0; r < nq; r++) {
        float *dr = dp + (size_t)r * ld;
        const float *pr = p + (size_t)r * ld;
        for (int j = 0; j < nk; j++)
            dr[j] = pr[j] * (dr[j] - d_rows[r]);
    }
}

/* D_i = dO_i . O_i for the query rows [q_begin, t) of head hh, at dsum[i - q_begin]. */
static void output_dots(const raana_attention_shape *s, int hh, const float *ctx, const float *dctx,
                        float *dsum)
{
    int hd = s->head_dim, qs = s->n_heads * hd;
    for (int i = s->q_begin; i < s->t; i++) {
        const float *o = ctx + (size_t)i * qs + (size_t)hh * hd,
                    *d = dctx + (size_t)(i - s->q_begin) * qs + (size_t)hh * hd;
        double dot = 0;
        for (int j = 0; j < hd; j++)
            dot += (double)d[j] * o[j];
        dsum[i - s->q_begin] = (float)dot;
    }
}

static void backward_head(const raana_attention_shape *s, int hh, const float *q, const float *k,
                          const float *v, const float *ctx, const float *lse, const float *dctx,
                          float *dq, float *dk, float *dv, float *work)
{
    int t = s->t, hd = s->head_dim, b = tile_edge(s), q0 = s->q_begin;
    int qs = s->n_heads * hd, kvs = s->n_kv_heads * hd, kvh = hh / (s->n_heads / s->n_kv_heads);
    float scale = 1.0f / sqrtf((float)hd), *p = work, *dp = p + (size_t)b * b;
    float *dsum = dp + (size_t)b * b + 2 * (size_t)b; /* D_i, from row q_begin */
    const float *qh = q + (size_t)hh * hd, *doh = dctx + (size_t)hh * hd;
    const float *kh = k + (size_t)kvh * hd, *vh = v + (size_t)kvh * hd;
    float *dqh = dq + (size_t)hh * hd, *dkh = dk + (size_t)kvh * hd, *dvh = dv + (size_t)kvh * hd;
    output_dots(s, hh, ctx, dctx, dsum);
    for (int j0 = 0; j0 < t; j0 += b) {
        int nk = min_int(b, t - j0);
        for (int i0 = q0; i0 < t; i0 += b) { /* query tiles at or below the diagonal */
            int nq = min_int(b, t - i0);
            if (i0 + nq <= j0)
                continue;
            const float *qi = qh + (size_t)i0 * qs, *doi = doh + (size_t)(i0 - q0) * qs;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, nk, hd, scale, qi, qs,
                        kh + (size_t)j0 * kvs, kvs, 0.0f, p, b);
            recompute_probabilities(p, b, nq, nk, i0, j0, lse + (size_t)hh * lse_stride(s) + i0);
            /* dV_j += P^T dO_i; dP = dO_i V_j^T */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nk, hd, nq, 1.0f, p, b, doi, qs,
                        1.0f, dvh + (size_t)j0 * kvs, kvs);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, nk, hd, 1.0f, doi, qs,
                        vh + (size_t)j0 * kvs, kvs, 0.0f, dp, b);
            score_gradient(dp, p, b, nq, nk, dsum + (i0 - q0));
            /* dQ_i += scale dS K_j; dK_j += scale dS^T Q_i */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, hd, nk, scale, dp, b,
                        kh + (size_t)j0 * kvs, kvs, 1.0f, dqh + (size_t)(i0 - q0) * qs, qs);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nk, hd, nq, scale, dp, b, qi, qs,
                        1.0f, dkh + (size_t)j0 * kvs, kvs);
        }
    }
}

void raana_attention_backward_rows(const raana_attention_shape *s, const float *q, const float *k,
                                   const float *v, const float *ctx, const float *lse,
                                   const float *dctx, float *dq, float *dk, float *dv, float *work)
{
    size_t rows = (size_t)(s->t - s->q_begin), hd = (size_t)s->head_dim;
    memset(dq, 0, rows * (size_t)s->n_heads * hd * sizeof *dq);
    for (int hh = 0; hh < s->n_heads; hh++)
        backward_head(s, hh, q, k, v, ctx, lse, dctx, dq, dk, dv, work);
}

void raana_attention_backward(const raana_attention_shape *s, const float *q, const float *k,
                              const float *v, const float *ctx, const float *lse, const float *dctx,
                              float *dq, float *dk, float *dv, float *work)
{
    size_t t = (size_t)s->t, hd = (size_t)s->head_dim;
    raana_attention_shape whole = *s;
    whole.q_begin = 0;
    memset(dk, 0, t * (size_t)s->n_kv_heads * hd * sizeof *dk);
    memset(dv, 0, t * (size_t)s->n_kv_heads * hd * sizeof *dv);
    raana_attention_backward_rows(&whole, q, k, v, ctx, lse, dctx, dq, dk, dv, work);
}
