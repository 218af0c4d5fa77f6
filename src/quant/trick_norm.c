/* trick_norm.c — ||W after the tricks||_F without materializing the tricked
 * matrix (see trick_norm.h). The trick terms come from trick_terms.c, as
 * qlayer.c's apply_tricks gets them; every value is recomputed as it
 * computes it (raana_tricked), and every sum is a double accumulated in the
 * same order. */
#include "raana/trick_norm.h"

#include <math.h>
#include <stdlib.h>

#include "raana/qlayer.h"
#include "raana/trick_terms.h"

/* held[j] = 1 for norm_col's floor(rate * d_out) held-out columns. */
static raana_status held_columns(const raana_trick_terms *t, const float *w, double rate,
                                 unsigned char *held, raana_error *err)
{
    raana_status st = RAANA_OK;
    int n = (int)floor(rate * t->d_out);
    if (n <= 0)
        return RAANA_OK;
    int32_t *cols = malloc((size_t)n * sizeof *cols);
    if (!cols)
        RAANA_FAIL_GOTO(err, RAANA_ERR_NOMEM, "out of memory for %d held-out columns", n);
    RAANA_CHECK(raana_trick_largest_columns(t, w, n, cols, err));
    for (int h = 0; h < n; h++)
        held[cols[h]] = 1;
cleanup:
    free(cols);
    return st;
}

/* Sum of squares in flat order; held columns are zeros there and adding
 * +0.0 to a non-negative sum changes nothing, so they are skipped. */
static double sum_of_squares(const raana_trick_terms *t, const float *w, const unsigned char *held)
{
    double s = 0;
    for (int j = 0; j < t->d_out; j++) {
        if (held[j])
            continue;
        for (int i = 0; i < t->d_in; i++) {
            double v = raana_tricked(t, w[(size_t)j * t->d_in + i], i);
            s += v * v;
        }
    }
    return s;
}

raana_status raana_trick_norm(const float *weight, int d_in, int d_out, unsigned tricks,
                              double norm_col_rate, double *norm, raana_error *err)
{
    raana_status st = RAANA_OK;
    unsigned char *held = calloc((size_t)d_out, 1);
    float *mu = NULL, *row_scale = NULL;
    raana_trick_terms t = {d_in, d_out, NULL, NULL};
    if (tricks & RAANA_TRICK_CENTRALIZE)
        mu = calloc((size_t)d_in, sizeof *mu);
    if (tricks & RAANA_TRICK_NORM_ROW)
        row_scale = calloc((size_t)d_in, sizeof *row_scale);
    if (!held || ((tricks & RAANA_TRICK_CENTRALIZE) && !mu) ||
        ((tricks & RAANA_TRICK_NORM_ROW) && !row_scale))
        RAANA_FAIL_GOTO(err, RAANA_ERR_NOMEM, "out of memory for a %dx%d layer's norm", d_out,
                        d_in);
    if (mu)
        RAANA_CHECK(raana_trick_means(weight, d_in, d_out, mu, err));
    if (row_scale)
        RAANA_CHECK(raana_trick_row_scales(weight, d_in, d_out, mu, row_scale, err));
    t.mu = mu, t.row_scale = row_scale;
    if (tricks & RAANA_TRICK_NORM_COL)
        RAANA_CHECK(held_columns(&t, weight, norm_col_rate, held, err));
    *norm = sqrt(sum_of_squares(&t, weight, held));
cleanup:
    free(held);
    free(mu);
    free(row_scale);
    return st;
}
