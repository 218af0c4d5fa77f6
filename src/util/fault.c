/* fault.c — the fault-injection hook (see fault.h). */
#include "raana/fault.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The signal an ACTION name stands for: kill (the default), stop, term. */
static int action_signal(const char *action)
{
    if (strcmp(action, "stop") == 0)
        return SIGSTOP;
    if (strcmp(action, "term") == 0)
        return SIGTERM;
    return SIGKILL;
}

void raana_fault_point(const char *stage, int rank)
{
    static int calls;
    const char *spec = getenv("RAANA_FAULT_INJECT");
    char want[32], action[16] = "kill";
    int want_rank = -1, want_n = 1;
    if (!spec || sscanf(spec, "%31[^:]:%d:%d:%15s", want, &want_rank, &want_n, action) < 2)
        return;
    if (strcmp(want, stage) != 0 || want_rank != rank)
        return;
    if (++calls == want_n || (calls > want_n && action_signal(action) == SIGKILL)) {
        if (action_signal(action) == SIGKILL)
            fprintf(stderr, "raana-mpi: RAANA_FAULT_INJECT: killing rank %d in %s\n", rank, stage);
        else
            fprintf(stderr, "raana-mpi: RAANA_FAULT_INJECT: %s to rank %d in %s\n", action, rank,
                    stage);
        fflush(stderr);
        raise(action_signal(action));
    }
}
