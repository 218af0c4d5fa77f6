/* balance.h — the quantize stage's layers spread over the ranks by cost,
 * not by count (docs/SCALING.md, "Quantize stage balance"). A cost model
 * predicts one layer's encode time from its shape, its allocated bits and
 * the encoder; a longest-processing-time-first (LPT) schedule assigns the
 * layers to ranks. Pure functions of their arguments: every rank computes
 * the same assignment without communicating. */
#ifndef RAANA_BALANCE_H
#define RAANA_BALANCE_H

#include "raana/error.h"
#include "raana/tricks.h" /* raana_encoder */

/* Predicted seconds to quantize one d_out x d_in layer at `bits` (as
 * AllocateBits gives them: integers, or a fraction below one) with one
 * thread on the reference machine: tricks, rotation, the per-column code
 * search, packing, and the dequantization that measures the error. Only
 * ratios between layers matter for the balance. */
double raana_quantize_cost(int d_in, int d_out, double bits, raana_encoder encoder);

/* What [quantize] ldlq adds to a layer that has a gram, in the same
 * seconds: the factor (2/3 d_in^3 flops, LAPACK in f32) and the feedback
 * (2 d_in^2 d_out, mostly sgemm), at 89 GFLOP/s per thread (measured: 2
 * Llama-2-7B-shaped blocks, 6.9 TFLOP of LDLQ in 39 s on 2 threads of an
 * AMD EPYC; bench/RESULTS.md); 0 below one bit (ldlq.h). */
double raana_ldlq_cost(int d_in, int d_out, double bits);

/* What [quantize] lowrank_rank adds to a layer, in the same seconds: the
 * exact SVD of its d_in x d_out weighted error with U and V (dgesvd, about
 * 14 m n k flops, k = min(m, n)) at the 1 GFLOP/s per rank measured with
 * Debian's OpenBLAS LAPACK (bench/RESULTS.md, "Low-rank compensation"):
 * dgesvd's bidiagonalization is level-2 BLAS bound. A team of p ranks
 * divides it by about p. */
double raana_lowrank_cost(int d_in, int d_out);

/* LPT: the items in order of decreasing cost (ties: lower index first),
 * each onto the rank with the least load so far (ties: lower rank).
 * cost[n] >= 0; items with cost < 0 are not assigned (rank_of -1).
 * pinned: NULL, or [n] with a rank for items that must stay on that rank
 * (placed first) and -1 for the others. Writes rank_of[n] and, when load
 * is not NULL, load[n_ranks] (summed cost per rank). Its makespan is at
 * most 4/3 - 1/(3 n_ranks) of the optimum when nothing is pinned. Fails
 * only when out of memory or on a pinned rank outside [0, n_ranks). */
raana_status raana_balance_lpt(const double *cost, const int *pinned, int n, int n_ranks,
                               int *rank_of, double *load, raana_error *err);

#endif
