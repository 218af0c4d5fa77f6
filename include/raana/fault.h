/* fault.h — fault injection for the tests of resuming and of a rank dying
 * (after SQLite's test hooks): with RAANA_FAULT_INJECT="STAGE:RANK[:N]" in
 * the environment, the N-th call (default 1) of raana_fault_point(STAGE) on
 * rank RANK kills that process with SIGKILL, exactly as a crash or an OOM
 * kill would. Without the variable the calls do nothing. Stages used:
 * "calibrate", "quantize" (after each layer), "write" (after each
 * dataset). */
#ifndef RAANA_FAULT_H
#define RAANA_FAULT_H

void raana_fault_point(const char *stage, int rank);

#endif
