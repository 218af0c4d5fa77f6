/* raana_export.c — main() of raana-export: a raana container written out as
 * a Hugging Face checkpoint directory (config.json with the quantization
 * recorded, the tokenizer files, safetensors shards and their index) that
 * any framework loads as a plain model: quantized layers are stored as
 * their dequantized weights. The directory is written under a temporary
 * name next to OUTDIR, flushed, and renamed into place, so OUTDIR is never
 * half-written; an existing OUTDIR is replaced only with --overwrite and
 * only when it is empty or a previous raana-export output with nothing
 * added (docs/FORMAT.md, "Exporting"). */
#define _GNU_SOURCE /* renameat2 */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "raana/blas_info.h"
#include "raana/container.h"
#include "raana/container_model.h"
#include "raana/json.h"
#include "raana/safetensors_write.h"

#include "cli.h"

#define MANIFEST "raana-export.json"

enum { OPT_DTYPE, OPT_MAX_SHARD_SIZE, OPT_OVERWRITE, OPT_HF_KEY };

/* Files copied from the container's /model when present (config.json is
 * rewritten). */
static const char *const copied_files[] = {"generation_config.json", "tokenizer.json",
                                           "tokenizer_config.json", "special_tokens_map.json",
                                           "tokenizer.model"};
#define N_COPIED (sizeof copied_files / sizeof copied_files[0])

typedef struct {
    const char *container;
    char outdir[4096];
    raana_dtype dtype;
    int dtype_given, overwrite, hf_key;
    uint64_t max_shard;
} export_args;

/* ---- arguments ------------------------------------------------------------------ */

/* Hugging Face's convert_file_size_to_int: an integer with an optional
 * unit, decimal (KB, MB, GB, TB) or binary (KiB, MiB, GiB, TiB). */
static int parse_size(const char *s, uint64_t *out)
{
    static const struct {
        const char *unit;
        uint64_t scale;
    } units[] = {{"", 1},
                 {"B", 1},
                 {"KB", 1000ull},
                 {"MB", 1000000ull},
                 {"GB", 1000000000ull},
                 {"TB", 1000000000000ull},
                 {"KIB", 1ull << 10},
                 {"MIB", 1ull << 20},
                 {"GIB", 1ull << 30},
                 {"TIB", 1ull << 40}};
    char *end;
    errno = 0;
    unsigned long long n = strtoull(s, &end, 10);
    if (end == s || errno || s[0] == '-' || n == 0)
        return 0;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (strcasecmp(end, units[i].unit) == 0) {
            if (n > UINT64_MAX / units[i].scale)
                return 0;
            *out = n * units[i].scale;
            return 1;
        }
    return 0;
}

static int parse_dtype(const char *s, raana_dtype *out)
{
    if (strcmp(s, "bf16") == 0 || strcmp(s, "bfloat16") == 0)
        return *out = RAANA_DTYPE_BF16, 1;
    if (strcmp(s, "f16") == 0 || strcmp(s, "float16") == 0)
        return *out = RAANA_DTYPE_F16, 1;
    if (strcmp(s, "f32") == 0 || strcmp(s, "float32") == 0)
        return *out = RAANA_DTYPE_F32, 1;
    return 0;
}

static raana_status on_option(void *ctx, int option, const char *value, raana_error *err)
{
    export_args *a = ctx;
    switch (option) {
    case OPT_DTYPE:
        if (!parse_dtype(value, &a->dtype))
            return raana_fail(err, RAANA_ERR_USAGE, "--dtype %s: expected bf16, f16 or f32", value);
        a->dtype_given = 1;
        break;
    case OPT_MAX_SHARD_SIZE:
        if (!parse_size(value, &a->max_shard))
            return raana_fail(err, RAANA_ERR_USAGE,
                              "--max-shard-size %s: expected a positive size such as 5GB, "
                              "200MB, 4GiB or a byte count",
                              value);
        break;
    case OPT_OVERWRITE: a->overwrite = 1; break;
    case OPT_HF_KEY: a->hf_key = 1; break;
    default: return RAANA_INTERNAL(err, "option %d not handled", option);
    }
    return RAANA_OK;
}

