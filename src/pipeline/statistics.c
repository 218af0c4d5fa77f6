/* statistics.c — the calibration statistics file (JSON through cJSON), reading
 * them back from it or from a container, and the checks before reusing them
 * (see statistics.h). */
#include "raana/statistics.h"

#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "raana/comm.h"
#include "raana/container.h"
#include "raana/container_access.h"
#include "raana/file.h"
#include "raana/json.h"

#define N_STATS 5
static const char *const stat_names[N_STATS] = {"grad_rms", "x_rms", "x_fro", "y_fro", "dy_fro"};

static double *stat_field(raana_layer_stats *s, int k)
{
    double *f[N_STATS] = {&s->grad_rms, &s->x_rms, &s->x_fro, &s->y_fro, &s->dy_fro};
    return f[k];
}

/* ---- writing ------------------------------------------------------------------- */

static void add_hex(cJSON *o, const char *name, uint64_t v)
{
    char hex[17];
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)v);
    cJSON_AddStringToObject(o, name, hex);
}

static cJSON *layer_object(const raana_statistics_output *o, int i)
{
    const raana_plan_layer *l = &o->plan->layers[i];
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "name", l->name);
    cJSON_AddNumberToObject(j, "d_in", l->d_in);
    cJSON_AddNumberToObject(j, "d_out", l->d_out);
    raana_layer_stats s = o->stats[i];
    for (int k = 0; k < N_STATS; k++)
        raana_json_add_number(j, stat_names[k], *stat_field(&s, k));
    if (o->alloc) {
        raana_json_add_number(j, "w_fro", o->alloc->w_fro[i]);
        raana_json_add_number(j, "coef", o->alloc->coef[i]);
        raana_json_add_number(j, "bits", o->alloc->bits[i]);
    }
    return j;
}

static void add_allocation(cJSON *root, const raana_statistics_output *o)
{
    const raana_alloc_result *r = &o->alloc->result;
    cJSON *a = cJSON_AddObjectToObject(root, "allocation");
    raana_json_add_number(a, "avg_bits", o->cfg->avg_bits);
    cJSON *candidates = cJSON_AddArrayToObject(a, "candidates");
    for (int i = 0; i < o->cfg->n_bits; i++)
        cJSON_AddItemToArray(candidates, raana_json_number(o->cfg->bits[i]));
    raana_json_add_number(a, "achieved_avg_bits", r->achieved_avg_bits);
    raana_json_add_number(a, "modelled_error", r->cost);
    raana_json_add_number(a, "lower_bound", r->lower_bound);
    cJSON_AddStringToObject(a, "method",
                            r->method == RAANA_ALLOC_EXACT_DP ? "exact-dp" : "lagrangian");
    if (o->alloc->unit_error) { /* [quantize] error_model = calibrated */
        cJSON *f = cJSON_AddArrayToObject(a, "unit_errors");
        for (int i = 0; i < o->cfg->n_bits; i++)
            cJSON_AddItemToArray(f, raana_json_number(o->alloc->unit_error[i]));
    }
}

raana_status raana_statistics_write_json(const char *path, const raana_statistics_output *o,
                                         raana_error *err)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "format", "raana-calibration-v1");
    cJSON_AddStringToObject(root, "model", o->cfg->model_path);
    add_hex(root, "checkpoint_fingerprint", o->checkpoint_fp);
    add_hex(root, "calibration_fingerprint", o->calibration_fp);
    cJSON_AddStringToObject(root, "source", raana_calib_source_name(o->cfg->calib_source));
    cJSON_AddNumberToObject(root, "n_samples", o->cfg->n_samples);
    cJSON_AddNumberToObject(root, "windows", o->windows->n);
    cJSON_AddNumberToObject(root, "seq_len", o->windows->len);
    raana_json_add_number(root, "loss", o->loss);
    cJSON *layers = cJSON_AddArrayToObject(root, "layers");
    for (int i = 0; i < o->plan->n_layers; i++)
        cJSON_AddItemToArray(layers, layer_object(o, i));
    if (o->alloc)
        add_allocation(root, o);
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text)
        return raana_fail(err, RAANA_ERR_NOMEM, "%s: out of memory", path);
    size_t len = strlen(text);
    text[len] = '\n'; /* cJSON_Print's buffer has room: it held the NUL */
    raana_status st = raana_write_file_atomic(path, text, len + 1, err);
    free(text);
    return st;
}

