/* safetensors_write.h — writing .safetensors files (the format in
 * safetensors.h): the header for a list of tensors stored back to back in
 * the given order, a streaming writer that takes their bytes in that order
 * and checks the total, and f32 -> BF16/F16 rounding (round to nearest,
 * ties to even). Data is written little-endian, as the host stores it. */
#ifndef RAANA_SAFETENSORS_WRITE_H
#define RAANA_SAFETENSORS_WRITE_H

#include <stddef.h>
#include <stdint.h>

#include "raana/error.h"
#include "raana/safetensors.h"

typedef struct {
    const char *name;
    raana_dtype dtype;
    int ndim;
    int64_t shape[RAANA_MAX_DIMS];
} raana_st_out_tensor;

/* Bytes of t's data: numel * dtype size. */
uint64_t raana_st_out_bytes(const raana_st_out_tensor *t);

/* The JSON header (malloc'd, *len bytes, padded with spaces to a multiple
 * of 8 like the reference writer) of a file holding t[0..n) in this order:
 * {"__metadata__":{"format":"pt"}, name: {dtype, shape, data_offsets}}.
 * Names are JSON-escaped; duplicates and empty names are refused. */
raana_status raana_st_make_header(const raana_st_out_tensor *t, size_t n, char **json, size_t *len,
                                  raana_error *err);

typedef struct {
    int fd;
    char path[4200];
    uint64_t expected, written; /* data bytes */
} raana_st_writer;

/* Creates path (O_EXCL, never through a symlink) and writes the header of
 * t[0..n); then the tensors' bytes follow through raana_st_writer_write. */
raana_status raana_st_writer_open(raana_st_writer *w, const char *path,
                                  const raana_st_out_tensor *t, size_t n, raana_error *err);
raana_status raana_st_writer_write(raana_st_writer *w, const void *data, size_t bytes,
                                   raana_error *err);
/* Checks every byte announced was written, fsyncs and closes. */
raana_status raana_st_writer_finish(raana_st_writer *w, raana_error *err);
/* Closes after a failure (the caller removes the file). */
void raana_st_writer_abandon(raana_st_writer *w);

/* Round to nearest, ties to even. Finite values beyond the target's range
 * become infinities (raana_st_convert_f32 refuses them). */
uint16_t raana_f32_to_bf16(float x);
uint16_t raana_f32_to_f16(float x);

/* in[0..n) as dtype (F32, F16 or BF16) into out (n * size bytes). A finite
 * value that overflows the dtype is RAANA_ERR_NUMERIC naming tensor `name`
 * and the flat index; other dtypes are RAANA_ERR_UNSUPPORTED. */
raana_status raana_st_convert_f32(const float *in, size_t n, raana_dtype dtype, void *out,
                                  const char *name, raana_error *err);

#endif
