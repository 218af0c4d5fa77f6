/* h5file.c — collective HDF5 file access over MPI-IO (see h5file.h). */
#include "raana/h5file.h"

#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/statvfs.h>

#include "raana/comm.h"
#include "raana/fault.h"
#include "raana/file.h"
#include "raana/h5release.h"
#include "raana/h5zstd.h"

#define CHUNK_TARGET_BYTES (1u << 20)
#define DEFLATE_LEVEL      6 /* zlib's default */

/* ---- errors ------------------------------------------------------------------ */

/* HDF5 1.10 cannot recover from a failed write: H5Fclose then fails on some
 * ranks and waits in a barrier on others (a deadlock), or fails and leaves
 * the file registered half torn down, so that library shutdown (H5close,
 * MPI_Finalize) crashes. After a failure the file is abandoned instead
 * (raana_h5_abandon). The only state this module keeps is this flag;
 * raana_h5_library_unusable reports it. */
static int broken_file_left_open;

int raana_h5_library_unusable(void)
{
    return broken_file_left_open;
}

/* Why a write may have failed: little free space, or a file-size limit. */
static void diagnose_write(const char *path, char *out, size_t size)
{
    char dir[4200];
    struct statvfs fs;
    struct rlimit lim;
    out[0] = '\0';
    raana_path_dirname(dir, sizeof dir, path);
    if (statvfs(dir, &fs) == 0 && (double)fs.f_bavail * fs.f_frsize < 256.0 * 1024 * 1024)
        snprintf(out, size, "; the file system holding %s has %.1f MiB free", dir,
                 (double)fs.f_bavail * fs.f_frsize / (1024.0 * 1024.0));
    else if (getrlimit(RLIMIT_FSIZE, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY)
        snprintf(out, size, "; the file-size limit (ulimit -f) is %.1f MiB",
                 (double)lim.rlim_cur / (1024.0 * 1024.0));
}

typedef struct {
    char text[512];
    int found;
} h5_error_text;

/* The innermost entry of HDF5's error stack is the most specific one (for
 * a failed write it carries errno's text). */
static herr_t take_innermost(unsigned n, const H5E_error2_t *e, void *data)
{
    (void)n;
    h5_error_text *t = data;
    if (!t->found && e->desc && e->desc[0]) {
        snprintf(t->text, sizeof t->text, "%s (in %s)", e->desc, e->func_name);
        t->found = 1;
    }
    return 0;
}

static raana_status h5_fail(raana_h5 *h, raana_error *err, const char *what, const char *obj)
{
    h5_error_text t = {{0}, 0};
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, take_innermost, &t);
    H5Eclear2(H5E_DEFAULT);
    char hint[300] = "";
    if (strcmp(what, "write") == 0 || strcmp(what, "close") == 0)
        diagnose_write(h->path, hint, sizeof hint);
    return raana_fail(err, RAANA_ERR_IO, "%s: cannot %s %s%s%s%s", h->path, what, obj,
                      t.found ? ": " : "", t.found ? t.text : "", hint);
}

/* Every rank's result of a collective step becomes everyone's. */
static raana_status agree(raana_h5 *h, raana_status st, raana_error *err)
{
    return raana_comm_agree(h->comm, st, err);
}

/* ---- files ------------------------------------------------------------------- */

/* This rank's part of opening: the zstd filter, MPI-IO access with
 * collective metadata, the file, collective transfers. */
