/* model/checkpoint.c — opening a checkpoint directory: config.json, then
 * model.safetensors or model.safetensors.index.json and its shards; the
 * name -> (file, tensor) table; required-tensor checks; f32 reads with a
 * finiteness check (see model.h). A model may instead get its tensors from
 * a pluggable source (raana_model_open_source), read through the same
 * table and checks. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "raana/file.h"
#include "raana/model.h"

static int entry_by_name(const void *a, const void *b)
{
    return strcmp(((const raana_tensor_entry *)a)->name, ((const raana_tensor_entry *)b)->name);
}

static raana_status open_single(raana_model *m, const char *path, raana_error *err)
{
    m->files = calloc(1, sizeof *m->files);
    if (!m->files)
        return raana_fail(err, RAANA_ERR_NOMEM, "out of memory");
    raana_status st = raana_st_open(&m->files[0], path, err);
    if (st != RAANA_OK)
        return st;
    m->n_files = 1;
    raana_st_file *f = &m->files[0];
    m->entries = calloc(f->n_tensors ? f->n_tensors : 1, sizeof *m->entries);
    if (!m->entries)
        return raana_fail(err, RAANA_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < f->n_tensors; i++)
        m->entries[i] = (raana_tensor_entry){f->tensors[i].name, 0, &f->tensors[i]};
    m->n_entries = f->n_tensors; /* already sorted by name */
    return RAANA_OK;
}

/* Index of shard `name` in m->files, opening it on first use. */
static raana_status shard_index(raana_model *m, const char *index_path, const char *name, int *out,
                                raana_error *err)
{
    char path[sizeof m->dir + 256];
    for (int i = 0; i < m->n_files; i++) {
        const char *base = strrchr(m->files[i].path, '/');
        if (strcmp(base ? base + 1 : m->files[i].path, name) == 0)
            return *out = i, RAANA_OK;
    }
    if (strchr(name, '/') || name[0] == '\0')
        return raana_fail(err, RAANA_ERR_INPUT, "%s: shard name '%s' must be a plain file name",
                          index_path, name);
    snprintf(path, sizeof path, "%s/%s", m->dir, name);
    if (access(path, F_OK) != 0)
        return raana_fail(err, RAANA_ERR_INPUT, "%s: names shard '%s', which does not exist",
                          index_path, name);
    raana_status st = raana_st_open(&m->files[m->n_files], path, err);
    if (st != RAANA_OK)
        return st;
    *out = m->n_files++;
    return RAANA_OK;
}

static raana_status open_sharded(raana_model *m, const char *index_path, raana_error *err)
{
    char *text;
    size_t len;
    raana_status st = raana_read_file(index_path, &text, &len, err);
    if (st != RAANA_OK)
        return st;
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    const cJSON *map = root ? cJSON_GetObjectItemCaseSensitive(root, "weight_map") : NULL;
    if (!cJSON_IsObject(map)) {
        cJSON_Delete(root);
        return raana_fail(err, RAANA_ERR_INPUT, "%s: not JSON with a \"weight_map\" object",
                          index_path);
    }
    size_t n = (size_t)cJSON_GetArraySize(map);
    m->files = calloc(n ? n : 1, sizeof *m->files); /* at most one shard per tensor */
    m->entries = calloc(n ? n : 1, sizeof *m->entries);
    if (!m->files || !m->entries) {
        cJSON_Delete(root);
        return raana_fail(err, RAANA_ERR_NOMEM, "out of memory");
    }
    st = RAANA_OK;
    for (const cJSON *it = map->child; it && st == RAANA_OK; it = it->next) {
        int file;
        if (!cJSON_IsString(it)) {
            st = raana_fail(err, RAANA_ERR_INPUT, "%s: weight_map entry '%s' is not a file name",
                            index_path, it->string);
            break;
        }
        st = shard_index(m, index_path, it->valuestring, &file, err);
        if (st != RAANA_OK)
            break;
        const raana_st_tensor *t = raana_st_find(&m->files[file], it->string);
        if (!t) {
            st = raana_fail(err, RAANA_ERR_INPUT,
                            "%s: maps tensor '%s' to %s, which does not hold it", index_path,
                            it->string, it->valuestring);
            break;
        }
        m->entries[m->n_entries++] = (raana_tensor_entry){t->name, file, t};
    }
    cJSON_Delete(root);
    if (st != RAANA_OK)
        return st;
    qsort(m->entries, m->n_entries, sizeof *m->entries, entry_by_name);
    for (size_t i = 1; i < m->n_entries; i++)
        if (strcmp(m->entries[i - 1].name, m->entries[i].name) == 0)
            return raana_fail(err, RAANA_ERR_INPUT, "%s: tensor '%s' is listed twice", index_path,
                              m->entries[i].name);
    return RAANA_OK;
}

