/* plan.h — what the job will do, before any weight is read: the linear
 * layers to quantize (with the exclude patterns applied) and the split of
 * contiguous decoder blocks over P ranks, balanced by parameter count.
 * A pure function of (model config, job config, P): every rank computes the
 * same plan without communicating. */
#ifndef RAANA_PLAN_H
#define RAANA_PLAN_H

#include <stdint.h>
#include <stdio.h>

#include "raana/config.h"
#include "raana/error.h"
#include "raana/model.h"

typedef struct {
    char name[112]; /* "model.layers.3.mlp.down_proj" */
    int block;
    raana_linear_kind kind;
    int slot;   /* in its block (model.h): plan index = block offset + slot */
    int expert; /* 0.. for an expert's projection, else RAANA_EXPERT_NONE/SHARED */
    int d_in, d_out;
    /* 0 when an exclude pattern matched, for routers (docs/MOE.md), and once
     * AllocateBits keeps the layer in 16 bits (kept_16bit) */
    int quantize;
    int kept_16bit; /* AllocateBits chose 16: the checkpoint's BF16/F16 weight is stored */
    int split;      /* encoded by every rank, a piece of columns each (raana_plan_layer_split) */
} raana_plan_layer;

typedef struct {
    int first_block, n_blocks; /* blocks [first_block, first_block + n_blocks) */
    int owns_embedding, owns_head;
    uint64_t params; /* every parameter the rank holds */
    uint64_t quantized_params;
    uint64_t peak_bytes;         /* estimated peak memory, see docs/SCALING.md */
    uint64_t forward_peak_bytes; /* the same for one window (forward only, raana-eval) */
    uint64_t calibration_bytes, quantize_bytes; /* the two working sets in peak_bytes */
    uint64_t expert_rows_bytes; /* an expert team member's routed rows, in calibration_bytes */
    uint64_t gram_bytes;        /* [quantize] ldlq's grams of its blocks, in peak_bytes */
} raana_plan_rank;

typedef struct {
    int n_layers;
    raana_plan_layer *layers; /* block-major, forward order within a block */
    int n_ranks;
    raana_plan_rank *ranks;
    uint64_t block_params; /* parameters of one decoder block (the largest one) */
    uint64_t total_params, quantized_params;
    int seq_len; /* calibration window actually used */
    /* rows of a window per pipeline message ([calibration] chunk_tokens;
     * 0, whole windows, when it is 0, not below seq_len, or the model has
     * sparse blocks) */
    int chunk_tokens;
    /* M: windows whose activations calibration holds at once (config.h's
     * windows_in_flight, at most n_samples); windows_auto when it was auto */
    int windows_in_flight, windows_auto;
    int windows_fit_from; /* auto's M before the run-time fit lowered it, else 0 */
} raana_plan;

raana_status raana_plan_create(const raana_model_config *model, const raana_config *cfg,
                               int n_ranks, raana_plan *plan, raana_error *err);
void raana_plan_free(raana_plan *plan);

/* M for cfg on n_ranks: [calibration] windows_in_flight, or when auto 2 per
 * rank (enough to keep every stage busy; 1 on one rank: nothing to
 * overlap), at most n_samples. */
int raana_plan_windows_in_flight(const raana_config *cfg, int n_ranks);
/* Re-estimates every rank's peak with windows_in_flight traces (auto's
 * run-time fit to the memory limits, calibrate.h). */
void raana_plan_set_windows_in_flight(raana_plan *plan, const raana_model_config *model,
                                      const raana_config *cfg, int windows_in_flight);

/* Whether the job sums the layer inputs' grams during calibration:
 * [quantize] ldlq (LDLQ codes) or lowrank_rank > 0 (the weighting of the
 * low-rank compensation). */
int raana_config_wants_grams(const raana_config *cfg);

/* Whether layer l gets a gram (llama.h): with raana_config_wants_grams,
 * every layer of a dense block and the attention of a sparse one (an
 * expert's inputs are routed tokens). Its gram travels with its weights. */
int raana_plan_layer_has_gram(const raana_config *cfg, const raana_plan_layer *l);

/* Whether the quantize stage encodes layer l with every rank, each a piece
 * of its output columns (column_split.h; docs/SCALING.md, "Layers split by
 * output columns"): not a layer with LDLQ codes or low-rank factors (their
 * terms span all columns); else with [quantize] split_min_weights set, a
 * layer of at least that many weights; else (auto) on two or more ranks a
 * layer holding more than 1/P of the quantized weights, which no balance
 * of whole layers could spread, or too large for one MPI message. Never
 * when a piece itself would not fit one message. */
int raana_plan_layer_split(const raana_config *cfg, const raana_plan *plan,
                           const raana_plan_layer *l);

/* Piece k of n_ranks of a split layer with d_out columns: columns
 * [*c0, *c0 + *n), floor(d_out k / n_ranks) onwards. */
void raana_plan_split_piece(int d_out, int n_ranks, int k, int *c0, int *n);

/* Whether layers store low-rank factors: [quantize] lowrank_rank (the
 * compensation) or pca_rank (the PCA trick) above 0. */
int raana_config_has_factors(const raana_config *cfg);

/* The rank of layer l's low-rank factors, capped at min(d_in, d_out):
 * [quantize] pca_rank for every layer, else lowrank_rank for a layer with a
 * gram, else 0. */
int raana_plan_layer_lowrank(const raana_config *cfg, const raana_plan_layer *l);

/* Whether a team of all n_ranks ranks computes layer l's SVD (ScaLAPACK),
 * rather than the rank that quantizes it (LAPACK): the compensation, more
 * than one rank and at least [quantize] lowrank_team_min_weights weights
 * (the PCA trick's SVD is always the quantizing rank's). */
int raana_plan_lowrank_by_team(const raana_config *cfg, const raana_plan_layer *l, int n_ranks);

/* The rank that owns decoder block b. */
int raana_plan_block_owner(const raana_plan *plan, int block);

/* Calibration window length: the configured seq_len, or the model's
 * max_position_embeddings capped at 2048 when seq_len is 0. */
int raana_plan_seq_len(const raana_model_config *model, const raana_config *cfg);

/* The plan as text. The part above the line "ranks: P" does not depend on P. */
void raana_plan_print(FILE *out, const raana_plan *plan, const raana_model_config *model);

/* One line per reason ranks will idle, naming them, why, and what would
 * use them: ranks without a decoder block (more ranks than blocks), and
 * pipeline stages that cannot overlap because there are fewer calibration
 * windows (n_samples) than ranks holding blocks. Nothing when none idle. */
void raana_plan_print_idle(FILE *out, const raana_plan *plan, const raana_model_config *model,
                           const raana_config *cfg);

#endif
