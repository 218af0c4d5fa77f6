/* file.h — small file-system helpers shared by the readers: slurp a file,
 * resolve a path against a base directory, take a path's directory. */
#ifndef RAANA_FILE_H
#define RAANA_FILE_H

#include <stddef.h>

#include "raana/error.h"

/* Opens path for reading (following symbolic links) and checks that it is a
 * regular file before anything reads or waits on it: a FIFO, device,
 * socket or directory is refused, naming the path and what it is
 * (RAANA_ERR_INPUT), without blocking. On success *fd (blocking, close on
 * exec) and *size. Every reader of a user-named file goes through here. */
raana_status raana_open_regular(const char *path, int *fd, size_t *size, raana_error *err);

/* Reads the whole file into a malloc'd, NUL-terminated buffer. Fails with
 * RAANA_ERR_IO naming the path (missing, unreadable) or RAANA_ERR_INPUT
 * (not a regular file, see raana_open_regular). */
raana_status raana_read_file(const char *path, char **data, size_t *len, raana_error *err);

/* out = path if absolute or base is empty, else base/path. Fails with
 * RAANA_ERR_CONFIG if the result does not fit in out_size. */
raana_status raana_path_resolve(char *out, size_t out_size, const char *base, const char *path,
                                raana_error *err);

/* Writes the directory part of path ("." when it has none) into out. */
void raana_path_dirname(char *out, size_t out_size, const char *path);

/* Writes len bytes to path atomically: into "path.tmp", flushed to disk,
 * then renamed over path, so path holds either the old or the whole new
 * content. Fails with RAANA_ERR_IO naming the path and the system's reason
 * (disk full, file too large, permission) and removes the temporary. */
raana_status raana_write_file_atomic(const char *path, const void *data, size_t len,
                                     raana_error *err);

/* Creates directory path (one level) unless it exists as a directory. */
raana_status raana_make_dir(const char *path, raana_error *err);

#endif
