/* ldlq.h — data-aware codes for one quantized layer: LDLQ (the error
 * feedback of GPTQ/OPTQ, QuIP's LDLQ) on RaBitQ-H's own grid.
 *
 * RaBitQ-H codes each rotated column r_j (qlayer.h) on its own, maximizing
 * the cosine to the weights. The layer's output error on inputs x is
 * sum_j <r_j - rhat_j, x_r>^2 with x_r = R (s .* x), so what matters is the
 * error in the metric H = E[x_r x_r^T], the calibration inputs' second
 * moments in the rotated basis. LDLQ keeps each column's grid (step r_j,
 * the exact code's rescale; values r_j (c - (2^B - 1)/2)) and picks the
 * codes coordinate by coordinate in rotated order, rounding each to the
 * nearest grid value after adding the error of the earlier ones fed forward
 * through U, the upper Cholesky factor of H^-1 (H^-1 = U^T U):
 *
 *   e_i = (w_i - rhat_i) / U_ii,   w_k -= e_i U_ik for k > i.
 *
 * H is damped, H + lambda I with lambda = damp * tr(H) / d_in, because a
 * few hundred calibration tokens determine it poorly (bench/RESULTS.md: damp
 * 1 wins on held-out text, 0.01 overfits). Afterwards each column's rescale
 * is set back to RaBitQ's unbiased form ||r||^2 / <r, c - center> for its
 * new codes (a column whose new codes' cosine to it is below half its exact
 * codes' keeps those: a guard for degenerate columns). Only for B >= 1; the format does not change:
 * only which codes are stored. Deterministic for any thread count. No MPI, no I/O. */
#ifndef RAANA_LDLQ_H
#define RAANA_LDLQ_H

#include "raana/error.h"
#include "raana/qlayer.h"

/* q: a layer just encoded by raana_qlayer_quantize's encoder (codes,
 * rescales, tricks, rotation); target[d_out][d_in]: its rotated columns
 * after the tricks (what was encoded; held-out columns are left alone);
 * gram[d_in][d_in]: sum over calibration tokens of x x^T of the layer's
 * input in the original basis (only the upper triangle is read; any
 * positive scale). A gram with zero or non-finite trace leaves q as it is.
 * Fails only on allocation failure. */
raana_status raana_ldlq_refine(raana_qlayer *q, const float *target, const float *gram, double damp,
                               int threads, raana_error *err);

/* U (upper, row-major [d][d], float) of the damped rotated gram H, as
 * raana_ldlq_refine uses it; exposed for tests. */
raana_status raana_ldlq_factor(const raana_qlayer *q, const float *gram, double damp, float *u,
                               int *usable, raana_error *err);

#endif
