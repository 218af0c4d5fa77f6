/* safetensors.h — one .safetensors file: memory-mapped, header validated,
 * tensors looked up by name and converted to f32 on request.
 *
 * Format: 8-byte little-endian header length N, N bytes of JSON
 * {"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__"},
 * then the data buffer; offsets are relative to the buffer. The header is
 * checked before any tensor is used: length within the file, JSON well
 * formed, known dtypes, offsets in range and non-overlapping,
 * numel * dtype size == end - begin, no duplicate names. */
#ifndef RAANA_SAFETENSORS_H
#define RAANA_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "raana/error.h"

#define RAANA_MAX_DIMS 8

typedef enum {
    RAANA_DTYPE_F32,
    RAANA_DTYPE_F16,
    RAANA_DTYPE_BF16,
    /* known to the format, stored in headers, not convertible to f32 here */
    RAANA_DTYPE_F64,
    RAANA_DTYPE_I64,
    RAANA_DTYPE_I32,
    RAANA_DTYPE_I16,
    RAANA_DTYPE_I8,
    RAANA_DTYPE_U8,
    RAANA_DTYPE_BOOL,
    RAANA_DTYPE_F8_E4M3,
    RAANA_DTYPE_F8_E5M2
} raana_dtype;

typedef struct {
    char *name;
    raana_dtype dtype;
    int ndim;
    int64_t shape[RAANA_MAX_DIMS];
    uint64_t numel;
    uint64_t begin, end; /* byte range within the data buffer */
} raana_st_tensor;

typedef struct {
    char *path;
    int fd;
    uint8_t *map;
    size_t file_size;
    const uint8_t *data; /* start of the data buffer */
    uint64_t data_size;
    raana_st_tensor *tensors; /* sorted by name */
    size_t n_tensors;
} raana_st_file;

/* Parses and validates a header (the JSON text, len bytes) for a data
 * buffer of data_size bytes. label names the file in messages. On success
 * *tensors (sorted by name, free with raana_st_free_tensors) and *n. */
raana_status raana_st_parse_header(const char *json, size_t len, uint64_t data_size,
                                   const char *label, raana_st_tensor **tensors, size_t *n,
                                   raana_error *err);
void raana_st_free_tensors(raana_st_tensor *tensors, size_t n);

/* Maps the file and validates its header; the data is not read. */
raana_status raana_st_open(raana_st_file *f, const char *path, raana_error *err);
void raana_st_close(raana_st_file *f);

const raana_st_tensor *raana_st_find(const raana_st_file *f, const char *name);

/* Converts tensor t (F32, F16 or BF16) into out[0 .. t->numel). */
raana_status raana_st_read_f32(const raana_st_file *f, const raana_st_tensor *t, float *out,
                               raana_error *err);

/* Drops tensor t's mapped pages from this process's resident set
 * (madvise MADV_DONTNEED on the pages it spans) once its bytes have been
 * converted or hashed: a read-only file mapping re-reads them from the page
 * cache if touched again, so this only lowers the rank's peak memory
 * (docs/SCALING.md, "Memory of one rank"). No effect on a failed map. */
void raana_st_release(const raana_st_file *f, const raana_st_tensor *t);

const char *raana_dtype_name(raana_dtype d);
size_t raana_dtype_size(raana_dtype d);

/* Scalar conversions, exposed for tests. */
float raana_bf16_to_f32(uint16_t h);
float raana_f16_to_f32(uint16_t h);

#endif
