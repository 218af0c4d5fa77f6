/* joblog.h — the job's log as a person reads it (rank 0, stderr): a header
 * saying what runs where (version, hosts, ranks, threads and CPU binding
 * per rank, the BLAS library, the model, a digest of the config, the
 * planned memory, a resume directory found), progress lines in one format
 * with a UTC timestamp, elapsed time and an ETA, and a closing line.
 *
 * Every line after the header has one format, "UTC STAGE: TEXT"; a
 * progress line (raana_log_progress, every stage) adds the counts:
 *   2026-11-30T07:40:12Z quantize: DETAIL [12/56 layers, 21%, elapsed 0:00:12, ETA 0:00:45]
 * and a note (raana_log_line: a reused calibration, the space reserved for
 * the container, a lock taken over, a resume directory removed) does not:
 *   2026-11-30T07:40:12Z write: OUT.h5.partial (4564221 bytes reserved)
 */
#ifndef RAANA_JOBLOG_H
#define RAANA_JOBLOG_H

#include <mpi.h>
#include <stddef.h>
#include <stdio.h>

#include "raana/calibrate.h"
#include "raana/config.h"
#include "raana/error.h"

/* The current UTC time as "2026-11-30T07:40:12Z" (buf of at least 24). */
void raana_log_utc(char *buf, size_t size);

/* Seconds as "H:MM:SS" ("?" when negative: unknown). */
void raana_log_duration(char *buf, size_t size, double seconds);

/* Remaining seconds at a constant rate: elapsed * (total - done) / done;
 * -1 (unknown) before anything is done. */
double raana_log_eta(double done, double total, double elapsed);

/* One progress line (see above); out may be NULL. detail may be "". */
void raana_log_progress(FILE *out, const char *what, const char *detail, double done, double total,
                        const char *unit, double elapsed, double eta);

/* One line with the timestamp prefix: "2026-...Z TEXT". */
void raana_log_line(FILE *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Collective. Rank 0 writes the header to out (other ranks pass anything;
 * only rank 0's out is used). `quantize` adds what a resume will reuse. */
void raana_joblog_header(MPI_Comm comm, const raana_config *cfg, const raana_stage *s, int quantize,
                         FILE *out);

/* The closing line: outcome, exit code, wall time. */
void raana_joblog_footer(FILE *out, raana_status st, double seconds);

/* The CPUs this process may run on, as a Linux list ("0-3,8"). */
void raana_log_cpu_list(char *buf, size_t size);

#endif
