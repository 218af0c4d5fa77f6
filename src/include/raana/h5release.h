/* h5release.h — one call that closes an HDF5 id of any kind, for the
 * cleanup blocks of the container reader and the collective file layer. */
#ifndef RAANA_H5RELEASE_H
#define RAANA_H5RELEASE_H

#include <hdf5.h>

/* Closes id with the close function of its kind (file, group, dataset,
 * dataspace, datatype, attribute, property list); an id < 0 (never opened,
 * or a failed open) is left alone. */
void raana_h5_release(hid_t id);

#endif
