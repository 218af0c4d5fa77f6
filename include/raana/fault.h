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

void raana_fault_point(const char *stage, int rank);

#endif
