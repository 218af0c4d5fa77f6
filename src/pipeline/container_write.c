/* container_write.c — the collective writer of the container (see
 * container_write.h; layout in container_schema.h and docs/FORMAT.md):
 * every group, dataset and attribute in one global order, each dataset's
 * data from the rank that owns it. */
#include "raana/container_write.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "raana/comm.h"
#include "raana/container_schema.h"
#include "raana/fault.h"
#include "raana/file.h"
#include "raana/h5file.h"
#include "raana/half_scaled.h"
#include "raana/joblog.h"
#include "raana/qlayer.h"
#include "raana/rng.h"

const char *const raana_stage_names[RAANA_STAGE_COUNT] = {"plan",     "load",     "calibrate",
                                                          "allocate", "quantize", "write"};

/* ---- /  /model  /config.ini ---------------------------------------------------- */

static raana_status write_root(raana_h5 *h, const raana_container_content *c, raana_error *err)
{
    RAANA_CALL(raana_h5_attr_str(h, "/", "format", RAANA_FORMAT_NAME, err));
    RAANA_CALL(raana_h5_attr_i64(
        h, "/", "format_version",
        raana_schema_format_version(raana_config_has_factors(c->cfg), c->cfg->side_bits == 16),
        err));
    RAANA_CALL(raana_h5_attr_str(h, "/", "rng", RAANA_RNG_ID, err));
    RAANA_CALL(raana_h5_attr_str(h, "/", "model_type", c->stage->model.config.model_type, err));
    char fp[32];
    snprintf(fp, sizeof fp, "%016llx", (unsigned long long)c->fingerprints->checkpoint);
    RAANA_CALL(raana_h5_attr_str(h, "/", "checkpoint_fingerprint", fp, err));
    return RAANA_OK;
}

/* /model/<name> from rank 0's copy of the checkpoint file, if it has one. */
static raana_status write_model_file(raana_h5 *h, const raana_container_content *c,
                                     const char *name, raana_error *err)
{
    raana_status st = RAANA_OK;
    char path[4400], *data = NULL;
    size_t len = 0;
    int present = 0;
    if (h->rank == 0) {
        snprintf(path, sizeof path, "%s/%s", c->stage->model.dir, name);
        present = access(path, R_OK) == 0;
    }
    MPI_Bcast(&present, 1, MPI_INT, 0, h->comm);
    if (!present)
        return RAANA_OK;
    st = h->rank == 0 ? raana_read_file(path, &data, &len, err) : RAANA_OK;
    RAANA_CHECK(raana_comm_agree(h->comm, st, err));
    snprintf(path, sizeof path, "/model/%s", name);
    RAANA_CHECK(raana_h5_blob(h, path, 0, data, len, err));
cleanup:
    free(data);
    return st;
}

static raana_status write_model_files(raana_h5 *h, const raana_container_content *c,
                                      raana_error *err)
{
    RAANA_CALL(raana_h5_group(h, "/model", err));
    for (size_t i = 0; i < RAANA_N_MODEL_FILES; i++)
        RAANA_CALL(write_model_file(h, c, raana_schema_model_files[i], err));
    return RAANA_OK;
}

/* The configuration without [calibration] statistics: reused statistics
 * give the same container as calibrating in the job, so where they came
 * from is recorded in /provenance only. */
