/* trick_terms.h — the per-row and per-column terms of the tricks (qlayer.h):
 * the centralize means mu, the norm_row scales s and norm_col's held-out
 * columns, computed one way for the quantizer (qlayer.c, which then
 * materializes the tricked matrix) and for the copy-free norm (trick_norm.c,
 * which never does), so that both see bitwise the same terms.
 *
 * W is [d_out][d_in]: column j (an output channel) is contiguous, row i is
 * an input channel. The tricked value of w[j][i] is (w[j][i] - mu[i]) / s[i],
 * each step in float; every sum below is a double accumulated over j in
 * column order. */
#ifndef RAANA_TRICK_TERMS_H
#define RAANA_TRICK_TERMS_H

#include <stdint.h>

#include "raana/error.h"

typedef struct {
    int d_in, d_out;
    const float *mu;        /* [d_in] or NULL: centralize off */
    const float *row_scale; /* [d_in] or NULL: norm_row off */
} raana_trick_terms;

/* The tricked value of w[j][i]. */
static inline float raana_tricked(const raana_trick_terms *t, float w, int i)
{
    if (t->mu)
        w -= t->mu[i];
    if (t->row_scale)
        w /= t->row_scale[i];
    return w;
}

/* mu[i] = the mean over columns j of w[j][i] (centralize). */
raana_status raana_trick_means(const float *w, int d_in, int d_out, float *mu, raana_error *err);

/* scale[i] = the RMS over j of w[j][i] - mu[i] (mu NULL: of w[j][i]); 1 for
 * an all-zero row (norm_row). */
raana_status raana_trick_row_scales(const float *w, int d_in, int d_out, const float *mu,
                                    float *scale, raana_error *err);

/* cols[0..n) = the n columns of largest norm of the tricked w with the row
 * scales multiplied back (ties go to the lower index), in ascending order
 * (norm_col). */
raana_status raana_trick_largest_columns(const raana_trick_terms *t, const float *w, int n,
                                         int32_t *cols, raana_error *err);

#endif
