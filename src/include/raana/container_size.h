/* container_size.h — how large a container can get, for reserving its
 * space (fallocate) and refusing a job that cannot fit before it writes. */
#ifndef RAANA_CONTAINER_SIZE_H
#define RAANA_CONTAINER_SIZE_H

#include <stdint.h>

#include "raana/container_write.h"

/* An upper bound of the container's size in bytes (every dataset
 * uncompressed, plus zstd's worst case and HDF5's metadata), for checking
 * the space before writing. Reads the model files' sizes. */
uint64_t raana_container_size_bound(const raana_container_content *c);

#endif
