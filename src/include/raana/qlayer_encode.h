/* qlayer_encode.h — RaBitQ-H encoding of one layer (qlayer.h's definitions)
 * in pieces of output columns. The terms every column shares (centralize's
 * means, norm_row's scales, norm_col's held-out columns) come from the
 * whole weight once; each piece of columns is then encoded on its own,
 * wherever it is; the layer is finished from every column's cosine.
 * raana_qlayer_quantize is these steps over a single piece, so a column
 * comes out bitwise the same however the layer is split (the quantize
 * stage's split layers, column_split.h). No MPI. */
#ifndef RAANA_QLAYER_ENCODE_H
#define RAANA_QLAYER_ENCODE_H

#include <stdint.h>

#include "raana/error.h"
#include "raana/qlayer.h"

/* Rotated coordinate index of kept coordinate p (qlayer.h: below one bit
 * regions A and B keep their first m_a and m_b coordinates). */
static inline int raana_qlayer_kept_index(const raana_qlayer *q, int p)
{
    if (q->bits >= 1)
        return p;
    return p < q->m_a ? p : q->d_in - q->rot.k + (p - q->m_a);
}

/* q's layout for params: dimensions, bits, tricks, rotation, kept
 * coordinates, packed bytes per column; mu and row_scale allocated (zero)
 * when their trick is on. No codes. Free with raana_qlayer_free. */
raana_status raana_qlayer_layout(int d_in, int d_out, const raana_qlayer_params *p, raana_qlayer *q,
                                 raana_error *err);

/* On a laid-out q: refuses NaN or Inf in weight[d_out][d_in] (naming
 * name and the entry), then the shared terms from the whole weight: mu and
 * the row scales (rounded to their stored 16 bits with side_bits 16), the
 * held-out columns and their original values. */
raana_status raana_qlayer_find_terms(raana_qlayer *q, const float *weight, double norm_col_rate,
                                     const char *name, raana_error *err);

/* Whether column j is held out (q->held_cols, ascending). */
int raana_qlayer_is_held(const raana_qlayer *q, int j);

/* Columns [c0, c0 + n) of a laid-out q that has its terms (held_cols
 * without held_values is enough): weight holds their original
 * [n][d_in] values; w receives them tricked and rotated (held-out columns
 * zero, as LDLQ needs them); packed [n][q->packed_bytes], rescale[n] and
 * cosine[n] each column's codes, rescale (before any 16-bit rounding) and
 * cosine with its rotated column. OpenMP over columns; the result does
 * not depend on the thread count. */
raana_status raana_qlayer_encode_piece(const raana_qlayer *q, const float *weight, int c0, int n,
                                       raana_encoder encoder, int threads, float *w,
                                       uint8_t *packed, float *rescale, double *cosine,
                                       raana_error *err);

/* The end of encoding, once every column's codes and rescale are in q:
 * the mean cosine from cosine[d_out] in column order (held-out columns
 * left out), and with side_bits 16 the rescales rounded to their stored
 * 16 bits (half_scaled.h: one exponent for the whole vector). */
void raana_qlayer_finish_codes(raana_qlayer *q, const double *cosine);

/* Column j of What (qlayer.h) from its codes packed[q->packed_bytes] and
 * rescale, for a column that is not held out and without low-rank
 * factors: col[d_in]; codes[n_kept] and vals[n_kept] are scratch. */
void raana_qlayer_decode_column(const raana_qlayer *q, const uint8_t *packed, float rescale,
                                uint8_t *codes, float *vals, float *col);

/* One column's share of the relative error: *diff = sum_i (what[i] -
 * w[i])^2 and *ref = sum_i w[i]^2, in double, i ascending. A layer's
 * relative error sums these over columns in column order
 * (raana_qlayer_relative_error), so it does not depend on a split. */
void raana_qlayer_column_error(const float *what, const float *w, int d_in, double *diff,
                               double *ref);

/* sqrt(diff / ref) from the column sums diff[n], ref[n] (sqrt(diff) when
 * the weight is zero). */
double raana_qlayer_relative_error(const double *diff, const double *ref, int n);

#endif
