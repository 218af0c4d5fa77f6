/* resume.c — the resume work directory (see resume.h): serializing the
 * calibration statistics and quantized layers into checksummed files. */
#include "raana/resume.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "raana/file.h"

#define CALIB_MAGIC   "RAANACAL"
#define LAYER_MAGIC   "RAANAQLY"
#define RESUME_FORMAT 1u

/* ---- a growable byte buffer and a bounded reader ----------------------------- */

typedef struct {
    uint8_t *data;
    size_t len, cap;
    int failed;
} byte_buf;

static void buf_put(byte_buf *b, const void *p, size_t n)
{
    if (b->failed || n == 0)
        return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n)
            cap *= 2;
        uint8_t *d = realloc(b->data, cap);
        if (!d) {
            b->failed = 1;
            return;
        }
        b->data = d, b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

typedef struct {
    const uint8_t *p;
    size_t left;
    int failed;
} byte_reader;

static void read_bytes(byte_reader *r, void *out, size_t n)
{
    if (r->failed || n > r->left) {
        r->failed = 1;
        if (out && n)
            memset(out, 0, n);
        return;
    }
    memcpy(out, r->p, n);
    r->p += n, r->left -= n;
}

#define PUT(b, v)  buf_put((b), &(v), sizeof(v))
#define TAKE(r, v) read_bytes((r), &(v), sizeof(v))

/* Appends the checksum and writes atomically. */
static raana_status buf_commit(byte_buf *b, const char *path, raana_error *err)
{
    uint64_t sum = XXH3_64bits(b->data, b->len);
    PUT(b, sum);
    raana_status st = b->failed ? raana_fail(err, RAANA_ERR_NOMEM, "%s: out of memory", path)
                                : raana_write_file_atomic(path, b->data, b->len, err);
    free(b->data);
    return st;
}

/* Reads path and checks magic, version, fingerprint and checksum; on
 * success the reader covers the payload after the fingerprint (free *data
 * afterwards), else 0 and nothing to free. */
static int open_checked(const char *path, const char *magic, uint64_t fingerprint, char **data,
                        byte_reader *r)
{
    size_t len;
    raana_error ignored;
    if (raana_read_file(path, data, &len, &ignored) != RAANA_OK)
        return 0;
    uint64_t sum = 0, fp = 0;
    uint32_t version = 0;
    int ok = len >= 8 + 4 + 8 + 8 && memcmp(*data, magic, 8) == 0;
    if (ok) {
        memcpy(&sum, *data + len - 8, 8);
        memcpy(&version, *data + 8, 4);
        memcpy(&fp, *data + 12, 8);
        ok = sum == XXH3_64bits(*data, len - 8) && version == RESUME_FORMAT &&
             fp == fingerprint;
    }
    if (!ok) {
        free(*data);
        *data = NULL;
        return 0;
    }
    r->p = (const uint8_t *)*data + 20;
    r->left = len - 28;
    r->failed = 0;
    return 1;
}

static void put_header(byte_buf *b, const char *magic, uint64_t fingerprint)
{
    uint32_t version = RESUME_FORMAT;
    buf_put(b, magic, 8);
    PUT(b, version);
    PUT(b, fingerprint);
}

/* ---- the directory ----------------------------------------------------------- */

raana_status raana_resume_open(raana_resume *r, const char *output_path, raana_error *err)
{
    char layers[4300];
    if (snprintf(r->dir, sizeof r->dir, "%s.resume", output_path) >= (int)sizeof r->dir)
        return raana_fail(err, RAANA_ERR_CONFIG, "output path too long: %s", output_path);
    snprintf(layers, sizeof layers, "%s/layers", r->dir);
    raana_status st = raana_make_dir(r->dir, err);
    if (st == RAANA_OK)
        st = raana_make_dir(layers, err);
    return st;
}

static void remove_files_in(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    char path[4600];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
}

void raana_resume_remove(const raana_resume *r)
{
    char layers[4300];
    snprintf(layers, sizeof layers, "%s/layers", r->dir);
    remove_files_in(layers);
    rmdir(layers);
    remove_files_in(r->dir);
    rmdir(r->dir);
}

/* ---- calibration ------------------------------------------------------------- */

static void calibration_path(const raana_resume *r, char *path, size_t size)
{
    snprintf(path, size, "%s/calibration.bin", r->dir);
}

raana_status raana_resume_save_calibration(const raana_resume *r, uint64_t fingerprint,
                                           const raana_layer_stats *stats, int n_layers,
                                           double loss, raana_error *err)
{
    char path[4400];
    byte_buf b = {0};
    calibration_path(r, path, sizeof path);
    put_header(&b, CALIB_MAGIC, fingerprint);
    int32_t n = n_layers;
    PUT(&b, n);
    PUT(&b, loss);
    buf_put(&b, stats, (size_t)n_layers * sizeof *stats);
    return buf_commit(&b, path, err);
}