/* CONTAINER.h5 and OUTDIR. */
static raana_status take_operands(void *ctx, char **operand, int n_operands, raana_error *err)
{
    (void)n_operands;
    export_args *a = ctx;
    a->container = operand[0];
    const char *outdir = operand[1];
    size_t len = strlen(outdir);
    while (len > 1 && outdir[len - 1] == '/')
        len--; /* "out/" names out */
    if (len == 0 || len >= sizeof a->outdir - 64)
        return raana_fail(err, RAANA_ERR_USAGE, "OUTDIR '%s': empty or too long", outdir);
    snprintf(a->outdir, sizeof a->outdir, "%.*s", (int)len, outdir);
    const char *base = strrchr(a->outdir, '/');
    base = base ? base + 1 : a->outdir;
    if (!base[0] || strcmp(base, ".") == 0 || strcmp(base, "..") == 0)
        return raana_fail(err, RAANA_ERR_USAGE, "OUTDIR '%s' must name a directory to create",
                          a->outdir);
    return RAANA_OK;
}

static const raana_cli_spec cli = {
    .tool = "raana-export",
    .operands = "CONTAINER.h5 OUTDIR",
    .description =
        "Writes the quantized model of a raana container as a Hugging Face checkpoint\n"
        "directory: config.json (plus a record of the quantization), generation_config.json\n"
        "and the tokenizer files when the container holds them, and the weights as\n"
        "safetensors: quantized layers dequantized, every other tensor as stored.\n",
    .options =
        {
            [OPT_DTYPE] = {"dtype", 0, "D",
                           "bf16, f16 or f32 (default: config.json's torch_dtype,\n"
                           "else f32); f32 -> bf16/f16 rounds to nearest, ties to even"},
            [OPT_MAX_SHARD_SIZE] = {"max-shard-size", 0, "SIZE",
                                    "start a new model-0000i-of-0000N.safetensors above SIZE\n"
                                    "(Hugging Face units: 5GB = 5e9 bytes, 4GiB = 2^32;\n"
                                    "default 5GB); one file model.safetensors when it fits"},
            [OPT_OVERWRITE] = {"overwrite", 0, NULL,
                               "replace OUTDIR if it is empty or a previous raana-export\n"
                               "output holding only the files it wrote"},
            [OPT_HF_KEY] = {"hf-quantization-config", 0, NULL,
                            "record the quantization under config.json's\n"
                            "\"quantization_config\" (transformers >= 4.49 warns and loads\n"
                            "the weights; vLLM and older transformers refuse the model)\n"
                            "instead of \"raana_quantization\" (every loader ignores it)"},
        },
    .epilog = "Exit codes: 0 ok, 2 usage, 4 not a readable container, 5 file I/O (OUTDIR exists,\n"
              "            is a symlink, holds foreign files; disk full), 6 out of memory,\n"
              "            8 newer container format, 9 a value that does not fit the dtype\n",
    .on_option = on_option,
    .finish = take_operands};

/* ---- the output directory: checks, temporary, installation --------------------------- */

/* Names listed in dir's manifest (a cJSON array under "files"), or NULL
 * with *absent set when there is no manifest. */
static cJSON *read_manifest(int dfd, const char *dir, int *absent, raana_error *err)
{
    *absent = 0;
    int fd = openat(dfd, MANIFEST, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        *absent = errno == ENOENT;
        if (!*absent)
            raana_fail(err, RAANA_ERR_IO, "%s/%s: cannot read: %s", dir, MANIFEST, strerror(errno));
        return NULL;
    }
    char buf[65536];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    cJSON *root = n > 0 ? cJSON_ParseWithLength(buf, (size_t)n) : NULL;
    cJSON *files = root ? cJSON_DetachItemFromObjectCaseSensitive(root, "files") : NULL;
    cJSON_Delete(root);
    if (!cJSON_IsArray(files)) {
        cJSON_Delete(files);
        raana_fail(err, RAANA_ERR_IO, "%s/%s: not a raana-export manifest", dir, MANIFEST);
        return NULL;
    }
    return files;
}

