/* container_model.c — a raana container seen as a checkpoint (see
 * container_model.h): the tensor table built from /tensors and /layers, a
 * lazy raana_tensor_source that reads one dataset (or rebuilds one layer)
 * per request, the files under /model, and the checkpoint fingerprint. */
#include "raana/container_model.h"

#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raana/container.h"
#include "raana/qlayer.h"
#include "raana/safetensors.h"

/* The source's state: the open file and one raana_st_tensor per entry
 * (its name is the entry's name); is_layer[i] marks "<layer>.weight". */
typedef struct {
    char path[4096];
    hid_t file;
    raana_st_tensor *tensors;
    unsigned char *is_layer;
    size_t n, cap;
} container_source;

static void source_close(void *ctx)
{
    container_source *c = ctx;
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++)
        free(c->tensors[i].name);
    free(c->tensors);
    free(c->is_layer);
    if (c->file >= 0)
        H5Fclose(c->file);
    free(c);
}

/* ---- small HDF5 readers ----------------------------------------------------- */

static int read_i64_attr(hid_t obj, const char *name, int64_t *out)
{
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    int ok = a >= 0 && H5Aread(a, H5T_NATIVE_INT64, out) >= 0;
    if (a >= 0)
        H5Aclose(a);
    return ok;
}

static int read_text_attr(hid_t obj, const char *name, char *out, size_t size)
{
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    hid_t t = a >= 0 ? H5Aget_type(a) : H5I_INVALID_HID;
    size_t n = t >= 0 ? H5Tget_size(t) : 0;
    int ok = t >= 0 && H5Tget_class(t) == H5T_STRING && !H5Tis_variable_str(t) && n < size &&
             H5Aread(a, t, out) >= 0;
    if (ok)
        out[n] = '\0';
    if (t >= 0)
        H5Tclose(t);
    if (a >= 0)
        H5Aclose(a);
    return ok;
}

/* Name of link i of group g (malloc'd), or NULL. */
static char *link_name(hid_t g, hsize_t i)
{
    ssize_t n = H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, NULL, 0, H5P_DEFAULT);
    char *name = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (name && H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, (size_t)n + 1,
                                   H5P_DEFAULT) < 0) {
        free(name);
        name = NULL;
    }
    return name;
}

static raana_status open_container(const char *path, hid_t *file, raana_error *err)
{
    return raana_container_open(path, file, err);
}

/* malloc'd bytes of the 1-D byte dataset `dset`; *data NULL when absent. */
static raana_status read_blob(hid_t file, const char *path, const char *dset, char **data,
                              size_t *len, raana_error *err)
{
    *data = NULL;
    *len = 0;
    if (H5Lexists(file, dset, H5P_DEFAULT) <= 0)
        return RAANA_OK;
    hid_t d = H5Dopen2(file, dset, H5P_DEFAULT);
    hid_t space = d >= 0 ? H5Dget_space(d) : H5I_INVALID_HID;
    hid_t type = d >= 0 ? H5Dget_type(d) : H5I_INVALID_HID;
    hssize_t n = space >= 0 ? H5Sget_simple_extent_npoints(space) : -1;
    raana_status st = RAANA_OK;
    if (n < 0 || type < 0 || H5Tget_class(type) != H5T_INTEGER || H5Tget_size(type) != 1 ||
        H5Sget_simple_extent_ndims(space) != 1)
        st = raana_fail(err, RAANA_ERR_INPUT, "%s: %s is not a byte array", path, dset);
    else if ((st = raana_container_dataset_fits(d, path, dset, err)) != RAANA_OK)
        ;
    else if (!(*data = malloc((size_t)n + 1)))
        st = raana_fail(err, RAANA_ERR_NOMEM, "out of memory for %s (%lld bytes)", dset,
                        (long long)n);
    else if (n > 0 && H5Dread(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, *data) < 0)
        st = raana_fail(err, RAANA_ERR_INPUT,
                        "%s: %s is unreadable (a chunk fails its checksum or does not "
                        "decompress)",
                        path, dset);
    if (st == RAANA_OK) {
        (*data)[n] = '\0';
        *len = (size_t)n;
    } else {
        free(*data);
        *data = NULL;
    }
    if (type >= 0)
        H5Tclose(type);
    if (space >= 0)
        H5Sclose(space);
    if (d >= 0)
        H5Dclose(d);
    return st;
}

/* ---- the tensor table ---------------------------------------------------------- */

