/* memory_report.c — each rank's measured peak memory, gathered to rank 0
 * and set against the plan's estimate (see memory_report.h). */
#include "raana/memory_report.h"

#include <stdlib.h>

#include "raana/joblog.h"
#include "raana/rss.h"

#define MIB (1024.0 * 1024.0)

enum { M_HWM, M_ANON, M_FILE, M_COUNT };

static double estimate_of(const raana_plan *plan, int rank)
{
    return plan && rank < plan->n_ranks ? (double)plan->ranks[rank].peak_bytes : 0;
}

static void print_rank(FILE *out, const raana_plan *plan, int r, const double *m)
{
    double est = estimate_of(plan, r);
    char vs[64] = "";
    if (est > 0)
        snprintf(vs, sizeof vs, " (estimate %.1f MiB, x%.2f)", est / MIB, m[M_HWM] / est);
    raana_log_line(
        out, "memory: rank %d peak %.1f MiB%s; at the end anon %.1f MiB, file-backed %.1f MiB", r,
        m[M_HWM] / MIB, vs, m[M_ANON] / MIB, m[M_FILE] / MIB);
}

static void print_all(FILE *out, const raana_plan *plan, const double *all, int size)
{
    int at = 0;
    double sum = 0;
    for (int r = 0; r < size; r++) {
        sum += all[r * M_COUNT + M_HWM];
        if (all[r * M_COUNT + M_HWM] > all[at * M_COUNT + M_HWM])
            at = r;
    }
    double peak = all[at * M_COUNT + M_HWM], est = estimate_of(plan, at);
    char vs[64] = "";
    if (est > 0)
        snprintf(vs, sizeof vs, "; its estimate %.1f MiB (x%.2f)", est / MIB, peak / est);
    raana_log_line(out, "memory: measured peak (VmHWM) %.1f MiB on rank %d, %.1f MiB in all%s",
                   peak / MIB, at, sum / MIB, vs);
    for (int r = 0; r < size; r++)
        if (size <= RAANA_MEMORY_REPORT_RANKS || r == at)
            print_rank(out, plan, r, all + (size_t)r * M_COUNT);
}

void raana_memory_report(MPI_Comm comm, const raana_plan *plan, FILE *out)
{
    int rank, size;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    raana_rss rss;
    raana_rss_read(&rss);
    double mine[M_COUNT] = {(double)rss.hwm, (double)rss.anon, (double)rss.file};
    double *all = rank == 0 ? malloc((size_t)size * M_COUNT * sizeof *all) : NULL;
    int ok = rank != 0 || all != NULL; /* agreed, so that no rank waits alone */
    MPI_Bcast(&ok, 1, MPI_INT, 0, comm);
    if (ok)
        MPI_Gather(mine, M_COUNT, MPI_DOUBLE, all, M_COUNT, MPI_DOUBLE, 0, comm);
    if (rank == 0 && ok && out) {
        print_all(out, plan, all, size);
        fflush(out);
    }
    free(all);
}
