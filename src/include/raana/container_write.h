/* container_write.h — the quantized model as ONE HDF5 file, written by all ranks
 * together (schema: docs/FORMAT.md, format_version below). Every group,
 * dataset and attribute is created collectively in one global order that
 * depends only on the checkpoint and the plan's layer list, each rank
 * writes the data it owns, and everything outside /provenance is the same
 * for any number of ranks and for a resumed run. After writing, the ranks
 * read their own datasets back and compare (container_verify.h). The
 * layout comes from container_schema.h; reading is container.h. */
#ifndef RAANA_CONTAINER_WRITE_H
#define RAANA_CONTAINER_WRITE_H

#include <hdf5.h>
#include <mpi.h>
#include <stdio.h>

#include "raana/allocation.h"
#include "raana/calibrate.h"
#include "raana/config.h"
#include "raana/fingerprint.h"
#include "raana/quantize.h"

enum {
    RAANA_STAGE_PLAN,
    RAANA_STAGE_LOAD,
    RAANA_STAGE_CALIBRATE,
    RAANA_STAGE_ALLOCATE,
    RAANA_STAGE_QUANTIZE,
    RAANA_STAGE_WRITE,
    RAANA_STAGE_COUNT
};
extern const char *const raana_stage_names[RAANA_STAGE_COUNT];

/* Bits per weight of the whole container, everything stored counted. */
typedef struct {
    double quantized;  /* over the quantized layers: codes, rescales, tricks, signs */
    double model;      /* over every parameter: the above plus unquantized tensors */
    double codes_only; /* the allocation's achieved average (codes only) */
} raana_bits_summary;

/* Everything the container holds; identical on every rank except where
 * noted. */
typedef struct {
    const raana_config *cfg;
    const raana_stage *stage; /* plan, model (mmapped tensors), windows */
    const raana_fingerprints *fingerprints;
    const raana_layer_stats *stats; /* [n_layers] */
    double loss;
    uint64_t calibration_fingerprint;
    const raana_allocation *alloc;
    const raana_quantized *quantized; /* layers: this rank's only */
    raana_bits_summary bits;
    const char *table; /* the report table (rank 0 only) */
    const char *command_line;
    FILE *progress; /* rank 0: a line per layer written (may be NULL) */
    int resumed_calibration;
    double seconds[RAANA_STAGE_COUNT]; /* write: up to the provenance group */
} raana_container_content;

/* Collective. Creates (truncating) path and writes the whole container. */
raana_status raana_container_write(MPI_Comm comm, const char *path, raana_container_content *c,
                                   raana_error *err);

/* Fills c->bits from the summaries and the checkpoint's tensor sizes. */
void raana_container_count_bits(raana_container_content *c);

#endif