/* ---- reading: common ----------------------------------------------------------- */

void raana_statistics_free(raana_statistics *s)
{
    free(s->names);
    free(s->d_in);
    free(s->d_out);
    free(s->stats);
    memset(s, 0, sizeof *s);
}

static raana_status alloc_layers(raana_statistics *s, int n, const char *path, raana_error *err)
{
    s->n_layers = n;
    s->names = calloc((size_t)n + 1, sizeof *s->names);
    s->d_in = calloc((size_t)n + 1, sizeof *s->d_in);
    s->d_out = calloc((size_t)n + 1, sizeof *s->d_out);
    s->stats = calloc((size_t)n + 1, sizeof *s->stats);
    if (!s->names || !s->d_in || !s->d_out || !s->stats)
        return raana_fail(err, RAANA_ERR_NOMEM, "%s: out of memory for %d layers", path, n);
    return RAANA_OK;
}

static raana_status not_statistics(const char *path, const char *why, raana_error *err)
{
    return raana_fail(err, RAANA_ERR_CONFIG,
                      "%s: not usable calibration statistics: %s (expected raana-mpi "
                      "--calibrate-only's OUTPUT.calibration.json or a raana container)",
                      path, why);
}

static int parse_hex64(const char *s, uint64_t *out)
{
    if (!s || strlen(s) != 16)
        return 0;
    for (int i = 0; i < 16; i++)
        if (!isxdigit((unsigned char)s[i]))
            return 0;
    *out = strtoull(s, NULL, 16);
    return 1;
}

/* ---- reading: JSON ------------------------------------------------------------- */

static int json_double(const cJSON *o, const char *key, double *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return 0;
    *out = v->valuedouble;
    return 1;
}

static int json_int(const cJSON *o, const char *key, int *out)
{
    double d;
    if (!json_double(o, key, &d) || d != floor(d) || d < 0 || d > INT_MAX)
        return 0;
    *out = (int)d;
    return 1;
}

static const char *json_string(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static raana_status json_header(const cJSON *root, const char *path, raana_statistics *s,
                                raana_error *err)
{
    const char *format = json_string(root, "format"), *source = json_string(root, "source");
    if (!format || strcmp(format, "raana-calibration-v1") != 0)
        return not_statistics(path, "no \"format\": \"raana-calibration-v1\"", err);
    if (!parse_hex64(json_string(root, "checkpoint_fingerprint"), &s->checkpoint_fp) ||
        !parse_hex64(json_string(root, "calibration_fingerprint"), &s->calibration_fp))
        return not_statistics(path,
                              "no checkpoint_fingerprint or calibration_fingerprint of 16 hex "
                              "digits (written by an older raana-mpi? run --calibrate-only again)",
                              err);
    if (!source || strlen(source) >= sizeof s->source ||
        !json_int(root, "n_samples", &s->n_samples) || !json_int(root, "windows", &s->windows) ||
        !json_int(root, "seq_len", &s->seq_len) || !json_double(root, "loss", &s->loss))
        return not_statistics(path, "source, n_samples, windows, seq_len or loss missing", err);
    snprintf(s->source, sizeof s->source, "%s", source);
    return RAANA_OK;
}

static raana_status json_layer(const cJSON *l, int i, const char *path, raana_statistics *s,
                               raana_error *err)
{
    const char *name = json_string(l, "name");
    int ok = name && strlen(name) < sizeof s->names[0] && json_int(l, "d_in", &s->d_in[i]) &&
             json_int(l, "d_out", &s->d_out[i]);
    for (int k = 0; ok && k < N_STATS; k++)
        ok = json_double(l, stat_names[k], stat_field(&s->stats[i], k));
    if (!ok) {
        char why[96];
        snprintf(why, sizeof why, "layers[%d] lacks its name, shape or a finite statistic", i);
        return not_statistics(path, why, err);
    }
    snprintf(s->names[i], sizeof s->names[i], "%s", name);
    return RAANA_OK;
}

static raana_status load_json(const char *path, const char *text, raana_statistics *s,
                              raana_error *err)
{
    cJSON *root = cJSON_Parse(text);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        char why[64];
        snprintf(why, sizeof why, "not JSON (at byte %td)", at ? at - text : 0);
        return not_statistics(path, why, err);
    }
    raana_status st = json_header(root, path, s, err);
    const cJSON *layers = cJSON_GetObjectItemCaseSensitive(root, "layers"), *l;
    if (st == RAANA_OK && (!cJSON_IsArray(layers) || cJSON_GetArraySize(layers) == 0))
        st = not_statistics(path, "no \"layers\" array", err);
    if (st == RAANA_OK)
        st = alloc_layers(s, cJSON_GetArraySize(layers), path, err);
    int i = 0;
    cJSON_ArrayForEach(l, layers)
    {
        if (st != RAANA_OK)
            break;
        st = json_layer(l, i++, path, s, err);
    }
    cJSON_Delete(root);
    return st;
}

