/* cost_model.h — the job's predicted wall time per stage and per rank,
 * before any weight is read (docs/SCALING.md, "Cost model"): what
 * `raana-mpi --dry-run` prints. A pure function of the plan, the model's
 * shape, the job's config (its [cost] rates included) and the rank count.
 *
 *   load      per rank: its checkpoint bytes / read_gb_per_s, plus
 *             load_ns_per_weight for every weight it holds (conversion to
 *             f32 and AllocateBits' norms);
 *   calibrate the pipeline over the ranks holding blocks: one unit per
 *             (rank, window) = that rank's forward + backward FLOPs
 *             (4 T per linear weight a token passes, 6 T^2 q_dim for causal
 *             attention, 4 T V H for the head) / (calibrate_gflops_per_thread
 *             x OpenBLAS threads); each
 *             round of m windows in flight takes (m - 1) x the largest unit
 *             plus the sum of the units (GPipe: fill and drain);
 *   quantize  every quantized layer at avg_bits (balance.h's cost,
 *             interpolated between whole bits) x quantize_scale, divided by
 *             the threads per rank, spread by LPT as the stage spreads them:
 *             the largest rank load;
 *   write     the container's bytes (codes at avg_bits, 32-bit rescales,
 *             unquantized weights in 16 bits) / write_mb_per_s, once: the
 *             ranks write one after another.
 *
 * Stages run one after another (each ends in an agreement), so the job
 * takes the slowest rank's load + calibrate + the slowest rank's
 * quantize + write. No MPI, no files. */
#ifndef RAANA_COST_MODEL_H
#define RAANA_COST_MODEL_H

#include <stdio.h>

#include "raana/config.h"
#include "raana/error.h"
#include "raana/model.h"
#include "raana/plan.h"

typedef struct {
    double load, calibrate, quantize; /* this rank's own work, seconds */
} raana_cost_rank;

/* Threads per rank: OpenMP in the quantize stage (raana_quantize_threads),
 * OpenBLAS in calibration (openblas_get_num_threads). */
typedef struct {
    int quantize, blas;
} raana_cost_threads;

typedef struct {
    int n_ranks;
    raana_cost_rank *ranks;                  /* [n_ranks] */
    double load, calibrate, quantize, write; /* the stages as the job sees them */
    double total;
    double calibrate_flops, container_bytes; /* what the stages were derived from */
    int windows;
    raana_cost_threads threads;
} raana_cost;

/* Fills cost for plan on plan->n_ranks ranks with `threads` per rank.
 * Fails only when out of memory. */
raana_status raana_cost_predict(const raana_plan *plan, const raana_model_config *model,
                                const raana_config *cfg, const raana_cost_threads *threads,
                                raana_cost *cost, raana_error *err);
void raana_cost_free(raana_cost *cost);

/* The prediction as text: the rates assumed, one line per rank, the
 * stages and the job, then the same in plain seconds on one line for
 * scripts ("predicted seconds (for scripts): load S calibrate S ..."). */
void raana_cost_print(FILE *out, const raana_cost *cost, const raana_config *cfg);

#endif
