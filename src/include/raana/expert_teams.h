/* expert_teams.h — expert parallelism, the plan side (docs/MOE.md, "Expert
 * parallelism"): how many ranks each sparse block's experts need so that
 * every rank fits a memory budget, or the team size the job forces with
 * [calibration] expert_ranks, and whether the job has the ranks for it.
 * Pure functions of (plan, model config, budget): no MPI, no files.
 *
 * A team of n serves every sparse block: the block's owner keeps the
 * experts e with e % n == 0, team member j (1..n-1, the j-th rank that
 * owns no decoder block) those with e % n == j, of every sparse block
 * (expert_team.h runs it during calibration). Each rank loads only the
 * experts it computes; the layer norms and the quantize stage take an
 * expert's weights from the rank that holds them
 * (raana_expert_teams_holder). */
#ifndef RAANA_EXPERT_TEAMS_H
#define RAANA_EXPERT_TEAMS_H

#include <stdint.h>
#include <stdio.h>

#include "raana/config.h"
#include "raana/error.h"
#include "raana/model.h"
#include "raana/plan.h"

typedef struct {
    int size;             /* ranks per sparse block (1: the owner alone) */
    int forced;           /* size came from [calibration] expert_ranks */
    int spare;            /* ranks owning no decoder block */
    int ranks_needed;     /* P with enough spare ranks (at least), or P */
    int block, rank;      /* the block (and its owner) that set size, or -1 */
    uint64_t block_bytes; /* that block's routed experts in f32 */
    uint64_t rank_bytes;  /* what its owner needs without a team */
    uint64_t budget;      /* bytes a rank may still use; UINT64_MAX = no limit */
} raana_expert_teams;

/* Bytes of the routed experts of block b in f32 (0 for a dense block). */
uint64_t raana_expert_block_bytes(const raana_plan *plan, int block);

/* The team size: expert_ranks when forced (> 0), else the smallest n whose
 * owners and members all fit budget (bytes beyond the process, per rank).
 * Never fails; see raana_expert_teams_check. */
void raana_expert_teams_plan(const raana_plan *plan, const raana_model_config *m, int expert_ranks,
                             uint64_t budget, raana_expert_teams *t);

/* RAANA_OK when size is 1 (nothing to spread) or a forced size the job
 * has the ranks for. Otherwise one error naming the block, its expert
 * bytes, the budget and the ranks the job needs: RAANA_ERR_CONFIG for a
 * forced size without enough spare ranks or beyond num_experts,
 * RAANA_ERR_NOMEM when the experts do not fit the budget and the spare
 * ranks are too few. */
raana_status raana_expert_teams_check(const raana_expert_teams *t, const raana_plan *plan,
                                      const raana_model_config *m, raana_error *err);

/* The rank holding plan layer `layer`'s weights: team member e % n for a
 * routed expert e with e % n != 0, else the block's owner. */
int raana_expert_teams_holder(const raana_expert_teams *t, const raana_plan *plan, int layer);

/* After a passing check: every rank's estimate with the team (the owners
 * less the experts they hand over, each member plus its experts and their
 * routed rows), so the memory checks and the dry run's table count it.
 * Nothing when size is 1. */
void raana_expert_teams_apply(const raana_expert_teams *t, raana_plan *plan,
                              const raana_model_config *m, const raana_config *cfg);

/* The dry run's line about expert teams (nothing for a dense model). */
void raana_expert_teams_print(FILE *out, const raana_expert_teams *t, const raana_plan *plan,
                              const raana_model_config *m);

#endif
