/* container.c — the container schema and its collective writing and
 * verification (see container.h and docs/FORMAT.md). */
#include "raana/container.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "raana/comm.h"
#include "raana/file.h"
#include "raana/bitpack.h"
#include "raana/h5file.h"
#include "raana/h5zstd.h"
#include "raana/hadamard.h"
#include "raana/qlayer.h"
#include "raana/joblog.h"
#include "raana/rng.h"

const char *const raana_stage_names[RAANA_STAGE_COUNT] = {"plan",     "load",     "calibrate",
                                                          "allocate", "quantize", "write"};

/* Model files copied into /model when present, in this order. */
static const char *const model_files[] = {"config.json",          "generation_config.json",
                                          "tokenizer.json",       "tokenizer_config.json",
                                          "special_tokens_map.json", "tokenizer.model"};
#define N_MODEL_FILES (sizeof model_files / sizeof model_files[0])


static int is_quantized_weight(const raana_plan *plan, const char *tensor)
{
    size_t n = strlen(tensor);
    if (n < 7 || strcmp(tensor + n - 7, ".weight") != 0)
        return 0;
    for (int i = 0; i < plan->n_layers; i++)
        if (plan->layers[i].quantize && strlen(plan->layers[i].name) == n - 7 &&
            strncmp(plan->layers[i].name, tensor, n - 7) == 0)
            return 1;
    return 0;
}

/* ---- /  /model  /config.ini ---------------------------------------------------- */

static raana_status write_root(raana_h5 *h, const raana_container_content *c, raana_error *err)
{
    RAANA_CALL(raana_h5_attr_str(h, "/", "format", RAANA_FORMAT_NAME, err));
    RAANA_CALL(raana_h5_attr_i64(h, "/", "format_version", RAANA_FORMAT_VERSION, err));
    RAANA_CALL(raana_h5_attr_str(h, "/", "rng", RAANA_RNG_ID, err));
    RAANA_CALL(raana_h5_attr_str(h, "/", "model_type", c->stage->model.config.model_type, err));
    char fp[32];
    snprintf(fp, sizeof fp, "%016llx", (unsigned long long)c->fingerprints->checkpoint);
    RAANA_CALL(raana_h5_attr_str(h, "/", "checkpoint_fingerprint", fp, err));
    return RAANA_OK;
}

static raana_status write_model_files(raana_h5 *h, const raana_container_content *c,
                                      raana_error *err)
{
    RAANA_CALL(raana_h5_group(h, "/model", err));
    for (size_t i = 0; i < N_MODEL_FILES; i++) {
        char path[4400], *data = NULL;
        size_t len = 0;
        int present = 0;
        if (h->rank == 0) {
            snprintf(path, sizeof path, "%s/%s", c->stage->model.dir, model_files[i]);
            present = access(path, R_OK) == 0;
        }
        MPI_Bcast(&present, 1, MPI_INT, 0, h->comm);
        if (!present)
            continue;
        raana_status st = h->rank == 0 ? raana_read_file(path, &data, &len, err) : RAANA_OK;
        st = raana_comm_agree(h->comm, st, err);
        snprintf(path, sizeof path, "/model/%s", model_files[i]);
        if (st == RAANA_OK)
            st = raana_h5_blob(h, path, 0, data, len, err);
        free(data);
        RAANA_CALL(st);
    }
    return RAANA_OK;
}

/* The configuration without [calibration] statistics: reused statistics
 * give the same container as calibrating in the job, so where they came
 * from is recorded in /provenance only. */
static char *config_text(const raana_config *cfg, size_t *len)
{
    char *text = NULL;
    raana_config *copy = malloc(sizeof *copy);
    FILE *f = copy ? open_memstream(&text, len) : NULL;
    if (f) {
        *copy = *cfg;
        copy->statistics[0] = '\0';
        raana_config_write(f, copy);
        fclose(f);
    }
    free(copy);
    return text;
}

static raana_status write_config(raana_h5 *h, const raana_container_content *c, raana_error *err)
{
    char *text = NULL;
    size_t len = 0;
    if (h->rank == 0)
        text = config_text(c->cfg, &len);
    raana_status st = raana_comm_agree(
        h->comm, h->rank == 0 && !text ? raana_fail(err, RAANA_ERR_NOMEM, "out of memory") : RAANA_OK,
        err);
    if (st == RAANA_OK)
        st = raana_h5_blob(h, "/config.ini", 0, text, len, err);
    free(text);
    return st;
}

/* ---- /calibration  /allocation ------------------------------------------------ */

