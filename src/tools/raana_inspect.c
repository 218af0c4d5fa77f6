/* raana_inspect.c — main() of raana-inspect: reads a raana container
 * without MPI and prints what it holds (a summary, one line per layer, or
 * everything as one JSON object), checks it end to end (--verify), or
 * rebuilds one quantized layer's weight from its codes (the reference
 * decoder for other readers). */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raana/blas_info.h"
#include "raana/container.h"
#include "raana/container_model.h"
#include "raana/error.h"
#include "raana/qlayer.h"

static const char usage_text[] =
    "usage: raana-inspect [--json | --layers | --verify | --dequantize LAYER OUT.f32] FILE.h5\n"
    "  (no option)          summary and the report table\n"
    "  --layers             one line per quantized layer\n"
    "  --json               everything the summary and the layer table hold, as one JSON\n"
    "                       object (docs/FORMAT.md, \"raana-inspect --json\")\n"
    "  --verify             read every dataset (decompressed, Fletcher-32 checked), check\n"
    "                       shapes against /model/config.json and rebuild every layer;\n"
    "                       names the first bad object\n"
    "  --dequantize LAYER OUT.f32\n"
    "                       write LAYER's rebuilt weight as raw little-endian float32,\n"
    "                       [d_out][d_in] (Hugging Face layout)\n"
    "Options and FILE may come in any order.\n"
    "exit codes: 0 ok, 2 usage, 4 not a readable or consistent container, 5 file I/O,\n"
    "            6 out of memory, 8 newer container format, 9 NaN/Inf in a rebuilt layer\n";

typedef enum { MODE_SUMMARY, MODE_LAYERS, MODE_JSON, MODE_VERIFY, MODE_DEQUANTIZE } inspect_mode;

typedef struct {
    inspect_mode mode;
    const char *path, *layer, *out;
    int help;
} inspect_args;

/* v as a JSON number that reads back as exactly v (cJSON's own printing
 * rounds to 15 digits when the value is merely close); null if not finite. */
static cJSON *exact_number(double v)
{
    char text[32];
    if (!isfinite(v))
        return cJSON_CreateNull();
    for (int digits = 15; digits <= 17; digits++) {
        snprintf(text, sizeof text, "%.*g", digits, v);
        if (strtod(text, NULL) == v)
            break;
    }
    return cJSON_CreateRaw(text);
}

static void add_number(cJSON *obj, const char *key, double v)
{
    cJSON_AddItemToObject(obj, key, exact_number(v));
}

/* ---- arguments ------------------------------------------------------------------ */

static raana_status set_mode(inspect_args *a, inspect_mode m, raana_error *err)
{
    if (a->mode != MODE_SUMMARY && a->mode != m)
        return raana_fail(err, RAANA_ERR_USAGE,
                          "choose one of --json, --layers, --verify, --dequantize");
    a->mode = m;
    return RAANA_OK;
}

/* --dequantize takes two values (LAYER OUT.f32), which getopt cannot
 * express: they are taken out of argv first, the rest goes to getopt_long. */
static raana_status take_dequantize(int *argc, char **argv, inspect_args *a, raana_error *err)
{
    int n = 0;
    for (int i = 0; i < *argc; i++) {
        const char *s = argv[i];
        int eq = strncmp(s, "--dequantize=", 13) == 0;
        if (strcmp(s, "--") == 0) {
            while (i < *argc)
                argv[n++] = argv[i++];
            break;
        }
        if (!eq && strcmp(s, "--dequantize") != 0) {
            argv[n++] = argv[i];
            continue;
        }
        int values = eq ? 1 : 2;
        if (i + values >= *argc)
            return raana_fail(err, RAANA_ERR_USAGE, "--dequantize needs LAYER and OUT.f32");
        raana_status st = set_mode(a, MODE_DEQUANTIZE, err);
        if (st != RAANA_OK)
            return st;
        a->layer = eq ? s + 13 : argv[i + 1];
        a->out = argv[i + values];
        i += values;
    }
    *argc = n;
    return RAANA_OK;
}

