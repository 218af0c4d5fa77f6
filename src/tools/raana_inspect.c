/* raana_inspect.c — main() of raana-inspect: reads a raana container
 * without MPI through the container reader (container.h) and prints what
 * it holds (a summary, one line per layer, or everything as one JSON
 * object), checks it end to end (--verify), or rebuilds one quantized
 * layer's weight from its codes (the reference decoder for other readers). */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "raana/blas_info.h"
#include "raana/container.h"
#include "raana/container_access.h"
#include "raana/container_model.h"
#include "raana/error.h"
#include "raana/json.h"
#include "raana/qlayer.h"

#include "cli.h"

enum { OPT_LAYERS, OPT_JSON, OPT_VERIFY, OPT_DEQUANTIZE, OPT_OUTPUT };

typedef enum { MODE_SUMMARY, MODE_LAYERS, MODE_JSON, MODE_VERIFY, MODE_DEQUANTIZE } inspect_mode;

typedef struct {
    inspect_mode mode;
    const char *path, *layer, *out;
    int argc;
    char **argv;
    const char *legacy_out; /* the word right after --dequantize LAYER, if not an option */
} inspect_args;

/* ---- arguments ------------------------------------------------------------------ */

static raana_status set_mode(inspect_args *a, inspect_mode m, raana_error *err)
{
    if (a->mode != MODE_SUMMARY && a->mode != m)
        return raana_fail(err, RAANA_ERR_USAGE,
                          "choose one of --json, --layers, --verify, --dequantize");
    a->mode = m;
    return RAANA_OK;
}

static raana_status on_option(void *ctx, int option, const char *value, raana_error *err)
{
    inspect_args *a = ctx;
    switch (option) {
    case OPT_JSON: return set_mode(a, MODE_JSON, err);
    case OPT_LAYERS: return set_mode(a, MODE_LAYERS, err);
    case OPT_VERIFY: return set_mode(a, MODE_VERIFY, err);
    case OPT_DEQUANTIZE:
        RAANA_CALL(set_mode(a, MODE_DEQUANTIZE, err));
        a->layer = value;
        /* getopt_long's optind: the next word, not yet permuted */
        if (optind < a->argc && a->argv[optind][0] != '-')
            a->legacy_out = a->argv[optind];
        break;
    case OPT_OUTPUT: a->out = value; break;
    default: return RAANA_INTERNAL(err, "option %d not handled", option);
    }
    return RAANA_OK;
}

/* The operands: CONTAINER, and OUT.f32 in the legacy form
 * --dequantize LAYER OUT.f32 (the word right after LAYER). */
static raana_status take_operands(void *ctx, char **operand, int n_operands, raana_error *err)
{
    inspect_args *a = ctx;
    int n = 0;
    for (int i = 0; i < n_operands; i++) {
        if (operand[i] == a->legacy_out && !a->out) {
            a->out = operand[i];
            continue;
        }
        a->path = operand[i];
        n++;
    }
    if (n != 1)
        return raana_fail(err, RAANA_ERR_USAGE, "expected one CONTAINER, got %d (see --help)", n);
    if (a->mode == MODE_DEQUANTIZE && !a->out)
        return raana_fail(err, RAANA_ERR_USAGE, "--dequantize needs --output OUT.f32");
    if (a->mode != MODE_DEQUANTIZE && a->out)
        return raana_fail(err, RAANA_ERR_USAGE, "--output goes with --dequantize");
    return RAANA_OK;
}

/* OUT.f32: the legacy form --dequantize LAYER OUT.f32 */
static const raana_cli_spec cli = {
    .tool = "raana-inspect",
    .usage = "[OPTIONS] CONTAINER",
    .operands = "CONTAINER [OUT.f32]",
    .description =
        "Reads a raana container without MPI: with no option, prints its summary and the\n"
        "report table; otherwise one quantized layer per line, everything as one JSON object\n"
        "(docs/FORMAT.md, \"raana-inspect --json\"), a check of the whole file, or one layer's\n"
        "rebuilt weight. Options and CONTAINER may come in any order. Exit codes: 0 ok, 2\n"
        "usage, 4 not a readable or consistent container, 5 file I/O, 6 out of memory, 8 newer\n"
        "container format, 9 NaN/Inf in a rebuilt layer.\n",
    .options =
        {
            [OPT_LAYERS] = {"layers", 0, NULL,
                            "one line per quantized layer: name, bits, relative error"},
            [OPT_JSON] = {"json", 0, NULL,
                          "everything the summary and the layer table hold, as JSON"},
            [OPT_VERIFY] = {"verify", 0, NULL,
                            "read every dataset (decompressed, Fletcher-32 checked), check\n"
                            "shapes against /model/config.json, rebuild every layer"},
            [OPT_DEQUANTIZE] = {"dequantize", 0, "LAYER",
                                "write LAYER's rebuilt weight as raw little-endian float32,\n"
                                "[d_out][d_in] (Hugging Face layout), to --output"},
            [OPT_OUTPUT] = {"output", 0, "OUT.f32",
                            "where --dequantize writes (or: --dequantize LAYER OUT.f32)"},
        },
    .on_option = on_option,
    .finish = take_operands};

