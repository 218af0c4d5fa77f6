/* container_read.c — the serial container reader (see container.h and
 * container_access.h): the opaque raana_container, its attribute, dataset
 * and layer queries, the checks that make a hostile file harmless, and the
 * full read behind --verify. The only file of raana that reads a container
 * through HDF5. */
#include "raana/container.h"

#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raana/bitpack.h"
#include "raana/container_access.h"
#include "raana/container_schema.h"
#include "raana/fault.h"
#include "raana/h5release.h"
#include "raana/h5zstd.h"
#include "raana/half_scaled.h"
#include "raana/rng.h"

struct raana_container {
    hid_t file;
    char *path;
    char **layers; /* /layers link names, name order */
    size_t n_layers;
    int version; /* format_version */
};

/* ---- acquisitions (each one a fault-injection site) ------------------------------ */

/* 1 if every link along absolute path `object` exists. */
static int path_exists(hid_t file, const char *object)
{
    char prefix[4200];
    size_t n = strlen(object);
    if (n == 0 || n >= sizeof prefix)
        return 0;
    if (strcmp(object, "/") == 0)
        return 1;
    for (size_t i = 1; i <= n; i++) {
        if (object[i] != '/' && object[i] != '\0')
            continue;
        memcpy(prefix, object, i);
        prefix[i] = '\0';
        if (H5Lexists(file, prefix, H5P_DEFAULT) <= 0)
            return 0;
    }
    return 1;
}

static hid_t open_attr(hid_t file, const char *object, const char *name)
{
    if (!path_exists(file, object) || H5Aexists_by_name(file, object, name, H5P_DEFAULT) <= 0 ||
        raana_fault_fail())
        return H5I_INVALID_HID;
    return H5Aopen_by_name(file, object, name, H5P_DEFAULT, H5P_DEFAULT);
}

static hid_t open_dataset(hid_t file, const char *dataset)
{
    if (!path_exists(file, dataset) || raana_fault_fail())
        return H5I_INVALID_HID;
    return H5Dopen2(file, dataset, H5P_DEFAULT);
}

static hid_t open_group(hid_t file, const char *group)
{
    if (!path_exists(file, group) || raana_fault_fail())
        return H5I_INVALID_HID;
    return H5Gopen2(file, group, H5P_DEFAULT);
}

static hid_t native_type(raana_elem e)
{
    switch (e) {
    case RAANA_ELEM_U8: return H5T_NATIVE_UINT8;
    case RAANA_ELEM_U16: return H5T_NATIVE_UINT16;
    case RAANA_ELEM_I32: return H5T_NATIVE_INT32;
    case RAANA_ELEM_F32: return H5T_NATIVE_FLOAT;
    case RAANA_ELEM_F64: return H5T_NATIVE_DOUBLE;
    }
    return H5T_NATIVE_UINT8;
}

/* ---- attributes ------------------------------------------------------------------- */

static int read_attr(hid_t file, const char *obj, const char *name, hid_t type, void *out)
{
    hid_t a = open_attr(file, obj, name);
    int ok = a >= 0 && H5Aread(a, type, out) >= 0;
    raana_h5_release(a);
    return ok;
}

static int read_attr_text(hid_t file, const char *obj, const char *name, char *out, size_t size)
{
    hid_t a = open_attr(file, obj, name);
    hid_t t = a >= 0 ? H5Aget_type(a) : H5I_INVALID_HID;
    size_t n = t >= 0 ? H5Tget_size(t) : 0;
    int ok = t >= 0 && H5Tget_class(t) == H5T_STRING && !H5Tis_variable_str(t) && n < size &&
             H5Aread(a, t, out) >= 0;
    if (ok)
        out[n] = '\0';
    raana_h5_release(t);
    raana_h5_release(a);
    return ok;
}

raana_attr_kind raana_container_attr_kind(const raana_container *c, const char *object,
                                          const char *name)
{
    hid_t a = open_attr(c->file, object, name);
    if (a < 0)
        return RAANA_ATTR_ABSENT;
    hid_t t = H5Aget_type(a), space = H5Aget_space(a);
    H5T_class_t cls = t >= 0 ? H5Tget_class(t) : H5T_NO_CLASS;
    hssize_t n = space >= 0 ? H5Sget_simple_extent_npoints(space) : -1;
    int scalar = space >= 0 && H5Sget_simple_extent_ndims(space) == 0;
    raana_attr_kind kind = RAANA_ATTR_ABSENT;
    if (cls == H5T_STRING && !H5Tis_variable_str(t) && n == 1)
        kind = RAANA_ATTR_TEXT;
    else if ((cls == H5T_INTEGER || cls == H5T_FLOAT) && n >= 1)
        kind = scalar || n == 1 ? RAANA_ATTR_NUMBER : RAANA_ATTR_NUMBERS;
    raana_h5_release(space);
    raana_h5_release(t);
    H5Aclose(a);
    return kind;
}

static raana_status no_attr(const raana_container *c, const char *object, const char *name,
                            const char *what, raana_error *err)
{
    return raana_fail(err, RAANA_ERR_INPUT, "%s: %s: no %s attribute '%s'", c->path, object, what,
                      name);
}

/* One number attribute read as memory type `type` into *value; `what` names
 * the kind expected in the error ("numeric", "integer"). */
static raana_status read_number_attr(const raana_container *c, const char *object, const char *name,
                                     hid_t type, void *value, const char *what, raana_error *err)
{
    if (raana_container_attr_kind(c, object, name) != RAANA_ATTR_NUMBER ||
        !read_attr(c->file, object, name, type, value))
        return no_attr(c, object, name, what, err);
    return RAANA_OK;
}

raana_status raana_container_attr_f64(const raana_container *c, const char *object,
                                      const char *name, double *value, raana_error *err)
{
    return read_number_attr(c, object, name, H5T_NATIVE_DOUBLE, value, "numeric", err);
}