static int listed(const cJSON *files, const char *name)
{
    const cJSON *f;
    cJSON_ArrayForEach(f,
                       files) if (cJSON_IsString(f) && strcmp(f->valuestring, name) == 0) return 1;
    return 0;
}

/* One entry `name` of dir, a previous export: ".", "..", the manifest or a
 * regular file the manifest (files; NULL if it is absent, absent = 1, or
 * unreadable, manifest_err) lists. */
static raana_status check_entry(int dfd, const char *dir, const char *name, const cJSON *files,
                                int absent, const raana_error *manifest_err, raana_error *err)
{
    struct stat sb;
    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return RAANA_OK;
    if (!files && absent)
        return raana_fail(err, RAANA_ERR_IO,
                          "%s exists and is not a raana-export output (no %s); not replacing it",
                          dir, MANIFEST);
    if (!files) {
        *err = *manifest_err;
        return err->status;
    }
    if (fstatat(dfd, name, &sb, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(sb.st_mode) ||
        (strcmp(name, MANIFEST) != 0 && !listed(files, name)))
        return raana_fail(err, RAANA_ERR_IO,
                          "%s holds '%s', which raana-export did not write; not replacing it", dir,
                          name);
    return RAANA_OK;
}

/* dir (open as dfd) is empty, or holds its manifest and regular files the
 * manifest lists, nothing else. *files: the list (NULL when empty). */
static raana_status check_previous_export(int dfd, const char *dir, cJSON **files, raana_error *err)
{
    raana_status st = RAANA_OK;
    int absent;
    raana_error manifest_err;
    *files = read_manifest(dfd, dir, &absent, &manifest_err);
    int lfd = dup(dfd);
    DIR *d = lfd >= 0 ? fdopendir(lfd) : NULL;
    if (!d) {
        int saved = errno;
        if (lfd >= 0)
            close(lfd);
        RAANA_FAIL_GOTO(err, RAANA_ERR_IO, "%s: cannot list: %s", dir, strerror(saved));
    }
    for (struct dirent *e; (e = readdir(d));)
        RAANA_CHECK(check_entry(dfd, dir, e->d_name, *files, absent, &manifest_err, err));
cleanup:
    if (d)
        closedir(d);
    if (st != RAANA_OK) {
        cJSON_Delete(*files);
        *files = NULL;
    }
    return st;
}

/* Before any work: OUTDIR must not exist, or (--overwrite) be replaceable. */
static raana_status check_outdir(const export_args *a, int *exists, raana_error *err)
{
    struct stat sb;
    *exists = 0;
    if (lstat(a->outdir, &sb) != 0) {
        if (errno == ENOENT)
            return RAANA_OK;
        return raana_fail(err, RAANA_ERR_IO, "%s: %s", a->outdir, strerror(errno));
    }
    if (S_ISLNK(sb.st_mode))
        return raana_fail(err, RAANA_ERR_IO,
                          "%s is a symbolic link; raana-export does not write through one",
                          a->outdir);
    if (!S_ISDIR(sb.st_mode))
        return raana_fail(err, RAANA_ERR_IO, "%s exists and is not a directory", a->outdir);
    if (!a->overwrite)
        return raana_fail(err, RAANA_ERR_IO,
                          "%s exists; pass --overwrite to replace a previous raana-export output",
                          a->outdir);
    int dfd = open(a->outdir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0)
        return raana_fail(err, RAANA_ERR_IO, "%s: cannot open: %s", a->outdir, strerror(errno));
    cJSON *files;
    raana_status st = check_previous_export(dfd, a->outdir, &files, err);
    cJSON_Delete(files);
    close(dfd);
    *exists = st == RAANA_OK;
    return st;
}

/* Removes the files of a previous export (checked again) and its directory. */
static raana_status remove_previous(const char *dir, raana_error *err)
{
    raana_status st = RAANA_OK;
    cJSON *files = NULL;
    const cJSON *f;
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0)
        RAANA_FAIL_GOTO(err, RAANA_ERR_IO, "%s: cannot open: %s", dir, strerror(errno));
    RAANA_CHECK(check_previous_export(dfd, dir, &files, err));
    if (files) {
        cJSON_ArrayForEach(f, files) if (cJSON_IsString(f) && !strchr(f->valuestring, '/'))
            unlinkat(dfd, f->valuestring, 0);
        unlinkat(dfd, MANIFEST, 0);
    }
    if (rmdir(dir) != 0)
        RAANA_FAIL_GOTO(err, RAANA_ERR_IO, "%s: cannot remove: %s", dir, strerror(errno));
cleanup:
    cJSON_Delete(files);
    if (dfd >= 0)
        close(dfd);
    return st;
}

