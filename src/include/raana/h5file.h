/* h5file.h — one HDF5 file shared by all ranks through the MPI-IO driver,
 * with the rules parallel HDF5 imposes on compressed data made into calls
 * that cannot break them (PLATFORM.md, "Parallel HDF5 + zstd"):
 *  - groups, datasets and attributes are created by every rank with
 *    identical arguments (each call here is collective);
 *  - a dataset's data comes from exactly one rank, its writer, in one
 *    collective transfer: the writer selects everything, the others select
 *    nothing;
 *  - memory buffers are in exactly the file's type (no conversion);
 *  - datasets are chunked along their first dimension (about 1 MiB chunks)
 *    and compressed with the zstd filter 32015 at the file's level, except
 *    small metadata (text, tables), which use deflate so that any HDF5
 *    reader opens them without raana's plugin; every chunk has Fletcher-32;
 *  - no object timestamps, so equal content gives equal bytes.
 * After each collective step the ranks agree on success, so one rank's
 * failure (disk full, ...) is every rank's error with its message. HDF5's
 * own error printing is off; failures carry the innermost HDF5 message. */
#ifndef RAANA_H5FILE_H
#define RAANA_H5FILE_H

#include <hdf5.h>
#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "raana/error.h"

typedef struct {
    hid_t file, dxpl;
    MPI_Comm comm;
    int rank, zstd_level;
    char path[4200];
} raana_h5;

/* Collective. Creates (truncates) path for writing. */
raana_status raana_h5_open_write(raana_h5 *h, MPI_Comm comm, const char *path, int zstd_level,
                                 raana_error *err);
/* Collective. Opens path read-only. */
raana_status raana_h5_open_read(raana_h5 *h, MPI_Comm comm, const char *path, raana_error *err);
/* After a failed write, closing the file can deadlock or crash HDF5 1.10:
 * raana_h5_abandon leaves it open instead (the caller deletes the file).
 * raana_h5_library_unusable is then true and the program must end with
 * _exit, skipping H5close and MPI_Finalize. */
void raana_h5_abandon(raana_h5 *h);
int raana_h5_library_unusable(void);

/* Collective. Closes the file (flushing it); safe on a zeroed handle. */
raana_status raana_h5_close(raana_h5 *h, raana_error *err);

/* Collective. Creates group path (parents must exist). */
raana_status raana_h5_group(raana_h5 *h, const char *path, raana_error *err);

/* Collective. Creates dataset path of element type `type` (a native type)
 * and shape dims[ndim]; the writer rank passes data (all of it), the others
 * NULL. A dataset with no elements is created empty. */
raana_status raana_h5_dataset(raana_h5 *h, const char *path, hid_t type, int ndim,
                              const hsize_t *dims, int writer, const void *data, raana_error *err);
/* Collective. The same with deflate instead of zstd: for small metadata
 * that readers without raana's zstd plugin must open. */
raana_status raana_h5_dataset_deflate(raana_h5 *h, const char *path, hid_t type, int ndim,
                                      const hsize_t *dims, int writer, const void *data,
                                      raana_error *err);
/* Collective. A byte blob (UTF-8 text, a file) held by rank `writer` only:
 * its length travels to the others first. Deflate, like the above. */
raana_status raana_h5_blob(raana_h5 *h, const char *path, int writer, const void *data, size_t len,
                           raana_error *err);

/* Collective, identical values on every rank: attributes on object obj. */
raana_status raana_h5_attr_str(raana_h5 *h, const char *obj, const char *name, const char *value,
                               raana_error *err);
raana_status raana_h5_attr_i64(raana_h5 *h, const char *obj, const char *name, int64_t value,
                               raana_error *err);
raana_status raana_h5_attr_u64(raana_h5 *h, const char *obj, const char *name, uint64_t value,
                               raana_error *err);
raana_status raana_h5_attr_f64(raana_h5 *h, const char *obj, const char *name, const double *v,
                               int n, raana_error *err);

/* Independent. Reads all n elements of dataset path (native type) into out;
 * fails if the dataset holds a different number of elements. */
raana_status raana_h5_read(raana_h5 *h, const char *path, hid_t type, void *out, size_t n,
                           raana_error *err);

#endif