static raana_status write_calibration(raana_h5 *h, const raana_container_content *c,
                                      raana_error *err)
{
    const raana_windows *w = &c->stage->windows;
    char fp[32];
    snprintf(fp, sizeof fp, "%016llx", (unsigned long long)c->calibration_fingerprint);
    RAANA_CALL(raana_h5_group(h, "/calibration", err));
    RAANA_CALL(raana_h5_attr_f64(h, "/calibration", "loss", &c->loss, 1, err));
    RAANA_CALL(raana_h5_attr_str(h, "/calibration", "source",
                          raana_calib_source_name(c->cfg->calib_source), err));
    RAANA_CALL(raana_h5_attr_str(h, "/calibration", "fingerprint", fp, err));
    hsize_t dims[2] = {(hsize_t)w->n, (hsize_t)w->len};
    return raana_h5_dataset_deflate(h, "/calibration/tokens", H5T_NATIVE_INT32, 2, dims, 0,
                                    w->tokens, err);
}

/* One column of the allocation table: value(i) for every plan layer. */
static raana_status write_column(raana_h5 *h, const char *name, int n, hid_t type,
                                 const void *values, raana_error *err)
{
    char path[128];
    hsize_t dims[1] = {(hsize_t)n};
    snprintf(path, sizeof path, "/allocation/%s", name);
    return raana_h5_dataset_deflate(h, path, type, 1, dims, 0, values, err);
}

enum { C_BITS, C_COEF, C_GRAD, C_XRMS, C_XFRO, C_YFRO, C_DYFRO, C_WFRO, C_REL, C_COS, C_EFF,
       N_COLS };
static const char *const column_names[N_COLS] = {
    "bits",  "coef",  "grad_rms", "x_rms",     "x_fro",      "y_fro",
    "dy_fro", "w_fro", "rel_error", "mean_cosine", "effective_bits"};

static void fill_columns(const raana_container_content *c, double *col, int *ints, char *names)
{
    const raana_plan *p = &c->stage->plan;
    int n = p->n_layers;
    for (int i = 0; i < n; i++) {
        const raana_layer_stats *s = &c->stats[i];
        const raana_layer_summary *q = &c->quantized->summary[i];
        double row[N_COLS] = {c->alloc->bits[i], c->alloc->coef[i], s->grad_rms, s->x_rms,
                              s->x_fro,          s->y_fro,          s->dy_fro,   c->alloc->w_fro[i],
                              q->rel_error,      q->mean_cosine,    q->effective_bits};
        for (int k = 0; k < N_COLS; k++)
            col[(size_t)k * n + i] = row[k];
        ints[i] = p->layers[i].d_in, ints[n + i] = p->layers[i].d_out;
        ints[2 * n + i] = p->layers[i].quantize;
        size_t width = sizeof p->layers[i].name;
        memcpy(names + (size_t)i * width, p->layers[i].name, strnlen(p->layers[i].name, width));
    }
}

static raana_status allocation_attrs(raana_h5 *h, const raana_container_content *c,
                                     raana_error *err)
{
    const raana_alloc_result *r = &c->alloc->result;
    const char *g = "/allocation";
    RAANA_CALL(raana_h5_attr_f64(h, g, "avg_bits", &c->cfg->avg_bits, 1, err));
    RAANA_CALL(raana_h5_attr_f64(h, g, "candidates", c->cfg->bits, c->cfg->n_bits, err));
    RAANA_CALL(raana_h5_attr_f64(h, g, "achieved_avg_bits", &r->achieved_avg_bits, 1, err));
    RAANA_CALL(raana_h5_attr_f64(h, g, "modelled_error", &r->cost, 1, err));
    RAANA_CALL(raana_h5_attr_f64(h, g, "lower_bound", &r->lower_bound, 1, err));
    return raana_h5_attr_str(h, g, "method",
                             r->method == RAANA_ALLOC_EXACT_DP ? "exact-dp" : "lagrangian", err);
}

static raana_status write_allocation(raana_h5 *h, const raana_container_content *c,
                                     raana_error *err)
{
    int n = c->stage->plan.n_layers;
    size_t name_len = sizeof c->stage->plan.layers[0].name;
    double *col = calloc((size_t)n * N_COLS, sizeof *col);
    int *ints = calloc((size_t)n * 3, sizeof *ints);
    char *names = calloc((size_t)n, name_len);
    raana_status st = col && ints && names ? RAANA_OK
                                           : raana_fail(err, RAANA_ERR_NOMEM, "out of memory");
    st = raana_comm_agree(h->comm, st, err);
    if (st == RAANA_OK) {
        fill_columns(c, col, ints, names);
        st = raana_h5_group(h, "/allocation", err);
    }
    if (st == RAANA_OK)
        st = allocation_attrs(h, c, err);
    hid_t str = H5Tcopy(H5T_C_S1);
    H5Tset_size(str, name_len);
    H5Tset_strpad(str, H5T_STR_NULLPAD);
    if (st == RAANA_OK)
        st = write_column(h, "name", n, str, names, err);
    H5Tclose(str);
    const char *int_names[3] = {"d_in", "d_out", "quantized"};
    for (int k = 0; k < 3 && st == RAANA_OK; k++)
        st = write_column(h, int_names[k], n, H5T_NATIVE_INT, ints + (size_t)k * n, err);
    for (int k = 0; k < N_COLS && st == RAANA_OK; k++)
        st = write_column(h, column_names[k], n, H5T_NATIVE_DOUBLE, col + (size_t)k * n, err);
    free(col), free(ints), free(names);
    return st;
}