static raana_status parse_args(int argc, char **argv, inspect_args *a, raana_error *err)
{
    static const struct option options[] = {{"json", no_argument, NULL, 'j'},
                                            {"layers", no_argument, NULL, 'l'},
                                            {"verify", no_argument, NULL, 'v'},
                                            {"help", no_argument, NULL, 'h'},
                                            {NULL, 0, NULL, 0}};
    memset(a, 0, sizeof *a);
    raana_status st = take_dequantize(&argc, argv, a, err);
    opterr = 0;
    for (int c; st == RAANA_OK && (c = getopt_long(argc, argv, ":h", options, NULL)) != -1;) {
        if (c == 'j')
            st = set_mode(a, MODE_JSON, err);
        else if (c == 'l')
            st = set_mode(a, MODE_LAYERS, err);
        else if (c == 'v')
            st = set_mode(a, MODE_VERIFY, err);
        else if (c == 'h')
            a->help = 1;
        else
            st = raana_fail(err, RAANA_ERR_USAGE, "unknown option '%s' (see --help)",
                            argv[optind - 1]);
    }
    if (st != RAANA_OK || a->help)
        return st;
    if (argc - optind != 1)
        return raana_fail(err, RAANA_ERR_USAGE, "expected one FILE.h5, got %d (see --help)",
                          argc - optind);
    a->path = argv[optind];
    return RAANA_OK;
}

/* ---- small readers ---------------------------------------------------------------- */

static int attr_f64(hid_t file, const char *obj, const char *name, double *v)
{
    hid_t a = H5Aopen_by_name(file, obj, name, H5P_DEFAULT, H5P_DEFAULT);
    int ok = a >= 0 && H5Aread(a, H5T_NATIVE_DOUBLE, v) >= 0;
    if (a >= 0)
        H5Aclose(a);
    return ok;
}

/* Attribute as a JSON value: a number, an array of numbers, or a string;
 * null when absent. */
static cJSON *attr_json(hid_t file, const char *obj, const char *name)
{
    hid_t a = H5Aopen_by_name(file, obj, name, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0)
        return cJSON_CreateNull();
    hid_t t = H5Aget_type(a), space = H5Aget_space(a);
    hssize_t n = H5Sget_simple_extent_npoints(space);
    int scalar = H5Sget_simple_extent_ndims(space) == 0;
    cJSON *out = NULL;
    if (H5Tget_class(t) == H5T_STRING && !H5Tis_variable_str(t) && n == 1) {
        size_t size = H5Tget_size(t);
        char *text = calloc(size + 1, 1);
        if (text && H5Aread(a, t, text) >= 0)
            out = cJSON_CreateString(text);
        free(text);
    } else if (n >= 1 && n <= 4096) {
        double v[4096];
        if (H5Aread(a, H5T_NATIVE_DOUBLE, v) >= 0 && (scalar || n == 1)) {
            out = exact_number(v[0]);
        } else if (H5Aread(a, H5T_NATIVE_DOUBLE, v) >= 0) {
            out = cJSON_CreateArray();
            for (hssize_t i = 0; i < n; i++)
                cJSON_AddItemToArray(out, exact_number(v[i]));
        }
    }
    H5Sclose(space);
    H5Tclose(t);
    H5Aclose(a);
    return out ? out : cJSON_CreateNull();
}

static hssize_t dataset_points(hid_t file, const char *path, int *ndim, hsize_t *dims)
{
    hid_t d = H5Dopen2(file, path, H5P_DEFAULT);
    if (d < 0)
        return -1;
    hid_t space = H5Dget_space(d);
    *ndim = H5Sget_simple_extent_ndims(space);
    hssize_t n = *ndim >= 0 && *ndim <= 2 ? H5Sget_simple_extent_npoints(space) : -1;
    if (n >= 0)
        H5Sget_simple_extent_dims(space, dims, NULL);
    H5Sclose(space);
    H5Dclose(d);
    return n;
}

