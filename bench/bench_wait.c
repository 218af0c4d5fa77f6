/* bench_wait.c — CPU time a rank spends waiting 2 s for a message, with
 * Open MPI's blocking MPI_Recv (busy polling) and with raana_recv_idle
 * (src/pipeline/wait.c, nanosleep back-off), and the extra wake-up latency
 * the back-off costs. Run with 2 ranks on one node, e.g.
 * OMPI_MCA_mpi_yield_when_idle=0 mpiexec -n 2 bench_wait (Open MPI's
 * default when the node is not oversubscribed). On a loaded machine a
 * spinning rank only gets its share of a core, which hides the difference. */
#include <mpi.h>
#include <stdio.h>
#include <sys/resource.h>
#include <time.h>

#include "raana/wait.h"

/* Wall clock shared by the ranks of one node (MPI_Wtime is not: Open MPI
 * counts from each process's MPI_Init). */
static double wall_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
           1e-6 * (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

/* Rank 0 sleeps `wait` seconds, then sends its send time; rank 1 waits and
 * reports its CPU time and the delay between the send and its wake-up. */
static void one_wait(int rank, int idle, double wait, double *cpu, double *late)
{
    double sent = 0;
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0) {
        struct timespec ts = {(time_t)wait, (long)((wait - (time_t)wait) * 1e9)};
        nanosleep(&ts, NULL);
        sent = wall_seconds();
        MPI_Send(&sent, 1, MPI_DOUBLE, 1, 0, MPI_COMM_WORLD);
    } else if (rank == 1) {
        double c0 = cpu_seconds();
        if (idle)
            raana_recv_idle(&sent, 1, MPI_DOUBLE, 0, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        else
            MPI_Recv(&sent, 1, MPI_DOUBLE, 0, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        *late = wall_seconds() - sent;
        *cpu = cpu_seconds() - c0;
    }
}

int main(int argc, char **argv)
{
    int rank, size;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (size != 2) {
        if (rank == 0)
            fprintf(stderr, "bench_wait: error: run with 2 ranks\n");
        MPI_Finalize();
        return 2;
    }
    const char *what[2] = {"MPI_Recv (Open MPI default)", "raana_recv_idle"};
    for (int idle = 0; idle < 2; idle++) {
        double cpu = 0, late = 0;
        one_wait(rank, idle, 2.0, &cpu, &late);
        if (rank == 1)
            printf("| %s: waiting 2 s | CPU %.3f s, woke %.3f ms after the send |\n", what[idle],
                   cpu, 1e3 * late);
        fflush(stdout);
    }
    MPI_Finalize();
    return 0;
}