/* ---- /layers ------------------------------------------------------------------- */

/* signs[2][ceil(d/8)]: bit i (LSB first) of row r set when s_{r+1}[i] = -1. */
static uint8_t *pack_signs(const raana_rotation *rot)
{
    size_t row = ((size_t)rot->d + 7) / 8;
    uint8_t *out = calloc(2 * row, 1);
    for (int i = 0; out && i < rot->d; i++) {
        if (rot->s1[i] < 0)
            out[i / 8] |= (uint8_t)(1u << (i % 8));
        if (rot->s2[i] < 0)
            out[row + i / 8] |= (uint8_t)(1u << (i % 8));
    }
    return out;
}

static raana_status layer_attrs(raana_h5 *h, const char *g, const raana_container_content *c,
                                int i, raana_error *err)
{
    const raana_plan_layer *l = &c->stage->plan.layers[i];
    const raana_layer_summary *s = &c->quantized->summary[i];
    char tricks[64];
    raana_tricks_format(c->cfg->tricks, tricks, sizeof tricks);
    const int64_t ints[] = {l->d_in,   l->d_out, s->code_bits, s->n_kept,
                            s->m_a,    s->m_b,   s->n_held,    raana_pow2_floor(l->d_in),
                            (int64_t)s->packed_bytes};
    const char *names[] = {"d_in", "d_out", "code_bits", "n_kept",      "m_a",
                           "m_b",  "n_held", "rotation_k", "packed_bytes"};
    for (size_t k = 0; k < sizeof ints / sizeof ints[0]; k++)
        RAANA_CALL(raana_h5_attr_i64(h, g, names[k], ints[k], err));
    RAANA_CALL(raana_h5_attr_f64(h, g, "bits", &c->alloc->bits[i], 1, err));
    RAANA_CALL(raana_h5_attr_str(h, g, "tricks", tricks, err));
    RAANA_CALL(raana_h5_attr_u64(h, g, "key", raana_rng_layer_key(c->cfg->seed, l->name), err));
    RAANA_CALL(raana_h5_attr_f64(h, g, "coef", &c->alloc->coef[i], 1, err));
    RAANA_CALL(raana_h5_attr_f64(h, g, "rel_error", &s->rel_error, 1, err));
    RAANA_CALL(raana_h5_attr_f64(h, g, "mean_cosine", &s->mean_cosine, 1, err));
    return raana_h5_attr_f64(h, g, "effective_bits", &s->effective_bits, 1, err);
}

static raana_status layer_dataset(raana_h5 *h, const char *g, const char *name, hid_t type,
                                  int ndim, hsize_t d0, hsize_t d1, int writer, const void *data,
                                  raana_error *err)
{
    char path[300];
    hsize_t dims[2] = {d0, d1};
    snprintf(path, sizeof path, "%s/%s", g, name);
    return raana_h5_dataset(h, path, type, ndim, dims, writer, data, err);
}

static raana_status write_layer(raana_h5 *h, const raana_container_content *c, int i,
                                raana_error *err)
{
    const raana_plan_layer *l = &c->stage->plan.layers[i];
    const raana_layer_summary *s = &c->quantized->summary[i];
    const raana_qlayer *q = c->quantized->layers[i];
    int writer = raana_plan_block_owner(&c->stage->plan, l->block);
    char g[200];
    snprintf(g, sizeof g, "/layers/%s", l->name);
    uint8_t *signs = q ? pack_signs(&q->rot) : NULL;
    raana_status st = raana_comm_agree(
        h->comm, q && !signs ? raana_fail(err, RAANA_ERR_NOMEM, "out of memory") : RAANA_OK,
        err);
    if (st == RAANA_OK)
        st = raana_h5_group(h, g, err);
    if (st == RAANA_OK)
        st = layer_attrs(h, g, c, i, err);
    hsize_t d_in = (hsize_t)l->d_in, d_out = (hsize_t)l->d_out;
    if (st == RAANA_OK)
        st = layer_dataset(h, g, "codes", H5T_NATIVE_UINT8, 2, d_out, s->packed_bytes, writer,
                           q ? q->packed : NULL, err);
    if (st == RAANA_OK)
        st = layer_dataset(h, g, "rescale", H5T_NATIVE_FLOAT, 1, d_out, 0, writer,
                           q ? q->rescale : NULL, err);
    if (st == RAANA_OK)
        st = layer_dataset(h, g, "signs", H5T_NATIVE_UINT8, 2, 2, (d_in + 7) / 8, writer, signs,
                           err);
    if (st == RAANA_OK && (c->cfg->tricks & RAANA_TRICK_CENTRALIZE))
        st = layer_dataset(h, g, "mu", H5T_NATIVE_FLOAT, 1, d_in, 0, writer, q ? q->mu : NULL,
                           err);
    if (st == RAANA_OK && (c->cfg->tricks & RAANA_TRICK_NORM_ROW))
        st = layer_dataset(h, g, "row_scale", H5T_NATIVE_FLOAT, 1, d_in, 0, writer,
                           q ? q->row_scale : NULL, err);
    if (st == RAANA_OK)
        st = layer_dataset(h, g, "held_cols", H5T_NATIVE_INT32, 1, (hsize_t)s->n_held, 0, writer,
                           q ? q->held_cols : NULL, err);
    if (st == RAANA_OK)
        st = layer_dataset(h, g, "held_values", H5T_NATIVE_FLOAT, 2, (hsize_t)s->n_held, d_in,
                           writer, q ? q->held_values : NULL, err);
    free(signs);
    if (st != RAANA_OK)
        raana_error_prefix(err, "layer %s", l->name);
    return st;
}

