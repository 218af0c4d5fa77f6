/* h5zstd.h — the Zstandard HDF5 filter under its registered ID 32015
 * (cd_values[0] = compression level), one plain zstd frame per chunk, the
 * layout h5py's hdf5plugin.Zstd writes and reads. raana registers it in
 * process; the same code is built as an HDF5 plugin (libraana_h5zstd.so,
 * installed under lib/hdf5/plugin) so that h5dump and h5py read raana's
 * containers with HDF5_PLUGIN_PATH pointing at it. */
#ifndef RAANA_H5ZSTD_H
#define RAANA_H5ZSTD_H

#include "raana/error.h"

#define RAANA_H5Z_ZSTD 32015

/* Registers the filter with the HDF5 library (idempotent). */
raana_status raana_h5zstd_register(raana_error *err);

#endif