/* ---- summary and --layers ------------------------------------------------------------ */

static void print_f64_attr(const raana_container *c, const char *obj, const char *name,
                           const char *label)
{
    raana_error ignored;
    double v;
    if (raana_container_attr_f64(c, obj, name, &v, &ignored) == RAANA_OK)
        printf("%s: %.6g\n", label, v);
}

static raana_status print_summary(const raana_container *c, raana_error *err)
{
    char *table = NULL;
    size_t len = 0;
    printf("%s: raana container, format version %d\n", raana_container_path(c),
           raana_container_format_version(c));
    print_f64_attr(c, "/report", "target_avg_bits", "target average bits");
    print_f64_attr(c, "/report", "achieved_avg_bits", "achieved average bits (codes)");
    print_f64_attr(c, "/report", "effective_bits_quantized", "effective bits per quantized weight");
    print_f64_attr(c, "/report", "effective_bits_model", "effective bits per parameter");
    print_f64_attr(c, "/calibration", "loss", "calibration loss");
    RAANA_CALL(raana_container_read_bytes(c, "/report/table", &table, &len, err));
    if (table)
        fputs(table, stdout);
    free(table);
    return RAANA_OK;
}

static void print_layers(const raana_container *c)
{
    int n = raana_container_layer_count(c);
    for (int i = 0; i < n; i++) {
        raana_error ignored;
        const char *name = raana_container_layer_name(c, i);
        char g[300];
        double bits = 0, rel = 0;
        snprintf(g, sizeof g, "/layers/%s", name);
        if (raana_container_attr_f64(c, g, "bits", &bits, &ignored) != RAANA_OK)
            bits = 0;
        if (raana_container_attr_f64(c, g, "rel_error", &rel, &ignored) != RAANA_OK)
            rel = 0;
        printf("%-48s %5g bits  rel.error %.6f\n", name, bits, rel);
    }
    printf("%d quantized layers\n", n);
}

/* ---- --json ------------------------------------------------------------------------ */

enum { COL_BITS, COL_COEF, COL_GRAD, COL_XRMS, COL_WFRO, COL_REL, COL_COS, COL_EFF, N_COLS };
static const char *const columns[N_COLS] = {"bits",  "coef",      "grad_rms",    "x_rms",
                                            "w_fro", "rel_error", "mean_cosine", "effective_bits"};

/* The /allocation table, plan order. */
typedef struct {
    int n;
    size_t name_len;
    char *names; /* [n][name_len + 1] */
    int *d_in, *d_out, *quantized;
    double *col[N_COLS];
} alloc_table;

static void alloc_table_free(alloc_table *t)
{
    free(t->names);
    free(t->d_in);
    free(t->d_out);
    free(t->quantized);
    for (int k = 0; k < N_COLS; k++)
        free(t->col[k]);
}

/* Column /allocation/<name> of t->n values, malloc'd into *out. */
static raana_status read_column(const raana_container *c, const char *name, raana_elem type,
                                size_t size, int n, void **out, raana_error *err)
{
    char path[128];
    snprintf(path, sizeof path, "/allocation/%s", name);
    if (!(*out = malloc((size_t)(n ? n : 1) * size)))
        return raana_fail(err, RAANA_ERR_NOMEM, "out of memory reading %s", path);
    return raana_container_read_dataset(c, path, type, *out, (size_t)n, err);
}