/* ---- /tensors ------------------------------------------------------------------ */

static hid_t tensor_type(raana_dtype d)
{
    switch (d) {
    case RAANA_DTYPE_F32: return H5T_NATIVE_FLOAT;
    case RAANA_DTYPE_F64: return H5T_NATIVE_DOUBLE;
    case RAANA_DTYPE_F16:
    case RAANA_DTYPE_BF16: return H5T_NATIVE_UINT16; /* raw bits; attribute dtype says which */
    case RAANA_DTYPE_I16: return H5T_NATIVE_INT16;
    case RAANA_DTYPE_I64: return H5T_NATIVE_INT64;
    case RAANA_DTYPE_I32: return H5T_NATIVE_INT32;
    case RAANA_DTYPE_I8: return H5T_NATIVE_INT8;
    default: return H5T_NATIVE_UINT8; /* U8, BOOL, F8: raw bytes */
    }
}

static raana_status write_tensor(raana_h5 *h, const raana_container_content *c,
                                 const raana_tensor_entry *e, raana_error *err)
{
    const raana_st_tensor *t = e->tensor;
    const raana_model *m = &c->stage->model;
    int writer = raana_tensor_owner(&c->stage->plan, e->name);
    hsize_t dims[RAANA_MAX_DIMS] = {1};
    int ndim = t->ndim > 0 ? t->ndim : 1;
    for (int d = 0; d < t->ndim; d++)
        dims[d] = (hsize_t)t->shape[d];
    char path[300];
    snprintf(path, sizeof path, "/tensors/%s", e->name);
    RAANA_CALL(raana_h5_dataset(h, path, tensor_type(t->dtype), ndim, dims, writer,
                         m->files[e->file].data + t->begin, err));
    return raana_h5_attr_str(h, path, "dtype", raana_dtype_name(t->dtype), err);
}

/* ---- /report  /provenance ------------------------------------------------------ */

static raana_status write_report(raana_h5 *h, const raana_container_content *c, raana_error *err)
{
    RAANA_CALL(raana_h5_group(h, "/report", err));
    RAANA_CALL(raana_h5_attr_f64(h, "/report", "effective_bits_quantized", &c->bits.quantized, 1, err));
    RAANA_CALL(raana_h5_attr_f64(h, "/report", "effective_bits_model", &c->bits.model, 1, err));
    RAANA_CALL(raana_h5_attr_f64(h, "/report", "achieved_avg_bits", &c->bits.codes_only, 1, err));
    RAANA_CALL(raana_h5_attr_f64(h, "/report", "target_avg_bits", &c->cfg->avg_bits, 1, err));
    return raana_h5_blob(h, "/report/table", 0, c->table, c->table ? strlen(c->table) : 0, err);
}

static raana_status write_provenance(raana_h5 *h, const raana_container_content *c,
                                     raana_error *err)
{
    char date[64] = "", host[256] = "";
    int n_ranks;
    MPI_Comm_size(h->comm, &n_ranks);
    if (h->rank == 0) {
        time_t now = time(NULL);
        struct tm tm;
        strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
        gethostname(host, sizeof host - 1);
    }
    MPI_Bcast(date, sizeof date, MPI_CHAR, 0, h->comm);
    MPI_Bcast(host, sizeof host, MPI_CHAR, 0, h->comm);
    const char *g = "/provenance";
    RAANA_CALL(raana_h5_group(h, g, err));
    RAANA_CALL(raana_h5_attr_str(h, g, "raana_version", RAANA_VERSION, err));
    RAANA_CALL(raana_h5_attr_str(h, g, "created", date, err));
    RAANA_CALL(raana_h5_attr_str(h, g, "host", host, err));
    RAANA_CALL(raana_h5_attr_str(h, g, "command", c->command_line ? c->command_line : "", err));
    RAANA_CALL(raana_h5_attr_i64(h, g, "n_ranks", n_ranks, err));
    RAANA_CALL(raana_h5_attr_i64(h, g, "threads_per_rank", raana_quantize_threads(c->cfg), err));
    RAANA_CALL(raana_h5_attr_u64(h, g, "seed", c->cfg->seed, err));
    RAANA_CALL(raana_h5_attr_i64(h, g, "layers_resumed", c->quantized->reused, err));
    RAANA_CALL(raana_h5_attr_i64(h, g, "calibration_resumed", c->resumed_calibration, err));
    RAANA_CALL(raana_h5_attr_str(h, g, "calibration_statistics", c->cfg->statistics, err));
    for (int s = 0; s < RAANA_STAGE_COUNT; s++) {
        char name[64];
        snprintf(name, sizeof name, "seconds_%s", raana_stage_names[s]);
        RAANA_CALL(raana_h5_attr_f64(h, g, name, &c->seconds[s], 1, err));
    }
    return RAANA_OK;
}

