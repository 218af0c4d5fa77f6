/* trick_norm.h — ||W after the tricks||_F (centralized, rows normalized,
 * held-out columns zeroed), the norm AllocateBits' coefficient needs
 * (DESIGN section 4), computed in read-only passes over the weight: no copy
 * of the layer, no page faults, a few KiB of per-row and per-column terms.
 * The result is bitwise equal to raana_qlayer_trick_norm (same operations
 * in the same order), which materializes the tricked matrix as the
 * quantizer does; tests/unit/test_trick_norm.c checks that. */
#ifndef RAANA_TRICK_NORM_H
#define RAANA_TRICK_NORM_H

#include "raana/error.h"

raana_status raana_trick_norm(const float *weight, int d_in, int d_out, unsigned tricks,
                              double norm_col_rate, double *norm, raana_error *err);

#endif
