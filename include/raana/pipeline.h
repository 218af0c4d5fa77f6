/* pipeline.h — the stages after the plan, in order, as one collective call:
 * load -> calibrate -> reduce + allocate -> quantize -> write -> report
 * (DESIGN section 2). Rank 0 prints progress and the report; every rank's
 * failure becomes every rank's error before the next collective step.
 * Finished work is kept in OUTPUT.resume/ until the container is in place,
 * so running the same command again after a kill resumes (resume.h). */
#ifndef RAANA_PIPELINE_H
#define RAANA_PIPELINE_H

#include <mpi.h>
#include <stdio.h>

#include "raana/calibrate.h"
#include "raana/config.h"

/* Collective. The tokenizer, the calibration windows and this rank's share
 * of the model. */
raana_status raana_job_load(MPI_Comm comm, const raana_config *cfg, raana_stage *s, int rank,
                            raana_error *err);

/* Collective. Fails before any work when the output exists and overwrite
 * is off, or its directory cannot be written. */
raana_status raana_job_check_output(MPI_Comm comm, const raana_config *cfg, raana_error *err);

typedef struct {
    const char *command_line;
    FILE *report;   /* rank 0: the final table and summary (stdout) */
    FILE *progress; /* rank 0: one line per step (stderr) */
    double plan_seconds;
} raana_job_options;

/* Collective. The whole job after raana_stage_open: writes cfg->output_path. */
raana_status raana_job_quantize(MPI_Comm comm, const raana_config *cfg, raana_stage *s,
                                const raana_job_options *opt, raana_error *err);

#endif