/* ---- the whole file ------------------------------------------------------------ */

static raana_status write_contents(raana_h5 *h, raana_container_content *c, raana_error *err)
{
    const raana_plan *p = &c->stage->plan;
    const raana_model *m = &c->stage->model;
    double t0 = MPI_Wtime();
    RAANA_CALL(write_root(h, c, err));
    RAANA_CALL(write_model_files(h, c, err));
    RAANA_CALL(write_config(h, c, err));
    RAANA_CALL(write_calibration(h, c, err));
    RAANA_CALL(write_allocation(h, c, err));
    RAANA_CALL(raana_h5_group(h, "/layers", err));
    int n_quantized = 0, written = 0;
    for (int i = 0; i < p->n_layers; i++)
        n_quantized += p->layers[i].quantize;
    for (int i = 0; i < p->n_layers; i++) {
        if (!p->layers[i].quantize)
            continue;
        RAANA_CALL(write_layer(h, c, i, err));
        if (c->progress && h->rank == 0) {
            double elapsed = MPI_Wtime() - t0;
            written++;
            raana_log_progress(c->progress, "write", p->layers[i].name, written, n_quantized,
                               "layers", elapsed, raana_log_eta(written, n_quantized, elapsed));
        }
    }
    RAANA_CALL(raana_h5_group(h, "/tensors", err));
    for (size_t i = 0; i < m->n_entries; i++)
        if (!is_quantized_weight(p, m->entries[i].name))
            RAANA_CALL(write_tensor(h, c, &m->entries[i], err));
    RAANA_CALL(write_report(h, c, err));
    double mine = MPI_Wtime() - t0;
    MPI_Allreduce(&mine, &c->seconds[RAANA_STAGE_WRITE], 1, MPI_DOUBLE, MPI_MAX, h->comm);
    return write_provenance(h, c, err);
}

raana_status raana_container_write(MPI_Comm comm, const char *path,
                                   raana_container_content *c, raana_error *err)
{
    raana_h5 h;
    raana_status st = raana_h5_open_write(&h, comm, path, c->cfg->zstd_level, err);
    if (st != RAANA_OK)
        return st;
    st = write_contents(&h, c, err);
    if (st != RAANA_OK) {
        raana_h5_abandon(&h); /* see h5file.h; the caller removes the file */
        return st;
    }
    return raana_comm_agree(comm, raana_h5_close(&h, err), err);
}

/* ---- verification -------------------------------------------------------------- */

/* Reads dataset path (n elements of native type) back and compares its
 * bytes with what was written. */
static raana_status verify_dataset(raana_h5 *h, const char *path, hid_t type, const void *expect,
                                   size_t n, raana_error *err)
{
    size_t bytes = n * H5Tget_size(type);
    uint8_t *got = malloc(bytes ? bytes : 1);
    if (!got)
        return raana_fail(err, RAANA_ERR_NOMEM, "out of memory verifying %s", path);
    raana_status st = raana_h5_read(h, path, type, got, n, err);
    if (st == RAANA_OK && bytes && memcmp(got, expect, bytes) != 0)
        st = raana_fail(err, RAANA_ERR_IO, "%s: %s reads back different from what was written",
                        h->path, path);
    free(got);
    return st;
}

static raana_status verify_own(raana_h5 *h, const raana_container_content *c, raana_error *err)
{
    const raana_plan *p = &c->stage->plan;
    const raana_model *m = &c->stage->model;
    char path[300];
    for (int i = 0; i < p->n_layers; i++) {
        const raana_qlayer *q = c->quantized->layers[i];
        if (!q)
            continue;
        snprintf(path, sizeof path, "/layers/%s/codes", p->layers[i].name);
        RAANA_CALL(verify_dataset(h, path, H5T_NATIVE_UINT8, q->packed,
                           q->packed_bytes * (size_t)q->d_out, err));
        snprintf(path, sizeof path, "/layers/%s/rescale", p->layers[i].name);
        RAANA_CALL(verify_dataset(h, path, H5T_NATIVE_FLOAT, q->rescale, (size_t)q->d_out, err));
    }
    for (size_t i = 0; i < m->n_entries; i++) {
        const raana_tensor_entry *e = &m->entries[i];
        if (is_quantized_weight(p, e->name) || raana_tensor_owner(p, e->name) != h->rank)
            continue;
        snprintf(path, sizeof path, "/tensors/%s", e->name);
        RAANA_CALL(verify_dataset(h, path, tensor_type(e->tensor->dtype),
                           m->files[e->file].data + e->tensor->begin, (size_t)e->tensor->numel,
                           err));
    }
    return RAANA_OK;
}