static int dataset_exists(hid_t file, const char *group, const char *name)
{
    char path[400];
    snprintf(path, sizeof path, "%s/%s", group, name);
    return H5Lexists(file, path, H5P_DEFAULT) > 0;
}

/* ---- summary and --layers ------------------------------------------------------------ */

static raana_status print_text_dataset(hid_t file, const char *path, const char *name,
                                       raana_error *err)
{
    hid_t d = H5Lexists(file, name, H5P_DEFAULT) > 0 ? H5Dopen2(file, name, H5P_DEFAULT)
                                                     : H5I_INVALID_HID;
    if (d < 0)
        return RAANA_OK;
    hid_t space = H5Dget_space(d);
    hssize_t n = H5Sget_simple_extent_npoints(space);
    raana_status st = raana_container_dataset_fits(d, path, name, err);
    char *text = st == RAANA_OK && n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (st == RAANA_OK && !text)
        st = raana_fail(err, RAANA_ERR_NOMEM, "out of memory for %s", name);
    else if (st == RAANA_OK && n > 0 &&
             H5Dread(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, text) < 0)
        st = raana_fail(err, RAANA_ERR_INPUT, "%s: %s is unreadable", path, name);
    if (st == RAANA_OK) {
        text[n] = '\0';
        fputs(text, stdout);
    }
    free(text);
    H5Sclose(space);
    H5Dclose(d);
    return st;
}

static void print_f64_attr(hid_t file, const char *obj, const char *name, const char *label)
{
    double v;
    if (attr_f64(file, obj, name, &v))
        printf("%s: %.6g\n", label, v);
}

static raana_status print_summary(hid_t file, const char *path, raana_error *err)
{
    printf("%s: raana container, format version %d\n", path, RAANA_FORMAT_VERSION);
    print_f64_attr(file, "/report", "target_avg_bits", "target average bits");
    print_f64_attr(file, "/report", "achieved_avg_bits", "achieved average bits (codes)");
    print_f64_attr(file, "/report", "effective_bits_quantized",
                   "effective bits per quantized weight");
    print_f64_attr(file, "/report", "effective_bits_model", "effective bits per parameter");
    print_f64_attr(file, "/calibration", "loss", "calibration loss");
    return print_text_dataset(file, path, "/report/table", err);
}

static herr_t print_layer(hid_t group, const char *name, const H5L_info_t *info, void *data)
{
    (void)info;
    double bits = 0, rel = 0;
    attr_f64(group, name, "bits", &bits);
    attr_f64(group, name, "rel_error", &rel);
    printf("%-48s %5g bits  rel.error %.6f\n", name, bits, rel);
    ++*(int *)data;
    return 0;
}

static void print_layers(hid_t file)
{
    int count = 0;
    hid_t g = H5Gopen2(file, "/layers", H5P_DEFAULT);
    if (g >= 0) {
        H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, NULL, print_layer, &count);
        H5Gclose(g);
    }
    printf("%d quantized layers\n", count);
}

/* ---- --json ------------------------------------------------------------------------ */

enum { COL_BITS, COL_COEF, COL_GRAD, COL_XRMS, COL_WFRO, COL_REL, COL_COS, COL_EFF, N_COLS };
static const char *const columns[N_COLS] = {"bits",  "coef",      "grad_rms",    "x_rms",
                                            "w_fro", "rel_error", "mean_cosine", "effective_bits"};