static void fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

static void parent_of(const char *path, char *out, size_t size)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(out, size, ".");
    else if (slash == path)
        snprintf(out, size, "/");
    else
        snprintf(out, size, "%.*s", (int)(slash - path), path);
}

/* A fresh hidden directory next to outdir, "<parent>/.<base>.<what>-XXXXXX". */
static raana_status make_sibling(const char *outdir, const char *what, char *out, size_t size,
                                 raana_error *err)
{
    char parent[4096];
    const char *base = strrchr(outdir, '/');
    parent_of(outdir, parent, sizeof parent);
    snprintf(out, size, "%s/.%s.%s-XXXXXX", parent, base ? base + 1 : outdir, what);
    if (!mkdtemp(out))
        return raana_fail(err, RAANA_ERR_IO, "%s: cannot create a directory next to %s: %s", parent,
                          outdir, strerror(errno));
    mode_t mask = umask(0);
    umask(mask);
    chmod(out, 0777 & ~mask); /* mkdtemp's 0700 would hide the model from other users */
    return RAANA_OK;
}

/* Moves the finished tmp to outdir: atomically, never over something new. */
static raana_status install(const char *tmp, const char *outdir, int replace, raana_error *err)
{
    char parent[4096];
    parent_of(outdir, parent, sizeof parent);
    if (!replace) {
        if (renameat2(AT_FDCWD, tmp, AT_FDCWD, outdir, RENAME_NOREPLACE) != 0)
            return raana_fail(err, RAANA_ERR_IO, "%s: cannot rename to %s: %s", tmp, outdir,
                              errno == EEXIST ? "it appeared while exporting" : strerror(errno));
        fsync_dir(parent);
        return RAANA_OK;
    }
    if (renameat2(AT_FDCWD, tmp, AT_FDCWD, outdir, RENAME_EXCHANGE) != 0)
        return raana_fail(err, RAANA_ERR_IO, "%s: cannot swap with %s: %s", tmp, outdir,
                          strerror(errno));
    fsync_dir(parent);
    raana_error ignored;
    if (remove_previous(tmp, &ignored) != RAANA_OK) /* the old export, now at tmp */
        fprintf(stderr, "raana-export: warning: the previous export is left at %s: %s\n", tmp,
                ignored.msg);
    return RAANA_OK;
}

/* ---- the files ------------------------------------------------------------------ */

typedef struct {
    char dir[4200];
    cJSON *written; /* names of the files created in dir */
} out_dir;

