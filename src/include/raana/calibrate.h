/* calibrate.h — the per-rank stage of a pipeline pass over MPI ranks,
 * the calibration pass (forward +
 * activation-gradient backward, per-layer sensitivity statistics);
 * evaluation is in evaluate.h, the messages in link.h. Rank r holds only
 * its plan's blocks; activations travel r -> r+1 and their gradients
 * r+1 -> r with point-to-point messages.
 * Every window's arithmetic is the same whichever rank runs which block, so
 * results do not depend on the number of ranks. */
#ifndef RAANA_CALIBRATE_H
#define RAANA_CALIBRATE_H

#include <mpi.h>
#include <stdio.h>

#include "raana/calib_text.h"
#include "raana/error.h"
#include "raana/expert_team.h"
#include "raana/expert_teams.h"
#include "raana/llama.h"
#include "raana/plan.h"
#include "raana/tokenizer.h"

/* Everything one rank holds for a pipeline pass: the checkpoint's headers,
 * the plan, the tokenizer, the token windows and its own blocks. Start from
 * zero, fill with the calls below; raana_stage_free releases whatever was
 * filled. */
typedef struct {
    raana_model model;
    raana_plan plan;
    raana_tokenizer *tok;
    raana_windows windows;
    raana_llama net;
    int model_open, net_loaded;
    double *w_fro;            /* [plan.n_layers] or NULL: this rank's norms (layer_norms.h) */
    raana_expert_teams teams; /* set by raana_stage_plan_experts */
    raana_expert_team *team;  /* this rank's part of it, by raana_stage_load, or NULL */
    /* [net.n_blocks * RAANA_GRAM_GROUPS] or NULL: this rank's blocks' input
     * grams for LDLQ (llama.h), by raana_stage_alloc_grams, summed by
     * raana_pipeline_calibrate; a sparse block's MLP entries are NULL */
    float **grams;
} raana_stage;

/* Opens the checkpoint (headers only) and builds the plan for n_ranks. */
raana_status raana_stage_open(raana_stage *s, const char *model_dir, const raana_config *cfg,
                              int n_ranks, raana_error *err);
/* The same from a model already open (e.g. raana_container_model_open):
 * the stage takes *model over (zeroing it) and closes it in
 * raana_stage_free, also when building the plan fails. */
raana_status raana_stage_open_model(raana_stage *s, raana_model *model, const raana_config *cfg,
                                    int n_ranks, raana_error *err);
/* Fails with RAANA_ERR_NOMEM, naming the rank, the limit and the sizes,
 * when planned_bytes more (e.g. the plan's peak for this rank) and
 * OpenBLAS's buffer do not fit in this process's memory limits (memory.h). */
raana_status raana_stage_check_memory(int rank, uint64_t planned_bytes, raana_error *err);
/* Loads this rank's share of the model, per the plan, after checking that
 * the forward pass of one window fits (raana_stage_check_memory), and its
 * part of an expert team (expert_team.h) when teams.size > 1. */
raana_status raana_stage_load(raana_stage *s, int rank, raana_error *err);
void raana_stage_free(raana_stage *s);

/* With [quantize] ldlq, after raana_stage_load: zeroed grams for this
 * rank's blocks (RAANA_ERR_NOMEM naming their size when they do not fit). */
raana_status raana_stage_alloc_grams(raana_stage *s, raana_error *err);
/* Plan layer `layer`'s input gram [d_in][d_in] (upper triangle) when this
 * rank's blocks hold it, else NULL. */
const float *raana_stage_layer_gram(const raana_stage *s, int layer);

/* Plan layer `layer`'s weights when this rank holds them (its own block's,
 * less the experts it handed to a team, or a team member's experts), else
 * NULL; after raana_stage_load. */
const float *raana_stage_layer_weight(const raana_stage *s, int layer);

/* Collective, after the plan and before raana_stage_load's memory check:
 * with [calibration] windows_in_flight = auto, lowers the plan's M (and
 * every rank's estimated peak) to the largest M whose peak fits every
 * rank's memory limits (memory.h), 1 at least. Results do not depend on M. */
void raana_stage_fit_windows(MPI_Comm comm, raana_stage *s, const raana_config *cfg, int rank);

/* Collective, after raana_stage_fit_windows: the team size of the sparse
 * blocks' experts ([calibration] expert_ranks, or auto from the smallest
 * room any rank has under its memory limits) into s->teams, the same on
 * every rank, and every rank's estimate in s->plan with the team
 * (raana_expert_teams_apply); fails on every rank with expert_teams.h's
 * message when the job lacks the ranks (or, forced, the experts). */
raana_status raana_stage_plan_experts(MPI_Comm comm, raana_stage *s, const raana_config *cfg,
                                      raana_error *err);

/* Per linear layer, averaged over calibration windows (DESIGN section 4):
 * grad_rms = ||dL/dY|| / sqrt(numel(Y)), x_rms = ||X|| / sqrt(rows of X),
 * plus the mean raw norms. */
typedef struct {
    double grad_rms, x_rms, x_fro, y_fro, dy_fro;
} raana_layer_stats;

/* Collective. Fills stats[n_layers] (plan order) on every rank and the mean
 * calibration loss, running the windows in rounds of the plan's
 * windows_in_flight (calibrate.c); bit-identical for every M and every rank
 * count, with or without an expert team (team: the stage's, or NULL).
 * grams (the stage's, or NULL): each window's inputs added in window order
 * (raana_llama_trace_add_grams), so they too are bit-identical. */
raana_status raana_pipeline_calibrate(MPI_Comm comm, const raana_llama *net, const raana_plan *plan,
                                      const raana_windows *w, raana_expert_team *team,
                                      float *const *grams, raana_layer_stats *stats, double *loss,
                                      FILE *progress, raana_error *err);

#endif