/* The /allocation table, plan order. */
typedef struct {
    int n;
    size_t name_len;
    char *names;
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

static void *read_column(hid_t file, const char *name, hid_t type, int n)
{
    char path[128];
    snprintf(path, sizeof path, "/allocation/%s", name);
    hid_t d = H5Dopen2(file, path, H5P_DEFAULT);
    if (d < 0)
        return NULL;
    hid_t space = H5Dget_space(d);
    void *out = NULL;
    if (H5Sget_simple_extent_npoints(space) == n) {
        out = malloc((size_t)(n ? n : 1) * H5Tget_size(type));
        if (out && H5Dread(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) < 0) {
            free(out);
            out = NULL;
        }
    }
    H5Sclose(space);
    H5Dclose(d);
    return out;
}

static raana_status read_alloc_table(hid_t file, const char *path, alloc_table *t, raana_error *err)
{
    memset(t, 0, sizeof *t);
    hid_t d = H5Dopen2(file, "/allocation/name", H5P_DEFAULT);
    hid_t type = d >= 0 ? H5Dget_type(d) : H5I_INVALID_HID, space = H5I_INVALID_HID;
    int ok = type >= 0 && H5Tget_class(type) == H5T_STRING && !H5Tis_variable_str(type);
    if (ok) {
        space = H5Dget_space(d);
        hssize_t n = H5Sget_simple_extent_npoints(space);
        t->name_len = H5Tget_size(type);
        ok = n >= 0 && n <= (1 << 24) && t->name_len < 4096;
        t->n = ok ? (int)n : 0;
        t->names = ok ? calloc((size_t)(n ? n : 1), t->name_len + 1) : NULL;
        char *raw = ok ? calloc((size_t)(n ? n : 1), t->name_len) : NULL;
        ok = t->names && raw &&
             (n == 0 || H5Dread(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw) >= 0);
        for (hssize_t i = 0; ok && i < n; i++)
            memcpy(t->names + i * (t->name_len + 1), raw + i * t->name_len, t->name_len);
        free(raw);
        H5Sclose(space);
    }
    if (type >= 0)
        H5Tclose(type);
    if (d >= 0)
        H5Dclose(d);
    if (ok) {
        t->d_in = read_column(file, "d_in", H5T_NATIVE_INT, t->n);
        t->d_out = read_column(file, "d_out", H5T_NATIVE_INT, t->n);
        t->quantized = read_column(file, "quantized", H5T_NATIVE_INT, t->n);
        ok = t->d_in && t->d_out && t->quantized;
        for (int k = 0; ok && k < N_COLS; k++)
            ok = (t->col[k] = read_column(file, columns[k], H5T_NATIVE_DOUBLE, t->n)) != NULL;
    }
    if (ok)
        return RAANA_OK;
    alloc_table_free(t);
    return raana_fail(err, RAANA_ERR_INPUT, "%s: /allocation: a column is missing or unreadable",
                      path);
}

static int64_t attr_i64(hid_t file, const char *obj, const char *name)
{
    int64_t v = 0;
    hid_t a = H5Aopen_by_name(file, obj, name, H5P_DEFAULT, H5P_DEFAULT);
    if (a >= 0) {
        if (H5Aread(a, H5T_NATIVE_INT64, &v) < 0)
            v = 0;
        H5Aclose(a);
    }
    return v;
}

/* Bits per weight of a stored layer by kind (docs/FORMAT.md, "Bits,
 * honestly counted"); they sum to its effective bits. */
static cJSON *bits_breakdown(hid_t file, const char *name)
{
    char g[300];
    snprintf(g, sizeof g, "/layers/%s", name);
    if (H5Lexists(file, "/layers", H5P_DEFAULT) <= 0 || H5Lexists(file, g, H5P_DEFAULT) <= 0)
        return cJSON_CreateNull();
    double d_in = (double)attr_i64(file, g, "d_in"), d_out = (double)attr_i64(file, g, "d_out");
    double weights = d_in * d_out, held = (double)attr_i64(file, g, "n_held");
    double tricks = held * (32.0 * d_in + 32.0);
    if (dataset_exists(file, g, "mu"))
        tricks += 32.0 * d_in;
    if (dataset_exists(file, g, "row_scale"))
        tricks += 32.0 * d_in;
    cJSON *b = cJSON_CreateObject();
    add_number(b, "codes", 8.0 * (double)attr_i64(file, g, "packed_bytes") * d_out / weights);
    add_number(b, "rescales", 32.0 * d_out / weights);
    add_number(b, "tricks", tricks / weights);
    add_number(b, "signs", 16.0 * ceil(d_in / 8.0) / weights);
    return b;
}

static cJSON *layer_json(hid_t file, const alloc_table *t, int i)
{
    const char *name = t->names + (size_t)i * (t->name_len + 1);
    cJSON *l = cJSON_CreateObject();
    int block = -1;
    const char *kind = strrchr(name, '.');
    sscanf(name, "model.layers.%d.", &block);
    cJSON_AddStringToObject(l, "name", name);
    add_number(l, "block", block);
    cJSON_AddStringToObject(l, "kind", kind ? kind + 1 : name);
    add_number(l, "d_in", t->d_in[i]);
    add_number(l, "d_out", t->d_out[i]);
    cJSON_AddBoolToObject(l, "quantized", t->quantized[i] != 0);
    for (int k = 0; k < N_COLS; k++)
        add_number(l, columns[k], k == COL_BITS && !t->quantized[i] ? 0.0 : t->col[k][i]);
    cJSON_AddItemToObject(l, "bits_breakdown",
                          t->quantized[i] ? bits_breakdown(file, name) : cJSON_CreateNull());
    return l;
}

static cJSON *group_json(hid_t file, const char *group, const char *const *names, size_t n)
{
    cJSON *o = cJSON_CreateObject();
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToObject(o, names[i], attr_json(file, group, names[i]));
    return o;
}

static raana_status print_json(hid_t file, const char *path, raana_error *err)
{
    static const char *const root_attrs[] = {"format", "format_version", "model_type",
                                             "checkpoint_fingerprint"};
    static const char *const report[] = {"target_avg_bits", "achieved_avg_bits",
                                         "effective_bits_quantized", "effective_bits_model"};
    static const char *const calibration[] = {"loss", "source", "fingerprint"};
    static const char *const allocation[] = {"avg_bits",       "candidates",  "achieved_avg_bits",
                                             "modelled_error", "lower_bound", "method"};
    alloc_table t;
    raana_status st = read_alloc_table(file, path, &t, err);
    if (st != RAANA_OK)
        return st;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "path", path);
    for (size_t i = 0; i < sizeof root_attrs / sizeof *root_attrs; i++)
        cJSON_AddItemToObject(o, root_attrs[i], attr_json(file, "/", root_attrs[i]));
    cJSON_AddItemToObject(o, "report", group_json(file, "/report", report, 4));
    cJSON_AddItemToObject(o, "blas", raana_blas_json()); /* the reader's BLAS, not the file's */
    cJSON *cal = group_json(file, "/calibration", calibration, 3);
    int ndim = 0;
    hsize_t dims[2] = {0, 0};
    int have_tokens = dataset_points(file, "/calibration/tokens", &ndim, dims) >= 0 && ndim == 2;
    add_number(cal, "windows", have_tokens ? (double)dims[0] : 0);
    add_number(cal, "seq_len", have_tokens ? (double)dims[1] : 0);
    cJSON_AddItemToObject(o, "calibration", cal);
    cJSON_AddItemToObject(o, "allocation", group_json(file, "/allocation", allocation, 6));
    cJSON *layers = cJSON_AddArrayToObject(o, "layers");
    for (int i = 0; i < t.n; i++)
        cJSON_AddItemToArray(layers, layer_json(file, &t, i));
    char *text = cJSON_PrintUnformatted(o);
    if (text)
        printf("%s\n", text);
    else
        st = raana_fail(err, RAANA_ERR_NOMEM, "out of memory printing JSON");
    free(text);
    cJSON_Delete(o);
    alloc_table_free(&t);
    return st;
}

