/* comm.c — agreement on success across ranks and launch checks (see comm.h). */
#include "raana/comm.h"

#include <stdlib.h>
#include <string.h>

#include "raana/wait.h"

raana_status raana_comm_agree(MPI_Comm comm, raana_status local, raana_error *err)
{
    int rank, size, first_failed;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    int mine = local != RAANA_OK ? rank : size;
    MPI_Request req; /* ranks arrive here at different times: wait without spinning */
    MPI_Iallreduce(&mine, &first_failed, 1, MPI_INT, MPI_MIN, comm, &req);
    raana_wait_idle(&req, MPI_STATUS_IGNORE);
    if (first_failed == size)
        return RAANA_OK;
    int head[2] = {(int)local, err->agreed}; /* status; already agreed (names its rank) */
    char msg[RAANA_ERROR_MSG_MAX];
    if (rank == first_failed)
        memcpy(msg, err->msg, sizeof msg);
    MPI_Bcast(head, 2, MPI_INT, first_failed, comm);
    MPI_Bcast(msg, (int)sizeof msg, MPI_CHAR, first_failed, comm);
    msg[sizeof msg - 1] = '\0';
    if (size > 1 && !head[1])
        raana_fail(err, (raana_status)head[0], "rank %d: %s", first_failed, msg);
    else
        raana_fail(err, (raana_status)head[0], "%s", msg);
    err->agreed = 1;
    return err->status;
}

void raana_launch_env_read(raana_launch_env *env)
{
    const char *s;
    env->launched_by_mpirun = getenv("OMPI_COMM_WORLD_SIZE") != NULL;
    env->has_pmix = getenv("PMIX_RANK") != NULL;
    env->slurm_tasks = 0;
    if ((s = getenv("SLURM_STEP_NUM_TASKS")) || (s = getenv("SLURM_NTASKS")))
        env->slurm_tasks = strtol(s, NULL, 10);
}

raana_status raana_launch_check(const raana_launch_env *env, int comm_size, raana_error *err)
{
    if (env->launched_by_mpirun || env->slurm_tasks <= 0 || env->slurm_tasks == comm_size)
        return RAANA_OK;
    return raana_fail(err, RAANA_ERR_MPI,
                      "Slurm started %ld tasks but MPI sees %d process%s: MPI was not wired "
                      "to Slurm. Launch with `srun --mpi=pmix` (or set MpiDefault=pmix), or use "
                      "mpirun inside the allocation",
                      env->slurm_tasks, comm_size, comm_size == 1 ? "" : "es");
}

raana_status raana_launch_check_before_init(const raana_launch_env *env, raana_error *err)
{
    if (env->launched_by_mpirun || env->has_pmix || env->slurm_tasks <= 1)
        return RAANA_OK;
    return raana_fail(err, RAANA_ERR_MPI,
                      "Slurm started %ld tasks without PMIx, so they cannot form one MPI job. "
                      "Launch with `srun --mpi=pmix` (or set MpiDefault=pmix), or use mpirun "
                      "inside the allocation",
                      env->slurm_tasks);
}
