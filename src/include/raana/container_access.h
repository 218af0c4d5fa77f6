/* container_access.h — the library's own ways into an open raana_container
 * beyond the public reader (container.h): opening from an HDF5 file image
 * (the fuzzer), group listings, dataset shapes and whole-dataset reads for
 * container_model.c and statistics.c, and the full read of every dataset
 * behind raana-inspect --verify. HDF5 types stay inside container_read.c:
 * element types are named by raana_elem. */
#ifndef RAANA_CONTAINER_ACCESS_H
#define RAANA_CONTAINER_ACCESS_H

#include <hdf5.h>

#include "raana/container.h"

/* raana_container_open with file access properties fapl (H5P_DEFAULT: a
 * file on disk; the fuzzer passes a core-driver file image, and path only
 * names it). */
raana_status raana_container_open_fapl(const char *path, hid_t fapl, raana_container **c,
                                       raana_error *err);

typedef enum {
    RAANA_ELEM_U8,
    RAANA_ELEM_U16,
    RAANA_ELEM_I32,
    RAANA_ELEM_F32,
    RAANA_ELEM_F64
} raana_elem;

#define RAANA_DATASET_MAX_DIMS 8
typedef struct {
    int ndim;
    uint64_t dims[RAANA_DATASET_MAX_DIMS];
    size_t elem_size; /* bytes per stored element */
    int is_string;    /* fixed-length strings of elem_size bytes */
    int is_integer;
} raana_dataset_shape;

/* Shape of dataset `dataset`, after checking that it may be read whole
 * (every chunk stored; declared size at most 1024 times the bytes it
 * occupies, plus 64 MiB). Absent: "PATH: DATASET is missing". */
raana_status raana_container_dataset_shape(const raana_container *c, const char *dataset,
                                           raana_dataset_shape *s, raana_error *err);

/* All n elements of dataset `dataset` converted to `type` into out; fails
 * if it holds another number of elements or does not read. */
raana_status raana_container_read_dataset(const raana_container *c, const char *dataset,
                                          raana_elem type, void *out, size_t n, raana_error *err);

/* A dataset of n fixed-length strings as n NUL-padded records of `width`
 * bytes. */
raana_status raana_container_read_strings(const raana_container *c, const char *dataset,
                                          size_t width, char *out, size_t n, raana_error *err);

/* The text attribute `name` of dataset or group `object`, as
 * raana_container_attr_text, but 0/1 instead of an error. */
int raana_container_attr_text_if(const raana_container *c, const char *object, const char *name,
                                 char *out, size_t size);

/* malloc'd names of the links in group `group`, in name order; free with
 * raana_container_names_free. */
raana_status raana_container_group_names(const raana_container *c, const char *group, char ***names,
                                         size_t *n, raana_error *err);
void raana_container_names_free(char **names, size_t n);

/* 1 if `object` is a dataset (not a group). */
int raana_container_is_dataset(const raana_container *c, const char *object);

/* Reads every dataset whole (decompressing it and checking its Fletcher-32
 * checksums), stopping at the first bad one, which the failure names;
 * *datasets and *bytes count what was read. */
raana_status raana_container_read_all(const raana_container *c, long *datasets, double *bytes,
                                      raana_error *err);

#endif
