/* container_model.h — the quantized model held by a raana container, seen
 * as a checkpoint: a raana_model whose config comes from /model/config.json
 * and whose tensors are every /tensors dataset as stored plus, for each
 * quantized layer, "<layer>.weight" as its dequantization (F32). Tensors are
 * read lazily, one at a time, when raana_model_read_f32 asks for them, so a
 * rank that loads only its own blocks reads only those. Serial HDF5 reads
 * (no MPI-IO); each rank opens the file on its own.
 * Reads through the container reader (container.h), which also gives the
 * files stored under /model and the checkpoint fingerprint. */
#ifndef RAANA_CONTAINER_MODEL_H
#define RAANA_CONTAINER_MODEL_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

#include "raana/error.h"
#include "raana/model.h"

/* Opens container `path` (format checked as raana_container_open does:
 * another format version is RAANA_ERR_UNSUPPORTED, a truncated file
 * RAANA_ERR_INPUT saying so) as a model; close with raana_model_close.
 * Entries: every /tensors dataset with the dtype of its `dtype` attribute
 * (F16/BF16 read as f32 like safetensors), and "<layer>.weight" (F32,
 * [d_out][d_in]) for every /layers group, rebuilt on each read. Every
 * required tensor must be there with its shape (raana_model_open_source's
 * check); a container without /layers ("holds no quantized layers") is
 * refused, and raana_model_read_f32 refuses NaN/Inf by tensor name. */
raana_status raana_container_model_open(raana_model *m, const char *path, raana_error *err);

/* The same with file access properties fapl (raana_container_open_fapl). */
raana_status raana_container_model_open_fapl(raana_model *m, const char *path, hid_t fapl,
                                             raana_error *err);

#endif
