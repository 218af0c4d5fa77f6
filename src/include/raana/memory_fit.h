/* memory_fit.h — whether each rank's estimated peak (plan.h,
 * docs/SCALING.md) fits the memory limits it runs under (memory.h), and
 * when one does not: which rank, what its estimate is made of, and the
 * smallest number of ranks whose estimates all fit, from the same
 * estimate (issue 11). The job checks before it loads a weight; --dry-run
 * reports it for every rank.
 *
 * A rank's need is its estimated peak less the process it already is (what
 * raana_memory_check is given). With [calibration] windows_in_flight = auto
 * the need is taken at one window in flight, the least the run-time fit
 * (calibrate.h) lowers it to. */
#ifndef RAANA_MEMORY_FIT_H
#define RAANA_MEMORY_FIT_H

#include <mpi.h>
#include <stdint.h>
#include <stdio.h>

#include "raana/calibrate.h"
#include "raana/config.h"
#include "raana/error.h"
#include "raana/plan.h"

/* The smallest n in [1, max_ranks] whose plan gives every rank a need of
 * at most room bytes, and the largest need at that n; *n_ranks = 0 when
 * none does (*largest is then the smallest largest need over all n). */
raana_status raana_ranks_to_fit(const raana_model_config *model, const raana_config *cfg,
                                uint64_t room, int max_ranks, int *n_ranks, uint64_t *largest,
                                raana_error *err);

/* The rank counts worth trying: beyond 2 L + 2 for L blocks every block,
 * the embedding and the head sit on ranks of their own, and more ranks
 * lower no rank's need. */
int raana_ranks_to_fit_max(const raana_model_config *model);

/* Fails with RAANA_ERR_NOMEM (err->agreed: the message names the rank)
 * when this rank's need does not fit its memory limits: the rank, the
 * limit and the sizes (raana_memory_check), what the rank's estimate is
 * made of, and how many ranks would fit. */
raana_status raana_stage_check_fit(const raana_stage *s, const raana_config *cfg, int rank,
                                   raana_error *err);

/* --dry-run, collective: every rank reads its own limits; rank 0 writes to
 * out (NULL elsewhere) one line on the limits, and when a rank does not
 * fit, one line per such rank and one with the number of ranks that
 * would. */
raana_status raana_plan_print_fit(MPI_Comm comm, const raana_stage *s, const raana_config *cfg,
                                  FILE *out, raana_error *err);

#endif
