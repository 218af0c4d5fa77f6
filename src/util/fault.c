/* fault.c — the fault-injection hooks (see fault.h): killing or pausing a
 * rank at a stage, and failing the N-th resource acquisition. */
#include "raana/fault.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "raana/huge_alloc.h"
#include "raana/preempt.h"

/* 1 when the ONCE file did not exist and this call created it. */
static int first_time(const char *once)
{
    int fd = open(once, O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd < 0)
        return 0;
    close(fd);
    return 1;
}

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
    char want[32], action[16] = "kill", once[1024] = "";
    int want_rank = -1, want_n = 1;
    if (!spec ||
        sscanf(spec, "%31[^:]:%d:%d:%15[^:]:%1023s", want, &want_rank, &want_n, action, once) < 2)
        return;
    if (strcmp(want, stage) != 0 || want_rank != rank)
        return;
    int pause = strcmp(action, "pause") == 0, sig = action_signal(action);
    ++calls;
    if (calls != want_n && !(calls > want_n && !pause && sig == SIGKILL))
        return;
    if (once[0] && !first_time(once))
        return;
    if (pause) {
        fprintf(stderr, "raana-mpi: RAANA_FAULT_INJECT: rank %d paused in %s\n", rank, stage);
        fflush(stderr);
        raana_preempt_wait();
        return;
    }
    if (sig == SIGKILL)
        fprintf(stderr, "raana-mpi: RAANA_FAULT_INJECT: killing rank %d in %s\n", rank, stage);
    else
        fprintf(stderr, "raana-mpi: RAANA_FAULT_INJECT: %s to rank %d in %s\n", action, rank,
                stage);
    fflush(stderr);
    raise(sig);
}

/* The calls of raana_fault_fail() so far: the fault sites this process passed. */
static long fault_sites_passed;

/* atexit: the number of fault sites passed, to RAANA_FAULT_COUNT_FILE. */
static void write_fault_count(void)
{
    const char *path = getenv("RAANA_FAULT_COUNT_FILE");
    FILE *f = path ? fopen(path, "w") : NULL;
    if (!f)
        return;
    fprintf(f, "%ld\n", fault_sites_passed);
    fclose(f);
}

int raana_fault_fail(void)
{
    static long fail_at;
    static int read_env;
    if (!read_env) {
        read_env = 1;
        const char *spec = getenv("RAANA_FAULT_FAIL_AT");
        fail_at = spec ? strtol(spec, NULL, 10) : 0;
        if (getenv("RAANA_FAULT_COUNT_FILE"))
            atexit(write_fault_count);
    }
    return ++fault_sites_passed == fail_at;
}

void *raana_malloc(size_t size)
{
    return raana_fault_fail() ? NULL : raana_malloc_large(size);
}

void *raana_calloc(size_t n, size_t size)
{
    return raana_fault_fail() ? NULL : raana_calloc_large(n, size);
}

FILE *raana_fopen(const char *path, const char *mode)
{
    return raana_fault_fail() ? NULL : fopen(path, mode);
}