raana_status raana_container_attr_i64(const raana_container *c, const char *object,
                                      const char *name, int64_t *value, raana_error *err)
{
    return read_number_attr(c, object, name, H5T_NATIVE_INT64, value, "integer", err);
}

raana_status raana_container_attr_text(const raana_container *c, const char *object,
                                       const char *name, char *out, size_t size, raana_error *err)
{
    if (!read_attr_text(c->file, object, name, out, size))
        return no_attr(c, object, name, "text", err);
    return RAANA_OK;
}

int raana_container_attr_text_if(const raana_container *c, const char *object, const char *name,
                                 char *out, size_t size)
{
    return read_attr_text(c->file, object, name, out, size);
}

raana_status raana_container_attr_f64s(const raana_container *c, const char *object,
                                       const char *name, double *v, size_t max, size_t *n,
                                       raana_error *err)
{
    raana_status st = RAANA_OK;
    hid_t a = open_attr(c->file, object, name), space = H5I_INVALID_HID;
    if (a < 0)
        RAANA_FAIL_GOTO(err, RAANA_ERR_INPUT, "%s: %s: no attribute '%s'", c->path, object, name);
    space = H5Aget_space(a);
    hssize_t points = space >= 0 ? H5Sget_simple_extent_npoints(space) : -1;
    if (points < 1 || (size_t)points > max || H5Aread(a, H5T_NATIVE_DOUBLE, v) < 0)
        RAANA_FAIL_GOTO(err, RAANA_ERR_INPUT, "%s: %s: attribute '%s' is not 1 to %zu numbers",
                        c->path, object, name, max);
    *n = (size_t)points;
cleanup:
    raana_h5_release(space);
    raana_h5_release(a);
    return st;
}

raana_status raana_container_checkpoint_fingerprint(const raana_container *c, uint64_t *fingerprint,
                                                    raana_error *err)
{
    char text[64];
    if (!read_attr_text(c->file, "/", "checkpoint_fingerprint", text, sizeof text) ||
        strlen(text) != 16 || strspn(text, "0123456789abcdef") != 16)
        return raana_fail(err, RAANA_ERR_INPUT,
                          "%s: no checkpoint_fingerprint attribute of 16 hex digits (a container "
                          "written before raana recorded it?)",
                          c->path);
    *fingerprint = strtoull(text, NULL, 16);
    return RAANA_OK;
}

int raana_container_has(const raana_container *c, const char *object)
{
    return path_exists(c->file, object);
}

int raana_container_is_dataset(const raana_container *c, const char *object)
{
    H5O_info_t oi;
    return path_exists(c->file, object) &&
           H5Oget_info_by_name(c->file, object, &oi, H5P_DEFAULT) >= 0 &&
           oi.type == H5O_TYPE_DATASET;
}

const char *raana_container_path(const raana_container *c)
{
    return c->path;
}

/* ---- opening ---------------------------------------------------------------------- */

/* HDF5's reason for refusing to open a file: the text of the first error
 * stack entry mentioning a truncated file, else the innermost one. */
static herr_t open_error_text(unsigned n, const H5E_error2_t *e, void *data)
{
    char *text = data;
    if (e->desc && (strstr(e->desc, "truncated file") || (n == 0 && !text[0])))
        snprintf(text, 256, "%s", e->desc);
    return 0;
}

static raana_status open_failure(const char *path, raana_error *err)
{
    char text[256] = "";
    unsigned long long eof = 0, stored = 0;
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, open_error_text, text);
    H5Eclear2(H5E_DEFAULT);
    const char *t = strstr(text, "truncated file");
    const char *e = t ? strstr(t, "eof = ") : NULL, *se = t ? strstr(t, "stored_eof = ") : NULL;
    if (e && se && sscanf(e, "eof = %llu", &eof) == 1 &&
        sscanf(se, "stored_eof = %llu", &stored) == 1)
        return raana_fail(err, RAANA_ERR_INPUT,
                          "%s: truncated: %llu bytes of the %llu the file says it holds (an "
                          "interrupted copy or write?)",
                          path, eof, stored);
    if (t)
        return raana_fail(err, RAANA_ERR_INPUT, "%s: truncated (%s)", path, text);
    return raana_fail(err, RAANA_ERR_INPUT, "%s: cannot open as HDF5%s%s%s", path,
                      text[0] ? " (" : "", text, text[0] ? ")" : "");
}

static raana_status check_format(raana_container *c, raana_error *err)
{
    char format[64];
    int64_t version = 0;
    if (!read_attr_text(c->file, "/", "format", format, sizeof format) ||
        strcmp(format, RAANA_FORMAT_NAME) != 0 ||
        !read_attr(c->file, "/", "format_version", H5T_NATIVE_INT64, &version))
        return raana_fail(err, RAANA_ERR_INPUT, "%s: not a raana container (no format attribute)",
                          c->path);
    if (version < RAANA_FORMAT_VERSION_PLAIN || version > RAANA_FORMAT_VERSION)
        return raana_fail(err, RAANA_ERR_UNSUPPORTED,
                          "%s: container format version %lld; this raana reads versions %d to %d",
                          c->path, (long long)version, RAANA_FORMAT_VERSION_PLAIN,
                          RAANA_FORMAT_VERSION);
    c->version = (int)version;
    return RAANA_OK;
}

int raana_container_format_version(const raana_container *c)
{
    return c->version;
}

/* Name of link i of group g (malloc'd), or NULL. */
static char *link_name(hid_t g, hsize_t i)
{
    ssize_t n = H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, NULL, 0, H5P_DEFAULT);
    char *name = n >= 0 ? raana_malloc((size_t)n + 1) : NULL;
    if (name && H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, (size_t)n + 1,
                                   H5P_DEFAULT) < 0) {
        free(name);
        name = NULL;
    }
    return name;
}

void raana_container_names_free(char **names, size_t n)
{
    for (size_t i = 0; names && i < n; i++)
        free(names[i]);
    free(names);
}

