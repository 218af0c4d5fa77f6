/* container.h — reading a raana container (docs/FORMAT.md): one process,
 * no MPI needed, serial HDF5 underneath and never visible. A
 * raana_container is an open container file: its root and group
 * attributes, the files stored under /model, the list of quantized layers
 * with their shapes and bits, and each layer rebuilt as a raana_qlayer
 * (qlayer.h: dequantize it, or multiply by it without forming the weight).
 *
 * Everything read is checked before use: the format name and version on
 * open, every layer attribute against the layer's shape and bits, every
 * array's declared size against the bytes it occupies in the file (a
 * crafted file cannot make the reader allocate terabytes), rescales and
 * trick terms finite, the stored rotation signs against the generator.
 * Failures name the file and the object.
 *
 * Lifecycle: raana_container_open / raana_container_close (files),
 * raana_qlayer_free for a layer read from it (docs/DECISIONS.md). */
#ifndef RAANA_CONTAINER_H
#define RAANA_CONTAINER_H

#include <stddef.h>
#include <stdint.h>

#include "raana/bits.h"
#include "raana/error.h"
#include "raana/qlayer.h"

#define RAANA_FORMAT_NAME    "raana-container"
#define RAANA_FORMAT_VERSION 3
/* A writer writes the lowest version that describes its file, so older
 * readers read what they can: 1 when no layer has low-rank factors and the
 * side vectors are float32, 2 with low-rank factors (and float32 side
 * vectors), 3 with 16-bit side vectors ([quantize] side_bits = 16). */
#define RAANA_FORMAT_VERSION_PLAIN   1
#define RAANA_FORMAT_VERSION_LOWRANK 2

typedef struct raana_container raana_container;

/* Opens container `path` read-only and checks its format name and version
 * (another version is RAANA_ERR_UNSUPPORTED; a truncated file, or not a
 * container, RAANA_ERR_INPUT saying so). */
raana_status raana_container_open(const char *path, raana_container **c, raana_error *err);
/* Closes it; NULL is fine. */
void raana_container_close(raana_container *c);

/* The path it was opened with. */
const char *raana_container_path(const raana_container *c);

/* Its format version (RAANA_FORMAT_VERSION_PLAIN .. RAANA_FORMAT_VERSION). */
int raana_container_format_version(const raana_container *c);

/* 1 if the group or dataset `object` (an absolute path) exists. */
int raana_container_has(const raana_container *c, const char *object);

/* What attribute `name` of object `object` ("/" for the root) holds. */
typedef enum {
    RAANA_ATTR_ABSENT,
    RAANA_ATTR_TEXT,   /* a fixed-length string */
    RAANA_ATTR_NUMBER, /* one number */
    RAANA_ATTR_NUMBERS /* a 1-D array of numbers */
} raana_attr_kind;
raana_attr_kind raana_container_attr_kind(const raana_container *c, const char *object,
                                          const char *name);

/* A numeric attribute as a double / an int64, a text attribute into
 * out[size] (NUL-terminated; too long is an error). Absent or of another
 * kind: RAANA_ERR_INPUT naming the attribute. */
raana_status raana_container_attr_f64(const raana_container *c, const char *object,
                                      const char *name, double *value, raana_error *err);
raana_status raana_container_attr_i64(const raana_container *c, const char *object,
                                      const char *name, int64_t *value, raana_error *err);
raana_status raana_container_attr_text(const raana_container *c, const char *object,
                                       const char *name, char *out, size_t size, raana_error *err);
/* A numeric attribute of up to `max` values into v[]; *n their count. */
raana_status raana_container_attr_f64s(const raana_container *c, const char *object,
                                       const char *name, double *v, size_t max, size_t *n,
                                       raana_error *err);

/* The root attribute checkpoint_fingerprint (16 hex digits) as a number. */
raana_status raana_container_checkpoint_fingerprint(const raana_container *c, uint64_t *fingerprint,
                                                    raana_error *err);

/* malloc'd bytes of a 1-D byte dataset (text: /model/config.json,
 * /config.ini, /report/table), NUL-terminated; *data NULL and *len 0 when
 * the container does not hold it. Free with free(). */
raana_status raana_container_read_bytes(const raana_container *c, const char *dataset, char **data,
                                        size_t *len, raana_error *err);

/* malloc'd bytes of /model/<name> (a file of the checkpoint, e.g.
 * "tokenizer.json"), as raana_container_read_bytes. */
raana_status raana_container_model_file(const raana_container *c, const char *name, char **data,
                                        size_t *len, raana_error *err);

/* ---- the quantized layers ---- */

typedef struct {
    char name[256]; /* e.g. "model.layers.0.mlp.up_proj" */
    int d_in, d_out;
    double bits; /* the allocation's width: 0.5, 0.75, 1 .. 8 */
    double rel_error;
    size_t packed_bytes; /* per column */
    int n_held;
    int has_mu, has_row_scale;
    int lowrank_rank;        /* rank of its low-rank factors, 0 if none */
    raana_layer_bits stored; /* what it occupies, by kind (bits.h) */
} raana_container_layer;

/* Number of /layers groups, in name order. */
int raana_container_layer_count(const raana_container *c);
/* The name of layer i (0 <= i < count). */
const char *raana_container_layer_name(const raana_container *c, int i);
/* Layer i (0 <= i < count) without reading its arrays. */
raana_status raana_container_layer_info(const raana_container *c, int i,
                                        raana_container_layer *info, raana_error *err);

/* Rebuilds quantized layer `name` (codes, rescales, tricks, rotation).
 * Every attribute is checked against the layer's shape and bits (code_bits,
 * n_kept, m_a and m_b against the sub-bit layout, packed_bytes, held
 * columns in range and distinct), every array's size against the file,
 * rescales and trick terms finite, the stored signs against the generator.
 * Free with raana_qlayer_free. */
raana_status raana_container_read_layer(const raana_container *c, const char *name, raana_qlayer *q,
                                        raana_error *err);

/* The same rebuilt as a weight: *w malloc'd [d_out][d_in] float32 (free()),
 * *d_out and *d_in its shape. */
raana_status raana_container_dequantize_layer(const raana_container *c, const char *name, float **w,
                                              int *d_out, int *d_in, raana_error *err);

#endif
