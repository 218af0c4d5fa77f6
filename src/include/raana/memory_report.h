/* memory_report.h — each rank's measured peak memory (VmHWM), gathered to
 * rank 0 and set against the plan's estimate, for the job log: one summary
 * line and one line per rank (up to RAANA_MEMORY_REPORT_RANKS ranks; the
 * largest ones beyond that). */
#ifndef RAANA_MEMORY_REPORT_H
#define RAANA_MEMORY_REPORT_H

#include <mpi.h>
#include <stdio.h>

#include "raana/plan.h"

#define RAANA_MEMORY_REPORT_RANKS 64

/* Collective: every rank of comm calls it. Rank 0 writes to out (NULL:
 * nothing); plan may be NULL (then no estimate is shown). Lines:
 *   memory: measured peak (VmHWM) LARGEST MiB on rank R, SUM MiB in all; plan's estimate E MiB
 * (xRATIO) memory: rank R peak P MiB (estimate E MiB, xRATIO); at the end anon A MiB, file-backed F
 * MiB */
void raana_memory_report(MPI_Comm comm, const raana_plan *plan, FILE *out);

#endif