raana_status raana_container_group_names(const raana_container *c, const char *group, char ***names,
                                         size_t *n, raana_error *err)
{
    raana_status st = RAANA_OK;
    char **list = NULL;
    size_t count = 0;
    H5G_info_t info;
    hid_t g = open_group(c->file, group);
    if (g < 0 || H5Gget_info(g, &info) < 0)
        RAANA_FAIL_GOTO(err, RAANA_ERR_INPUT, "%s: no %s group", c->path, group);
    list = raana_calloc(info.nlinks ? info.nlinks : 1, sizeof *list);
    if (!list)
        RAANA_FAIL_GOTO(err, RAANA_ERR_NOMEM, "out of memory listing %s", group);
    for (; count < info.nlinks; count++)
        if (!(list[count] = link_name(g, count)))
            RAANA_FAIL_GOTO(err, RAANA_ERR_INPUT, "%s: %s: unreadable link %zu", c->path, group,
                            count);
    *names = list, *n = count;
    list = NULL;
cleanup:
    raana_container_names_free(list, count);
    raana_h5_release(g);
    return st;
}

raana_status raana_container_open_fapl(const char *path, hid_t fapl, raana_container **out,
                                       raana_error *err)
{
    raana_status st = RAANA_OK;
    *out = NULL;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    RAANA_CALL(raana_h5zstd_register(err));
    raana_container *c = raana_calloc(1, sizeof *c);
    if (!c)
        return raana_fail(err, RAANA_ERR_NOMEM, "out of memory opening %s", path);
    c->file = H5I_INVALID_HID;
    if (!(c->path = raana_malloc(strlen(path) + 1)))
        RAANA_FAIL_GOTO(err, RAANA_ERR_NOMEM, "out of memory opening %s", path);
    strcpy(c->path, path);
    c->file = raana_fault_fail() ? H5I_INVALID_HID : H5Fopen(path, H5F_ACC_RDONLY, fapl);
    if (c->file < 0)
        RAANA_CHECK(open_failure(path, err));
    RAANA_CHECK(check_format(c, err));
    if (path_exists(c->file, "/layers"))
        RAANA_CHECK(raana_container_group_names(c, "/layers", &c->layers, &c->n_layers, err));
    *out = c;
    c = NULL;
cleanup:
    raana_container_close(c);
    return st;
}

raana_status raana_container_open(const char *path, raana_container **c, raana_error *err)
{
    return raana_container_open_fapl(path, H5P_DEFAULT, c, err);
}

void raana_container_close(raana_container *c)
{
    if (!c)
        return;
    raana_container_names_free(c->layers, c->n_layers);
    if (c->file >= 0)
        H5Fclose(c->file);
    free(c->path);
    free(c);
}

/* ---- datasets ----------------------------------------------------------------------- */

/* Whether dataset d (named `name` in messages) may be read whole: a
 * chunked dataset must have every chunk stored, and its declared size may
 * exceed the bytes it occupies in the file at most 1024 times (+64 MiB),
 * so a crafted dataspace cannot make a reader allocate terabytes. */
static raana_status dataset_fits(hid_t d, const char *path, const char *name, raana_error *err)
{
    hid_t space = H5Dget_space(d), type = H5Dget_type(d), dcpl = H5Dget_create_plist(d);
    hssize_t n = space >= 0 ? H5Sget_simple_extent_npoints(space) : -1;
    double bytes = n > 0 && type >= 0 ? (double)n * (double)H5Tget_size(type) : 0;
    double stored = (double)H5Dget_storage_size(d);
    int ndim = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
    hsize_t dims[H5S_MAX_RANK], chunk[H5S_MAX_RANK], n_chunks = 0, expect = 1;
    int chunked = dcpl >= 0 && H5Pget_layout(dcpl) == H5D_CHUNKED && ndim > 0 &&
                  H5Pget_chunk(dcpl, ndim, chunk) == ndim &&
                  H5Sget_simple_extent_dims(space, dims, NULL) == ndim;
    for (int k = 0; chunked && k < ndim; k++)
        expect *= chunk[k] ? (dims[k] + chunk[k] - 1) / chunk[k] : 0;
    if (chunked && n > 0 && H5Dget_num_chunks(d, space, &n_chunks) < 0)
        n_chunks = 0;
    raana_h5_release(dcpl);
    raana_h5_release(type);
    raana_h5_release(space);
    if (n < 0)
        return raana_fail(err, RAANA_ERR_INPUT, "%s: %s: unreadable dataspace", path, name);
    if (chunked && n > 0 && n_chunks != expect)
        return raana_fail(err, RAANA_ERR_INPUT,
                          "%s: %s declares %.0f bytes in %llu chunks, the file stores %llu of "
                          "them",
                          path, name, bytes, (unsigned long long)expect,
                          (unsigned long long)n_chunks);
    if (bytes > 1024.0 * stored + 64.0 * 1024 * 1024)
        return raana_fail(err, RAANA_ERR_INPUT,
                          "%s: %s declares %.0f bytes but occupies %.0f in the file; refusing to "
                          "allocate it",
                          path, name, bytes, stored);
    return RAANA_OK;
}

raana_status raana_container_dataset_shape(const raana_container *c, const char *dataset,
                                           raana_dataset_shape *s, raana_error *err)
{
    raana_status st = RAANA_OK;
    hsize_t dims[H5S_MAX_RANK];
    hid_t d = open_dataset(c->file, dataset), space = H5I_INVALID_HID, type = H5I_INVALID_HID;
    memset(s, 0, sizeof *s);
    if (d < 0)
        RAANA_FAIL_GOTO(err, RAANA_ERR_INPUT, "%s: %s is missing", c->path, dataset);
    space = H5Dget_space(d), type = H5Dget_type(d);
    s->ndim = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
    if (type < 0 || s->ndim < 0 || s->ndim > RAANA_DATASET_MAX_DIMS ||
        H5Sget_simple_extent_dims(space, dims, NULL) != s->ndim)
        RAANA_FAIL_GOTO(err, RAANA_ERR_INPUT, "%s: %s has an unusable shape", c->path, dataset);
    for (int k = 0; k < s->ndim; k++)
        s->dims[k] = dims[k];
    s->elem_size = H5Tget_size(type);
    s->is_string = H5Tget_class(type) == H5T_STRING && !H5Tis_variable_str(type);
    s->is_integer = H5Tget_class(type) == H5T_INTEGER;
    RAANA_CHECK(dataset_fits(d, c->path, dataset, err));
cleanup:
    raana_h5_release(type);
    raana_h5_release(space);
    raana_h5_release(d);
    return st;
}