/* ---- reading: a container ------------------------------------------------------ */

/* n_samples from the container's /config.ini (canonical INI text). */
static int container_n_samples(const raana_container *file, int *n_samples)
{
    raana_error ignored;
    char *text = NULL;
    size_t len = 0;
    raana_config *cfg = malloc(sizeof *cfg);
    int ok = cfg &&
             raana_container_read_bytes(file, "/config.ini", &text, &len, &ignored) == RAANA_OK &&
             text;
    if (ok) {
        raana_config_defaults(cfg);
        ok = raana_config_parse(cfg, text, len, "/config.ini", "", &ignored) == RAANA_OK;
        *n_samples = cfg->n_samples;
    }
    free(text);
    free(cfg);
    return ok;
}

static raana_status container_header(const raana_container *file, const char *path,
                                     raana_statistics *s, raana_error *err)
{
    char fp[32], cfp[32];
    raana_error ignored;
    raana_dataset_shape tokens;
    if (!raana_container_attr_text_if(file, "/", "checkpoint_fingerprint", fp, sizeof fp) ||
        !parse_hex64(fp, &s->checkpoint_fp))
        return not_statistics(path, "the container has no checkpoint_fingerprint", err);
    if (!raana_container_attr_text_if(file, "/calibration", "fingerprint", cfp, sizeof cfp) ||
        !parse_hex64(cfp, &s->calibration_fp) ||
        !raana_container_attr_text_if(file, "/calibration", "source", s->source,
                                      sizeof s->source) ||
        raana_container_attr_f64(file, "/calibration", "loss", &s->loss, &ignored) != RAANA_OK ||
        raana_container_dataset_shape(file, "/calibration/tokens", &tokens, &ignored) != RAANA_OK ||
        tokens.ndim != 2)
        return not_statistics(path, "/calibration is incomplete", err);
    s->windows = (int)tokens.dims[0], s->seq_len = (int)tokens.dims[1];
    if (!container_n_samples(file, &s->n_samples))
        return not_statistics(path, "/config.ini is missing or unreadable", err);
    return RAANA_OK;
}

/* Column name of /allocation into the stats field k of every layer. */
static int container_column(const raana_container *file, int k, double *col, raana_statistics *s)
{
    raana_error ignored;
    char col_path[64];
    snprintf(col_path, sizeof col_path, "/allocation/%s", stat_names[k]);
    if (raana_container_read_dataset(file, col_path, RAANA_ELEM_F64, col, (size_t)s->n_layers,
                                     &ignored) != RAANA_OK)
        return 0;
    for (int i = 0; i < s->n_layers; i++)
        *stat_field(&s->stats[i], k) = col[i];
    return 1;
}

