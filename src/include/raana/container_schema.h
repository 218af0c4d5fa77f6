/* container_schema.h — the container's layout in one place (docs/FORMAT.md):
 * the files copied under /model, the /allocation columns, which checkpoint
 * tensors become /layers groups, the HDF5 type each /tensors dtype is
 * stored as, the packed rotation signs and the tricks attribute. The
 * writer, the verification, the reader and the size bound all take these
 * from here; the bit accounting is in bits.h. */
#ifndef RAANA_CONTAINER_SCHEMA_H
#define RAANA_CONTAINER_SCHEMA_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

#include "raana/container.h" /* RAANA_FORMAT_NAME, RAANA_FORMAT_VERSION */
#include "raana/hadamard.h"
#include "raana/plan.h"
#include "raana/safetensors.h"

/* Model files copied into /model when present, in this order. */
#define RAANA_N_MODEL_FILES 6
extern const char *const raana_schema_model_files[RAANA_N_MODEL_FILES];

/* The double columns of /allocation, in the order they are written. */
enum {
    RAANA_COL_BITS,
    RAANA_COL_COEF,
    RAANA_COL_GRAD,
    RAANA_COL_XRMS,
    RAANA_COL_XFRO,
    RAANA_COL_YFRO,
    RAANA_COL_DYFRO,
    RAANA_COL_WFRO,
    RAANA_COL_REL,
    RAANA_COL_COS,
    RAANA_COL_EFF,
    RAANA_N_COLS
};
extern const char *const raana_schema_columns[RAANA_N_COLS];

/* 1 if checkpoint tensor `tensor` is "<layer>.weight" of a layer the plan
 * quantizes (stored under /layers, not /tensors). */
int raana_schema_is_quantized_weight(const raana_plan *plan, const char *tensor);

/* The native HDF5 type a checkpoint dtype is stored as under /tensors
 * (F16/BF16 as raw uint16 bits, the dtype attribute says which). */
hid_t raana_schema_tensor_type(raana_dtype d);

/* signs[2][ceil(d/8)]: bit i (LSB first) of row r set when s_{r+1}[i] = -1;
 * malloc'd, NULL when out of memory. */
uint8_t *raana_schema_pack_signs(const raana_rotation *rot);

/* The format version a writer gives its file (container.h): the lowest
 * that has low-rank factors (when lowrank) and 16-bit side vectors (when
 * side_half). */
int raana_schema_format_version(int lowrank, int side_half);

/* The tricks bit set named by a layer's "tricks" attribute. */
unsigned raana_schema_parse_tricks(const char *text);

#endif