static raana_status read_names(const raana_container *c, alloc_table *t, raana_error *err)
{
    raana_dataset_shape s;
    RAANA_CALL(raana_container_dataset_shape(c, "/allocation/name", &s, err));
    if (!s.is_string || s.ndim != 1 || s.dims[0] > (1 << 24) || s.elem_size >= 4096)
        return raana_fail(err, RAANA_ERR_INPUT, "%s: /allocation/name is not a string column",
                          raana_container_path(c));
    t->n = (int)s.dims[0];
    t->name_len = s.elem_size;
    t->names = calloc((size_t)(t->n ? t->n : 1), t->name_len + 1);
    if (!t->names)
        return raana_fail(err, RAANA_ERR_NOMEM, "out of memory reading /allocation/name");
    return raana_container_read_strings(c, "/allocation/name", t->name_len + 1, t->names,
                                        (size_t)t->n, err);
}

static raana_status read_alloc_table(const raana_container *c, alloc_table *t, raana_error *err)
{
    raana_status st = RAANA_OK;
    memset(t, 0, sizeof *t);
    RAANA_CHECK(read_names(c, t, err));
    RAANA_CHECK(read_column(c, "d_in", RAANA_ELEM_I32, sizeof(int), t->n, (void **)&t->d_in, err));
    RAANA_CHECK(
        read_column(c, "d_out", RAANA_ELEM_I32, sizeof(int), t->n, (void **)&t->d_out, err));
    RAANA_CHECK(read_column(c, "quantized", RAANA_ELEM_I32, sizeof(int), t->n,
                            (void **)&t->quantized, err));
    for (int k = 0; k < N_COLS; k++)
        RAANA_CHECK(read_column(c, columns[k], RAANA_ELEM_F64, sizeof(double), t->n,
                                (void **)&t->col[k], err));
cleanup:
    if (st != RAANA_OK) {
        alloc_table_free(t);
        raana_error_prefix(err, "/allocation");
    }
    return st;
}

/* Attribute as a JSON value: a number, an array of numbers, or a string;
 * null when absent. */
static cJSON *attr_json(const raana_container *c, const char *obj, const char *name)
{
    raana_error ignored;
    char text[4096];
    double v[4096];
    size_t n = 0;
    switch (raana_container_attr_kind(c, obj, name)) {
    case RAANA_ATTR_TEXT:
        if (raana_container_attr_text(c, obj, name, text, sizeof text, &ignored) == RAANA_OK)
            return cJSON_CreateString(text);
        break;
    case RAANA_ATTR_NUMBER:
        if (raana_container_attr_f64(c, obj, name, v, &ignored) == RAANA_OK)
            return raana_json_number(v[0]);
        break;
    case RAANA_ATTR_NUMBERS:
        if (raana_container_attr_f64s(c, obj, name, v, 4096, &n, &ignored) == RAANA_OK) {
            cJSON *out = cJSON_CreateArray();
            for (size_t i = 0; i < n; i++)
                cJSON_AddItemToArray(out, raana_json_number(v[i]));
            return out;
        }
        break;
    case RAANA_ATTR_ABSENT: break;
    }
    return cJSON_CreateNull();
}

/* Bits per weight of a stored layer by kind (bits.h, as the reader counts
 * them: raana_container_layer_info); they sum to its effective bits. null
 * when the layer's attributes do not describe a layer. */
static cJSON *bits_breakdown(const raana_container *c, const char *name)
{
    raana_error ignored;
    raana_container_layer info;
    int i = 0, n = raana_container_layer_count(c);
    while (i < n && strcmp(raana_container_layer_name(c, i), name) != 0)
        i++;
    if (i == n || raana_container_layer_info(c, i, &info, &ignored) != RAANA_OK)
        return cJSON_CreateNull();
    const raana_layer_bits *b = &info.stored;
    cJSON *o = cJSON_CreateObject();
    raana_json_add_number(o, "codes", b->codes / b->weights);
    raana_json_add_number(o, "rescales", b->rescales / b->weights);
    raana_json_add_number(o, "tricks", raana_layer_bits_tricks(b));
    raana_json_add_number(o, "signs", b->signs / b->weights);
    if (b->factors != 0.0)
        raana_json_add_number(o, "factors", b->factors / b->weights);
    return o;
}

