/* container_verify.h — after writing, each rank reads its own datasets of
 * the new container back and compares them with what it wrote. */
#ifndef RAANA_CONTAINER_VERIFY_H
#define RAANA_CONTAINER_VERIFY_H

#include <mpi.h>

#include "raana/container_write.h"

/* Collective. Reopens path and checks, on each rank, that its own layers'
 * codes and rescales and its unquantized tensors read back unchanged. */
raana_status raana_container_verify(MPI_Comm comm, const char *path,
                                    const raana_container_content *c, raana_error *err);

#endif