static raana_status read_whole_as(const raana_container *c, const char *dataset, hid_t type,
                                  void *out, size_t n, raana_error *err)
{
    raana_status st = RAANA_OK;
    raana_dataset_shape s;
    RAANA_CALL(raana_container_dataset_shape(c, dataset, &s, err));
    uint64_t points = 1;
    for (int k = 0; k < s.ndim; k++)
        points *= s.dims[k];
    if (points != n)
        return raana_fail(err, RAANA_ERR_INPUT, "%s: %s holds %llu values, expected %zu", c->path,
                          dataset, (unsigned long long)points, n);
    hid_t d = open_dataset(c->file, dataset);
    if (d < 0 || (n && H5Dread(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) < 0))
        RAANA_FAIL_GOTO(err, RAANA_ERR_INPUT,
                        "%s: %s is unreadable (a chunk fails its checksum or does not "
                        "decompress)",
                        c->path, dataset);
cleanup:
    raana_h5_release(d);
    return st;
}

raana_status raana_container_read_dataset(const raana_container *c, const char *dataset,
                                          raana_elem type, void *out, size_t n, raana_error *err)
{
    return read_whole_as(c, dataset, native_type(type), out, n, err);
}

raana_status raana_container_read_strings(const raana_container *c, const char *dataset,
                                          size_t width, char *out, size_t n, raana_error *err)
{
    raana_status st = RAANA_OK;
    hid_t str = H5Tcopy(H5T_C_S1);
    if (str < 0 || H5Tset_size(str, width) < 0 || H5Tset_strpad(str, H5T_STR_NULLPAD) < 0)
        RAANA_FAIL_GOTO(err, RAANA_ERR_INTERNAL, "cannot make a string type of %zu bytes", width);
    RAANA_CHECK(read_whole_as(c, dataset, str, out, n, err));
cleanup:
    raana_h5_release(str);
    return st;
}

raana_status raana_container_read_bytes(const raana_container *c, const char *dataset, char **data,
                                        size_t *len, raana_error *err)
{
    raana_status st = RAANA_OK;
    raana_dataset_shape s;
    char *bytes = NULL;
    *data = NULL;
    *len = 0;
    if (!path_exists(c->file, dataset))
        return RAANA_OK;
    RAANA_CHECK(raana_container_dataset_shape(c, dataset, &s, err));
    if (!s.is_integer || s.elem_size != 1 || s.ndim != 1)
        RAANA_FAIL_GOTO(err, RAANA_ERR_INPUT, "%s: %s is not a byte array", c->path, dataset);
    if (!(bytes = raana_malloc((size_t)s.dims[0] + 1)))
        RAANA_FAIL_GOTO(err, RAANA_ERR_NOMEM, "out of memory for %s (%llu bytes)", dataset,
                        (unsigned long long)s.dims[0]);
    RAANA_CHECK(
        raana_container_read_dataset(c, dataset, RAANA_ELEM_U8, bytes, (size_t)s.dims[0], err));
    bytes[s.dims[0]] = '\0';
    *data = bytes, *len = (size_t)s.dims[0];
    bytes = NULL;
cleanup:
    free(bytes);
    return st;
}

raana_status raana_container_model_file(const raana_container *c, const char *name, char **data,
                                        size_t *len, raana_error *err)
{
    *data = NULL;
    *len = 0;
    if (!name[0] || strchr(name, '/') || strlen(name) > 200)
        return RAANA_INTERNAL(err, "'%s' is not a plain file name", name);
    char dset[256];
    snprintf(dset, sizeof dset, "/model/%s", name);
    return raana_container_read_bytes(c, dset, data, len, err);
}

/* ---- layers --------------------------------------------------------------------------- */

int raana_container_layer_count(const raana_container *c)
{
    return (int)c->n_layers;
}

const char *raana_container_layer_name(const raana_container *c, int i)
{
    return i >= 0 && (size_t)i < c->n_layers ? c->layers[i] : "";
}

/* The stored width of side vector g/name: 32 (a float), 16 (uint16 half
 * bits, format version 3 and later), or 0 (missing, or another type). */
static int side_width(const raana_container *c, const char *g, const char *name)
{
    char ds[400];
    snprintf(ds, sizeof ds, "%s/%s", g, name);
    hid_t d = open_dataset(c->file, ds), t = d >= 0 ? H5Dget_type(d) : H5I_INVALID_HID;
    int width = 0;
    if (t >= 0 && H5Tget_class(t) == H5T_FLOAT)
        width = 32;
    else if (t >= 0 && H5Tget_class(t) == H5T_INTEGER && H5Tget_size(t) == 2 &&
             H5Tget_sign(t) == H5T_SGN_NONE && c->version >= RAANA_FORMAT_VERSION)
        width = 16;
    raana_h5_release(t);
    raana_h5_release(d);
    return width;
}

/* The layer's lowrank_rank attribute: 0 when absent, else within
 * 1..min(d_in, d_out). */
static raana_status read_lowrank_rank(const raana_container *c, const char *g, int d_in, int d_out,
                                      int *rank, raana_error *err)
{
    int64_t r = 0;
    *rank = 0;
    hid_t a = open_attr(c->file, g, "lowrank_rank");
    if (a < 0)
        return RAANA_OK;
    raana_h5_release(a);
    if (!read_attr(c->file, g, "lowrank_rank", H5T_NATIVE_INT64, &r) || r < 1 ||
        r > (d_in < d_out ? d_in : d_out))
        return raana_fail(err, RAANA_ERR_INPUT,
                          "%s: %s: lowrank_rank is unreadable or outside 1..min(d_in, d_out)",
                          c->path, g);
    *rank = (int)r;
    return RAANA_OK;
}