/* ---- --verify --------------------------------------------------------------------- */

typedef struct {
    const char *path;
    raana_error *err;
    raana_status st;
    long datasets;
    double bytes;
} verify_state;

/* Reads dataset `name` whole, in slabs of rows along dimension 0. */
static raana_status read_whole(hid_t d, const char *path, const char *name, double *bytes,
                               raana_error *err)
{
    hid_t space = H5Dget_space(d), ftype = H5Dget_type(d);
    hid_t mtype = ftype >= 0 ? H5Tget_native_type(ftype, H5T_DIR_ASCEND) : H5I_INVALID_HID;
    int ndim = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
    hsize_t dims[H5S_MAX_RANK], start[H5S_MAX_RANK] = {0}, count[H5S_MAX_RANK];
    raana_status st = RAANA_OK;
    char label[400];
    snprintf(label, sizeof label, "/%s", name);
    if (mtype < 0 || ndim < 0 || H5Sget_simple_extent_dims(space, dims, NULL) < 0)
        st = raana_fail(err, RAANA_ERR_INPUT, "%s: /%s: unreadable type or shape", path, name);
    else
        st = raana_container_dataset_fits(d, path, label, err);
    size_t row = mtype >= 0 ? H5Tget_size(mtype) : 1;
    for (int k = 1; k < ndim; k++)
        row *= dims[k], count[k] = dims[k];
    hsize_t rows = ndim == 0 ? 1 : dims[0];
    hsize_t step = row ? (16u << 20) / row + 1 : rows; /* about 16 MiB per read */
    void *buf = st == RAANA_OK ? malloc(step * row + 1) : NULL;
    if (st == RAANA_OK && !buf)
        st = raana_fail(err, RAANA_ERR_NOMEM, "out of memory reading /%s", name);
    for (hsize_t r = 0; st == RAANA_OK && r < rows; r += step) {
        hid_t mem = H5I_INVALID_HID, file_sel = H5Scopy(space);
        herr_t rc;
        if (ndim == 0) {
            rc = H5Dread(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
        } else {
            start[0] = r;
            count[0] = rows - r < step ? rows - r : step;
            H5Sselect_hyperslab(file_sel, H5S_SELECT_SET, start, NULL, count, NULL);
            mem = H5Screate_simple(ndim, count, NULL);
            rc = H5Dread(d, mtype, mem, file_sel, H5P_DEFAULT, buf);
            H5Sclose(mem);
        }
        H5Sclose(file_sel);
        if (rc < 0)
            st = raana_fail(err, RAANA_ERR_INPUT,
                            "%s: /%s: unreadable (a chunk fails its Fletcher-32 checksum or does "
                            "not decompress)",
                            path, name);
        *bytes += (double)(ndim == 0 ? row : count[0] * row);
    }
    free(buf);
    if (mtype >= 0)
        H5Tclose(mtype);
    if (ftype >= 0)
        H5Tclose(ftype);
    if (space >= 0)
        H5Sclose(space);
    return st;
}

static herr_t verify_object(hid_t root, const char *name, const H5O_info_t *info, void *data)
{
    verify_state *v = data;
    if (info->type != H5O_TYPE_DATASET)
        return 0;
    hid_t d = H5Dopen2(root, name, H5P_DEFAULT);
    v->st = d >= 0 ? read_whole(d, v->path, name, &v->bytes, v->err)
                   : raana_fail(v->err, RAANA_ERR_INPUT, "%s: /%s: cannot open", v->path, name);
    if (d >= 0)
        H5Dclose(d);
    v->datasets++;
    return v->st == RAANA_OK ? 0 : 1; /* stop at the first bad one */
}

/* Every /layers group is a linear layer of config.json's architecture with
 * its shape; rebuilding it gives finite weights. */
static raana_status verify_layers(hid_t file, const char *path, const raana_model *m, int *count,
                                  raana_error *err)
{
    const raana_model_config *cfg = &m->config;
    *count = 0;
    for (size_t i = 0; i < m->n_entries; i++) {
        const raana_st_tensor *t = m->entries[i].tensor;
        size_t len = strlen(t->name);
        char layer[300], group[320];
        if (len < 8 || len - 7 >= sizeof layer)
            continue;
        snprintf(layer, sizeof layer, "%.*s", (int)(len - 7), t->name);
        snprintf(group, sizeof group, "/layers/%s", layer);
        if (H5Lexists(file, group, H5P_DEFAULT) <= 0)
            continue;
        int known = 0;
        for (int b = 0; !known && b < cfg->num_layers; b++)
            for (int k = 0; !known && k < RAANA_LINEAR_COUNT; k++) {
                char name[128];
                raana_linear_name(b, (raana_linear_kind)k, name, sizeof name);
                known = strcmp(name, layer) == 0;
            }
        if (!known)
            return raana_fail(err, RAANA_ERR_INPUT,
                              "%s: %s is not a linear layer of the architecture in "
                              "/model/config.json",
                              path, group);
        float *w = malloc((size_t)t->numel * sizeof *w);
        if (!w)
            return raana_fail(err, RAANA_ERR_NOMEM, "out of memory rebuilding %s", layer);
        raana_status st = raana_model_read_f32(m, t->name, w, (size_t)t->numel, err);
        free(w);
        if (st != RAANA_OK)
            return st;
        ++*count;
    }
    return RAANA_OK;
}

static raana_status verify(hid_t file, const char *path, raana_error *err)
{
    verify_state v = {path, err, RAANA_OK, 0, 0};
    if (H5Ovisit(file, H5_INDEX_NAME, H5_ITER_INC, verify_object, &v) < 0 && v.st == RAANA_OK)
        v.st = raana_fail(err, RAANA_ERR_INPUT, "%s: cannot walk the file's objects", path);
    if (v.st != RAANA_OK)
        return v.st;
    /* shapes: every required tensor (quantized layers' weights from their
     * d_in, d_out) against config.json, as raana-eval --container loads it */
    raana_model m;
    raana_status st = raana_container_model_open(&m, path, err);
    int layers = 0;
    if (st == RAANA_OK) {
        st = verify_layers(file, path, &m, &layers, err);
        raana_model_close(&m);
    }
    if (st == RAANA_OK)
        printf("verify: OK: %ld datasets (%.1f MB) read and checksummed, %d layers rebuilt, "
               "shapes match /model/config.json\n",
               v.datasets, v.bytes / 1e6, layers);
    return st;
}

/* ---- --dequantize ------------------------------------------------------------------- */

static raana_status dequantize(hid_t file, const char *path, const char *layer, const char *out,
                               raana_error *err)
{
    raana_qlayer q;
    raana_status st = raana_container_read_layer(file, path, layer, &q, err);
    if (st != RAANA_OK)
        return st;
    size_t n = (size_t)q.d_in * (size_t)q.d_out;
    float *w = malloc(n * sizeof *w);
    st = w ? raana_qlayer_dequantize(&q, w, err)
           : raana_fail(err, RAANA_ERR_NOMEM, "out of memory for %s", layer);
    FILE *f = st == RAANA_OK ? fopen(out, "wb") : NULL;
    if (st == RAANA_OK && (!f || fwrite(w, sizeof *w, n, f) != n || fclose(f) != 0))
        st = raana_fail(err, RAANA_ERR_IO, "%s: cannot write", out);
    else if (st == RAANA_OK)
        printf("%s: %dx%d float32, %g bits\n", out, q.d_out, q.d_in, q.bits);
    free(w);
    raana_qlayer_free(&q);
    return st;
}

int main(int argc, char **argv)
{
    raana_error err;
    raana_error_clear(&err);
    inspect_args a;
    raana_status st = parse_args(argc, argv, &a, &err);
    if (st == RAANA_OK && a.help) {
        fputs(usage_text, stdout);
        return 0;
    }
    hid_t file = H5I_INVALID_HID;
    if (st == RAANA_OK)
        st = raana_container_open(a.path, &file, &err);
    if (st == RAANA_OK) {
        switch (a.mode) {
        case MODE_DEQUANTIZE: st = dequantize(file, a.path, a.layer, a.out, &err); break;
        case MODE_LAYERS: print_layers(file); break;
        case MODE_JSON: st = print_json(file, a.path, &err); break;
        case MODE_VERIFY: st = verify(file, a.path, &err); break;
        case MODE_SUMMARY: st = print_summary(file, a.path, &err); break;
        }
        H5Fclose(file);
    }
    if (st != RAANA_OK)
        fprintf(stderr, "raana-inspect: error: %s\n", err.msg);
    return (int)st;
}
