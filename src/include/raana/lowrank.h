/* lowrank.h — low-rank compensation of a quantized layer's error
 * (docs/QUANTIZER.md, "Low-rank compensation"): after the codes, the
 * rank-r correction A B that best removes the error E = W - What in the
 * metric of the layer's inputs, stored as two 16-bit float factors, so the
 * layer becomes What + A B. Math only: the SVD itself is the caller's
 * (svd.h, on one rank or a ScaLAPACK team).
 *
 * Weighting: the inputs' per-channel second moments h_i = G_ii + damp *
 * mean(G_ii) (G the calibration gram, lowrank_damp), normalized to mean 1.
 * The SVD is of M = E diag(sqrt h); with M ~ U S V^T truncated to r,
 *   A = U_r S_r^1/2                      [d_out][r]
 *   B = S_r^1/2 V_r^T diag(h)^-1/2       [r][d_in]
 * so A B is the best rank-r correction of E in ||(E - A B) diag(h)^1/2||_F.
 * The diagonal, not the full G: the full second-moment matrix of a few
 * hundred calibration tokens fits their noise (bench/RESULTS.md). */
#ifndef RAANA_LOWRANK_H
#define RAANA_LOWRANK_H

#include "raana/error.h"
#include "raana/qlayer.h"

/* m[d_out][d_in] (row-major, double) = (weight - What) diag(sqrt h), and
 * sqrt_h[d_in]; What is q's dequantization without factors. gram is the
 * [d_in][d_in] gram (only its diagonal is read). */
raana_status raana_lowrank_target(const float *weight, const raana_qlayer *q, const float *gram,
                                  double damp, double *m, double *sqrt_h, raana_error *err);

/* Sets q's factors from the top-r SVD of M^T (column-major d_in x d_out,
 * which is m's row-major array): s[r], us = V_r S_r (d_in x r, ld d_in),
 * vt = U_r^T (r x d_out, ld r), as raana_svd_local returns them. The
 * factors are rounded to IEEE half; a factor entry out of its range fails
 * (RAANA_ERR_NUMERIC). */
raana_status raana_lowrank_set_factors(raana_qlayer *q, int r, const double *s, const double *us,
                                       const double *vt, const double *sqrt_h, raana_error *err);

/* The factors as float: a[d_out][r], b[r][d_in] (caller's buffers). */
void raana_lowrank_factors_f32(const raana_qlayer *q, float *a, float *b);

/* what[d_out][d_in] += A B. */
raana_status raana_lowrank_add(const raana_qlayer *q, float *what, raana_error *err);

/* y[n][d_out] += (x[n][d_in] B^T) A^T. */
raana_status raana_lowrank_matmul_add(const raana_qlayer *q, const float *x, int n, float *y,
                                      raana_error *err);

#endif