static cJSON *layer_json(const raana_container *c, const alloc_table *t, int i)
{
    const char *name = t->names + (size_t)i * (t->name_len + 1);
    cJSON *l = cJSON_CreateObject();
    int block = -1;
    const char *kind = strrchr(name, '.');
    sscanf(name, "model.layers.%d.", &block);
    cJSON_AddStringToObject(l, "name", name);
    raana_json_add_number(l, "block", block);
    cJSON_AddStringToObject(l, "kind", kind ? kind + 1 : name);
    raana_json_add_number(l, "d_in", t->d_in[i]);
    raana_json_add_number(l, "d_out", t->d_out[i]);
    cJSON_AddBoolToObject(l, "quantized", t->quantized[i] != 0);
    for (int k = 0; k < N_COLS; k++) /* bits: 16 when kept in 16 bits, 0 when excluded */
        raana_json_add_number(l, columns[k], t->col[k][i]);
    cJSON_AddItemToObject(l, "bits_breakdown",
                          t->quantized[i] ? bits_breakdown(c, name) : cJSON_CreateNull());
    return l;
}

static cJSON *group_json(const raana_container *c, const char *group, const char *const *names,
                         size_t n)
{
    cJSON *o = cJSON_CreateObject();
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToObject(o, names[i], attr_json(c, group, names[i]));
    return o;
}

static cJSON *calibration_json(const raana_container *c)
{
    static const char *const calibration[] = {"loss", "source", "fingerprint"};
    raana_error ignored;
    raana_dataset_shape s;
    cJSON *cal = group_json(c, "/calibration", calibration, 3);
    int have = raana_container_dataset_shape(c, "/calibration/tokens", &s, &ignored) == RAANA_OK &&
               s.ndim == 2;
    raana_json_add_number(cal, "windows", have ? (double)s.dims[0] : 0);
    raana_json_add_number(cal, "seq_len", have ? (double)s.dims[1] : 0);
    return cal;
}

static raana_status print_json(const raana_container *c, raana_error *err)
{
    static const char *const root_attrs[] = {"format", "format_version", "model_type",
                                             "checkpoint_fingerprint"};
    static const char *const report[] = {"target_avg_bits", "achieved_avg_bits",
                                         "effective_bits_quantized", "effective_bits_model"};
    static const char *const allocation[] = {"avg_bits",       "candidates",  "achieved_avg_bits",
                                             "modelled_error", "lower_bound", "method"};
    raana_status st = RAANA_OK;
    alloc_table t;
    char *text = NULL;
    RAANA_CALL(read_alloc_table(c, &t, err));
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "path", raana_container_path(c));
    for (size_t i = 0; i < sizeof root_attrs / sizeof *root_attrs; i++)
        cJSON_AddItemToObject(o, root_attrs[i], attr_json(c, "/", root_attrs[i]));
    cJSON_AddItemToObject(o, "report", group_json(c, "/report", report, 4));
    cJSON_AddItemToObject(o, "blas", raana_blas_json()); /* the reader's BLAS, not the file's */
    cJSON_AddItemToObject(o, "calibration", calibration_json(c));
    cJSON *alloc = group_json(c, "/allocation", allocation, 6);
    raana_error absent;
    double factor_bits;
    if (raana_container_attr_f64(c, "/allocation", "factor_bits", &factor_bits, &absent) ==
        RAANA_OK)
        cJSON_AddItemToObject(alloc, "factor_bits", attr_json(c, "/allocation", "factor_bits"));
    if (raana_container_attr_kind(c, "/allocation", "unit_errors") != RAANA_ATTR_ABSENT)
        cJSON_AddItemToObject(alloc, "unit_errors", attr_json(c, "/allocation", "unit_errors"));
    cJSON_AddItemToObject(o, "allocation", alloc);
    cJSON *layers = cJSON_AddArrayToObject(o, "layers");
    for (int i = 0; i < t.n; i++)
        cJSON_AddItemToArray(layers, layer_json(c, &t, i));
    if (!(text = cJSON_PrintUnformatted(o)))
        RAANA_FAIL_GOTO(err, RAANA_ERR_NOMEM, "out of memory printing JSON");
    printf("%s\n", text);
cleanup:
    free(text);
    cJSON_Delete(o);
    alloc_table_free(&t);
    return st;
}

/* ---- --verify --------------------------------------------------------------------- */

/* 1 if `layer` names a linear layer of the model's architecture. */
static int is_linear_layer(const raana_model_config *cfg, const char *layer)
{
    for (int b = 0; b < cfg->num_layers; b++)
        for (int k = 0; k < raana_block_linear_count(cfg, b); k++) {
            raana_linear_info li;
            raana_block_linear(cfg, b, k, &li);
            if (strcmp(li.name, layer) == 0)
                return 1;
        }
    return 0;
}

