/* statistics.h — calibration statistics as files, and their reuse.
 *
 * raana-mpi --calibrate-only (and --allocate-only) writes the per-layer
 * statistics as JSON (docs/CALIBRATION.md). `[calibration] statistics = FILE`
 * takes such a file, or an existing raana container, instead of calibrating:
 * the job still tokenizes and fingerprints, and the statistics are used only
 * if they come from the same checkpoint, the same calibration settings and
 * tokens, and the same layer list; otherwise one message says what differs.
 * Doubles are written so that they read back bit for bit, so a container
 * made from reused statistics equals one calibrated in its own job. */
#ifndef RAANA_STATISTICS_H
#define RAANA_STATISTICS_H

#include <mpi.h>
#include <stdint.h>

#include "raana/allocation.h"
#include "raana/calibrate.h"
#include "raana/config.h"

/* One calibration result and what it depends on. */
typedef struct {
    uint64_t checkpoint_fp, calibration_fp;
    char source[16]; /* zeroshot | text */
    int n_samples, seq_len, windows;
    double loss;
    int n_layers;
    char (*names)[112];       /* [n_layers], plan order */
    int *d_in, *d_out;        /* [n_layers] */
    raana_layer_stats *stats; /* [n_layers] */
} raana_statistics;

/* What --calibrate-only / --allocate-only write. */
typedef struct {
    const raana_config *cfg;
    const raana_plan *plan;
    const raana_windows *windows;
    uint64_t checkpoint_fp, calibration_fp;
    const raana_layer_stats *stats; /* [plan->n_layers] */
    double loss;
    const raana_allocation *alloc; /* NULL: statistics only */
} raana_statistics_output;

/* Writes the JSON atomically to path. */
raana_status raana_statistics_write_json(const char *path, const raana_statistics_output *o,
                                         raana_error *err);

/* Reads path: a raana container (HDF5 signature) or the JSON above. Errors
 * are RAANA_ERR_CONFIG naming the file. Free with raana_statistics_free. */
raana_status raana_statistics_load(const char *path, raana_statistics *s, raana_error *err);
void raana_statistics_free(raana_statistics *s);

/* RAANA_OK if s was made from this job's checkpoint, calibration settings,
 * tokens and layer list; else RAANA_ERR_CONFIG saying what differs. */
raana_status raana_statistics_check(const raana_statistics *s, const char *path,
                                    const raana_config *cfg, const raana_stage *stage,
                                    uint64_t checkpoint_fp, uint64_t calibration_fp,
                                    raana_error *err);

/* Collective. Rank 0 loads and checks cfg->statistics; then every rank has
 * stats[n_layers] and the loss. */
raana_status raana_statistics_reuse(MPI_Comm comm, const raana_config *cfg,
                                    const raana_stage *stage, uint64_t checkpoint_fp,
                                    uint64_t calibration_fp, raana_layer_stats *stats, double *loss,
                                    raana_error *err);

#endif
