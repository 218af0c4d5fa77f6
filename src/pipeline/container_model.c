/* container_model.c — a raana container seen as a checkpoint (see
 * container_model.h): the tensor table built from /tensors and /layers, and
 * a lazy raana_tensor_source that reads one dataset (or rebuilds one layer)
 * per request, all through the container reader (container.h). */
#include "raana/container_model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raana/container.h"
#include "raana/container_access.h"
#include "raana/fault.h"
#include "raana/qlayer.h"
#include "raana/safetensors.h"

/* The source's state: the open container and one raana_st_tensor per entry
 * (its name is the entry's name); is_layer[i] marks "<layer>.weight". */
typedef struct {
    raana_container *file;
    const char *path;
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
    raana_container_close(c->file);
    free(c);
}

/* ---- the tensor table ---------------------------------------------------------- */

static raana_status add_entry(container_source *c, char *name, raana_dtype dtype, int ndim,
                              const int64_t *shape, int is_layer, raana_error *err)
{
    if (c->n == c->cap) {
        if (raana_fault_fail()) {
            free(name);
            return raana_fail(err, RAANA_ERR_NOMEM, "out of memory for the tensor table");
        }
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

/* Shape and dtype of dataset /tensors/<name>; takes name. */
static raana_status tensor_entry(container_source *c, char *name, raana_error *err)
{
    raana_status st = RAANA_OK;
    char dtype_name[32], dset[4200];
    raana_dtype dtype = RAANA_DTYPE_F32;
    int64_t shape[RAANA_MAX_DIMS];
    raana_dataset_shape s;
    snprintf(dset, sizeof dset, "/tensors/%s", name);
    if (!raana_container_is_dataset(c->file, dset))
        RAANA_FAIL_GOTO(err, RAANA_ERR_INPUT, "%s: /tensors/%s is not a readable dataset", c->path,
                        name);
    RAANA_CHECK(raana_container_dataset_shape(c->file, dset, &s, err));
    int ok = s.ndim >= 1 && s.ndim <= RAANA_MAX_DIMS;
    uint64_t numel = 1;
    for (int k = 0; ok && k < s.ndim; k++) {
        ok = s.dims[k] <= (uint64_t)INT64_MAX / 16 &&
             (s.dims[k] == 0 || numel <= UINT64_MAX / 16 / s.dims[k]);
        numel *= s.dims[k];
        shape[k] = (int64_t)s.dims[k];
    }
    if (!ok)
        RAANA_FAIL_GOTO(err, RAANA_ERR_INPUT, "%s: /tensors/%s has an unusable shape", c->path,
                        name);
    if (!raana_container_attr_text_if(c->file, dset, "dtype", dtype_name, sizeof dtype_name) ||
        !dtype_by_name(dtype_name, &dtype))
        RAANA_FAIL_GOTO(err, RAANA_ERR_INPUT, "%s: /tensors/%s has no known dtype attribute",
                        c->path, name);
    if (s.elem_size != raana_dtype_size(dtype))
        RAANA_FAIL_GOTO(err, RAANA_ERR_INPUT,
                        "%s: /tensors/%s is stored with %zu-byte elements, its dtype %s has %zu",
                        c->path, name, s.elem_size, dtype_name, raana_dtype_size(dtype));
    st = add_entry(c, name, dtype, s.ndim, shape, 0, err);
    name = NULL; /* add_entry took it */
cleanup:
    free(name);
    return st;
}

static raana_status tensor_entries(container_source *c, raana_error *err)
{
    raana_status st = RAANA_OK;
    char **names = NULL;
    size_t n = 0, i = 0;
    RAANA_CALL(raana_container_group_names(c->file, "/tensors", &names, &n, err));
    for (; i < n; i++) {
        char *name = names[i];
        names[i] = NULL;
        RAANA_CHECK(tensor_entry(c, name, err));
    }
cleanup:
    raana_container_names_free(names, n);
    return st;
}

/* "<layer>.weight", F32 [d_out][d_in], for every group under /layers. */
static raana_status layer_entry(container_source *c, int i, raana_error *err)
{
    raana_error ignored;
    const char *layer = raana_container_layer_name(c->file, i);
    char g[300];
    int64_t shape[2];
    snprintf(g, sizeof g, "/layers/%s", layer);
    int ok = raana_container_attr_i64(c->file, g, "d_out", &shape[0], &ignored) == RAANA_OK &&
             raana_container_attr_i64(c->file, g, "d_in", &shape[1], &ignored) == RAANA_OK &&
             shape[0] > 0 && shape[1] > 0 && shape[0] <= (1 << 24) && shape[1] <= (1 << 24);
    if (!ok)
        return raana_fail(err, RAANA_ERR_INPUT,
                          "%s: /layers/%s is not a layer group with d_in and d_out", c->path,
                          layer);
    size_t len = strlen(layer) + sizeof ".weight";
    char *name = raana_malloc(len);
    if (!name)
        return raana_fail(err, RAANA_ERR_NOMEM, "out of memory");
    snprintf(name, len, "%s.weight", layer);
    return add_entry(c, name, RAANA_DTYPE_F32, 2, shape, 1, err);
}

static raana_status layer_entries(container_source *c, raana_error *err)
{
    int n = raana_container_layer_count(c->file);
    if (n == 0)
        return raana_fail(err, RAANA_ERR_INPUT,
                          "%s: holds no quantized layers (no /layers group or an empty one)",
                          c->path);
    for (int i = 0; i < n; i++)
        RAANA_CALL(layer_entry(c, i, err));
    return RAANA_OK;
}

/* ---- reading one tensor ------------------------------------------------------- */

static raana_status read_layer(container_source *c, const raana_st_tensor *t, float *out,
                               raana_error *err)
{
    raana_status st = RAANA_OK;
    size_t len = strlen(t->name) - strlen(".weight");
    char layer[4096];
    snprintf(layer, sizeof layer, "%.*s", (int)len, t->name);
    raana_qlayer q;
    RAANA_CALL(raana_container_read_layer(c->file, layer, &q, err));
    if (q.d_out != t->shape[0] || q.d_in != t->shape[1])
        RAANA_FAIL_GOTO(err, RAANA_ERR_INPUT, "%s: layer %s is %dx%d, its group says %lldx%lld",
                        c->path, layer, q.d_out, q.d_in, (long long)t->shape[0],
                        (long long)t->shape[1]);
    RAANA_CHECK(raana_qlayer_dequantize(&q, out, err));
cleanup:
    raana_qlayer_free(&q);
    return st;
}

static raana_status read_tensor(container_source *c, const raana_st_tensor *t, float *out,
                                raana_error *err)
{
    raana_status st = RAANA_OK;
    char dset[4200];
    snprintf(dset, sizeof dset, "/tensors/%s", t->name);
    int half = t->dtype == RAANA_DTYPE_F16 || t->dtype == RAANA_DTYPE_BF16;
    if (t->dtype != RAANA_DTYPE_F32 && !half)
        return raana_fail(err, RAANA_ERR_UNSUPPORTED,
                          "%s: tensor '%s' has dtype %s (convertible: BF16, F16, F32)", c->path,
                          t->name, raana_dtype_name(t->dtype));
    if (!half)
        return raana_container_read_dataset(c->file, dset, RAANA_ELEM_F32, out, t->numel, err);
    uint16_t *bits = raana_malloc(t->numel ? t->numel * sizeof *bits : 1);
    if (!bits)
        return raana_fail(err, RAANA_ERR_NOMEM, "out of memory reading %s", t->name);
    RAANA_CHECK(raana_container_read_dataset(c->file, dset, RAANA_ELEM_U16, bits, t->numel, err));
    for (uint64_t i = 0; i < t->numel; i++)
        out[i] =
            t->dtype == RAANA_DTYPE_BF16 ? raana_bf16_to_f32(bits[i]) : raana_f16_to_f32(bits[i]);
cleanup:
    free(bits);
    return st;
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
    raana_status st = RAANA_OK;
    char *text = NULL, label[4200];
    size_t len;
    RAANA_CHECK(raana_container_read_bytes(c->file, "/model/config.json", &text, &len, err));
    if (!text)
        RAANA_FAIL_GOTO(err, RAANA_ERR_INPUT, "%s: holds no /model/config.json", c->path);
    snprintf(label, sizeof label, "%s:/model/config.json", c->path);
    RAANA_CHECK(raana_model_config_parse(text, len, label, cfg, err));
cleanup:
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
    raana_status st = RAANA_OK;
    raana_model_config cfg;
    raana_tensor_entry *entries = NULL;
    memset(m, 0, sizeof *m);
    container_source *c = raana_calloc(1, sizeof *c);
    if (!c)
        return raana_fail(err, RAANA_ERR_NOMEM, "out of memory");
    RAANA_CHECK(raana_container_open_fapl(path, fapl, &c->file, err));
    c->path = raana_container_path(c->file);
    RAANA_CHECK(read_config(c, &cfg, err));
    RAANA_CHECK(layer_entries(c, err));
    RAANA_CHECK(tensor_entries(c, err));
    if (!(entries = raana_calloc(c->n ? c->n : 1, sizeof *entries)))
        RAANA_FAIL_GOTO(err, RAANA_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < c->n; i++)
        entries[i] = (raana_tensor_entry){c->tensors[i].name, 0, &c->tensors[i]};
    /* the model owns entries and c from here on, failing or not */
    return raana_model_open_source(m, path, &cfg, entries, c->n, &container_tensors, c, err);
cleanup:
    source_close(c);
    return st;
}