static raana_status open_local(raana_h5 *h, const char *path, int create, raana_error *err)
{
    raana_status st = RAANA_OK;
    hid_t fapl = H5I_INVALID_HID;
    RAANA_CHECK(raana_h5zstd_register(err));
    fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0 || H5Pset_fapl_mpio(fapl, h->comm, MPI_INFO_NULL) < 0 ||
        H5Pset_all_coll_metadata_ops(fapl, 1) < 0 || H5Pset_coll_metadata_write(fapl, 1) < 0 ||
        /* checksummed metadata (superblock v2, object headers v2): a
         * corrupted header fails its checksum instead of reaching HDF5's
         * decoders */
        H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_LATEST) < 0)
        RAANA_CHECK(h5_fail(h, err, "set up", "MPI-IO access"));
    h->file = raana_fault_fail() ? H5I_INVALID_HID
              : create           ? H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl)
                                 : H5Fopen(path, H5F_ACC_RDONLY, fapl);
    if (h->file < 0)
        RAANA_CHECK(h5_fail(h, err, create ? "create" : "open", "the file"));
    h->dxpl = H5Pcreate(H5P_DATASET_XFER);
    if (h->dxpl < 0 || H5Pset_dxpl_mpio(h->dxpl, H5FD_MPIO_COLLECTIVE) < 0)
        RAANA_CHECK(h5_fail(h, err, "set up", "collective transfers"));
cleanup:
    raana_h5_release(fapl);
    return st;
}

static raana_status open_file(raana_h5 *h, MPI_Comm comm, const char *path, int create,
                              int zstd_level, raana_error *err)
{
    memset(h, 0, sizeof *h);
    h->file = h->dxpl = H5I_INVALID_HID;
    h->comm = comm;
    h->zstd_level = zstd_level;
    MPI_Comm_rank(comm, &h->rank);
    snprintf(h->path, sizeof h->path, "%s", path);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    raana_status st = agree(h, open_local(h, path, create, err), err);
    if (st != RAANA_OK) {
        raana_error ignored;
        raana_h5_close(h, &ignored);
    }
    return st;
}

raana_status raana_h5_open_write(raana_h5 *h, MPI_Comm comm, const char *path, int zstd_level,
                                 raana_error *err)
{
    return open_file(h, comm, path, 1, zstd_level, err);
}

raana_status raana_h5_open_read(raana_h5 *h, MPI_Comm comm, const char *path, raana_error *err)
{
    return open_file(h, comm, path, 0, 0, err);
}

void raana_h5_abandon(raana_h5 *h)
{
    if (h->file > 0)
        broken_file_left_open = 1;
    if (h->dxpl > 0)
        H5Pclose(h->dxpl);
    h->file = h->dxpl = H5I_INVALID_HID;
}

raana_status raana_h5_close(raana_h5 *h, raana_error *err)
{
    raana_status st = RAANA_OK;
    if (h->dxpl > 0)
        H5Pclose(h->dxpl);
    if (h->file > 0 && H5Fclose(h->file) < 0) {
        st = h5_fail(h, err, "close", "the file");
        broken_file_left_open = 1;
    }
    h->file = h->dxpl = H5I_INVALID_HID;
    return st;
}

/* ---- groups and datasets ------------------------------------------------------ */

raana_status raana_h5_group(raana_h5 *h, const char *path, raana_error *err)
{
    hid_t gcpl = H5Pcreate(H5P_GROUP_CREATE);
    H5Pset_obj_track_times(gcpl, 0);
    hid_t g = raana_fault_fail() ? H5I_INVALID_HID
                                 : H5Gcreate2(h->file, path, H5P_DEFAULT, gcpl, H5P_DEFAULT);
    raana_status st = g < 0 ? h5_fail(h, err, "create group", path) : RAANA_OK;
    raana_h5_release(g);
    H5Pclose(gcpl);
    return agree(h, st, err);
}

/* Chunked along dimension 0, about CHUNK_TARGET_BYTES per chunk, zstd (or
 * deflate, which every HDF5 has), then Fletcher-32. */