/* The file an entry lives in, for messages. */
static const char *entry_file(const raana_model *m, const raana_tensor_entry *e)
{
    return m->files ? m->files[e->file].path : m->tensor_source;
}

static raana_status check_required(const raana_model *m, raana_error *err)
{
    size_t n;
    raana_tensor_spec *spec = raana_model_required_tensors(&m->config, &n);
    if (!spec)
        return raana_fail(err, RAANA_ERR_NOMEM, "out of memory");
    raana_status st = RAANA_OK;
    for (size_t i = 0; i < n && st == RAANA_OK; i++) {
        const raana_tensor_entry *e = raana_model_find(m, spec[i].name);
        if (!e) {
            st = raana_fail(err, RAANA_ERR_INPUT, "%s: tensor '%s' is missing", m->tensor_source,
                            spec[i].name);
            break;
        }
        const raana_st_tensor *t = e->tensor;
        int shape_ok = t->ndim == spec[i].ndim;
        for (int d = 0; shape_ok && d < t->ndim; d++)
            shape_ok = t->shape[d] == spec[i].shape[d];
        if (!shape_ok) {
            char want[64], got[160];
            size_t used = 0;
            snprintf(want, sizeof want, spec[i].ndim == 2 ? "[%lld, %lld]" : "[%lld]",
                     (long long)spec[i].shape[0], (long long)spec[i].shape[1]);
            got[0] = '\0';
            for (int d = 0; d < t->ndim; d++)
                used += (size_t)snprintf(got + used, sizeof got - used, "%s%lld", d ? ", " : "",
                                         (long long)t->shape[d]);
            st = raana_fail(err, RAANA_ERR_INPUT,
                            "%s: tensor '%s' has shape [%s], config.json implies %s",
                            entry_file(m, e), spec[i].name, got, want);
        } else if (t->dtype != RAANA_DTYPE_F32 && t->dtype != RAANA_DTYPE_F16 &&
                   t->dtype != RAANA_DTYPE_BF16) {
            st = raana_fail(err, RAANA_ERR_UNSUPPORTED,
                            "%s: tensor '%s' has dtype %s (supported: BF16, F16, F32)",
                            entry_file(m, e), spec[i].name, raana_dtype_name(t->dtype));
        }
    }
    free(spec);
    return st;
}

/* Every tensor is copied into the container under /tensors/NAME, so a name
 * must be a valid HDF5 link name: 1 to RAANA_TENSOR_NAME_MAX bytes, no '/',
 * not "." or "..". Checked at open, not minutes later when writing. */
static raana_status check_tensor_names(const raana_model *m, raana_error *err)
{
    for (size_t i = 0; i < m->n_entries; i++) {
        const char *name = m->entries[i].name;
        size_t n = strlen(name);
        const char *why = n == 0                                              ? "is empty"
                          : n > RAANA_TENSOR_NAME_MAX                         ? "is too long"
                          : strchr(name, '/')                                 ? "contains '/'"
                          : strcmp(name, ".") == 0 || strcmp(name, "..") == 0 ? "is a dot name"
                                                                              : NULL;
        if (why)
            return raana_fail(err, RAANA_ERR_INPUT,
                              "%s: tensor name '%.*s' %s (a name must be 1 to %d bytes, without "
                              "'/', and not '.' or '..')",
                              m->files[m->entries[i].file].path, 200, name, why,
                              RAANA_TENSOR_NAME_MAX);
    }
    return RAANA_OK;
}

static raana_status read_config(raana_model *m, raana_error *err)
{
    char path[sizeof m->dir + 32], *text;
    size_t len;
    snprintf(path, sizeof path, "%s/config.json", m->dir);
    raana_status st = raana_read_file(path, &text, &len, err);
    if (st != RAANA_OK)
        return raana_error_restatus(err, RAANA_ERR_INPUT);
    st = raana_model_config_parse(text, len, path, &m->config, err);
    free(text);
    return st;
}