static char *config_text(const raana_config *cfg, size_t *len)
{
    char *text = NULL;
    raana_config *copy = raana_malloc(sizeof *copy);
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
    raana_status st = RAANA_OK;
    char *text = NULL;
    size_t len = 0;
    if (h->rank == 0 && !(text = config_text(c->cfg, &len)))
        st = raana_fail(err, RAANA_ERR_NOMEM, "out of memory");
    RAANA_CHECK(raana_comm_agree(h->comm, st, err));
    RAANA_CHECK(raana_h5_blob(h, "/config.ini", 0, text, len, err));
cleanup:
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

static void fill_columns(const raana_container_content *c, double *col, int *ints, char *names)
{
    const raana_plan *p = &c->stage->plan;
    int n = p->n_layers;
    for (int i = 0; i < n; i++) {
        const raana_layer_stats *s = &c->stats[i];
        const raana_layer_summary *q = &c->quantized->summary[i];
        double row[RAANA_N_COLS] = {c->alloc->bits[i], c->alloc->coef[i],  s->grad_rms,
                                    s->x_rms,          s->x_fro,           s->y_fro,
                                    s->dy_fro,         c->alloc->w_fro[i], q->rel_error,
                                    q->mean_cosine,    q->effective_bits};
        for (int k = 0; k < RAANA_N_COLS; k++)
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
    if (raana_config_has_factors(c->cfg))
        RAANA_CALL(raana_h5_attr_f64(h, g, "factor_bits", &c->alloc->factor_bits, 1, err));
    if (c->alloc->unit_error) /* only then: the default file is as it was */
        RAANA_CALL(
            raana_h5_attr_f64(h, g, "unit_errors", c->alloc->unit_error, c->cfg->n_bits, err));
    return raana_h5_attr_str(h, g, "method",
                             r->method == RAANA_ALLOC_EXACT_DP ? "exact-dp" : "lagrangian", err);
}

/* The name column: fixed-length, NUL-padded strings. */
static raana_status write_name_column(raana_h5 *h, int n, size_t name_len, const char *names,
                                      raana_error *err)
{
    raana_status st = RAANA_OK;
    hid_t str = H5Tcopy(H5T_C_S1);
    if (str < 0 || H5Tset_size(str, name_len) < 0 || H5Tset_strpad(str, H5T_STR_NULLPAD) < 0)
        RAANA_FAIL_GOTO(err, RAANA_ERR_INTERNAL, "cannot make a string type of %zu bytes",
                        name_len);
    RAANA_CHECK(write_column(h, "name", n, str, names, err));
cleanup:
    if (str >= 0)
        H5Tclose(str);
    return st;
}

static raana_status write_allocation(raana_h5 *h, const raana_container_content *c,
                                     raana_error *err)
{
    raana_status st = RAANA_OK;
    int n = c->stage->plan.n_layers;
    size_t name_len = sizeof c->stage->plan.layers[0].name;
    double *col = raana_calloc((size_t)n * RAANA_N_COLS, sizeof *col);
    int *ints = raana_calloc((size_t)n * 3, sizeof *ints);
    char *names = raana_calloc((size_t)n, name_len);
    if (!col || !ints || !names)
        st = raana_fail(err, RAANA_ERR_NOMEM, "out of memory");
    RAANA_CHECK(raana_comm_agree(h->comm, st, err));
    fill_columns(c, col, ints, names);
    RAANA_CHECK(raana_h5_group(h, "/allocation", err));
    RAANA_CHECK(allocation_attrs(h, c, err));
    RAANA_CHECK(write_name_column(h, n, name_len, names, err));
    const char *int_names[3] = {"d_in", "d_out", "quantized"};
    for (int k = 0; k < 3; k++)
        RAANA_CHECK(write_column(h, int_names[k], n, H5T_NATIVE_INT, ints + (size_t)k * n, err));
    for (int k = 0; k < RAANA_N_COLS; k++)
        RAANA_CHECK(write_column(h, raana_schema_columns[k], n, H5T_NATIVE_DOUBLE,
                                 col + (size_t)k * n, err));
cleanup:
    free(col), free(ints), free(names);
    return st;
}

/* ---- /layers ------------------------------------------------------------------- */

static raana_status layer_attrs(raana_h5 *h, const char *g, const raana_container_content *c, int i,
                                raana_error *err)
{
    const raana_plan_layer *l = &c->stage->plan.layers[i];
    const raana_layer_summary *s = &c->quantized->summary[i];
    char tricks[64];
    raana_tricks_format(c->cfg->tricks, tricks, sizeof tricks);
    const int64_t ints[] = {l->d_in,
                            l->d_out,
                            s->code_bits,
                            s->n_kept,
                            s->m_a,
                            s->m_b,
                            s->n_held,
                            raana_pow2_floor(l->d_in),
                            (int64_t)s->packed_bytes};
    const char *names[] = {"d_in", "d_out",  "code_bits",  "n_kept",      "m_a",
                           "m_b",  "n_held", "rotation_k", "packed_bytes"};
    for (size_t k = 0; k < sizeof ints / sizeof ints[0]; k++)
        RAANA_CALL(raana_h5_attr_i64(h, g, names[k], ints[k], err));
    RAANA_CALL(raana_h5_attr_f64(h, g, "bits", &c->alloc->bits[i], 1, err));
    RAANA_CALL(raana_h5_attr_str(h, g, "tricks", tricks, err));
    RAANA_CALL(raana_h5_attr_u64(h, g, "key", raana_rng_layer_key(c->cfg->seed, l->name), err));
    RAANA_CALL(raana_h5_attr_f64(h, g, "coef", &c->alloc->coef[i], 1, err));
    RAANA_CALL(raana_h5_attr_f64(h, g, "rel_error", &s->rel_error, 1, err));
    RAANA_CALL(raana_h5_attr_f64(h, g, "mean_cosine", &s->mean_cosine, 1, err));
    int rank = raana_plan_layer_lowrank(c->cfg, l);
    if (rank > 0)
        RAANA_CALL(raana_h5_attr_i64(h, g, "lowrank_rank", rank, err));
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

/* A side vector (rescale, mu, row_scale): float32, or with [quantize]
 * side_bits = 16 the half bits of v 2^-e as uint16 with the exponent e in
 * the dataset's attribute "exponent" (half_scaled.h). v is NULL on every
 * rank but the writer; e is the same on every rank (the layer summary). */
static raana_status side_dataset(raana_h5 *h, const raana_container_content *c, const char *g,
                                 const char *name, hsize_t n, int writer, const float *v, int e,
                                 raana_error *err)
{
    if (c->cfg->side_bits != 16)
        return layer_dataset(h, g, name, H5T_NATIVE_FLOAT, 1, n, 0, writer, v, err);
    raana_status st = RAANA_OK;
    uint16_t *half = v ? malloc((size_t)n * sizeof *half + 1) : NULL;
    if (v && !half)
        st = raana_fail(err, RAANA_ERR_NOMEM, "out of memory");
    else if (v)
        raana_half_scaled_encode(v, (size_t)n, e, half);
    RAANA_CHECK(raana_comm_agree(h->comm, st, err));
    char path[300];
    snprintf(path, sizeof path, "%s/%s", g, name);
    RAANA_CHECK(layer_dataset(h, g, name, H5T_NATIVE_UINT16, 1, n, 0, writer, half, err));
    RAANA_CHECK(raana_h5_attr_i64(h, path, "exponent", e, err));
cleanup:
    free(half);
    return st;
}

static raana_status write_layer_datasets(raana_h5 *h, const raana_container_content *c, int i,
                                         const char *g, const uint8_t *signs, raana_error *err)
{
    const raana_plan_layer *l = &c->stage->plan.layers[i];
    const raana_layer_summary *s = &c->quantized->summary[i];
    const raana_qlayer *q = c->quantized->layers[i];
    int writer = c->quantized->quantizer ? c->quantized->quantizer[i]
                                         : raana_plan_block_owner(&c->stage->plan, l->block);
    hsize_t d_in = (hsize_t)l->d_in, d_out = (hsize_t)l->d_out;
    RAANA_CALL(layer_dataset(h, g, "codes", H5T_NATIVE_UINT8, 2, d_out, s->packed_bytes, writer,
                             q ? q->packed : NULL, err));
    RAANA_CALL(side_dataset(h, c, g, "rescale", d_out, writer, q ? q->rescale : NULL,
                            s->rescale_exp, err));
    RAANA_CALL(
        layer_dataset(h, g, "signs", H5T_NATIVE_UINT8, 2, 2, (d_in + 7) / 8, writer, signs, err));
    if (c->cfg->tricks & RAANA_TRICK_CENTRALIZE)
        RAANA_CALL(side_dataset(h, c, g, "mu", d_in, writer, q ? q->mu : NULL, s->mu_exp, err));
    if (c->cfg->tricks & RAANA_TRICK_NORM_ROW)
        RAANA_CALL(side_dataset(h, c, g, "row_scale", d_in, writer, q ? q->row_scale : NULL,
                                s->row_scale_exp, err));
    RAANA_CALL(layer_dataset(h, g, "held_cols", H5T_NATIVE_INT32, 1, (hsize_t)s->n_held, 0, writer,
                             q ? q->held_cols : NULL, err));
    hsize_t rank = (hsize_t)raana_plan_layer_lowrank(c->cfg, l);
    if (rank > 0) {
        RAANA_CALL(layer_dataset(h, g, "lowrank_a", H5T_NATIVE_UINT16, 2, d_out, rank, writer,
                                 q ? q->lowrank_a : NULL, err));
        RAANA_CALL(layer_dataset(h, g, "lowrank_b", H5T_NATIVE_UINT16, 2, rank, d_in, writer,
                                 q ? q->lowrank_b : NULL, err));
    }
    return layer_dataset(h, g, "held_values", H5T_NATIVE_FLOAT, 2, (hsize_t)s->n_held, d_in, writer,
                         q ? q->held_values : NULL, err);
}

static raana_status write_layer(raana_h5 *h, const raana_container_content *c, int i,
                                raana_error *err)
{
    raana_status st = RAANA_OK;
    const raana_plan_layer *l = &c->stage->plan.layers[i];
    const raana_qlayer *q = c->quantized->layers[i];
    char g[200];
    snprintf(g, sizeof g, "/layers/%s", l->name);
    uint8_t *signs = q ? raana_schema_pack_signs(&q->rot) : NULL;
    if (q && !signs)
        st = raana_fail(err, RAANA_ERR_NOMEM, "out of memory");
    if (q && q->lowrank_rank != raana_plan_layer_lowrank(c->cfg, l))
        st = RAANA_INTERNAL(err, "rank-%d factors where the plan says %d", q->lowrank_rank,
                            raana_plan_layer_lowrank(c->cfg, l));
    RAANA_CHECK(raana_comm_agree(h->comm, st, err));
    RAANA_CHECK(raana_h5_group(h, g, err));
    RAANA_CHECK(layer_attrs(h, g, c, i, err));
    RAANA_CHECK(write_layer_datasets(h, c, i, g, signs, err));
cleanup:
    free(signs);
    if (st != RAANA_OK)
        raana_error_prefix(err, "layer %s", l->name);
    return st;
}

/* ---- /tensors ------------------------------------------------------------------ */

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
    RAANA_CALL(raana_h5_dataset(h, path, raana_schema_tensor_type(t->dtype), ndim, dims, writer,
                                m->files[e->file].data + t->begin, err));
    return raana_h5_attr_str(h, path, "dtype", raana_dtype_name(t->dtype), err);
}

/* ---- /report  /provenance ------------------------------------------------------ */

static raana_status write_report(raana_h5 *h, const raana_container_content *c, raana_error *err)
{
    RAANA_CALL(raana_h5_group(h, "/report", err));
    RAANA_CALL(
        raana_h5_attr_f64(h, "/report", "effective_bits_quantized", &c->bits.quantized, 1, err));
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
        if (!raana_schema_is_quantized_weight(p, m->entries[i].name))
            RAANA_CALL(write_tensor(h, c, &m->entries[i], err));
    RAANA_CALL(write_report(h, c, err));
    double mine = MPI_Wtime() - t0;
    MPI_Allreduce(&mine, &c->seconds[RAANA_STAGE_WRITE], 1, MPI_DOUBLE, MPI_MAX, h->comm);
    return write_provenance(h, c, err);
}

raana_status raana_container_write(MPI_Comm comm, const char *path, raana_container_content *c,
                                   raana_error *err)
{
    raana_h5 h;
    RAANA_CALL(raana_h5_open_write(&h, comm, path, c->cfg->zstd_level, err));
    raana_status st = write_contents(&h, c, err);
    if (st != RAANA_OK) {
        raana_h5_abandon(&h); /* see h5file.h; the caller removes the file */
        return st;
    }
    return raana_comm_agree(comm, raana_h5_close(&h, err), err);
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
        if (!raana_schema_is_quantized_weight(p, m->entries[i].name))
            all_bits += 8.0 * (double)(t->end - t->begin);
    }
    c->bits.quantized = qweights > 0 ? qbits / qweights : 0;
    c->bits.model = all_params > 0 ? (qbits + all_bits) / all_params : 0;
    c->bits.codes_only = c->alloc->result.achieved_avg_bits;
}
