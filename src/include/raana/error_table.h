/* error_table.h — AllocateBits' calibrated error model ([quantize]
 * error_model = calibrated): f(b) for each candidate width b measured on
 * the quantizer itself, the relative error ||W - What||_F / ||W||_F of
 * RaBitQ-H's codes (with the job's encoder, no tricks) on a fixed matrix of
 * Gaussian columns, which is what any column looks like after the random
 * rotation. It replaces the paper's 2^-b (and 1/(2 sqrt b) below one bit),
 * whose ratios between widths are off: the unbiased reconstruction below
 * one bit costs 1.9x the 1-bit error at 0.5 bits, not 1.4x
 * (docs/QUANTIZER.md). Pure computation, deterministic: every rank gets
 * the same table. */
#ifndef RAANA_ERROR_TABLE_H
#define RAANA_ERROR_TABLE_H

#include "raana/error.h"
#include "raana/tricks.h"

/* The measurement matrix: this many columns of this dimension. */
#define RAANA_ERROR_TABLE_D_IN    768
#define RAANA_ERROR_TABLE_COLUMNS 128

/* f[k] for bits[k], k < n_bits (0 for the kept candidate 16). */
raana_status raana_error_table_measure(const double *bits, int n_bits, raana_encoder encoder,
                                       double *f, raana_error *err);

/* The relative error of RaBitQ-H's codes at `bits` on weight[d_out][d_in]
 * (no tricks, one thread): the measurement behind each entry. */
raana_status raana_error_table_rel_error(const float *weight, int d_in, int d_out, double bits,
                                         raana_encoder encoder, double *rel, raana_error *err);

#endif