int raana_resume_load_calibration(const raana_resume *r, uint64_t fingerprint,
                                  raana_layer_stats *stats, int n_layers, double *loss)
{
    char path[4400], *data = NULL;
    byte_reader rd;
    calibration_path(r, path, sizeof path);
    int ok = open_checked(path, CALIB_MAGIC, fingerprint, &data, &rd);
    int32_t n = -1;
    if (ok) {
        TAKE(&rd, n);
        TAKE(&rd, *loss);
        ok = n == n_layers && rd.left == (size_t)n_layers * sizeof *stats;
    }
    if (ok)
        read_bytes(&rd, stats, (size_t)n_layers * sizeof *stats);
    free(data);
    return ok && !rd.failed;
}

/* ---- layers ------------------------------------------------------------------ */

static void layer_path(const raana_resume *r, const char *name, char *path, size_t size)
{
    snprintf(path, size, "%s/layers/%s.bin", r->dir, name);
}

raana_status raana_resume_save_layer(const raana_resume *r, const char *name, uint64_t fingerprint,
                                     const raana_qlayer *q, double rel_error, raana_error *err)
{
    char path[4400];
    byte_buf b = {0};
    layer_path(r, name, path, sizeof path);
    put_header(&b, LAYER_MAGIC, fingerprint);
    int32_t ints[8] = {q->d_in, q->d_out, q->code_bits, (int32_t)q->tricks,
                       q->n_kept, q->m_a,   q->m_b,       q->n_held};
    uint64_t packed_bytes = q->packed_bytes;
    uint8_t has_mu = q->mu != NULL, has_rs = q->row_scale != NULL;
    buf_put(&b, ints, sizeof ints);
    PUT(&b, q->bits);
    PUT(&b, q->key);
    PUT(&b, packed_bytes);
    PUT(&b, q->mean_cosine);
    PUT(&b, rel_error);
    PUT(&b, has_mu);
    PUT(&b, has_rs);
    size_t d_in = (size_t)q->d_in, d_out = (size_t)q->d_out, held = (size_t)q->n_held;
    if (has_mu)
        buf_put(&b, q->mu, d_in * sizeof *q->mu);
    if (has_rs)
        buf_put(&b, q->row_scale, d_in * sizeof *q->row_scale);
    buf_put(&b, q->held_cols, held * sizeof *q->held_cols);
    buf_put(&b, q->held_values, held * d_in * sizeof *q->held_values);
    buf_put(&b, q->packed, d_out * q->packed_bytes);
    buf_put(&b, q->rescale, d_out * sizeof *q->rescale);
    return buf_commit(&b, path, err);
}

/* malloc(n) and read n bytes; NULL for n == 0. */
static void *take_array(byte_reader *rd, size_t n)
{
    if (n == 0 || rd->failed || n > rd->left) {
        rd->failed |= n > rd->left;
        return NULL;
    }
    void *p = malloc(n);
    if (!p)
        rd->failed = 1;
    else
        read_bytes(rd, p, n);
    return p;
}

int raana_resume_load_layer(const raana_resume *r, const char *name, uint64_t fingerprint,
                            raana_qlayer *q, double *rel_error)
{
    char path[4400], *data = NULL;
    byte_reader rd;
    memset(q, 0, sizeof *q);
    layer_path(r, name, path, sizeof path);
    if (!open_checked(path, LAYER_MAGIC, fingerprint, &data, &rd))
        return 0;
    int32_t ints[8];
    uint64_t packed_bytes;
    uint8_t has_mu, has_rs;
    read_bytes(&rd, ints, sizeof ints);
    TAKE(&rd, q->bits);
    TAKE(&rd, q->key);
    TAKE(&rd, packed_bytes);
    TAKE(&rd, q->mean_cosine);
    TAKE(&rd, *rel_error);
    TAKE(&rd, has_mu);
    TAKE(&rd, has_rs);
    q->d_in = ints[0], q->d_out = ints[1], q->code_bits = ints[2], q->tricks = (unsigned)ints[3];
    q->n_kept = ints[4], q->m_a = ints[5], q->m_b = ints[6], q->n_held = ints[7];
    q->packed_bytes = (size_t)packed_bytes;
    int sane = !rd.failed && q->d_in > 0 && q->d_out > 0 && q->n_held >= 0 &&
               q->n_held <= q->d_out && q->packed_bytes <= (size_t)q->d_in;
    size_t d_in = (size_t)q->d_in, d_out = (size_t)q->d_out, held = (size_t)q->n_held;
    if (sane) {
        if (has_mu)
            q->mu = take_array(&rd, d_in * sizeof *q->mu);
        if (has_rs)
            q->row_scale = take_array(&rd, d_in * sizeof *q->row_scale);
        q->held_cols = take_array(&rd, held * sizeof *q->held_cols);
        q->held_values = take_array(&rd, held * d_in * sizeof *q->held_values);
        q->packed = take_array(&rd, d_out * q->packed_bytes);
        q->rescale = take_array(&rd, d_out * sizeof *q->rescale);
    }
    raana_error ignored;
    int ok = sane && !rd.failed && rd.left == 0 &&
             raana_rotation_init(&q->rot, q->d_in, q->key, &ignored) == RAANA_OK;
    free(data);
    if (!ok)
        raana_qlayer_free(q);
    return ok;
}