static raana_status add_entry(container_source *c, char *name, raana_dtype dtype, int ndim,
                              const int64_t *shape, int is_layer, raana_error *err)
{
    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 64;
        raana_st_tensor *t = realloc(c->tensors, cap * sizeof *t);
        if (t)
            c->tensors = t;
        unsigned char *l = t ? realloc(c->is_layer, cap) : NULL;
        if (l)
            c->is_layer = l;
        if (!t || !l) {
            free(name);
            return raana_fail(err, RAANA_ERR_NOMEM, "out of memory for the tensor table");
        }
        c->cap = cap;
    }
    raana_st_tensor *t = &c->tensors[c->n];
    memset(t, 0, sizeof *t);
    t->name = name;
    t->dtype = dtype;
    t->ndim = ndim;
    t->numel = 1;
    for (int d = 0; d < ndim; d++) {
        t->shape[d] = shape[d];
        t->numel *= (uint64_t)shape[d];
    }
    t->end = t->numel * raana_dtype_size(dtype);
    c->is_layer[c->n++] = (unsigned char)is_layer;
    return RAANA_OK;
}

static int dtype_by_name(const char *name, raana_dtype *out)
{
    for (int d = RAANA_DTYPE_F32; d <= RAANA_DTYPE_F8_E5M2; d++)
        if (strcmp(raana_dtype_name((raana_dtype)d), name) == 0)
            return *out = (raana_dtype)d, 1;
    return 0;
}

/* Shape and dtype of dataset /tensors/<name> (d open). */
static raana_status tensor_entry(container_source *c, hid_t d, char *name, raana_error *err)
{
    char dtype_name[32];
    raana_dtype dtype = RAANA_DTYPE_F32;
    hsize_t dims[RAANA_MAX_DIMS];
    int64_t shape[RAANA_MAX_DIMS];
    hid_t space = H5Dget_space(d), type = H5Dget_type(d);
    int ndim = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
    int ok =
        ndim >= 1 && ndim <= RAANA_MAX_DIMS && H5Sget_simple_extent_dims(space, dims, NULL) == ndim;
    size_t stored_size = type >= 0 ? H5Tget_size(type) : 0;
    H5Sclose(space);
    H5Tclose(type);
    uint64_t numel = 1;
    for (int k = 0; ok && k < ndim; k++) {
        ok = dims[k] <= (hsize_t)INT64_MAX / 16 &&
             (dims[k] == 0 || numel <= UINT64_MAX / 16 / dims[k]);
        numel *= dims[k];
        shape[k] = (int64_t)dims[k];
    }
    raana_status st = RAANA_OK;
    char dset[4200];
    snprintf(dset, sizeof dset, "/tensors/%s", name);
    if (!ok)
        st = raana_fail(err, RAANA_ERR_INPUT, "%s: /tensors/%s has an unusable shape", c->path,
                        name);
    else if ((st = raana_container_dataset_fits(d, c->path, dset, err)) != RAANA_OK)
        ;
    else if (!read_text_attr(d, "dtype", dtype_name, sizeof dtype_name) ||
             !dtype_by_name(dtype_name, &dtype))
        st = raana_fail(err, RAANA_ERR_INPUT, "%s: /tensors/%s has no known dtype attribute",
                        c->path, name);
    else if (stored_size != raana_dtype_size(dtype))
        st = raana_fail(err, RAANA_ERR_INPUT,
                        "%s: /tensors/%s is stored with %zu-byte elements, its dtype %s has %zu",
                        c->path, name, stored_size, dtype_name, raana_dtype_size(dtype));
    if (st != RAANA_OK) {
        free(name);
        return st;
    }
    return add_entry(c, name, dtype, ndim, shape, 0, err);
}

static raana_status tensor_entries(container_source *c, raana_error *err)
{
    hid_t g = H5Gopen2(c->file, "/tensors", H5P_DEFAULT);
    H5G_info_t info;
    if (g < 0 || H5Gget_info(g, &info) < 0) {
        if (g >= 0)
            H5Gclose(g);
        return raana_fail(err, RAANA_ERR_INPUT, "%s: no /tensors group", c->path);
    }
    raana_status st = RAANA_OK;
    for (hsize_t i = 0; i < info.nlinks && st == RAANA_OK; i++) {
        char *name = link_name(g, i);
        if (!name) {
            st = raana_fail(err, RAANA_ERR_INPUT, "%s: /tensors: unreadable link %llu", c->path,
                            (unsigned long long)i);
            break;
        }
        H5O_info_t oi;
        hid_t d = H5Oget_info_by_name(g, name, &oi, H5P_DEFAULT) >= 0 && oi.type == H5O_TYPE_DATASET
                      ? H5Dopen2(g, name, H5P_DEFAULT)
                      : H5I_INVALID_HID;
        if (d < 0) {
            st = raana_fail(err, RAANA_ERR_INPUT, "%s: /tensors/%s is not a readable dataset",
                            c->path, name);
            free(name);
            break;
        }
        st = tensor_entry(c, d, name, err);
        H5Dclose(d);
    }
    H5Gclose(g);
    return st;
}