raana_status raana_container_verify(MPI_Comm comm, const char *path,
                                    const raana_container_content *c, raana_error *err)
{
    raana_h5 h;
    raana_status st = raana_h5_open_read(&h, comm, path, err);
    if (st != RAANA_OK)
        return st;
    st = raana_comm_agree(comm, verify_own(&h, c, err), err);
    raana_error ignored;
    raana_h5_close(&h, &ignored);
    return st;
}

void raana_container_count_bits(raana_container_content *c)
{
    const raana_plan *p = &c->stage->plan;
    const raana_model *m = &c->stage->model;
    double qbits = 0, qweights = 0, all_bits = 0, all_params = 0;
    for (int i = 0; i < p->n_layers; i++)
        if (p->layers[i].quantize) {
            double n = (double)p->layers[i].d_in * p->layers[i].d_out;
            qbits += c->quantized->summary[i].effective_bits * n;
            qweights += n;
        }
    for (size_t i = 0; i < m->n_entries; i++) {
        const raana_st_tensor *t = m->entries[i].tensor;
        all_params += (double)t->numel;
        if (!is_quantized_weight(p, m->entries[i].name))
            all_bits += 8.0 * (double)(t->end - t->begin);
    }
    c->bits.quantized = qweights > 0 ? qbits / qweights : 0;
    c->bits.model = all_params > 0 ? (qbits + all_bits) / all_params : 0;
    c->bits.codes_only = c->alloc->result.achieved_avg_bits;
}

/* ---- reading ------------------------------------------------------------------- */

static int read_attr(hid_t file, const char *obj, const char *name, hid_t type, void *out)
{
    hid_t a = H5Aopen_by_name(file, obj, name, H5P_DEFAULT, H5P_DEFAULT);
    int ok = a >= 0 && H5Aread(a, type, out) >= 0;
    if (a >= 0)
        H5Aclose(a);
    return ok;
}

static int read_attr_text(hid_t file, const char *obj, const char *name, char *out, size_t size)
{
    hid_t a = H5Aopen_by_name(file, obj, name, H5P_DEFAULT, H5P_DEFAULT);
    hid_t t = a >= 0 ? H5Aget_type(a) : H5I_INVALID_HID;
    size_t n = t >= 0 ? H5Tget_size(t) : 0;
    int ok = t >= 0 && H5Tget_class(t) == H5T_STRING && n < size && H5Aread(a, t, out) >= 0;
    if (ok)
        out[n] = '\0';
    if (t >= 0)
        H5Tclose(t);
    if (a >= 0)
        H5Aclose(a);
    return ok;
}

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

raana_status raana_container_open(const char *path, hid_t *file, raana_error *err)
{
    return raana_container_open_fapl(path, H5P_DEFAULT, file, err);
}

raana_status raana_container_open_fapl(const char *path, hid_t fapl, hid_t *file, raana_error *err)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    raana_status st = raana_h5zstd_register(err);
    if (st != RAANA_OK)
        return st;
    *file = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    if (*file < 0)
        return open_failure(path, err);
    char format[64];
    int64_t version = 0;
    if (!read_attr_text(*file, "/", "format", format, sizeof format) ||
        strcmp(format, RAANA_FORMAT_NAME) != 0 ||
        !read_attr(*file, "/", "format_version", H5T_NATIVE_INT64, &version))
        st = raana_fail(err, RAANA_ERR_INPUT, "%s: not a raana container (no format attribute)",
                        path);
    else if (version != RAANA_FORMAT_VERSION)
        st = raana_fail(err, RAANA_ERR_UNSUPPORTED,
                        "%s: container format version %lld; this raana reads version %d", path,
                        (long long)version, RAANA_FORMAT_VERSION);
    if (st != RAANA_OK) {
        H5Fclose(*file);
        *file = H5I_INVALID_HID;
    }
    return st;
}

raana_status raana_container_dataset_fits(hid_t d, const char *path, const char *name,
                                          raana_error *err)
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
    if (dcpl >= 0)
        H5Pclose(dcpl);
    if (type >= 0)
        H5Tclose(type);
    if (space >= 0)
        H5Sclose(space);
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

/* *out = the n elements (native type) of dataset `ds`, malloc'd, or a
 * failure naming it. */
