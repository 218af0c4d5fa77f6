/* safetensors_write.c — the header, the streaming writer and the f32
 * rounding of safetensors_write.h. */
#include "raana/safetensors_write.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "raana/bytebuf.h"

uint64_t raana_st_out_bytes(const raana_st_out_tensor *t)
{
    uint64_t n = raana_dtype_size(t->dtype);
    for (int d = 0; d < t->ndim; d++)
        n *= (uint64_t)t->shape[d];
    return n;
}

/* ---- header ---------------------------------------------------------------- */

static void put_str(raana_bytebuf *b, const char *s)
{
    raana_bytebuf_put(b, s, strlen(s));
}

/* s as a JSON string, quotes included. */
static void put_json_string(raana_bytebuf *b, const char *s)
{
    raana_bytebuf_put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\', esc[1] = (char)*p;
            raana_bytebuf_put(b, esc, 2);
        } else if (*p < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", *p);
            put_str(b, esc);
        } else {
            raana_bytebuf_put(b, (const char *)p, 1);
        }
    }
    raana_bytebuf_put(b, "\"", 1);
}

static int names_unique(const raana_st_out_tensor *t, size_t n, size_t *dup)
{
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < i; j++) /* headers hold at most a few thousand tensors */
            if (strcmp(t[i].name, t[j].name) == 0)
                return *dup = i, 0;
    return 1;
}

raana_status raana_st_make_header(const raana_st_out_tensor *t, size_t n, char **json, size_t *len,
                                  raana_error *err)
{
    size_t dup;
    *json = NULL;
    *len = 0;
    for (size_t i = 0; i < n; i++)
        if (!t[i].name[0] || strcmp(t[i].name, "__metadata__") == 0 ||
            raana_dtype_size(t[i].dtype) == 0 || t[i].ndim < 0 || t[i].ndim > RAANA_MAX_DIMS)
            return RAANA_INTERNAL(err, "tensor %zu ('%s') cannot be written", i, t[i].name);
    if (!names_unique(t, n, &dup))
        return raana_fail(err, RAANA_ERR_INPUT, "tensor '%s' is there twice", t[dup].name);
    raana_bytebuf b = {0};
    uint64_t offset = 0;
    char num[64];
    put_str(&b, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (size_t i = 0; i < n; i++) {
        raana_bytebuf_put(&b, ",", 1);
        put_json_string(&b, t[i].name);
        put_str(&b, ":{\"dtype\":\"");
        put_str(&b, raana_dtype_name(t[i].dtype));
        put_str(&b, "\",\"shape\":[");
        for (int d = 0; d < t[i].ndim; d++) {
            snprintf(num, sizeof num, "%s%lld", d ? "," : "", (long long)t[i].shape[d]);
            put_str(&b, num);
        }
        uint64_t end = offset + raana_st_out_bytes(&t[i]);
        snprintf(num, sizeof num, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)offset,
                 (unsigned long long)end);
        put_str(&b, num);
        offset = end;
    }
    raana_bytebuf_put(&b, "}", 1);
    while (!b.failed && b.len % 8 != 0)
        raana_bytebuf_put(&b, " ", 1);
    if (b.failed) {
        free(b.data);
        return raana_fail(err, RAANA_ERR_NOMEM, "out of memory for a safetensors header");
    }
    *json = b.data;
    *len = b.len;
    return RAANA_OK;
}

/* ---- writer ---------------------------------------------------------------- */

static raana_status write_all(raana_st_writer *w, const void *data, size_t bytes, raana_error *err)
{
    const unsigned char *p = data;
    while (bytes > 0) {
        ssize_t n = write(w->fd, p, bytes);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return raana_fail(err, RAANA_ERR_IO, "%s: cannot write: %s", w->path,
                              n < 0 ? strerror(errno) : "no progress");
        p += n;
        bytes -= (size_t)n;
    }
    return RAANA_OK;
}