static raana_status container_columns(const raana_container *file, const char *path,
                                      raana_statistics *s, raana_error *err)
{
    raana_status st = RAANA_OK;
    raana_error ignored;
    raana_dataset_shape names;
    double *col = NULL;
    if (raana_container_dataset_shape(file, "/allocation/name", &names, &ignored) != RAANA_OK ||
        names.ndim != 1 || names.dims[0] == 0 || names.dims[0] > INT_MAX)
        return not_statistics(path, "no /allocation/name", err);
    int n = (int)names.dims[0];
    RAANA_CHECK(alloc_layers(s, n, path, err));
    col = malloc((size_t)n * sizeof *col);
    int ok = col &&
             raana_container_read_strings(file, "/allocation/name", sizeof s->names[0],
                                          &s->names[0][0], (size_t)n, &ignored) == RAANA_OK &&
             raana_container_read_dataset(file, "/allocation/d_in", RAANA_ELEM_I32, s->d_in,
                                          (size_t)n, &ignored) == RAANA_OK &&
             raana_container_read_dataset(file, "/allocation/d_out", RAANA_ELEM_I32, s->d_out,
                                          (size_t)n, &ignored) == RAANA_OK;
    for (int k = 0; ok && k < N_STATS; k++)
        ok = container_column(file, k, col, s);
    if (!ok)
        RAANA_CHECK(not_statistics(path, "the /allocation table is incomplete or unreadable", err));
    for (int i = 0; i < n; i++)
        s->names[i][sizeof s->names[i] - 1] = '\0';
cleanup:
    free(col);
    return st;
}

static raana_status load_container(const char *path, raana_statistics *s, raana_error *err)
{
    raana_status st = RAANA_OK;
    raana_container *file = NULL;
    if (raana_container_open(path, &file, err) != RAANA_OK) {
        raana_error_prefix(err, "[calibration] statistics");
        return raana_error_restatus(err, RAANA_ERR_CONFIG);
    }
    RAANA_CHECK(container_header(file, path, s, err));
    RAANA_CHECK(container_columns(file, path, s, err));
cleanup:
    raana_container_close(file);
    return st;
}

/* ---- reading: either ----------------------------------------------------------- */

/* 1 if the file starts with the HDF5 signature (raana writes no user block),
 * 0 if not or unreadable (raana_read_file then says why). */
static int starts_like_hdf5(const char *path)
{
    static const char signature[8] = {'\211', 'H', 'D', 'F', '\r', '\n', '\032', '\n'};
    char head[8];
    FILE *f = fopen(path, "rb");
    int yes = f && fread(head, 1, sizeof head, f) == sizeof head &&
              memcmp(head, signature, sizeof head) == 0;
    if (f)
        fclose(f);
    return yes;
}

static raana_status load_json_file(const char *path, raana_statistics *s, raana_error *err)
{
    char *text = NULL;
    size_t len = 0;
    raana_status st = raana_read_file(path, &text, &len, err);
    if (st != RAANA_OK) {
        raana_error_prefix(err, "[calibration] statistics");
        return raana_error_restatus(err, RAANA_ERR_CONFIG);
    }
    if (memchr(text, '\0', len))
        st = not_statistics(path, "a binary file, and not HDF5", err);
    else
        st = load_json(path, text, s, err);
    free(text);
    return st;
}

raana_status raana_statistics_load(const char *path, raana_statistics *s, raana_error *err)
{
    memset(s, 0, sizeof *s);
    raana_status st =
        starts_like_hdf5(path) ? load_container(path, s, err) : load_json_file(path, s, err);
    if (st != RAANA_OK)
        raana_statistics_free(s);
    return st;
}

/* ---- checks -------------------------------------------------------------------- */

static raana_status refuse(const char *path, raana_error *err, const char *what)
{
    return raana_fail(err, RAANA_ERR_CONFIG, "%s: cannot reuse these calibration statistics: %s",
                      path, what);
}

/* Appends "; " (unless first) and the formatted text to out. */
__attribute__((format(printf, 3, 4))) static void append(char *out, size_t size, const char *fmt,
                                                         ...)
{
    size_t used = strlen(out);
    if (used && used + 2 < size)
        memcpy(out + used, "; ", 3), used += 2;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out + used, size - used, fmt, ap);
    va_end(ap);
}

