/* preempt.h — preemption by a signal: Slurm sends SIGUSR1 before a time
 * limit or preemption (sbatch --signal=B:USR1@SECONDS, forwarded to the
 * tasks by slurm/quantize.sbatch) and SIGTERM when it ends a job. The
 * handler only sets a flag (sig_atomic_t, async-signal-safe); the quantize
 * stage reads it between layers and the ranks agree on it collectively, so
 * that one rank receiving the signal stops all of them at the same point
 * (quantize.c). They then make OUTPUT.resume durable (raana_sync_dir) and
 * exit with RAANA_ERR_PREEMPTED (75): running the same command again
 * resumes. No MPI here. */
#ifndef RAANA_PREEMPT_H
#define RAANA_PREEMPT_H

/* Installs the handler for SIGUSR1 and SIGTERM (SA_RESTART, so that
 * interrupted system calls are restarted rather than failing). */
void raana_preempt_install(void);

/* The signal received (SIGUSR1 or SIGTERM), 0 if none yet. */
int raana_preempt_signal(void);

/* Waits until a preemption signal has arrived (the fault-injection
 * "pause" action): polls the flag, so the signal may reach any thread. */
void raana_preempt_wait(void);

/* fsync of a directory, so that the renames of files in it are durable;
 * errors are ignored (some file systems cannot sync a directory). */
void raana_sync_dir(const char *dir);

#endif