static raana_status read_array(hid_t file, const char *path, const char *ds, hid_t type, size_t d0,
                               size_t d1, void **out, raana_error *err)
{
    size_t n = d0 * (d1 ? d1 : 1);
    *out = NULL;
    hid_t d =
        H5Lexists(file, ds, H5P_DEFAULT) > 0 ? H5Dopen2(file, ds, H5P_DEFAULT) : H5I_INVALID_HID;
    if (d < 0)
        return raana_fail(err, RAANA_ERR_INPUT, "%s: %s is missing", path, ds);
    hid_t space = H5Dget_space(d);
    hsize_t dims[H5S_MAX_RANK] = {0, 0};
    int ndim = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
    if (ndim < 0 || ndim > 2 || H5Sget_simple_extent_dims(space, dims, NULL) != ndim)
        ndim = -1;
    if (space >= 0)
        H5Sclose(space);
    raana_status st = RAANA_OK;
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
        st =
            raana_fail(err, RAANA_ERR_INPUT, "%s: %s has shape %s, the layer's attributes imply %s",
                       path, ds, got, want);
    } else
        st = raana_container_dataset_fits(d, path, ds, err);
    if (st == RAANA_OK && !(*out = malloc(n ? n * H5Tget_size(type) : 1)))
        st = raana_fail(err, RAANA_ERR_NOMEM, "out of memory reading %s (%zu values)", ds, n);
    else if (st == RAANA_OK && n && H5Dread(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, *out) < 0)
        st = raana_fail(err, RAANA_ERR_INPUT,
                        "%s: %s: missing, of the wrong size, or unreadable (a chunk fails its "
                        "checksum or does not decompress)",
                        path, ds);
    H5Dclose(d);
    if (st != RAANA_OK) {
        free(*out);
        *out = NULL;
    }
    return st;
}

/* Dataset g/name of shape [d0] (d1 == 0) or [d0][d1]. */
static raana_status read_dataset(hid_t file, const char *path, const char *g, const char *name,
                                 hid_t type, size_t d0, size_t d1, void **out, raana_error *err)
{
    char ds[300];
    snprintf(ds, sizeof ds, "%s/%s", g, name);
    return read_array(file, path, ds, type, d0, d1, out, err);
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
    uint8_t *seen = calloc((size_t)q->d_out, 1);
    if (!seen)
        return raana_fail(err, RAANA_ERR_NOMEM, "out of memory");
    raana_status st = RAANA_OK;
    for (int h = 0; h < q->n_held && st == RAANA_OK; h++) {
        int c = q->held_cols[h];
        if (c < 0 || c >= q->d_out)
            st = raana_fail(err, RAANA_ERR_INPUT, "%s: %s/held_cols: column %d out of range", path,
                            g, c);
        else if (seen[c]++)
            st = raana_fail(err, RAANA_ERR_INPUT, "%s: %s/held_cols: column %d held twice", path, g,
                            c);
    }
    free(seen);
    return st;
}

static raana_status read_layer_arrays(hid_t file, const char *path, const char *g, raana_qlayer *q,
                                      raana_error *err)
{
    size_t d_in = (size_t)q->d_in, d_out = (size_t)q->d_out, held = (size_t)q->n_held;
    RAANA_CALL(read_dataset(file, path, g, "codes", H5T_NATIVE_UINT8, d_out, q->packed_bytes,
                     (void **)&q->packed, err));
    RAANA_CALL(read_dataset(file, path, g, "rescale", H5T_NATIVE_FLOAT, d_out, 0, (void **)&q->rescale,
                     err));
    RAANA_CALL(check_finite(q->rescale, d_out, path, g, "rescale", err));
    RAANA_CALL(read_dataset(file, path, g, "held_cols", H5T_NATIVE_INT32, held, 0, (void **)&q->held_cols,
                     err));
    RAANA_CALL(check_held(q, path, g, err));
    RAANA_CALL(read_dataset(file, path, g, "held_values", H5T_NATIVE_FLOAT, held, d_in,
                     (void **)&q->held_values, err));
    RAANA_CALL(check_finite(q->held_values, held * d_in, path, g, "held_values", err));
    if (q->tricks & RAANA_TRICK_CENTRALIZE) {
        RAANA_CALL(read_dataset(file, path, g, "mu", H5T_NATIVE_FLOAT, d_in, 0, (void **)&q->mu, err));
        RAANA_CALL(check_finite(q->mu, d_in, path, g, "mu", err));
    }
    if (q->tricks & RAANA_TRICK_NORM_ROW) {
        RAANA_CALL(read_dataset(file, path, g, "row_scale", H5T_NATIVE_FLOAT, d_in, 0,
                         (void **)&q->row_scale, err));
        RAANA_CALL(check_finite(q->row_scale, d_in, path, g, "row_scale", err));
    }
    return RAANA_OK;
}

