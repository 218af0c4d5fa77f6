/* expert_team.h — expert parallelism's messages during calibration
 * (docs/MOE.md, "Expert parallelism"): with a team of n
 * (expert_teams.h), the owner of a sparse block hands the rows routed to
 * its experts e % n != 0 to team member e % n (a rank that owns no decoder
 * block) through moe.h's raana_moe_runner, and combines what comes back
 * exactly as a local expert's output, so every statistic and the container
 * are bit-identical to P = 1. A member serves requests whenever it waits
 * on its own messages (wait.h's hook) and, after its pipeline work, until
 * every owner has said it is done; it answers every request, with a failed
 * status if need be, so no rank waits forever. The member keeps its
 * experts' weights until the stage is freed: the layer norms and the
 * quantize stage read them there (raana_stage_layer_weight). */
#ifndef RAANA_EXPERT_TEAM_H
#define RAANA_EXPERT_TEAM_H

#include <mpi.h>

#include "raana/error.h"
#include "raana/expert_teams.h"
#include "raana/llama.h"
#include "raana/model.h"
#include "raana/plan.h"

typedef struct raana_expert_team raana_expert_team;

/* This rank's part of a team of t->size: an owner hooks a runner into
 * each of its sparse blocks in net; a member loads its experts of every
 * sparse block from model; other ranks only take part in begin and end.
 * *out is NULL on every rank when t->size <= 1. Not collective. */
raana_status raana_expert_team_create(const raana_plan *plan, const raana_expert_teams *t,
                                      const raana_model *model, raana_llama *net,
                                      raana_expert_team **out, raana_error *err);

/* Before the calibration pass (collective over comm when team is not
 * NULL, which is then so on every rank): the team's communicator and, on a
 * member, the wait hook that serves requests. */
void raana_expert_team_begin(MPI_Comm comm, raana_expert_team *team);

/* After the pass: owners tell each member they are done, members serve
 * until every owner is; then the communicator is released (collective,
 * every rank). Returns nonzero when this rank's part failed (a member's
 * error in err). */
int raana_expert_team_end(MPI_Comm comm, raana_expert_team *team, raana_error *err);

/* "expert team of n ranks per sparse block: ..." (who computes which
 * experts), for the job's log. */
void raana_expert_team_describe(const raana_expert_team *team, char *buf, size_t size);

/* The weight of slot `slot` of block `block` when it is one of the
 * routed experts this member holds, else NULL (also for team NULL). */
const float *raana_expert_team_weight(const raana_expert_team *team, const raana_model_config *m,
                                      int block, int slot);

/* Unhooks the runners from net and frees the member's experts. */
void raana_expert_team_free(raana_expert_team *team, raana_llama *net);

#endif