/* Rebuilds checkpoint tensor t (a quantized layer's weight). */
static raana_status rebuild_layer(const raana_model *m, const raana_st_tensor *t, raana_error *err)
{
    float *w = malloc((size_t)t->numel * sizeof *w);
    if (!w)
        return raana_fail(err, RAANA_ERR_NOMEM, "out of memory rebuilding %s", t->name);
    raana_status st = raana_model_read_f32(m, t->name, w, (size_t)t->numel, err);
    free(w);
    return st;
}

/* Every /layers group is a linear layer of config.json's architecture with
 * its shape; rebuilding it gives finite weights. */
static raana_status verify_layers(const raana_container *c, const raana_model *m, int *count,
                                  raana_error *err)
{
    *count = 0;
    for (size_t i = 0; i < m->n_entries; i++) {
        const raana_st_tensor *t = m->entries[i].tensor;
        size_t len = strlen(t->name);
        char layer[300], group[320];
        if (len < 8 || len - 7 >= sizeof layer)
            continue;
        snprintf(layer, sizeof layer, "%.*s", (int)(len - 7), t->name);
        snprintf(group, sizeof group, "/layers/%s", layer);
        if (!raana_container_has(c, group))
            continue;
        if (!is_linear_layer(&m->config, layer))
            return raana_fail(err, RAANA_ERR_INPUT,
                              "%s: %s is not a linear layer of the architecture in "
                              "/model/config.json",
                              raana_container_path(c), group);
        RAANA_CALL(rebuild_layer(m, t, err));
        ++*count;
    }
    return RAANA_OK;
}

static raana_status verify(const raana_container *c, raana_error *err)
{
    raana_status st = RAANA_OK;
    long datasets = 0;
    double bytes = 0;
    int layers = 0;
    raana_model m;
    memset(&m, 0, sizeof m);
    RAANA_CALL(raana_container_read_all(c, &datasets, &bytes, err));
    /* shapes: every required tensor (quantized layers' weights from their
     * d_in, d_out) against config.json, as raana-eval --container loads it */
    RAANA_CALL(raana_container_model_open(&m, raana_container_path(c), err));
    RAANA_CHECK(verify_layers(c, &m, &layers, err));
    printf("verify: OK: %ld datasets (%.1f MB) read and checksummed, %d layers rebuilt, "
           "shapes match /model/config.json\n",
           datasets, bytes / 1e6, layers);
cleanup:
    raana_model_close(&m);
    return st;
}

/* ---- --dequantize ------------------------------------------------------------------- */

static raana_status dequantize(const raana_container *c, const char *layer, const char *out,
                               raana_error *err)
{
    raana_status st = RAANA_OK;
    float *w = NULL;
    int d_out = 0, d_in = 0;
    double bits = 0;
    char g[300];
    FILE *f = NULL;
    RAANA_CHECK(raana_container_dequantize_layer(c, layer, &w, &d_out, &d_in, err));
    snprintf(g, sizeof g, "/layers/%s", layer);
    RAANA_CHECK(raana_container_attr_f64(c, g, "bits", &bits, err));
    size_t n = (size_t)d_in * (size_t)d_out;
    f = fopen(out, "wb");
    int written = f && fwrite(w, sizeof *w, n, f) == n;
    if (f && fclose(f) != 0)
        written = 0;
    f = NULL;
    if (!written) {
        unlink(out);
        RAANA_FAIL_GOTO(err, RAANA_ERR_IO, "%s: cannot write", out);
    }
    printf("%s: %dx%d float32, %g bits\n", out, d_out, d_in, bits);
cleanup:
    free(w);
    return st;
}

/* The work after the command line (raana_cli_main). */
static raana_status run(void *ctx, raana_error *err)
{
    const inspect_args *a = ctx;
    raana_status st = RAANA_OK;
    raana_container *c = NULL;
    RAANA_CHECK(raana_container_open(a->path, &c, err));
    switch (a->mode) {
    case MODE_DEQUANTIZE: st = dequantize(c, a->layer, a->out, err); break;
    case MODE_LAYERS: print_layers(c); break;
    case MODE_JSON: st = print_json(c, err); break;
    case MODE_VERIFY: st = verify(c, err); break;
    case MODE_SUMMARY: st = print_summary(c, err); break;
    }
cleanup:
    raana_container_close(c);
    return st;
}

int main(int argc, char **argv)
{
    inspect_args a = {.argc = argc, .argv = argv};
    return raana_cli_main(&cli, argc, argv, &a, run);
}
