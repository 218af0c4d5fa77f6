/* fingerprint.h — what a result depends on, as 64-bit XXH3 hashes, so a
 * resumed job reuses only work done from the same inputs: every tensor's
 * raw bytes (each rank hashes the tensors it owns; one reduction gives every
 * rank all of them, independent of the number of ranks), the calibration
 * inputs, and each layer's weight and quantization settings. */
#ifndef RAANA_FINGERPRINT_H
#define RAANA_FINGERPRINT_H

#include <mpi.h>
#include <stdint.h>

#include "raana/calibrate.h"
#include "raana/config.h"
#include "raana/error.h"

typedef struct {
    size_t n;
    uint64_t *tensor;    /* [n], in the order of model.entries (sorted by name) */
    uint64_t checkpoint; /* of config.json and every tensor's name, dtype, shape, bytes */
    /* of the calibration (raana_fingerprint_calibration), once the job has
     * it: LDLQ codes depend on it ([quantize] ldlq), 0 before */
    uint64_t calibration;
} raana_fingerprints;

/* The rank that handles checkpoint tensor `name` (writes it, hashes it):
 * the owner of its decoder block, rank 0 for the embedding, the last rank
 * for everything else (final norm, lm_head). */
int raana_tensor_owner(const raana_plan *plan, const char *name);

/* Collective. */
raana_status raana_fingerprint_checkpoint(MPI_Comm comm, const raana_stage *s, int rank,
                                          raana_fingerprints *f, raana_error *err);
void raana_fingerprints_free(raana_fingerprints *f);

/* Of the checkpoint, the calibration windows (tokens) and the rows per
 * pipeline chunk (plan.h's chunk_tokens: it changes the rounding). */
uint64_t raana_fingerprint_calibration(const raana_fingerprints *f, const raana_windows *w,
                                       int chunk_tokens);

/* Of layer `name`'s weight and everything its codes depend on. */
uint64_t raana_fingerprint_layer(const raana_fingerprints *f, const raana_model *m,
                                 const char *name, const raana_config *cfg, double bits);

#endif
