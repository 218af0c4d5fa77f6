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
#include "raana/outpaths.h"

/* Collective. The tokenizer, the calibration windows and this rank's share
 * of the model. */
raana_status raana_job_load(MPI_Comm comm, const raana_config *cfg, raana_stage *s, int rank,
                            raana_error *err);

/* Collective. Rank 0 takes OUTPUT.lock for the rest of the job (outpaths.h)
 * and, holding it, finishes removing an OUTPUT.resume.removing that an
 * interrupted job left. Fails (RAANA_ERR_IO, naming the holder) when
 * another job holds it. unlock: rank 0 deletes and releases it. */
raana_status raana_job_lock_output(MPI_Comm comm, const raana_config *cfg, raana_output_lock *lock,
                                   FILE *progress, raana_error *err);
void raana_job_unlock_output(raana_output_lock *lock);

/* Collective. Fails before any work when the output exists and overwrite
 * is off, its directory cannot be written, its name is too long for the
 * names raana derives from it, or OUTPUT.partial or OUTPUT.resume is a
 * symbolic link. */
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