/* "<layer>.weight", F32 [d_out][d_in], for every group under /layers. */
static raana_status layer_entries(container_source *c, raana_error *err)
{
    hid_t g = H5Lexists(c->file, "/layers", H5P_DEFAULT) > 0
                  ? H5Gopen2(c->file, "/layers", H5P_DEFAULT)
                  : H5I_INVALID_HID;
    H5G_info_t info;
    if (g < 0 || H5Gget_info(g, &info) < 0 || info.nlinks == 0) {
        if (g >= 0)
            H5Gclose(g);
        return raana_fail(err, RAANA_ERR_INPUT,
                          "%s: holds no quantized layers (no /layers group or an empty one)",
                          c->path);
    }
    raana_status st = RAANA_OK;
    for (hsize_t i = 0; i < info.nlinks && st == RAANA_OK; i++) {
        char *layer = link_name(g, i);
        hid_t lg = layer ? H5Gopen2(g, layer, H5P_DEFAULT) : H5I_INVALID_HID;
        int64_t shape[2];
        int ok = lg >= 0 && read_i64_attr(lg, "d_out", &shape[0]) &&
                 read_i64_attr(lg, "d_in", &shape[1]) && shape[0] > 0 && shape[1] > 0 &&
                 shape[0] <= (1 << 24) && shape[1] <= (1 << 24);
        if (lg >= 0)
            H5Gclose(lg);
        size_t len = layer ? strlen(layer) : 0;
        char *name = ok ? malloc(len + sizeof ".weight") : NULL;
        if (name)
            snprintf(name, len + sizeof ".weight", "%s.weight", layer);
        if (!ok)
            st = raana_fail(err, RAANA_ERR_INPUT,
                            "%s: /layers/%s is not a layer group with d_in and d_out", c->path,
                            layer ? layer : "?");
        else if (!name)
            st = raana_fail(err, RAANA_ERR_NOMEM, "out of memory");
        else
            st = add_entry(c, name, RAANA_DTYPE_F32, 2, shape, 1, err);
        free(layer);
    }
    H5Gclose(g);
    return st;
}

/* ---- reading one tensor ------------------------------------------------------- */

static raana_status read_layer(container_source *c, const raana_st_tensor *t, float *out,
                               raana_error *err)
{
    size_t len = strlen(t->name) - strlen(".weight");
    char layer[4096];
    snprintf(layer, sizeof layer, "%.*s", (int)len, t->name);
    raana_qlayer q;
    raana_status st = raana_container_read_layer(c->file, c->path, layer, &q, err);
    if (st != RAANA_OK)
        return st;
    if (q.d_out != t->shape[0] || q.d_in != t->shape[1])
        st = raana_fail(err, RAANA_ERR_INPUT, "%s: layer %s is %dx%d, its group says %lldx%lld",
                        c->path, layer, q.d_out, q.d_in, (long long)t->shape[0],
                        (long long)t->shape[1]);
    else
        st = raana_qlayer_dequantize(&q, out, err);
    raana_qlayer_free(&q);
    return st;
}

static raana_status read_tensor(container_source *c, const raana_st_tensor *t, float *out,
                                raana_error *err)
{
    char dset[4200];
    snprintf(dset, sizeof dset, "/tensors/%s", t->name);
    int half = t->dtype == RAANA_DTYPE_F16 || t->dtype == RAANA_DTYPE_BF16;
    if (t->dtype != RAANA_DTYPE_F32 && !half)
        return raana_fail(err, RAANA_ERR_UNSUPPORTED,
                          "%s: tensor '%s' has dtype %s (convertible: BF16, F16, F32)", c->path,
                          t->name, raana_dtype_name(t->dtype));
    uint16_t *bits = half ? malloc(t->numel ? t->numel * sizeof *bits : 1) : NULL;
    if (half && !bits)
        return raana_fail(err, RAANA_ERR_NOMEM, "out of memory reading %s", t->name);
    hid_t d = H5Dopen2(c->file, dset, H5P_DEFAULT);
    int ok = d >= 0 && (t->numel == 0 ||
                        H5Dread(d, half ? H5T_NATIVE_UINT16 : H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL,
                                H5P_DEFAULT, half ? (void *)bits : (void *)out) >= 0);
    if (d >= 0)
        H5Dclose(d);
    for (uint64_t i = 0; ok && half && i < t->numel; i++)
        out[i] =
            t->dtype == RAANA_DTYPE_BF16 ? raana_bf16_to_f32(bits[i]) : raana_f16_to_f32(bits[i]);
    free(bits);
    if (!ok)
        return raana_fail(err, RAANA_ERR_INPUT,
                          "%s: %s is unreadable (a chunk fails its checksum or does not "
                          "decompress)",
                          c->path, dset);
    return RAANA_OK;
}

