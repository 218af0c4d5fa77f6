/* memory_estimate.h — the parts of a rank's estimated peak memory beyond
 * its f32 weights (plan.c adds them up; the
 * whole model is in docs/SCALING.md, "Memory of one rank"):
 *
 *   peak = process base + f32 weights + LDLQ grams + max(calibration, quantize)
 *
 * The stages run one after another and free their buffers, so only the
 * larger of the two working sets is resident at once. Checkpoint pages
 * are released once converted (raana_st_release), so the mapped BF16 file
 * is not counted. */
#ifndef RAANA_MEMORY_ESTIMATE_H
#define RAANA_MEMORY_ESTIMATE_H

#include <stdint.h>

#include "raana/config.h"
#include "raana/plan.h"

/* What a raana-mpi rank holds before any weight: the program, Open MPI,
 * HDF5, OpenBLAS and their start-up buffers (VmHWM of ranks with tiny
 * shards: 27.3-27.4 MiB on Debian bookworm, Open MPI 4.1.4, 2026-11-30). */
#define RAANA_PROCESS_BASE_BYTES ((uint64_t)28 * 1024 * 1024)

/* The calibration activations of rank r, kept for the backward pass: one
 * trace per window in flight and block (docs/SCALING.md, "Calibration
 * activations"), the buffers of one window (in chunks of chunk_tokens > 0:
 * also every block's key and value gradient sums), and on the last rank
 * the logits (their gradient in place) and the head's gradient of every
 * window in flight. */
uint64_t raana_estimate_calibration_bytes(const raana_model_config *m, const raana_plan_rank *r,
                                          int seq_len, int n_traces, int chunk_tokens);

/* The quantize stage's working set on the rank that owns blocks
 * [first, next): the receive buffer for the largest layer of other ranks'
 * blocks it may be given to encode (the stage spreads layers by cost,
 * quantize.c; layers too large for one MPI message never move), one f32
 * copy of the largest layer it may encode, own or received (the tricked
 * copy the encoder rotates, then the decoded layer for the relative error;
 * never both), plus every quantized layer of its blocks, which stays
 * until the container is written: avg_bits / 8 bytes per weight of codes,
 * a rescale per column, the trick terms (mu, row scales) per input and
 * the held-out columns in f32. With [quantize] ldlq also LDLQ's working
 * set for the largest layer (ldlq.c: its rotated gram and factor in f32, 8 d_in^2
 * bytes, a copy of the columns and their codes, 5 d_in d_out) and the
 * receive buffer of a layer's gram (4 d_in^2). With [quantize]
 * lowrank_rank the compensation's working set for the largest layer: its
 * weighted error in double (8 d_in d_out), the dequantized layer (4 d_in
 * d_out) and dgesvd's copy, U and V^T (8 (d_in d_out + k (d_in + d_out)),
 * k = min(d_in, d_out)); kept layers hold their factors too. A layer
 * split by output columns (plan.h) takes none of these receive buffers or
 * copies: before the rounds, every rank holds its largest piece twice
 * (received, then tricked) and 32 bytes per column (column_split.c). */
uint64_t raana_estimate_quantize_bytes(const raana_plan *plan, int first, int next,
                                       const raana_config *cfg);

/* With [quantize] ldlq: the grams of blocks [first, next) (llama.h), held
 * from the calibration through the quantize stage: 4 d^2 bytes per
 * distinct input of each block (a sparse block's attention only); else 0. */
uint64_t raana_estimate_gram_bytes(const raana_model_config *m, int first, int next,
                                   const raana_config *cfg);

#endif