raana_status raana_container_layer_info(const raana_container *c, int i,
                                        raana_container_layer *info, raana_error *err)
{
    char g[300];
    int64_t v[4];
    const char *names[4] = {"d_in", "d_out", "packed_bytes", "n_held"};
    memset(info, 0, sizeof *info);
    if (i < 0 || (size_t)i >= c->n_layers)
        return RAANA_INTERNAL(err, "layer index %d of %zu", i, c->n_layers);
    snprintf(info->name, sizeof info->name, "%s", c->layers[i]);
    snprintf(g, sizeof g, "/layers/%s", c->layers[i]);
    for (int k = 0; k < 4; k++)
        RAANA_CALL(raana_container_attr_i64(c, g, names[k], &v[k], err));
    RAANA_CALL(raana_container_attr_f64(c, g, "bits", &info->bits, err));
    RAANA_CALL(raana_container_attr_f64(c, g, "rel_error", &info->rel_error, err));
    if (v[0] <= 0 || v[1] <= 0 || v[0] > (1 << 24) || v[1] > (1 << 24) || v[2] <= 0 ||
        v[2] > v[0] || v[3] < 0 || v[3] > v[1])
        return raana_fail(err, RAANA_ERR_INPUT,
                          "%s: %s: d_in, d_out, packed_bytes or n_held out of range", c->path, g);
    info->d_in = (int)v[0], info->d_out = (int)v[1];
    info->packed_bytes = (size_t)v[2], info->n_held = (int)v[3];
    char ds[340];
    snprintf(ds, sizeof ds, "%s/mu", g);
    info->has_mu = path_exists(c->file, ds);
    snprintf(ds, sizeof ds, "%s/row_scale", g);
    info->has_row_scale = path_exists(c->file, ds);
    RAANA_CALL(read_lowrank_rank(c, g, info->d_in, info->d_out, &info->lowrank_rank, err));
    info->stored = raana_layer_bits_count(info->d_in, info->d_out, info->packed_bytes, info->n_held,
                                          info->has_mu, info->has_row_scale);
    raana_layer_bits_add_factors(&info->stored, info->d_in, info->d_out, info->lowrank_rank);
    raana_layer_bits_set_side(&info->stored, info->d_in, info->d_out, side_width(c, g, "rescale"));
    return RAANA_OK;
}

/* *out = the d0 x d1 (d1 == 0: d0) elements (native type) of dataset `ds`,
 * malloc'd, or a failure naming it. */
static raana_status read_array(const raana_container *c, const char *ds, hid_t type, size_t d0,
                               size_t d1, void **out, raana_error *err)
{
    raana_status st = RAANA_OK;
    size_t n = d0 * (d1 ? d1 : 1);
    hsize_t dims[H5S_MAX_RANK] = {0, 0};
    void *data = NULL;
    *out = NULL;
    hid_t d = open_dataset(c->file, ds), space = H5I_INVALID_HID;
    if (d < 0)
        RAANA_FAIL_GOTO(err, RAANA_ERR_INPUT, "%s: %s is missing", c->path, ds);
    space = H5Dget_space(d);
    int ndim = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
    if (ndim < 0 || ndim > 2 || H5Sget_simple_extent_dims(space, dims, NULL) != ndim)
        ndim = -1;
    if (ndim != (d1 ? 2 : 1) || dims[0] != d0 || (d1 && dims[1] != d1)) {
        char got[64] = "?", want[64];
        if (ndim == 1)
            snprintf(got, sizeof got, "[%llu]", (unsigned long long)dims[0]);
        else if (ndim == 2)
            snprintf(got, sizeof got, "[%llu, %llu]", (unsigned long long)dims[0],
                     (unsigned long long)dims[1]);
        if (d1)
            snprintf(want, sizeof want, "[%zu, %zu]", d0, d1);
        else
            snprintf(want, sizeof want, "[%zu]", d0);
        RAANA_FAIL_GOTO(err, RAANA_ERR_INPUT,
                        "%s: %s has shape %s, the layer's attributes imply %s", c->path, ds, got,
                        want);
    }
    RAANA_CHECK(dataset_fits(d, c->path, ds, err));
    if (!(data = raana_malloc(n ? n * H5Tget_size(type) : 1)))
        RAANA_FAIL_GOTO(err, RAANA_ERR_NOMEM, "out of memory reading %s (%zu values)", ds, n);
    if (n && H5Dread(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
        RAANA_FAIL_GOTO(err, RAANA_ERR_INPUT,
                        "%s: %s: missing, of the wrong size, or unreadable (a chunk fails its "
                        "checksum or does not decompress)",
                        c->path, ds);
    *out = data;
    data = NULL;
cleanup:
    free(data);
    raana_h5_release(space);
    raana_h5_release(d);
    return st;
}

/* Dataset g/name of shape [d0] (d1 == 0) or [d0][d1]. */
static raana_status read_member(const raana_container *c, const char *g, const char *name,
                                hid_t type, size_t d0, size_t d1, void **out, raana_error *err)
{
    char ds[400];
    snprintf(ds, sizeof ds, "%s/%s", g, name);
    return read_array(c, ds, type, d0, d1, out, err);
}

/* v[0..n) finite, or a failure naming g/name and the index. */
static raana_status check_finite(const float *v, size_t n, const char *path, const char *g,
                                 const char *name, raana_error *err)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i]))
            return raana_fail(err, RAANA_ERR_INPUT, "%s: %s/%s holds %s at index %zu", path, g,
                              name, isnan(v[i]) ? "NaN" : "an infinite value", i);
    return RAANA_OK;
}

