/* trick_norm.c — ||W after the tricks||_F without materializing the tricked
 * matrix (see trick_norm.h). Every value is recomputed as qlayer.c's
 * apply_tricks computes it: w - mu[i] in float, then / row_scale[i] in
 * float; every sum is a double accumulated in the same order. */
#include "raana/trick_norm.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "raana/qlayer.h"

typedef struct {
    int d_in, d_out;
    float *mu;           /* [d_in] or NULL: centralize */
    float *row_scale;    /* [d_in] or NULL: norm_row */
    unsigned char *held; /* [d_out]: norm_col's held-out columns */
} trick_terms;

/* The tricked value of w[j][i]. */
static inline float tricked(const trick_terms *t, float w, int i)
{
    if (t->mu)
        w -= t->mu[i];
    if (t->row_scale)
        w /= t->row_scale[i];
    return w;
}

/* mu[i] = mean over columns j of w[j][i] (qlayer.c centralize). */
static raana_status column_means(trick_terms *t, const float *w, raana_error *err)
{
    double *sum = calloc((size_t)t->d_in, sizeof *sum);
    if (!sum)
        return raana_fail(err, RAANA_ERR_NOMEM, "out of memory for %d row sums", t->d_in);
    for (int j = 0; j < t->d_out; j++)
        for (int i = 0; i < t->d_in; i++)
            sum[i] += w[(size_t)j * t->d_in + i];
    for (int i = 0; i < t->d_in; i++)
        t->mu[i] = (float)(sum[i] / t->d_out);
    free(sum);
    return RAANA_OK;
}

/* row_scale[i] = RMS over j of the centralized w[j][i] (qlayer.c
 * normalize_rows; 1 for an all-zero row). */
static raana_status row_scales(trick_terms *t, const float *w, raana_error *err)
{
    double *ss = calloc((size_t)t->d_in, sizeof *ss);
    if (!ss)
        return raana_fail(err, RAANA_ERR_NOMEM, "out of memory for %d row norms", t->d_in);
    float *scale = t->row_scale;
    t->row_scale = NULL; /* centralized only, as the pass that computes it sees w */
    for (int j = 0; j < t->d_out; j++)
        for (int i = 0; i < t->d_in; i++) {
            double v = tricked(t, w[(size_t)j * t->d_in + i], i);
            ss[i] += v * v;
        }
    for (int i = 0; i < t->d_in; i++) {
        double s = sqrt(ss[i] / t->d_out);
        scale[i] = s > 0 ? (float)s : 1.0f;
    }
    t->row_scale = scale;
    free(ss);
    return RAANA_OK;
}

typedef struct {
    double norm;
    int col;
} col_norm;

static int by_norm_desc(const void *a, const void *b)
{
    const col_norm *x = a, *y = b;
    if (x->norm != y->norm)
        return x->norm < y->norm ? 1 : -1;
    return x->col - y->col;
}

/* held[j] = 1 for the floor(rate * d_out) columns of largest norm of the
 * tricked matrix with the row scales multiplied back (qlayer.c
 * hold_out_columns). */
static raana_status held_columns(trick_terms *t, const float *w, double rate, raana_error *err)
{
    int n = (int)floor(rate * t->d_out);
    if (n <= 0)
        return RAANA_OK;
    col_norm *norms = malloc((size_t)t->d_out * sizeof *norms);
    if (!norms)
        return raana_fail(err, RAANA_ERR_NOMEM, "out of memory for %d column norms", t->d_out);
    for (int j = 0; j < t->d_out; j++) {
        double s = 0;
        for (int i = 0; i < t->d_in; i++) {
            double v = (double)tricked(t, w[(size_t)j * t->d_in + i], i) *
                       (t->row_scale ? t->row_scale[i] : 1.0f);
            s += v * v;
        }
        norms[j] = (col_norm){s, j};
    }
    qsort(norms, (size_t)t->d_out, sizeof *norms, by_norm_desc);
    for (int h = 0; h < n; h++)
        t->held[norms[h].col] = 1;
    free(norms);
    return RAANA_OK;
}

/* Sum of squares in flat order; held columns are zeros there and adding
 * +0.0 to a non-negative sum changes nothing, so they are skipped. */
static double sum_of_squares(const trick_terms *t, const float *w)
{
    double s = 0;
    for (int j = 0; j < t->d_out; j++) {
        if (t->held[j])
            continue;
        for (int i = 0; i < t->d_in; i++) {
            double v = tricked(t, w[(size_t)j * t->d_in + i], i);
            s += v * v;
        }
    }
    return s;
}

raana_status raana_trick_norm(const float *weight, int d_in, int d_out, unsigned tricks,
                              double norm_col_rate, double *norm, raana_error *err)
{
    raana_status st = RAANA_OK;
    trick_terms t = {d_in, d_out, NULL, NULL, NULL};
    t.held = calloc((size_t)d_out, 1);
    if (tricks & RAANA_TRICK_CENTRALIZE)
        t.mu = calloc((size_t)d_in, sizeof *t.mu);
    if (tricks & RAANA_TRICK_NORM_ROW)
        t.row_scale = calloc((size_t)d_in, sizeof *t.row_scale);
    if (!t.held || ((tricks & RAANA_TRICK_CENTRALIZE) && !t.mu) ||
        ((tricks & RAANA_TRICK_NORM_ROW) && !t.row_scale))
        RAANA_FAIL_GOTO(err, RAANA_ERR_NOMEM, "out of memory for a %dx%d layer's norm", d_out,
                        d_in);
    if (t.mu)
        RAANA_CHECK(column_means(&t, weight, err));
    if (t.row_scale)
        RAANA_CHECK(row_scales(&t, weight, err));
    if (tricks & RAANA_TRICK_NORM_COL)
        RAANA_CHECK(held_columns(&t, weight, norm_col_rate, err));
    *norm = sqrt(sum_of_squares(&t, weight));
cleanup:
    free(t.held);
    free(t.mu);
    free(t.row_scale);
    return st;
}