static raana_status write_small_file(out_dir *o, const char *name, const void *data, size_t len,
                                     raana_error *err)
{
    raana_status st = RAANA_OK;
    char path[4400];
    snprintf(path, sizeof path, "%s/%s", o->dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0)
        return raana_fail(err, RAANA_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    cJSON_AddItemToArray(o->written, cJSON_CreateString(name));
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            RAANA_FAIL_GOTO(err, RAANA_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
        p += n, len -= (size_t)n;
    }
    if (fsync(fd) != 0)
        RAANA_FAIL_GOTO(err, RAANA_ERR_IO, "%s: cannot flush: %s", path, strerror(errno));
cleanup:
    close(fd);
    return st;
}

static raana_status write_json(out_dir *o, const char *name, const cJSON *json, raana_error *err)
{
    raana_status st = RAANA_OK;
    char *text = cJSON_Print(json);
    size_t len = text ? strlen(text) : 0;
    char *line = text ? malloc(len + 2) : NULL;
    if (!line)
        RAANA_FAIL_GOTO(err, RAANA_ERR_NOMEM, "out of memory printing %s", name);
    memcpy(line, text, len);
    line[len] = '\n';
    RAANA_CHECK(write_small_file(o, name, line, len + 1, err));
cleanup:
    free(line);
    free(text);
    return st;
}

static void remove_written(out_dir *o)
{
    const cJSON *f;
    cJSON_ArrayForEach(f, o->written)
    {
        char path[4400];
        snprintf(path, sizeof path, "%s/%s", o->dir, f->valuestring);
        unlink(path);
    }
    rmdir(o->dir);
}

/* ---- what the container says about its quantization ---------------------------------- */

/* /model/<name> of container `path` (opened for this one read). */
static raana_status container_file(const char *path, const char *name, char **data, size_t *len,
                                   raana_error *err)
{
    raana_container *c = NULL;
    *data = NULL;
    *len = 0;
    RAANA_CALL(raana_container_open(path, &c, err));
    raana_status st = raana_container_model_file(c, name, data, len, err);
    raana_container_close(c);
    return st;
}

static double attr_f64(const raana_container *c, const char *obj, const char *name)
{
    raana_error ignored;
    double v = 0;
    return raana_container_attr_f64(c, obj, name, &v, &ignored) == RAANA_OK ? v : 0;
}

static void add_attr_text(cJSON *obj, const char *key, const raana_container *c, const char *name)
{
    raana_error ignored;
    char text[256] = "";
    if (raana_container_attr_text(c, "/", name, text, sizeof text, &ignored) == RAANA_OK)
        cJSON_AddStringToObject(obj, key, text);
}

/* The record written into config.json: method, format version, average
 * and effective bits, and the bits of every linear layer. */
static raana_status quantization_record(const char *path, const raana_model_config *cfg,
                                        raana_dtype dtype, cJSON **out, raana_error *err)
{
    raana_container *file = NULL;
    RAANA_CALL(raana_container_open(path, &file, err));
    cJSON *r = cJSON_CreateObject(), *bits = cJSON_CreateObject(), *kept = cJSON_CreateArray();
    cJSON_AddStringToObject(r, "quant_method", "raana");
    cJSON_AddStringToObject(r, "format", RAANA_FORMAT_NAME);
    raana_json_add_number(r, "format_version", raana_container_format_version(file));
    cJSON_AddStringToObject(r, "raana_version", RAANA_VERSION);
    add_attr_text(r, "checkpoint_fingerprint", file, "checkpoint_fingerprint");
    cJSON_AddBoolToObject(r, "dequantized", 1);
    cJSON_AddStringToObject(r, "weights_dtype", raana_dtype_name(dtype));
    static const char *const report[] = {"target_avg_bits", "achieved_avg_bits",
                                         "effective_bits_quantized", "effective_bits_model"};
    for (size_t i = 0; i < sizeof report / sizeof report[0]; i++)
        raana_json_add_number(r, report[i], attr_f64(file, "/report", report[i]));
    for (int b = 0; b < cfg->num_layers; b++)
        for (int k = 0; k < raana_block_linear_count(cfg, b); k++) {
            char group[160];
            raana_linear_info li;
            raana_block_linear(cfg, b, k, &li);
            const char *name = li.name;
            snprintf(group, sizeof group, "/layers/%s", name);
            if (raana_container_has(file, group))
                raana_json_add_number(bits, name, attr_f64(file, group, "bits"));
            else
                cJSON_AddItemToArray(kept, cJSON_CreateString(name));
        }
    cJSON_AddItemToObject(r, "bits", bits);
    cJSON_AddItemToObject(r, "unquantized_layers", kept);
    raana_container_close(file);
    *out = r;
    return RAANA_OK;
}

static const char *torch_dtype_name(raana_dtype d)
{
    return d == RAANA_DTYPE_BF16 ? "bfloat16" : d == RAANA_DTYPE_F16 ? "float16" : "float32";
}

/* config.json: the container's, with torch_dtype set to the export dtype
 * and the quantization record added. */
static raana_status write_config(out_dir *o, const export_args *a, const raana_model *m,
                                 raana_error *err)
{
    raana_status st = RAANA_OK;
    char *text;
    size_t len;
    cJSON *root = NULL, *record;
    RAANA_CALL(container_file(a->container, "config.json", &text, &len, err));
    root = text ? cJSON_ParseWithLength(text, len) : NULL;
    free(text);
    if (!cJSON_IsObject(root))
        RAANA_FAIL_GOTO(err, RAANA_ERR_INPUT, "%s: /model/config.json is not a JSON object",
                        a->container);
    RAANA_CHECK(quantization_record(a->container, &m->config, a->dtype, &record, err));
    const char *key = a->hf_key ? "quantization_config" : "raana_quantization";
    cJSON_DeleteItemFromObjectCaseSensitive(root, "torch_dtype");
    cJSON_AddStringToObject(root, "torch_dtype", torch_dtype_name(a->dtype));
    cJSON_DeleteItemFromObjectCaseSensitive(root, key);
    cJSON_AddItemToObject(root, key, record);
    st = write_json(o, "config.json", root, err);
cleanup:
    cJSON_Delete(root);
    return st;
}

static raana_status copy_model_file(out_dir *o, const export_args *a, const char *name,
                                    raana_error *err)
{
    raana_status st = RAANA_OK;
    char *data = NULL;
    size_t len;
    RAANA_CHECK(container_file(a->container, name, &data, &len, err));
    if (data)
        RAANA_CHECK(write_small_file(o, name, data, len, err));
cleanup:
    free(data);
    return st;
}

static raana_status copy_model_files(out_dir *o, const export_args *a, raana_error *err)
{
    for (size_t i = 0; i < N_COPIED; i++)
        RAANA_CALL(copy_model_file(o, a, copied_files[i], err));
    return RAANA_OK;
}

/* ---- the weights ------------------------------------------------------------------ */

typedef struct {
    raana_st_out_tensor *t; /* every tensor, in entry (name) order */
    int *shard;             /* shard of t[i] */
    size_t n;
    int n_shards;
    uint64_t total;
} shard_plan;

/* Greedy like transformers' save_pretrained: a tensor starts a new shard
 * when it would take the current one above the limit. */
static raana_status plan_shards(const raana_model *m, raana_dtype dtype, uint64_t max,
                                shard_plan *p, raana_error *err)
{
    memset(p, 0, sizeof *p);
    p->n = m->n_entries;
    p->t = calloc(p->n ? p->n : 1, sizeof *p->t);
    p->shard = calloc(p->n ? p->n : 1, sizeof *p->shard);
    if (!p->t || !p->shard)
        return raana_fail(err, RAANA_ERR_NOMEM, "out of memory");
    uint64_t in_shard = 0;
    for (size_t i = 0; i < p->n; i++) {
        const raana_st_tensor *s = m->entries[i].tensor;
        if (s->dtype != RAANA_DTYPE_F32 && s->dtype != RAANA_DTYPE_F16 &&
            s->dtype != RAANA_DTYPE_BF16)
            return raana_fail(err, RAANA_ERR_UNSUPPORTED,
                              "tensor '%s' has dtype %s; raana-export writes float tensors only",
                              s->name, raana_dtype_name(s->dtype));
        raana_st_out_tensor *t = &p->t[i];
        t->name = s->name;
        t->dtype = dtype;
        t->ndim = s->ndim;
        memcpy(t->shape, s->shape, sizeof t->shape);
        uint64_t bytes = raana_st_out_bytes(t);
        if (p->n_shards == 0 || (in_shard > 0 && in_shard + bytes > max))
            p->n_shards++, in_shard = 0;
        in_shard += bytes;
        p->total += bytes;
        p->shard[i] = p->n_shards - 1;
    }
    if (p->n_shards == 0)
        p->n_shards = 1;
    return RAANA_OK;
}

static void shard_name(const shard_plan *p, int s, char *out, size_t size)
{
    if (p->n_shards == 1)
        snprintf(out, size, "model.safetensors");
    else
        snprintf(out, size, "model-%05d-of-%05d.safetensors", s + 1, p->n_shards);
}

static raana_status write_tensor(raana_st_writer *w, const raana_model *m,
                                 const raana_st_out_tensor *t, raana_error *err)
{
    raana_status st = RAANA_OK;
    size_t n = (size_t)(raana_st_out_bytes(t) / raana_dtype_size(t->dtype));
    float *v = malloc(n ? n * sizeof *v : 1);
    void *out = t->dtype == RAANA_DTYPE_F32 ? (void *)v : malloc(n ? n * 2 : 1);
    if (!v || !out)
        RAANA_FAIL_GOTO(err, RAANA_ERR_NOMEM, "out of memory for tensor '%s' (%zu values)", t->name,
                        n);
    RAANA_CHECK(raana_model_read_f32(m, t->name, v, n, err));
    RAANA_CHECK(raana_st_convert_f32(v, n, t->dtype, out, t->name, err));
    RAANA_CHECK(raana_st_writer_write(w, out, n * raana_dtype_size(t->dtype), err));
cleanup:
    if (out != v)
        free(out);
    free(v);
    return st;
}

static raana_status write_shard(out_dir *o, const raana_model *m, const shard_plan *p, int s,
                                raana_error *err)
{
    raana_status st = RAANA_OK;
    char name[64], path[4400];
    size_t first = 0, count = 0;
    while (first < p->n && p->shard[first] != s)
        first++;
    while (first + count < p->n && p->shard[first + count] == s)
        count++;
    shard_name(p, s, name, sizeof name);
    snprintf(path, sizeof path, "%s/%s", o->dir, name);
    raana_st_writer w;
    RAANA_CALL(raana_st_writer_open(&w, path, p->t + first, count, err));
    cJSON_AddItemToArray(o->written, cJSON_CreateString(name));
    for (size_t i = first; i < first + count; i++)
        RAANA_CHECK(write_tensor(&w, m, &p->t[i], err));
    return raana_st_writer_finish(&w, err);
cleanup: /* failures only: on success finish has closed the writer */
    raana_st_writer_abandon(&w);
    return st;
}

static raana_status write_index(out_dir *o, const shard_plan *p, raana_error *err)
{
    cJSON *root = cJSON_CreateObject(), *meta = cJSON_CreateObject(), *map = cJSON_CreateObject();
    raana_json_add_number(meta, "total_size", (double)p->total);
    cJSON_AddItemToObject(root, "metadata", meta);
    for (size_t i = 0; i < p->n; i++) {
        char name[64];
        shard_name(p, p->shard[i], name, sizeof name);
        cJSON_AddStringToObject(map, p->t[i].name, name);
    }
    cJSON_AddItemToObject(root, "weight_map", map);
    raana_status st = write_json(o, "model.safetensors.index.json", root, err);
    cJSON_Delete(root);
    return st;
}

static raana_status write_manifest(out_dir *o, const export_args *a, raana_error *err)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "written_by", "raana-export " RAANA_VERSION);
    cJSON_AddStringToObject(root, "container", a->container);
    cJSON_AddItemToObject(root, "files", cJSON_Duplicate(o->written, 1));
    raana_status st = write_json(o, MANIFEST, root, err);
    cJSON_Delete(root);
    return st;
}