static raana_status check_signs(hid_t file, const char *path, const char *g, const raana_qlayer *q,
                                raana_error *err)
{
    size_t row = ((size_t)q->rot.d + 7) / 8, bytes = 2 * row;
    char ds[300];
    snprintf(ds, sizeof ds, "%s/signs", g);
    uint8_t *stored, *expect = pack_signs(&q->rot);
    raana_status st =
        expect ? read_array(file, path, ds, H5T_NATIVE_UINT8, 2, row, (void **)&stored, err)
               : raana_fail(err, RAANA_ERR_NOMEM, "out of memory");
    if (st == RAANA_OK && memcmp(stored, expect, bytes) != 0)
        st = raana_fail(err, RAANA_ERR_INPUT,
                        "%s: %s: stored signs differ from generator %s with key %016llx", path, g,
                        RAANA_RNG_ID, (unsigned long long)q->key);
    if (st == RAANA_OK)
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

raana_status raana_container_read_layer(hid_t file, const char *path, const char *name,
                                        raana_qlayer *q, raana_error *err)
{
    char g[200], tricks[64];
    int64_t v[8];
    const char *names[8] = {"d_in", "d_out", "code_bits", "n_kept",
                            "m_a",  "m_b",   "n_held",    "packed_bytes"};
    memset(q, 0, sizeof *q);
    snprintf(g, sizeof g, "/layers/%s", name);
    if (H5Lexists(file, "/layers", H5P_DEFAULT) <= 0 || H5Lexists(file, g, H5P_DEFAULT) <= 0)
        return raana_fail(err, RAANA_ERR_INPUT, "%s: no quantized layer '%s'", path, name);
    int ok = read_attr(file, g, "bits", H5T_NATIVE_DOUBLE, &q->bits) &&
             read_attr(file, g, "key", H5T_NATIVE_UINT64, &q->key) &&
             read_attr_text(file, g, "tricks", tricks, sizeof tricks);
    for (int k = 0; ok && k < 8; k++)
        ok = read_attr(file, g, names[k], H5T_NATIVE_INT64, &v[k]);
    /* ranges first, so the casts below are safe */
    ok = ok && v[0] > 0 && v[1] > 0 && v[0] <= (1 << 24) && v[1] <= (1 << 24) && v[2] >= 1 &&
         v[2] <= 8 && v[3] > 0 && v[3] <= v[0] && v[4] >= 0 && v[4] <= v[0] && v[5] >= 0 &&
         v[5] <= v[0] && v[6] >= 0 && v[6] <= v[1] && v[7] > 0 && v[7] <= v[0];
    if (!ok)
        return raana_fail(err, RAANA_ERR_INPUT,
                          "%s: layer %s: missing attributes, or d_in, d_out, code_bits, n_kept, "
                          "m_a, m_b, n_held or packed_bytes out of range",
                          path, name);
    q->d_in = (int)v[0], q->d_out = (int)v[1], q->code_bits = (int)v[2], q->n_kept = (int)v[3];
    q->m_a = (int)v[4], q->m_b = (int)v[5], q->n_held = (int)v[6];
    q->packed_bytes = (size_t)v[7];
    q->tricks = (strstr(tricks, "centralize") ? RAANA_TRICK_CENTRALIZE : 0) |
                (strstr(tricks, "norm_col") ? RAANA_TRICK_NORM_COL : 0) |
                (strstr(tricks, "norm_row") ? RAANA_TRICK_NORM_ROW : 0);
    raana_status st = check_layer_bits(q, path, g, err);
    if (st == RAANA_OK)
        st = raana_rotation_create(&q->rot, q->d_in, q->key, err);
    if (st == RAANA_OK)
        st = read_layer_arrays(file, path, g, q, err);
    if (st == RAANA_OK)
        st = check_signs(file, path, g, q, err);
    if (st != RAANA_OK)
        raana_qlayer_free(q);
    return st;
}

uint64_t raana_container_size_bound(const raana_container_content *c)
{
    const raana_plan *p = &c->stage->plan;
    const raana_model *m = &c->stage->model;
    uint64_t bytes = 0, datasets = 16;
    for (size_t i = 0; i < N_MODEL_FILES; i++) {
        char path[4400];
        struct stat sb;
        snprintf(path, sizeof path, "%s/%s", m->dir, model_files[i]);
        if (stat(path, &sb) == 0)
            bytes += (uint64_t)sb.st_size, datasets++;
    }
    bytes += (uint64_t)c->stage->windows.n * (uint64_t)c->stage->windows.len * 4;
    bytes += (uint64_t)p->n_layers * (sizeof p->layers[0].name + 3 * 4 + N_COLS * 8);
    for (int i = 0; i < p->n_layers; i++) {
        if (!p->layers[i].quantize)
            continue;
        const raana_layer_summary *s = &c->quantized->summary[i];
        uint64_t d_in = (uint64_t)p->layers[i].d_in, d_out = (uint64_t)p->layers[i].d_out;
        bytes += d_out * s->packed_bytes + 4 * d_out + 2 * ((d_in + 7) / 8);
        bytes += 8 * d_in + (uint64_t)s->n_held * (4 + 4 * d_in); /* mu, row scales, held */
        datasets += 8;
    }
    for (size_t i = 0; i < m->n_entries; i++)
        if (!is_quantized_weight(p, m->entries[i].name))
            bytes += m->entries[i].tensor->end - m->entries[i].tensor->begin, datasets++;
    /* zstd's worst case is +0.4% per chunk; chunk indexes, object headers,
     * attributes and the report: a margin per dataset and overall */
    return bytes + bytes / 128 + datasets * 4096 + (1u << 20);
}