/* "seq_len 128 there, 256 here; ..." for each setting that differs. */
static void settings_differences(const raana_statistics *s, const raana_config *cfg,
                                 const raana_windows *w, char *out, size_t size)
{
    const char *source = raana_calib_source_name(cfg->calib_source);
    out[0] = '\0';
    if (strcmp(s->source, source) != 0)
        append(out, size, "source %s there, %s here", s->source, source);
    if (s->n_samples != cfg->n_samples)
        append(out, size, "n_samples %d there, %d here", s->n_samples, cfg->n_samples);
    if (s->seq_len != w->len)
        append(out, size, "seq_len %d there, %d here", s->seq_len, w->len);
    if (s->windows != w->n)
        append(out, size, "%d windows there, %d here", s->windows, w->n);
}

static raana_status check_layers(const raana_statistics *s, const char *path,
                                 const raana_plan *plan, raana_error *err)
{
    char what[400];
    if (s->n_layers != plan->n_layers) {
        snprintf(what, sizeof what, "another layer list (%d layers there, %d here)", s->n_layers,
                 plan->n_layers);
        return refuse(path, err, what);
    }
    for (int i = 0; i < plan->n_layers; i++) {
        const raana_plan_layer *l = &plan->layers[i];
        if (strcmp(s->names[i], l->name) == 0 && s->d_in[i] == l->d_in && s->d_out[i] == l->d_out)
            continue;
        snprintf(what, sizeof what,
                 "another layer list (layer %d is %s %dx%d there, %s %dx%d here)", i, s->names[i],
                 s->d_out[i], s->d_in[i], l->name, l->d_out, l->d_in);
        return refuse(path, err, what);
    }
    return RAANA_OK;
}

raana_status raana_statistics_check(const raana_statistics *s, const char *path,
                                    const raana_config *cfg, const raana_stage *stage,
                                    uint64_t checkpoint_fp, uint64_t calibration_fp,
                                    raana_error *err)
{
    char what[400];
    if (s->checkpoint_fp != checkpoint_fp) {
        snprintf(what, sizeof what,
                 "made from another checkpoint (fingerprint %016llx there, %016llx here)",
                 (unsigned long long)s->checkpoint_fp, (unsigned long long)checkpoint_fp);
        return refuse(path, err, what);
    }
    char diff[300];
    settings_differences(s, cfg, &stage->windows, diff, sizeof diff);
    if (diff[0]) {
        snprintf(what, sizeof what, "other calibration settings (%s)", diff);
        return refuse(path, err, what);
    }
    if (s->calibration_fp != calibration_fp) {
        snprintf(what, sizeof what,
                 "other calibration tokens or chunks (fingerprint %016llx there, %016llx here: "
                 "the calibration text, the tokenizer, [calibration] chunk_tokens or raana's "
                 "version differs)",
                 (unsigned long long)s->calibration_fp, (unsigned long long)calibration_fp);
        return refuse(path, err, what);
    }
    return check_layers(s, path, &stage->plan, err);
}

/* ---- reuse --------------------------------------------------------------------- */

raana_status raana_statistics_reuse(MPI_Comm comm, const raana_config *cfg,
                                    const raana_stage *stage, uint64_t checkpoint_fp,
                                    uint64_t calibration_fp, raana_layer_stats *stats, double *loss,
                                    raana_error *err)
{
    int rank, n = stage->plan.n_layers;
    MPI_Comm_rank(comm, &rank);
    raana_status st = RAANA_OK;
    if (rank == 0) {
        raana_statistics s;
        st = raana_statistics_load(cfg->statistics, &s, err);
        if (st == RAANA_OK)
            st = raana_statistics_check(&s, cfg->statistics, cfg, stage, checkpoint_fp,
                                        calibration_fp, err);
        if (st == RAANA_OK) {
            memcpy(stats, s.stats, (size_t)n * sizeof *stats);
            *loss = s.loss;
        }
        raana_statistics_free(&s);
    }
    st = raana_comm_agree(comm, st, err);
    if (st != RAANA_OK)
        return st;
    MPI_Bcast(stats, n * (int)(sizeof *stats / sizeof(double)), MPI_DOUBLE, 0, comm);
    MPI_Bcast(loss, 1, MPI_DOUBLE, 0, comm);
    return RAANA_OK;
}