/* Held-out columns: each within d_out, none twice. */
static raana_status check_held(const raana_qlayer *q, const char *path, const char *g,
                               raana_error *err)
{
    raana_status st = RAANA_OK;
    uint8_t *seen = raana_calloc((size_t)q->d_out, 1);
    if (!seen)
        return raana_fail(err, RAANA_ERR_NOMEM, "out of memory");
    for (int h = 0; h < q->n_held; h++) {
        int col = q->held_cols[h];
        if (col < 0 || col >= q->d_out)
            RAANA_FAIL_GOTO(err, RAANA_ERR_INPUT, "%s: %s/held_cols: column %d out of range", path,
                            g, col);
        if (seen[col]++)
            RAANA_FAIL_GOTO(err, RAANA_ERR_INPUT, "%s: %s/held_cols: column %d held twice", path, g,
                            col);
    }
cleanup:
    free(seen);
    return st;
}

/* Every 16-bit float of a factor finite (the exponent not all ones). */
static raana_status check_finite_half(const uint16_t *v, size_t n, const char *path, const char *g,
                                      const char *name, raana_error *err)
{
    for (size_t i = 0; i < n; i++)
        if ((v[i] & 0x7c00) == 0x7c00)
            return raana_fail(err, RAANA_ERR_INPUT, "%s: %s/%s holds %s at index %zu", path, g,
                              name, v[i] & 0x3ff ? "NaN" : "an infinite value", i);
    return RAANA_OK;
}

/* Side vector g/name of n values into *out (malloc'd) at the layer's
 * width: float32, or 16-bit half times 2^exponent (half_scaled.h); every
 * value finite. */
static raana_status read_side(const raana_container *c, const char *g, const char *name, size_t n,
                              int side_bits, float **out, raana_error *err)
{
    raana_status st = RAANA_OK;
    uint16_t *half = NULL;
    int64_t e = 0;
    char ds[400];
    snprintf(ds, sizeof ds, "%s/%s", g, name);
    *out = NULL;
    if (!path_exists(c->file, ds))
        RAANA_FAIL_GOTO(err, RAANA_ERR_INPUT, "%s: %s is missing", c->path, ds);
    if (side_width(c, g, name) != side_bits)
        RAANA_FAIL_GOTO(err, RAANA_ERR_INPUT, "%s: %s is not stored as %s like the layer's rescale",
                        c->path, ds, side_bits == 16 ? "16-bit halves" : "float32");
    if (side_bits == 32) {
        RAANA_CHECK(read_member(c, g, name, H5T_NATIVE_FLOAT, n, 0, (void **)out, err));
        RAANA_CHECK(check_finite(*out, n, c->path, g, name, err));
        return RAANA_OK;
    }
    if (!read_attr(c->file, ds, "exponent", H5T_NATIVE_INT64, &e) ||
        e < -RAANA_HALF_SCALED_EXP_MAX || e > RAANA_HALF_SCALED_EXP_MAX)
        RAANA_FAIL_GOTO(err, RAANA_ERR_INPUT,
                        "%s: %s: its exponent attribute is missing, unreadable or outside "
                        "-%d..%d",
                        c->path, ds, RAANA_HALF_SCALED_EXP_MAX, RAANA_HALF_SCALED_EXP_MAX);
    RAANA_CHECK(read_member(c, g, name, H5T_NATIVE_UINT16, n, 0, (void **)&half, err));
    RAANA_CHECK(check_finite_half(half, n, c->path, g, name, err));
    *out = malloc((n ? n : 1) * sizeof **out);
    if (!*out)
        RAANA_FAIL_GOTO(err, RAANA_ERR_NOMEM, "out of memory");
    raana_half_scaled_decode(half, n, (int)e, *out);
    RAANA_CHECK(check_finite(*out, n, c->path, g, name, err));
cleanup:
    free(half);
    return st;
}

/* The low-rank factors, when the layer has a lowrank_rank. */
static raana_status read_factors(const raana_container *c, const char *g, raana_qlayer *q,
                                 raana_error *err)
{
    int r;
    size_t d_in = (size_t)q->d_in, d_out = (size_t)q->d_out;
    RAANA_CALL(read_lowrank_rank(c, g, q->d_in, q->d_out, &r, err));
    if (r == 0)
        return RAANA_OK;
    q->lowrank_rank = r;
    RAANA_CALL(read_member(c, g, "lowrank_a", H5T_NATIVE_UINT16, d_out, (size_t)r,
                           (void **)&q->lowrank_a, err));
    RAANA_CALL(check_finite_half(q->lowrank_a, d_out * (size_t)r, c->path, g, "lowrank_a", err));
    RAANA_CALL(read_member(c, g, "lowrank_b", H5T_NATIVE_UINT16, (size_t)r, d_in,
                           (void **)&q->lowrank_b, err));
    return check_finite_half(q->lowrank_b, (size_t)r * d_in, c->path, g, "lowrank_b", err);
}

static raana_status read_layer_arrays(const raana_container *c, const char *g, raana_qlayer *q,
                                      raana_error *err)
{
    const char *path = c->path;
    size_t d_in = (size_t)q->d_in, d_out = (size_t)q->d_out, held = (size_t)q->n_held;
    char ds_rescale[400];
    snprintf(ds_rescale, sizeof ds_rescale, "%s/rescale", g);
    RAANA_CALL(read_member(c, g, "codes", H5T_NATIVE_UINT8, d_out, q->packed_bytes,
                           (void **)&q->packed, err));
    q->side_bits = side_width(c, g, "rescale");
    if (q->side_bits == 0 && path_exists(c->file, ds_rescale))
        return raana_fail(err, RAANA_ERR_INPUT,
                          "%s: %s is neither float32 nor 16-bit halves (uint16, format version "
                          "3 and later; this file is version %d)",
                          path, ds_rescale, c->version);
    if (q->side_bits == 0)
        q->side_bits = 32; /* missing: read_side says so */
    RAANA_CALL(read_side(c, g, "rescale", d_out, q->side_bits, &q->rescale, err));
    RAANA_CALL(
        read_member(c, g, "held_cols", H5T_NATIVE_INT32, held, 0, (void **)&q->held_cols, err));
    RAANA_CALL(check_held(q, path, g, err));
    RAANA_CALL(read_member(c, g, "held_values", H5T_NATIVE_FLOAT, held, d_in,
                           (void **)&q->held_values, err));
    RAANA_CALL(check_finite(q->held_values, held * d_in, path, g, "held_values", err));
    if (q->tricks & RAANA_TRICK_CENTRALIZE)
        RAANA_CALL(read_side(c, g, "mu", d_in, q->side_bits, &q->mu, err));
    if (q->tricks & RAANA_TRICK_NORM_ROW)
        RAANA_CALL(read_side(c, g, "row_scale", d_in, q->side_bits, &q->row_scale, err));
    return read_factors(c, g, q, err);
}