static hid_t dataset_creation(const raana_h5 *h, hid_t type, int ndim, const hsize_t *dims,
                              int deflate)
{
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_obj_track_times(dcpl, 0);
    H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER);
    hsize_t numel = 1, row = H5Tget_size(type), chunk[H5S_MAX_RANK];
    for (int i = 0; i < ndim; i++)
        numel *= dims[i];
    if (numel == 0)
        return dcpl; /* contiguous, empty */
    for (int i = 1; i < ndim; i++)
        row *= dims[i], chunk[i] = dims[i];
    hsize_t rows = row >= CHUNK_TARGET_BYTES ? 1 : CHUNK_TARGET_BYTES / row;
    chunk[0] = rows < dims[0] ? rows : dims[0];
    unsigned level = (unsigned)h->zstd_level;
    if (H5Pset_chunk(dcpl, ndim, chunk) < 0 ||
        (deflate ? H5Pset_deflate(dcpl, DEFLATE_LEVEL)
                 : H5Pset_filter(dcpl, RAANA_H5Z_ZSTD, H5Z_FLAG_MANDATORY, 1, &level)) < 0 ||
        H5Pset_fletcher32(dcpl) < 0) { /* a checksum of each compressed chunk */
        H5Pclose(dcpl);
        return H5I_INVALID_HID;
    }
    return dcpl;
}

static raana_status write_all_or_nothing(raana_h5 *h, hid_t dset, hid_t type, int mine,
                                         const void *data, const char *path, raana_error *err)
{
    hid_t fspace = H5Dget_space(dset), mspace;
    if (mine) {
        mspace = H5Scopy(fspace);
        H5Sselect_all(fspace);
    } else {
        hsize_t one = 1;
        mspace = H5Screate_simple(1, &one, NULL);
        H5Sselect_none(mspace);
        H5Sselect_none(fspace);
    }
    herr_t rc = H5Dwrite(dset, type, mspace, fspace, h->dxpl, mine ? data : NULL);
    H5Sclose(mspace);
    H5Sclose(fspace);
    return rc < 0 ? h5_fail(h, err, "write", path) : RAANA_OK;
}

/* This rank's part of creating dataset `path` (collective in HDF5). */
static raana_status create_local(raana_h5 *h, const char *path, hid_t type, hid_t space, hid_t dcpl,
                                 int data_missing, hid_t *dset, raana_error *err)
{
    if (data_missing)
        return RAANA_INTERNAL(err, "%s: no data for %s", h->path, path);
    if (space < 0 || dcpl < 0)
        return h5_fail(h, err, "describe dataset", path);
    *dset = raana_fault_fail()
                ? H5I_INVALID_HID
                : H5Dcreate2(h->file, path, type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (*dset < 0)
        return h5_fail(h, err, "create dataset", path);
    return RAANA_OK;
}

static raana_status create_dataset(raana_h5 *h, const char *path, hid_t type, int ndim,
                                   const hsize_t *dims, int writer, const void *data, int deflate,
                                   raana_error *err)
{
    raana_status st = RAANA_OK;
    hsize_t numel = 1;
    for (int i = 0; i < ndim; i++)
        numel *= dims[i];
    int data_missing = h->rank == writer && numel > 0 && !data;
    hid_t space = H5Screate_simple(ndim, dims, NULL);
    hid_t dcpl = dataset_creation(h, type, ndim, dims, deflate);
    hid_t dset = H5I_INVALID_HID;
    RAANA_CHECK(agree(h, create_local(h, path, type, space, dcpl, data_missing, &dset, err), err));
    if (numel > 0)
        RAANA_CHECK(
            agree(h, write_all_or_nothing(h, dset, type, h->rank == writer, data, path, err), err));
cleanup:
    raana_h5_release(dset);
    raana_fault_point("write", h->rank);
    raana_h5_release(dcpl);
    raana_h5_release(space);
    return st;
}

raana_status raana_h5_dataset(raana_h5 *h, const char *path, hid_t type, int ndim,
                              const hsize_t *dims, int writer, const void *data, raana_error *err)
{
    return create_dataset(h, path, type, ndim, dims, writer, data, 0, err);
}

raana_status raana_h5_dataset_deflate(raana_h5 *h, const char *path, hid_t type, int ndim,
                                      const hsize_t *dims, int writer, const void *data,
                                      raana_error *err)
{
    return create_dataset(h, path, type, ndim, dims, writer, data, 1, err);
}

raana_status raana_h5_blob(raana_h5 *h, const char *path, int writer, const void *data, size_t len,
                           raana_error *err)
{
    unsigned long long n = len;
    MPI_Bcast(&n, 1, MPI_UNSIGNED_LONG_LONG, writer, h->comm);
    hsize_t dims[1] = {(hsize_t)n};
    return create_dataset(h, path, H5T_NATIVE_UINT8, 1, dims, writer, data, 1, err);
}

/* ---- attributes -------------------------------------------------------------- */

static raana_status write_attr(raana_h5 *h, const char *obj, const char *name, hid_t type,
                               hsize_t n, const void *value, raana_error *err)
{
    hid_t space = n == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &n, NULL);
    hid_t a = raana_fault_fail() ? H5I_INVALID_HID
                                 : H5Acreate_by_name(h->file, obj, name, type, space, H5P_DEFAULT,
                                                     H5P_DEFAULT, H5P_DEFAULT);
    raana_status st = RAANA_OK;
    if (a < 0 || H5Awrite(a, type, value) < 0) {
        char what[300];
        snprintf(what, sizeof what, "%s of %s", name, obj);
        st = h5_fail(h, err, "write attribute", what);
    }
    raana_h5_release(a);
    H5Sclose(space);
    return agree(h, st, err);
}

