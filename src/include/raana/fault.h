/* fault.h — fault injection for the tests of resuming and of a rank dying
 * (after SQLite's test hooks): with RAANA_FAULT_INJECT="STAGE:RANK[:N]" in
 * the environment, the N-th call (default 1) of raana_fault_point(STAGE) on
 * rank RANK kills that process with SIGKILL, exactly as a crash or an OOM
 * kill would. Without the variable the calls do nothing. Stages used:
 * "calibrate", "quantize" (after each layer), "write" (after each
 * dataset).
 *
 * "STAGE:RANK:N:pause[:ONCE]" instead stops that rank there until it
 * receives SIGUSR1 or SIGTERM (preempt.h), after printing "RAANA_FAULT_INJECT:
 * rank R paused in STAGE" on stderr: a test can then signal a job that is
 * certainly mid-run, without relying on timing. With ONCE (a file path) the
 * action happens only in the first process that creates that file, so a
 * resumed or requeued run carries on. */
#ifndef RAANA_FAULT_H
#define RAANA_FAULT_H

#include <stddef.h>
#include <stdio.h>

void raana_fault_point(const char *stage, int rank);

/* ---- Failing resource acquisitions, for the tests of error paths.
 *
 * With RAANA_FAULT_FAIL_AT=N in the environment, the N-th call of
 * raana_fault_fail() in the process returns 1 (once); every other call, and
 * every call without the variable, returns 0. The container reader and
 * writer call it before each allocation (through the wrappers below), each
 * file open and each HDF5 file, group, dataset or attribute open or create,
 * and fail as if that acquisition had failed. With RAANA_FAULT_COUNT_FILE=PATH
 * the process writes at exit the number of calls it made (the fault sites it
 * passed, S) to PATH: N = S fails the last site, N = S + 1 none.
 * tests/cli/test_fault_paths.sh learns S from one fault-free run, runs a job
 * and the readers with a sample of N = 1 .. S (every N on request) and
 * S + 1, and checks each failure for one error line, no leak and no output
 * left. */
int raana_fault_fail(void);

/* malloc, calloc (large buffers with huge-page advice, huge_alloc.h) and
 * fopen, failing when raana_fault_fail() says so. */
void *raana_malloc(size_t size);
void *raana_calloc(size_t n, size_t size);
FILE *raana_fopen(const char *path, const char *mode);

#endif