raana_status raana_model_open(raana_model *m, const char *dir, raana_error *err)
{
    memset(m, 0, sizeof *m);
    if (snprintf(m->dir, sizeof m->dir, "%s", dir) >= (int)sizeof m->dir)
        return raana_fail(err, RAANA_ERR_INPUT, "model path too long: %s", dir);
    raana_status st = read_config(m, err);
    if (st != RAANA_OK)
        return st;
    snprintf(m->tensor_source, sizeof m->tensor_source, "%s/model.safetensors.index.json", dir);
    if (access(m->tensor_source, F_OK) == 0) {
        st = open_sharded(m, m->tensor_source, err);
    } else {
        snprintf(m->tensor_source, sizeof m->tensor_source, "%s/model.safetensors", dir);
        if (access(m->tensor_source, F_OK) != 0)
            st = raana_fail(err, RAANA_ERR_INPUT,
                            "%s: no model.safetensors or model.safetensors.index.json", dir);
        else
            st = open_single(m, m->tensor_source, err);
    }
    if (st == RAANA_OK)
        st = check_tensor_names(m, err);
    if (st == RAANA_OK)
        st = check_required(m, err);
    if (st != RAANA_OK)
        raana_model_close(m);
    return st;
}

raana_status raana_model_open_source(raana_model *m, const char *label,
                                     const raana_model_config *cfg, raana_tensor_entry *entries,
                                     size_t n, const raana_tensor_source *source, void *ctx,
                                     raana_error *err)
{
    memset(m, 0, sizeof *m);
    m->entries = entries;
    m->n_entries = n;
    m->source = source;
    m->source_ctx = ctx;
    m->config = *cfg;
    snprintf(m->dir, sizeof m->dir, "%s", label);
    snprintf(m->tensor_source, sizeof m->tensor_source, "%s", label);
    qsort(m->entries, m->n_entries, sizeof *m->entries, entry_by_name);
    raana_status st = RAANA_OK;
    for (size_t i = 1; i < m->n_entries && st == RAANA_OK; i++)
        if (strcmp(m->entries[i - 1].name, m->entries[i].name) == 0)
            st = raana_fail(err, RAANA_ERR_INPUT, "%s: tensor '%s' is there twice", label,
                            m->entries[i].name);
    if (st == RAANA_OK)
        st = check_required(m, err);
    if (st != RAANA_OK)
        raana_model_close(m);
    return st;
}

void raana_model_close(raana_model *m)
{
    if (m->source && m->source->close)
        m->source->close(m->source_ctx);
    m->source = NULL;
    m->source_ctx = NULL;
    for (int i = 0; i < m->n_files; i++)
        raana_st_close(&m->files[i]);
    free(m->files);
    free(m->entries);
    m->files = NULL;
    m->entries = NULL;
    m->n_files = 0;
    m->n_entries = 0;
}

const raana_tensor_entry *raana_model_find(const raana_model *m, const char *name)
{
    raana_tensor_entry key = {name, 0, NULL};
    return bsearch(&key, m->entries, m->n_entries, sizeof key, entry_by_name);
}

raana_status raana_model_read_f32(const raana_model *m, const char *name, float *out, size_t count,
                                  raana_error *err)
{
    const raana_tensor_entry *e = raana_model_find(m, name);
    if (!e)
        return raana_fail(err, RAANA_ERR_INPUT, "%s: tensor '%s' is missing", m->tensor_source,
                          name);
    const char *path = entry_file(m, e);
    if (e->tensor->numel != count)
        return RAANA_INTERNAL(err, "%s: tensor '%s' has %llu values, caller expected %zu", path,
                              name, (unsigned long long)e->tensor->numel, count);
    raana_status st = m->source ? m->source->read_f32(m->source_ctx, e, out, err)
                                : raana_st_read_f32(&m->files[e->file], e->tensor, out, err);
    if (!m->source) /* converted: its mapped pages leave the resident set */
        raana_st_release(&m->files[e->file], e->tensor);
    if (st != RAANA_OK)
        return st;
    for (size_t i = 0; i < count; i++)
        if (!isfinite(out[i]))
            return raana_fail(err, RAANA_ERR_NUMERIC, "%s: tensor '%s' holds %s at flat index %zu",
                              path, name, isnan(out[i]) ? "NaN" : "an infinite value", i);
    return RAANA_OK;
}