static raana_status check_signs(const raana_container *c, const char *g, const raana_qlayer *q,
                                raana_error *err)
{
    raana_status st = RAANA_OK;
    size_t row = ((size_t)q->rot.d + 7) / 8, bytes = 2 * row;
    uint8_t *stored = NULL, *expect = raana_schema_pack_signs(&q->rot);
    if (!expect)
        RAANA_FAIL_GOTO(err, RAANA_ERR_NOMEM, "out of memory");
    RAANA_CHECK(read_member(c, g, "signs", H5T_NATIVE_UINT8, 2, row, (void **)&stored, err));
    if (memcmp(stored, expect, bytes) != 0)
        RAANA_FAIL_GOTO(err, RAANA_ERR_INPUT,
                        "%s: %s: stored signs differ from generator %s with key %016llx", c->path,
                        g, RAANA_RNG_ID, (unsigned long long)q->key);
cleanup:
    free(stored);
    free(expect);
    return st;
}

/* The attributes that size and shape the layer agree with its bits:
 * code_bits, n_kept and the sub-bit regions (m_a, m_b) are what the
 * quantizer derives from (d_in, bits), packed_bytes what they pack to. */
static raana_status check_layer_bits(const raana_qlayer *q, const char *path, const char *g,
                                     raana_error *err)
{
    if (!isfinite(q->bits) || q->bits <= 0 || q->bits > 8 ||
        (q->bits >= 1 && q->bits != floor(q->bits)))
        return raana_fail(err, RAANA_ERR_INPUT,
                          "%s: %s: bits %g is not a supported width (0 < bits < 1, or 1..8 "
                          "whole)",
                          path, g, q->bits);
    int code_bits = q->bits < 1 ? 1 : (int)q->bits, m_a = 0, m_b = 0, n_kept = q->d_in;
    if (q->bits < 1) {
        raana_qlayer_sub_bit_layout(q->d_in, raana_pow2_floor(q->d_in), q->bits, &m_a, &m_b);
        n_kept = m_a + m_b;
    }
    if (q->code_bits != code_bits || q->m_a != m_a || q->m_b != m_b || q->n_kept != n_kept)
        return raana_fail(err, RAANA_ERR_INPUT,
                          "%s: %s: code_bits %d, n_kept %d, m_a %d, m_b %d disagree with bits %g "
                          "and d_in %d (expected %d, %d, %d, %d)",
                          path, g, q->code_bits, q->n_kept, q->m_a, q->m_b, q->bits, q->d_in,
                          code_bits, n_kept, m_a, m_b);
    if (q->packed_bytes != raana_packed_size((size_t)n_kept, code_bits))
        return raana_fail(
            err, RAANA_ERR_INPUT, "%s: %s: packed_bytes %zu, %d codes of %d bits take %zu", path, g,
            q->packed_bytes, n_kept, code_bits, raana_packed_size((size_t)n_kept, code_bits));
    return RAANA_OK;
}

/* The layer's attributes into q, ranges checked (so the casts are safe). */
static raana_status read_layer_attrs(const raana_container *c, const char *g, const char *name,
                                     raana_qlayer *q, raana_error *err)
{
    char tricks[64];
    int64_t v[8];
    const char *names[8] = {"d_in", "d_out", "code_bits", "n_kept",
                            "m_a",  "m_b",   "n_held",    "packed_bytes"};
    int ok = read_attr(c->file, g, "bits", H5T_NATIVE_DOUBLE, &q->bits) &&
             read_attr(c->file, g, "key", H5T_NATIVE_UINT64, &q->key) &&
             read_attr_text(c->file, g, "tricks", tricks, sizeof tricks);
    for (int k = 0; ok && k < 8; k++)
        ok = read_attr(c->file, g, names[k], H5T_NATIVE_INT64, &v[k]);
    ok = ok && v[0] > 0 && v[1] > 0 && v[0] <= (1 << 24) && v[1] <= (1 << 24) && v[2] >= 1 &&
         v[2] <= 8 && v[3] > 0 && v[3] <= v[0] && v[4] >= 0 && v[4] <= v[0] && v[5] >= 0 &&
         v[5] <= v[0] && v[6] >= 0 && v[6] <= v[1] && v[7] > 0 && v[7] <= v[0];
    if (!ok)
        return raana_fail(err, RAANA_ERR_INPUT,
                          "%s: layer %s: missing attributes, or d_in, d_out, code_bits, n_kept, "
                          "m_a, m_b, n_held or packed_bytes out of range",
                          c->path, name);
    q->d_in = (int)v[0], q->d_out = (int)v[1], q->code_bits = (int)v[2], q->n_kept = (int)v[3];
    q->m_a = (int)v[4], q->m_b = (int)v[5], q->n_held = (int)v[6];
    q->packed_bytes = (size_t)v[7];
    q->tricks = raana_schema_parse_tricks(tricks);
    return RAANA_OK;
}

