/* raana.h — libraana's public API in one include: reading a raana
 * container (container.h), a quantized layer dequantized or multiplied
 * (qlayer.h), the bits it occupies (bits.h) and the error type (error.h).
 * Build with `pkg-config --cflags --libs raana` or, in CMake,
 * find_package(raana) and target_link_libraries(... raana::raana).
 *
 * Lifecycle: files are raana_X_open / raana_X_close, objects
 * raana_X_create (or the operation that makes them, e.g.
 * raana_container_read_layer) / raana_X_free (docs/DECISIONS.md). */
#ifndef RAANA_RAANA_H
#define RAANA_RAANA_H

#include "raana/bits.h"
#include "raana/container.h"
#include "raana/error.h"
#include "raana/qlayer.h"

#endif
