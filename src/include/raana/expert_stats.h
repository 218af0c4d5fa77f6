/* expert_stats.h — calibration statistics of mixture-of-experts layers
 * after the windows are reduced (docs/MOE.md): the fallback for an expert
 * that no calibration token was routed to, and the tokens-per-expert
 * report. No MPI. */
#ifndef RAANA_EXPERT_STATS_H
#define RAANA_EXPERT_STATS_H

#include <stdio.h>

#include "raana/calibrate.h"
#include "raana/plan.h"

/* tokens[i]: rows that went through plan layer i over all windows. Every
 * expert projection with none gets the mean statistics of the same
 * projection (gate, up or down) of its siblings in that block that did get
 * tokens. Returns the number of layers so filled. */
int raana_expert_stats_fallback(const raana_plan *plan, const double *tokens,
                                raana_layer_stats *stats);

/* One line per sparse block: "block B tokens per expert: n0 n1 ...". */
void raana_expert_tokens_print(FILE *out, const raana_plan *plan, const double *tokens);

#endif