/* ---- the whole export ------------------------------------------------------------ */

static raana_status write_all(out_dir *o, const export_args *a, const raana_model *m,
                              const shard_plan *p, raana_error *err)
{
    RAANA_CALL(write_config(o, a, m, err));
    RAANA_CALL(copy_model_files(o, a, err));
    for (int s = 0; s < p->n_shards; s++)
        RAANA_CALL(write_shard(o, m, p, s, err));
    if (p->n_shards > 1)
        RAANA_CALL(write_index(o, p, err));
    RAANA_CALL(write_manifest(o, a, err));
    fsync_dir(o->dir);
    return RAANA_OK;
}

static raana_status default_dtype(export_args *a, raana_error *err)
{
    char *text;
    size_t len;
    RAANA_CALL(container_file(a->container, "config.json", &text, &len, err));
    cJSON *root = text ? cJSON_ParseWithLength(text, len) : NULL;
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(root, "torch_dtype");
    if (!cJSON_IsString(d) || !parse_dtype(d->valuestring, &a->dtype))
        a->dtype = RAANA_DTYPE_F32;
    cJSON_Delete(root);
    free(text);
    return RAANA_OK;
}

/* Writes the export under a temporary name next to OUTDIR and renames it
 * into place; what was written is removed on any failure. */
