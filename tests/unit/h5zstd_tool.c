/* h5zstd_tool.c — test helper for the zstd HDF5 filter: `write FILE` stores
 * a 1000 x 64 float dataset "x" (x[i][j] = (i * 64 + j) % 97 * 0.25),
 * chunked 100 x 64, compressed with filter 32015 at level 5; `read FILE
 * [DATASET]` reads a float dataset through the filter and checks those
 * values; `check FILE` also checks the filter parameters and that the data
 * shrank. Prints "ok" on success. */
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raana/h5zstd.h"

#define ROWS 1000
#define COLS 64

static float expected(size_t i)
{
    return (float)(i % 97) * 0.25f;
}

static int write_file(const char *path)
{
    static float data[ROWS * COLS];
    for (size_t i = 0; i < ROWS * COLS; i++)
        data[i] = expected(i);
    hsize_t dims[2] = {ROWS, COLS}, chunk[2] = {100, COLS};
    unsigned level = 5;
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hid_t space = H5Screate_simple(2, dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 2, chunk);
    if (H5Pset_filter(dcpl, RAANA_H5Z_ZSTD, H5Z_FLAG_MANDATORY, 1, &level) < 0)
        return 1;
    hid_t d = H5Dcreate2(f, "x", H5T_NATIVE_FLOAT, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    herr_t st = H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    H5Dclose(d), H5Pclose(dcpl), H5Sclose(space);
    return st < 0 || H5Fclose(f) < 0;
}

static int read_file(const char *path, const char *name, int check)
{
    static float data[ROWS * COLS];
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t d = f < 0 ? -1 : H5Dopen2(f, name, H5P_DEFAULT);
    if (d < 0 || H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
        return 1;
    int bad = 0;
    for (size_t i = 0; i < ROWS * COLS; i++)
        bad += data[i] != expected(i);
    if (check) {
        hid_t dcpl = H5Dget_create_plist(d);
        unsigned flags, cd[4];
        size_t n = 4;
        char fname[64];
        bad += H5Pget_filter_by_id2(dcpl, RAANA_H5Z_ZSTD, &flags, &n, cd, sizeof fname, fname,
                                    NULL) < 0 ||
               n < 1 || cd[0] != 5;
        bad += H5Dget_storage_size(d) * 4 > sizeof data; /* at least 4x smaller */
        H5Pclose(dcpl);
    }
    H5Dclose(d);
    H5Fclose(f);
    return bad != 0;
}

int main(int argc, char **argv)
{
    raana_error err;
    if (argc < 3 || raana_h5zstd_register(&err) != RAANA_OK) {
        fprintf(stderr, "usage: h5zstd_tool write|read|check FILE [DATASET]\n");
        return 2;
    }
    int rc = !strcmp(argv[1], "write")   ? write_file(argv[2])
             : !strcmp(argv[1], "read")  ? read_file(argv[2], argc > 3 ? argv[3] : "x", 0)
             : !strcmp(argv[1], "check") ? read_file(argv[2], "x", 1)
                                         : 2;
    puts(rc ? "failed" : "ok");
    return rc;
}
