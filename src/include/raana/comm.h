/* comm.h — MPI glue shared by the stages: every rank agreeing on success
 * before a collective step (so one rank's failure ends the job with its
 * message instead of a deadlock), and checking how the job was launched. */
#ifndef RAANA_COMM_H
#define RAANA_COMM_H

#include <mpi.h>

#include "raana/error.h"

/* Collective. Each rank passes its own status (and err holding its message
 * when it failed). Returns RAANA_OK on every rank when all succeeded;
 * otherwise every rank returns the status of the lowest failing rank and
 * err holds "rank R: message" (just "message" in a one-rank job). */
raana_status raana_comm_agree(MPI_Comm comm, raana_status local, raana_error *err);

typedef struct {
    int launched_by_mpirun; /* OMPI_COMM_WORLD_SIZE was set */
    int has_pmix;           /* PMIX_RANK was set (srun --mpi=pmix) */
    long slurm_tasks;       /* SLURM_STEP_NUM_TASKS or SLURM_NTASKS, 0 if unset */
} raana_launch_env;

/* Reads the launcher's environment; call before MPI_Init. */
void raana_launch_env_read(raana_launch_env *env);

/* Before MPI_Init: fails (RAANA_ERR_MPI) when Slurm started several tasks
 * without PMIx (srun --mpi=none or pmi2), where Open MPI's MPI_Init would
 * abort or every task would become a one-rank job. */
raana_status raana_launch_check_before_init(const raana_launch_env *env, raana_error *err);

/* Fails (RAANA_ERR_MPI) when Slurm started a different number of tasks than
 * MPI sees, e.g. `srun -n 4` without PMIx support gives four 1-rank jobs. */
raana_status raana_launch_check(const raana_launch_env *env, int comm_size, raana_error *err);

#endif