raana_status raana_container_read_layer(const raana_container *c, const char *name, raana_qlayer *q,
                                        raana_error *err)
{
    raana_status st = RAANA_OK;
    char g[300];
    memset(q, 0, sizeof *q);
    snprintf(g, sizeof g, "/layers/%s", name);
    if (!path_exists(c->file, g))
        return raana_fail(err, RAANA_ERR_INPUT, "%s: no quantized layer '%s'", c->path, name);
    RAANA_CHECK(read_layer_attrs(c, g, name, q, err));
    RAANA_CHECK(check_layer_bits(q, c->path, g, err));
    RAANA_CHECK(raana_rotation_create(&q->rot, q->d_in, q->key, err));
    RAANA_CHECK(read_layer_arrays(c, g, q, err));
    RAANA_CHECK(check_signs(c, g, q, err));
cleanup:
    if (st != RAANA_OK)
        raana_qlayer_free(q);
    return st;
}

raana_status raana_container_dequantize_layer(const raana_container *c, const char *name, float **w,
                                              int *d_out, int *d_in, raana_error *err)
{
    raana_status st = RAANA_OK;
    raana_qlayer q;
    float *weight = NULL;
    *w = NULL;
    RAANA_CALL(raana_container_read_layer(c, name, &q, err));
    weight = raana_malloc((size_t)q.d_in * (size_t)q.d_out * sizeof *weight);
    if (!weight)
        RAANA_FAIL_GOTO(err, RAANA_ERR_NOMEM, "out of memory for %s", name);
    RAANA_CHECK(raana_qlayer_dequantize(&q, weight, err));
    *w = weight, *d_out = q.d_out, *d_in = q.d_in;
    weight = NULL;
cleanup:
    free(weight);
    raana_qlayer_free(&q);
    return st;
}

/* ---- reading everything (raana-inspect --verify) ---------------------------------------- */

typedef struct {
    const char *path;
    raana_error *err;
    raana_status st;
    long datasets;
    double bytes;
} read_all_state;

/* Rows [r, r + count) of dataset d into buf (count[0] set by the caller). */
static herr_t read_slab(hid_t d, hid_t space, hid_t mtype, int ndim, hsize_t r, hsize_t *count,
                        void *buf)
{
    if (ndim == 0)
        return H5Dread(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
    hsize_t start[H5S_MAX_RANK] = {0};
    start[0] = r;
    hid_t file_sel = H5Scopy(space), mem = H5Screate_simple(ndim, count, NULL);
    herr_t rc = file_sel >= 0 && mem >= 0 &&
                        H5Sselect_hyperslab(file_sel, H5S_SELECT_SET, start, NULL, count, NULL) >= 0
                    ? H5Dread(d, mtype, mem, file_sel, H5P_DEFAULT, buf)
                    : -1;
    raana_h5_release(mem);
    raana_h5_release(file_sel);
    return rc;
}

/* Reads dataset `name` whole, in slabs of rows along dimension 0. */
static raana_status read_whole(hid_t d, const char *path, const char *name, double *bytes,
                               raana_error *err)
{
    raana_status st = RAANA_OK;
    hid_t space = H5Dget_space(d), ftype = H5Dget_type(d);
    hid_t mtype = ftype >= 0 ? H5Tget_native_type(ftype, H5T_DIR_ASCEND) : H5I_INVALID_HID;
    int ndim = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
    hsize_t dims[H5S_MAX_RANK], count[H5S_MAX_RANK];
    void *buf = NULL;
    char label[400];
    snprintf(label, sizeof label, "/%s", name);
    if (mtype < 0 || ndim < 0 || H5Sget_simple_extent_dims(space, dims, NULL) < 0)
        RAANA_FAIL_GOTO(err, RAANA_ERR_INPUT, "%s: /%s: unreadable type or shape", path, name);
    RAANA_CHECK(dataset_fits(d, path, label, err));
    size_t row = H5Tget_size(mtype);
    for (int k = 1; k < ndim; k++)
        row *= dims[k], count[k] = dims[k];
    hsize_t rows = ndim == 0 ? 1 : dims[0];
    hsize_t step = row ? (16u << 20) / row + 1 : rows; /* about 16 MiB per read */
    if (!(buf = raana_malloc(step * row + 1)))
        RAANA_FAIL_GOTO(err, RAANA_ERR_NOMEM, "out of memory reading /%s", name);
    for (hsize_t r = 0; r < rows; r += step) {
        count[0] = rows - r < step ? rows - r : step;
        if (read_slab(d, space, mtype, ndim, r, count, buf) < 0)
            RAANA_FAIL_GOTO(err, RAANA_ERR_INPUT,
                            "%s: /%s: unreadable (a chunk fails its Fletcher-32 checksum or "
                            "does not decompress)",
                            path, name);
        *bytes += (double)(ndim == 0 ? row : count[0] * row);
    }
cleanup:
    free(buf);
    raana_h5_release(mtype);
    raana_h5_release(ftype);
    raana_h5_release(space);
    return st;
}

static herr_t read_object(hid_t root, const char *name, const H5O_info_t *info, void *data)
{
    read_all_state *v = data;
    if (info->type != H5O_TYPE_DATASET)
        return 0;
    hid_t d = raana_fault_fail() ? H5I_INVALID_HID : H5Dopen2(root, name, H5P_DEFAULT);
    v->st = d >= 0 ? read_whole(d, v->path, name, &v->bytes, v->err)
                   : raana_fail(v->err, RAANA_ERR_INPUT, "%s: /%s: cannot open", v->path, name);
    raana_h5_release(d);
    v->datasets++;
    return v->st == RAANA_OK ? 0 : 1; /* stop at the first bad one */
}

raana_status raana_container_read_all(const raana_container *c, long *datasets, double *bytes,
                                      raana_error *err)
{
    read_all_state v = {c->path, err, RAANA_OK, 0, 0};
    if (H5Ovisit(c->file, H5_INDEX_NAME, H5_ITER_INC, read_object, &v) < 0 && v.st == RAANA_OK)
        v.st = raana_fail(err, RAANA_ERR_INPUT, "%s: cannot walk the file's objects", c->path);
    *datasets = v.datasets;
    *bytes = v.bytes;
    return v.st;
}