static raana_status source_read_f32(void *ctx, const raana_tensor_entry *e, float *out,
                                    raana_error *err)
{
    container_source *c = ctx;
    size_t i = (size_t)(e->tensor - c->tensors);
    return c->is_layer[i] ? read_layer(c, e->tensor, out, err)
                          : read_tensor(c, e->tensor, out, err);
}

static const raana_tensor_source container_tensors = {source_read_f32, source_close};

/* ---- opening ----------------------------------------------------------------------- */

static raana_status read_config(container_source *c, raana_model_config *cfg, raana_error *err)
{
    char *text, label[4200];
    size_t len;
    raana_status st = read_blob(c->file, c->path, "/model/config.json", &text, &len, err);
    if (st == RAANA_OK && !text)
        st = raana_fail(err, RAANA_ERR_INPUT, "%s: holds no /model/config.json", c->path);
    snprintf(label, sizeof label, "%s:/model/config.json", c->path);
    if (st == RAANA_OK)
        st = raana_model_config_parse(text, len, label, cfg, err);
    free(text);
    return st;
}

raana_status raana_container_model_open(raana_model *m, const char *path, raana_error *err)
{
    return raana_container_model_open_fapl(m, path, H5P_DEFAULT, err);
}

raana_status raana_container_model_open_fapl(raana_model *m, const char *path, hid_t fapl,
                                             raana_error *err)
{
    memset(m, 0, sizeof *m);
    container_source *c = calloc(1, sizeof *c);
    if (!c)
        return raana_fail(err, RAANA_ERR_NOMEM, "out of memory");
    c->file = H5I_INVALID_HID;
    if (snprintf(c->path, sizeof c->path, "%s", path) >= (int)sizeof c->path) {
        source_close(c);
        return raana_fail(err, RAANA_ERR_INPUT, "container path too long: %s", path);
    }
    raana_model_config cfg;
    raana_status st = raana_container_open_fapl(path, fapl, &c->file, err);
    if (st == RAANA_OK)
        st = read_config(c, &cfg, err);
    if (st == RAANA_OK)
        st = layer_entries(c, err);
    if (st == RAANA_OK)
        st = tensor_entries(c, err);
    raana_tensor_entry *entries = NULL;
    if (st == RAANA_OK && !(entries = calloc(c->n ? c->n : 1, sizeof *entries)))
        st = raana_fail(err, RAANA_ERR_NOMEM, "out of memory");
    if (st != RAANA_OK) {
        source_close(c);
        return st;
    }
    for (size_t i = 0; i < c->n; i++)
        entries[i] = (raana_tensor_entry){c->tensors[i].name, 0, &c->tensors[i]};
    return raana_model_open_source(m, path, &cfg, entries, c->n, &container_tensors, c, err);
}

raana_status raana_container_model_file(const char *path, const char *name, char **data,
                                        size_t *len, raana_error *err)
{
    *data = NULL;
    *len = 0;
    if (!name[0] || strchr(name, '/') || strlen(name) > 200)
        return RAANA_INTERNAL(err, "'%s' is not a plain file name", name);
    hid_t file;
    raana_status st = open_container(path, &file, err);
    if (st != RAANA_OK)
        return st;
    char dset[256];
    snprintf(dset, sizeof dset, "/model/%s", name);
    st = H5Lexists(file, "/model", H5P_DEFAULT) > 0 ? read_blob(file, path, dset, data, len, err)
                                                    : RAANA_OK;
    H5Fclose(file);
    return st;
}

raana_status raana_container_checkpoint_fingerprint(const char *path, uint64_t *fingerprint,
                                                    raana_error *err)
{
    hid_t file;
    raana_status st = open_container(path, &file, err);
    if (st != RAANA_OK)
        return st;
    char text[64], *end = NULL;
    int ok = read_text_attr(file, "checkpoint_fingerprint", text, sizeof text) &&
             strlen(text) == 16 && strspn(text, "0123456789abcdef") == 16;
    H5Fclose(file);
    if (!ok)
        return raana_fail(err, RAANA_ERR_INPUT,
                          "%s: no checkpoint_fingerprint attribute of 16 hex digits (a container "
                          "written before raana recorded it?)",
                          path);
    *fingerprint = strtoull(text, &end, 16);
    return RAANA_OK;
}
