/* container.h — the quantized model as ONE HDF5 file, written by all ranks
 * together (schema: docs/FORMAT.md, format_version below). Every group,
 * dataset and attribute is created collectively in one global order that
 * depends only on the checkpoint and the plan's layer list, each rank
 * writes the data it owns, and everything outside /provenance is the same
 * for any number of ranks and for a resumed run. After writing, the ranks
 * read their own datasets back and compare (raana_container_verify). */
#ifndef RAANA_CONTAINER_H
#define RAANA_CONTAINER_H

#include <hdf5.h>
#include <mpi.h>
#include <stdio.h>

#include "raana/allocation.h"
#include "raana/calibrate.h"
#include "raana/config.h"
#include "raana/fingerprint.h"
#include "raana/quantize.h"

#define RAANA_FORMAT_NAME    "raana-container"
#define RAANA_FORMAT_VERSION 1

enum { RAANA_STAGE_PLAN, RAANA_STAGE_LOAD, RAANA_STAGE_CALIBRATE, RAANA_STAGE_ALLOCATE,
       RAANA_STAGE_QUANTIZE, RAANA_STAGE_WRITE, RAANA_STAGE_COUNT };
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
raana_status raana_container_write(MPI_Comm comm, const char *path,
                                   raana_container_content *c, raana_error *err);

/* Collective. Reopens path and checks, on each rank, that its own layers'
 * codes and rescales and its unquantized tensors read back unchanged. */
raana_status raana_container_verify(MPI_Comm comm, const char *path,
                                    const raana_container_content *c, raana_error *err);

/* An upper bound of the container's size in bytes (every dataset
 * uncompressed, plus zstd's worst case and HDF5's metadata), for checking
 * the space before writing. Reads the model files' sizes. */
uint64_t raana_container_size_bound(const raana_container_content *c);

/* Fills c->bits from the summaries and the checkpoint's tensor sizes. */
void raana_container_count_bits(raana_container_content *c);

/* ---- reading (one process, no MPI needed) ---- */

/* Opens a container read-only and checks its format name and version. */
raana_status raana_container_open(const char *path, hid_t *file, raana_error *err);

/* The same with file access properties fapl (H5P_DEFAULT: a file on disk;
 * the fuzzer passes a core-driver file image, and path only names it). */
raana_status raana_container_open_fapl(const char *path, hid_t fapl, hid_t *file, raana_error *err);

/* Whether dataset d (named `name` in messages) may be read whole: a
 * chunked dataset must have every chunk stored, and its declared size may
 * exceed the bytes it occupies in the file at most 1024 times (+64 MiB),
 * so a crafted dataspace cannot make a reader allocate terabytes. */
raana_status raana_container_dataset_fits(hid_t d, const char *path, const char *name,
                                          raana_error *err);

/* Rebuilds quantized layer `name` (codes, rescales, tricks, rotation) from an
 * open container. Every attribute is checked against the layer's shape and
 * bits before use (code_bits, n_kept, m_a and m_b against the sub-bit
 * layout, packed_bytes, held columns in range and distinct), every array's
 * size against the file (raana_container_dataset_fits), rescales and trick
 * terms finite, the stored signs against the generator. */
raana_status raana_container_read_layer(hid_t file, const char *path, const char *name,
                                        raana_qlayer *q, raana_error *err);

#endif
