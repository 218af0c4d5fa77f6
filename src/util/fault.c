/* fault.c — the fault-injection hook (see fault.h). */
#include "raana/fault.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void raana_fault_point(const char *stage, int rank)
{
    static int calls;
    const char *spec = getenv("RAANA_FAULT_INJECT");
    char want[32];
    int want_rank = -1, want_n = 1;
    if (!spec || sscanf(spec, "%31[^:]:%d:%d", want, &want_rank, &want_n) < 2)
        return;
    if (strcmp(want, stage) != 0 || want_rank != rank)
        return;
    if (++calls >= want_n) {
        fprintf(stderr, "raana-mpi: RAANA_FAULT_INJECT: killing rank %d in %s\n", rank, stage);
        fflush(stderr);
        raise(SIGKILL);
    }
}