raana_status raana_st_writer_open(raana_st_writer *w, const char *path,
                                  const raana_st_out_tensor *t, size_t n, raana_error *err)
{
    raana_status st = RAANA_OK;
    char *json = NULL;
    size_t len = 0;
    memset(w, 0, sizeof *w);
    w->fd = -1;
    if (snprintf(w->path, sizeof w->path, "%s", path) >= (int)sizeof w->path)
        RAANA_FAIL_GOTO(err, RAANA_ERR_IO, "path too long: %s", path);
    RAANA_CHECK(raana_st_make_header(t, n, &json, &len, err));
    for (size_t i = 0; i < n; i++)
        w->expected += raana_st_out_bytes(&t[i]);
    w->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (w->fd < 0)
        RAANA_FAIL_GOTO(err, RAANA_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    unsigned char prefix[8];
    for (int i = 0; i < 8; i++)
        prefix[i] = (unsigned char)((uint64_t)len >> (8 * i));
    RAANA_CHECK(write_all(w, prefix, sizeof prefix, err));
    RAANA_CHECK(write_all(w, json, len, err));
cleanup:
    free(json);
    if (st != RAANA_OK)
        raana_st_writer_abandon(w);
    return st;
}

raana_status raana_st_writer_write(raana_st_writer *w, const void *data, size_t bytes,
                                   raana_error *err)
{
    if (w->written + bytes > w->expected)
        return RAANA_INTERNAL(err, "%s: more data than the header announces", w->path);
    w->written += bytes;
    return write_all(w, data, bytes, err);
}

raana_status raana_st_writer_finish(raana_st_writer *w, raana_error *err)
{
    raana_status st = RAANA_OK;
    if (w->written != w->expected)
        RAANA_CHECK(RAANA_INTERNAL(err, "%s: %llu data bytes written, header says %llu", w->path,
                                   (unsigned long long)w->written,
                                   (unsigned long long)w->expected));
    if (fsync(w->fd) != 0)
        RAANA_FAIL_GOTO(err, RAANA_ERR_IO, "%s: cannot flush to disk: %s", w->path,
                        strerror(errno));
cleanup:
    if (close(w->fd) != 0 && st == RAANA_OK)
        st = raana_fail(err, RAANA_ERR_IO, "%s: cannot close: %s", w->path, strerror(errno));
    w->fd = -1;
    return st;
}

void raana_st_writer_abandon(raana_st_writer *w)
{
    if (w->fd >= 0)
        close(w->fd);
    w->fd = -1;
}

/* ---- rounding ---------------------------------------------------------------- */

static uint32_t f32_bits(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

uint16_t raana_f32_to_bf16(float x)
{
    uint32_t u = f32_bits(x);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40); /* NaN stays a (quiet) NaN */
    u += 0x7fffu + ((u >> 16) & 1u);         /* ties to even */
    return (uint16_t)(u >> 16);
}

/* After F. Giesen's float_to_half_fast3_rtne (public domain). */
uint16_t raana_f32_to_f16(float x)
{
    const uint32_t f32_inf = 255u << 23, f16_limit = (127u + 16u) << 23;
    const uint32_t denorm_magic = ((127u - 15u) + (23u - 10u) + 1u) << 23;
    uint32_t u = f32_bits(x), sign = u & 0x80000000u;
    uint16_t h;
    u ^= sign;
    if (u >= f16_limit) {
        h = u > f32_inf ? 0x7e00 : 0x7c00; /* NaN, or too large: infinity */
    } else if (u < (113u << 23)) {
        /* subnormal or zero: let the FPU round (x + 0.5) in the magic's unit */
        float f, magic;
        memcpy(&f, &u, sizeof f);
        memcpy(&magic, &denorm_magic, sizeof magic);
        f += magic;
        h = (uint16_t)(f32_bits(f) - denorm_magic);
    } else {
        uint32_t odd = (u >> 13) & 1u;
        u += ((uint32_t)(15 - 127) << 23) + 0xfffu + odd; /* rebias and round */
        h = (uint16_t)(u >> 13);
    }
    return (uint16_t)(h | (sign >> 16));
}

raana_status raana_st_convert_f32(const float *in, size_t n, raana_dtype dtype, void *out,
                                  const char *name, raana_error *err)
{
    if (dtype == RAANA_DTYPE_F32) {
        memcpy(out, in, n * sizeof *in);
        return RAANA_OK;
    }
    if (dtype != RAANA_DTYPE_BF16 && dtype != RAANA_DTYPE_F16)
        return raana_fail(err, RAANA_ERR_UNSUPPORTED, "tensor '%s': cannot write dtype %s", name,
                          raana_dtype_name(dtype));
    uint16_t *h = out;
    for (size_t i = 0; i < n; i++) {
        h[i] = dtype == RAANA_DTYPE_BF16 ? raana_f32_to_bf16(in[i]) : raana_f32_to_f16(in[i]);
        if ((h[i] & 0x7fff) == (dtype == RAANA_DTYPE_BF16 ? 0x7f80 : 0x7c00) && isfinite(in[i]))
            return raana_fail(err, RAANA_ERR_NUMERIC,
                              "tensor '%s': value %g at flat index %zu does not fit %s", name,
                              (double)in[i], i, raana_dtype_name(dtype));
    }
    return RAANA_OK;
}