static raana_status write_and_install(export_args *a, const raana_model *m, const shard_plan *p,
                                      int exists, raana_error *err)
{
    raana_status st = RAANA_OK;
    out_dir o = {.written = cJSON_CreateArray()};
    int made = 0;
    RAANA_CHECK(make_sibling(a->outdir, "raana-export", o.dir, sizeof o.dir, err));
    made = 1;
    RAANA_CHECK(write_all(&o, a, m, p, err));
    RAANA_CHECK(install(o.dir, a->outdir, exists, err));
cleanup:
    if (st != RAANA_OK && made)
        remove_written(&o);
    cJSON_Delete(o.written);
    return st;
}

static raana_status export_container(export_args *a, FILE *report, raana_error *err)
{
    raana_status st = RAANA_OK;
    int exists;
    raana_model m;
    shard_plan p;
    memset(&p, 0, sizeof p);
    RAANA_CALL(check_outdir(a, &exists, err));
    RAANA_CALL(raana_container_model_open(&m, a->container, err));
    if (!a->dtype_given)
        RAANA_CHECK(default_dtype(a, err));
    RAANA_CHECK(plan_shards(&m, a->dtype, a->max_shard, &p, err));
    RAANA_CHECK(write_and_install(a, &m, &p, exists, err));
    fprintf(report, "wrote %s: %zu tensors, %s, %d file%s (%.1f MB)\n", a->outdir, p.n,
            raana_dtype_name(a->dtype), p.n_shards, p.n_shards > 1 ? "s + index" : "",
            (double)p.total / 1e6);
cleanup:
    free(p.t);
    free(p.shard);
    raana_model_close(&m);
    return st;
}

/* The work after the command line (raana_cli_main). */
static raana_status run(void *ctx, raana_error *err)
{
    raana_blas_report(stdout, NULL, "raana-export"); /* no BLAS-heavy work here: no warning */
    return export_container(ctx, stdout, err);
}

int main(int argc, char **argv)
{
    export_args a = {.max_shard = 5000000000ull}; /* 5GB unless --max-shard-size */
    return raana_cli_main(&cli, argc, argv, &a, run);
}