raana_status raana_h5_attr_str(raana_h5 *h, const char *obj, const char *name, const char *value,
                               raana_error *err)
{
    hid_t type = H5Tcopy(H5T_C_S1);
    size_t len = strlen(value);
    H5Tset_size(type, len ? len : 1);
    H5Tset_strpad(type, H5T_STR_NULLPAD);
    raana_status st = write_attr(h, obj, name, type, 0, len ? value : "", err);
    H5Tclose(type);
    return st;
}

raana_status raana_h5_attr_i64(raana_h5 *h, const char *obj, const char *name, int64_t value,
                               raana_error *err)
{
    return write_attr(h, obj, name, H5T_NATIVE_INT64, 0, &value, err);
}

raana_status raana_h5_attr_u64(raana_h5 *h, const char *obj, const char *name, uint64_t value,
                               raana_error *err)
{
    return write_attr(h, obj, name, H5T_NATIVE_UINT64, 0, &value, err);
}

raana_status raana_h5_attr_f64(raana_h5 *h, const char *obj, const char *name, const double *v,
                               int n, raana_error *err)
{
    return write_attr(h, obj, name, H5T_NATIVE_DOUBLE, n == 1 ? 0 : (hsize_t)n, v, err);
}

/* ---- reading ----------------------------------------------------------------- */

raana_status raana_h5_read(raana_h5 *h, const char *path, hid_t type, void *out, size_t n,
                           raana_error *err)
{
    raana_status st = RAANA_OK;
    hid_t space = H5I_INVALID_HID;
    hid_t dset = raana_fault_fail() ? H5I_INVALID_HID : H5Dopen2(h->file, path, H5P_DEFAULT);
    if (dset < 0)
        RAANA_CHECK(h5_fail(h, err, "open dataset", path));
    space = H5Dget_space(dset);
    hssize_t numel = H5Sget_simple_extent_npoints(space);
    if (numel < 0 || (size_t)numel != n)
        RAANA_FAIL_GOTO(err, RAANA_ERR_IO, "%s: dataset %s holds %lld elements, expected %zu",
                        h->path, path, (long long)numel, n);
    if (n > 0 && H5Dread(dset, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) < 0)
        RAANA_CHECK(h5_fail(h, err, "read", path));
cleanup:
    raana_h5_release(space);
    raana_h5_release(dset);
    return st;
}
