/* safetensors.c — mapping, validating and converting .safetensors files
 * (see safetensors.h). JSON is parsed by cJSON; this file owns the checks. */
#include "raana/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "raana/file.h"

/* The reference implementation refuses headers over 100 MB as well. */
#define MAX_HEADER_BYTES 100000000ull
/* Integers in JSON doubles are exact up to 2^53. */
#define MAX_EXACT_INT 9007199254740992.0

static const struct {
    const char *name;
    raana_dtype dtype;
    size_t size;
} dtype_table[] = {
    {"F32", RAANA_DTYPE_F32, 4},         {"F16", RAANA_DTYPE_F16, 2},
    {"BF16", RAANA_DTYPE_BF16, 2},       {"F64", RAANA_DTYPE_F64, 8},
    {"I64", RAANA_DTYPE_I64, 8},         {"I32", RAANA_DTYPE_I32, 4},
    {"I16", RAANA_DTYPE_I16, 2},         {"I8", RAANA_DTYPE_I8, 1},
    {"U8", RAANA_DTYPE_U8, 1},           {"BOOL", RAANA_DTYPE_BOOL, 1},
    {"F8_E4M3", RAANA_DTYPE_F8_E4M3, 1}, {"F8_E5M2", RAANA_DTYPE_F8_E5M2, 1},
};
#define N_DTYPES (sizeof dtype_table / sizeof dtype_table[0])

const char *raana_dtype_name(raana_dtype d)
{
    for (size_t i = 0; i < N_DTYPES; i++)
        if (dtype_table[i].dtype == d)
            return dtype_table[i].name;
    return "?";
}

size_t raana_dtype_size(raana_dtype d)
{
    for (size_t i = 0; i < N_DTYPES; i++)
        if (dtype_table[i].dtype == d)
            return dtype_table[i].size;
    return 0;
}

float raana_bf16_to_f32(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

float raana_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (mant << 13); /* inf, nan */
    } else if (exp != 0) {
        bits = sign | ((exp + 112) << 23) | (mant << 13); /* normal: rebias 15 -> 127 */
    } else if (mant == 0) {
        bits = sign; /* zero */
    } else {
        float f = ldexpf((float)mant, -24); /* subnormal: mant * 2^-24, exact in f32 */
        return sign ? -f : f;
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* ---- header validation ---------------------------------------------------- */

static int json_uint(const cJSON *item, uint64_t *out)
{
    if (!cJSON_IsNumber(item))
        return -1;
    double v = item->valuedouble;
    if (!(v >= 0) || v > MAX_EXACT_INT || v != floor(v))
        return -1;
    *out = (uint64_t)v;
    return 0;
}

static raana_status parse_tensor(const cJSON *item, const char *label, raana_st_tensor *t,
                                 raana_error *err)
{
    const char *name = item->string;
    if (!cJSON_IsObject(item))
        return raana_fail(err, RAANA_ERR_INPUT, "%s: tensor '%s' is not a JSON object", label,
                          name);
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(item, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(item, "shape");
    const cJSON *offsets = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
    if (!cJSON_IsString(dtype) || !cJSON_IsArray(shape) || !cJSON_IsArray(offsets))
        return raana_fail(err, RAANA_ERR_INPUT,
                          "%s: tensor '%s' needs \"dtype\" (string), \"shape\" and "
                          "\"data_offsets\" (arrays)",
                          label, name);
    size_t d;
    for (d = 0; d < N_DTYPES; d++)
        if (strcmp(dtype_table[d].name, dtype->valuestring) == 0)
            break;
    if (d == N_DTYPES)
        return raana_fail(err, RAANA_ERR_INPUT, "%s: tensor '%s' has unknown dtype '%s'", label,
                          name, dtype->valuestring);
    t->dtype = dtype_table[d].dtype;

    int ndim = cJSON_GetArraySize(shape);
    if (ndim > RAANA_MAX_DIMS)
        return raana_fail(err, RAANA_ERR_INPUT, "%s: tensor '%s' has %d dimensions (at most %d)",
                          label, name, ndim, RAANA_MAX_DIMS);
    t->ndim = ndim;
    uint64_t numel = 1;
    int overflow = 0;
    for (int i = 0; i < ndim; i++) {
        uint64_t dim;
        if (json_uint(cJSON_GetArrayItem(shape, i), &dim) != 0)
            return raana_fail(err, RAANA_ERR_INPUT,
                              "%s: tensor '%s' shape[%d] is not a non-negative integer", label,
                              name, i);
        t->shape[i] = (int64_t)dim;
        if (dim != 0 && numel > UINT64_MAX / dim)
            overflow = 1;
        else
            numel *= dim;
    }
    uint64_t begin, end;
    if (cJSON_GetArraySize(offsets) != 2 || json_uint(cJSON_GetArrayItem(offsets, 0), &begin) ||
        json_uint(cJSON_GetArrayItem(offsets, 1), &end) || begin > end)
        return raana_fail(
            err, RAANA_ERR_INPUT,
            "%s: tensor '%s' data_offsets must be [begin, end] with 0 <= begin <= end", label,
            name);
    size_t esize = dtype_table[d].size;
    if (overflow || numel > UINT64_MAX / esize || numel * esize != end - begin)
        return raana_fail(
            err, RAANA_ERR_INPUT,
            "%s: tensor '%s' shape and dtype %s need %llu bytes but data_offsets "
            "[%llu, %llu] span %llu",
            label, name, dtype_table[d].name, overflow ? 0ull : (unsigned long long)(numel * esize),
            (unsigned long long)begin, (unsigned long long)end, (unsigned long long)(end - begin));
    t->numel = numel;
    t->begin = begin;
    t->end = end;
    t->name = strdup(name);
    if (!t->name)
        return raana_fail(err, RAANA_ERR_NOMEM, "%s: out of memory", label);
    return RAANA_OK;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const raana_st_tensor *)a)->name, ((const raana_st_tensor *)b)->name);
}

static const raana_st_tensor **sorted_by_offset(raana_st_tensor *t, size_t n);

static raana_status check_unique_names(raana_st_tensor *t, size_t n, const char *label,
                                       raana_error *err)
{
    qsort(t, n, sizeof *t, by_name);
    for (size_t i = 1; i < n; i++)
        if (strcmp(t[i - 1].name, t[i].name) == 0)
            return raana_fail(err, RAANA_ERR_INPUT, "%s: tensor '%s' appears twice in the header",
                              label, t[i].name);
    return RAANA_OK;
}

/* Ranges past the data buffer: "truncated" when the ranges are contiguous
 * from 0, else the first tensor out of range. */
static raana_status check_in_buffer(const raana_st_tensor **order, size_t n, uint64_t max_end,
                                    int contiguous, uint64_t data_size, const char *label,
                                    raana_error *err)
{
    if (max_end <= data_size)
        return RAANA_OK;
    if (contiguous)
        return raana_fail(err, RAANA_ERR_INPUT,
                          "%s: file is truncated: the header describes %llu data bytes but the "
                          "file holds %llu",
                          label, (unsigned long long)max_end, (unsigned long long)data_size);
    for (size_t i = 0; i < n; i++)
        if (order[i]->end > data_size)
            return raana_fail(err, RAANA_ERR_INPUT,
                              "%s: tensor '%s' data_offsets [%llu, %llu] are out of range "
                              "(the data buffer holds %llu bytes)",
                              label, order[i]->name, (unsigned long long)order[i]->begin,
                              (unsigned long long)order[i]->end, (unsigned long long)data_size);
    return RAANA_OK;
}

/* Global checks once every tensor parsed: names unique, byte ranges disjoint
 * and inside the data buffer. */
static raana_status check_layout(raana_st_tensor *t, size_t n, uint64_t data_size,
                                 const char *label, raana_error *err)
{
    raana_status st = RAANA_OK;
    RAANA_CALL(check_unique_names(t, n, label, err));
    const raana_st_tensor **order = sorted_by_offset(t, n);
    if (!order && n)
        RAANA_FAIL_GOTO(err, RAANA_ERR_NOMEM, "%s: out of memory", label);
    uint64_t max_end = 0;
    int contiguous = 1;
    const raana_st_tensor *last = NULL;
    for (size_t i = 0; i < n; i++) {
        const raana_st_tensor *cur = order[i];
        if (cur->begin == cur->end)
            continue; /* empty tensors occupy no bytes */
        if (last && cur->begin < last->end)
            RAANA_FAIL_GOTO(
                err, RAANA_ERR_INPUT, "%s: tensors '%s' [%llu, %llu] and '%s' [%llu, %llu] overlap",
                label, last->name, (unsigned long long)last->begin, (unsigned long long)last->end,
                cur->name, (unsigned long long)cur->begin, (unsigned long long)cur->end);
        if (cur->begin != (last ? last->end : 0))
            contiguous = 0;
        if (cur->end > max_end)
            max_end = cur->end;
        last = cur;
    }
    RAANA_CHECK(check_in_buffer(order, n, max_end, contiguous, data_size, label, err));
cleanup:
    free(order);
    return st;
}

static int by_offset(const void *a, const void *b)
{
    const raana_st_tensor *x = *(const raana_st_tensor *const *)a;
    const raana_st_tensor *y = *(const raana_st_tensor *const *)b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    return (x->end > y->end) - (x->end < y->end);
}

static const raana_st_tensor **sorted_by_offset(raana_st_tensor *t, size_t n)
{
    const raana_st_tensor **order = malloc((n ? n : 1) * sizeof *order);
    if (!order)
        return NULL;
    for (size_t i = 0; i < n; i++)
        order[i] = &t[i];
    qsort(order, n, sizeof *order, by_offset);
    return order;
}

void raana_st_free_tensors(raana_st_tensor *tensors, size_t n)
{
    if (!tensors)
        return;
    for (size_t i = 0; i < n; i++)
        free(tensors[i].name);
    free(tensors);
}

/* 1 when anything but whitespace or NULs follows the JSON object. */
static int has_trailing_bytes(const char *p, const char *end)
{
    for (; p < end; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r' && *p != '\0')
            return 1;
    return 0;
}

raana_status raana_st_parse_header(const char *json, size_t len, uint64_t data_size,
                                   const char *label, raana_st_tensor **tensors, size_t *n,
                                   raana_error *err)
{
    raana_status st = RAANA_OK;
    raana_st_tensor *t = NULL;
    size_t k = 0, count = 0;
    *tensors = NULL;
    *n = 0;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(json, len, &end, 0);
    if (!root)
        RAANA_FAIL_GOTO(err, RAANA_ERR_INPUT, "%s: header is not valid JSON (near byte %zu)", label,
                        end && end >= json ? (size_t)(end - json) : 0);
    if (has_trailing_bytes(end, json + len))
        RAANA_FAIL_GOTO(err, RAANA_ERR_INPUT, "%s: header has trailing bytes after the JSON object",
                        label);
    if (!cJSON_IsObject(root))
        RAANA_FAIL_GOTO(err, RAANA_ERR_INPUT, "%s: header is not a JSON object", label);
    for (const cJSON *it = root->child; it; it = it->next)
        count++;
    t = calloc(count ? count : 1, sizeof *t);
    if (!t)
        RAANA_FAIL_GOTO(err, RAANA_ERR_NOMEM, "%s: out of memory", label);
    for (const cJSON *it = root->child; it; it = it->next) {
        if (strcmp(it->string, "__metadata__") == 0) {
            if (!cJSON_IsObject(it))
                RAANA_FAIL_GOTO(err, RAANA_ERR_INPUT, "%s: __metadata__ is not an object", label);
            continue;
        }
        RAANA_CHECK(parse_tensor(it, label, &t[k], err));
        k++;
    }
    RAANA_CHECK(check_layout(t, k, data_size, label, err));
    *tensors = t, *n = k;
    t = NULL; /* the caller's now */
cleanup:
    cJSON_Delete(root);
    raana_st_free_tensors(t, k);
    return st;
}

/* ---- files ------------------------------------------------------------------ */

/* The 8-byte little-endian header length, checked against the file size
 * and the 100 MB limit. */
static raana_status header_length(const raana_st_file *f, uint64_t *header_len, raana_error *err)
{
    *header_len = 0;
    for (int i = 7; i >= 0; i--)
        *header_len = (*header_len << 8) | f->map[i];
    if (*header_len > f->file_size - 8)
        return raana_fail(err, RAANA_ERR_INPUT,
                          "%s: header length %llu is larger than the file (%zu bytes)", f->path,
                          (unsigned long long)*header_len, f->file_size);
    if (*header_len > MAX_HEADER_BYTES)
        return raana_fail(err, RAANA_ERR_INPUT, "%s: header length %llu exceeds the 100 MB limit",
                          f->path, (unsigned long long)*header_len);
    return RAANA_OK;
}

raana_status raana_st_open(raana_st_file *f, const char *path, raana_error *err)
{
    raana_status st = RAANA_OK;
    memset(f, 0, sizeof *f);
    f->fd = -1;
    f->path = strdup(path);
    if (!f->path)
        RAANA_FAIL_GOTO(err, RAANA_ERR_NOMEM, "%s: out of memory", path);
    RAANA_CHECK(raana_open_regular(path, &f->fd, &f->file_size, err));
    if (f->file_size < 8)
        RAANA_FAIL_GOTO(err, RAANA_ERR_INPUT,
                        "%s: file is truncated: %zu bytes, too small to hold a header", path,
                        f->file_size);
    f->map = mmap(NULL, f->file_size, PROT_READ, MAP_PRIVATE, f->fd, 0);
    if (f->map == MAP_FAILED) {
        int e = errno;
        f->map = NULL;
        /* ENOMEM: the address space (ulimit -v) or the map count is full */
        RAANA_FAIL_GOTO(err, e == ENOMEM ? RAANA_ERR_NOMEM : RAANA_ERR_IO,
                        "%s: cannot map %zu bytes: %s", path, f->file_size, strerror(e));
    }
    uint64_t header_len;
    RAANA_CHECK(header_length(f, &header_len, err));
    f->data = f->map + 8 + header_len;
    f->data_size = f->file_size - 8 - header_len;
    RAANA_CHECK(raana_st_parse_header((const char *)f->map + 8, (size_t)header_len, f->data_size,
                                      path, &f->tensors, &f->n_tensors, err));
cleanup:
    if (st != RAANA_OK)
        raana_st_close(f);
    return st;
}

void raana_st_close(raana_st_file *f)
{
    if (f->map)
        munmap(f->map, f->file_size);
    if (f->fd >= 0)
        close(f->fd);
    raana_st_free_tensors(f->tensors, f->n_tensors);
    free(f->path);
    memset(f, 0, sizeof *f);
    f->fd = -1;
}

void raana_st_release(const raana_st_file *f, const raana_st_tensor *t)
{
    if (!f->map || t->end <= t->begin)
        return;
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t lo = (uintptr_t)(f->data + t->begin) & ~(page - 1);
    uintptr_t hi = ((uintptr_t)(f->data + t->end) + page - 1) & ~(page - 1);
    uintptr_t map_end = ((uintptr_t)f->map + f->file_size + page - 1) & ~(page - 1);
    if (hi > map_end)
        hi = map_end;
    madvise((void *)lo, hi - lo, MADV_DONTNEED); /* advice: a failure changes nothing */
}

const raana_st_tensor *raana_st_find(const raana_st_file *f, const char *name)
{
    raana_st_tensor key;
    key.name = (char *)name;
    return bsearch(&key, f->tensors, f->n_tensors, sizeof key, by_name);
}

raana_status raana_st_read_f32(const raana_st_file *f, const raana_st_tensor *t, float *out,
                               raana_error *err)
{
    const uint8_t *src = f->data + t->begin;
    switch (t->dtype) {
    case RAANA_DTYPE_F32:
        memcpy(out, src, t->numel * 4); /* little-endian host assumed (x86-64, aarch64) */
        return RAANA_OK;
    case RAANA_DTYPE_BF16:
        for (uint64_t i = 0; i < t->numel; i++)
            out[i] = raana_bf16_to_f32((uint16_t)(src[2 * i] | (src[2 * i + 1] << 8)));
        return RAANA_OK;
    case RAANA_DTYPE_F16:
        for (uint64_t i = 0; i < t->numel; i++)
            out[i] = raana_f16_to_f32((uint16_t)(src[2 * i] | (src[2 * i + 1] << 8)));
        return RAANA_OK;
    default:
        return raana_fail(err, RAANA_ERR_UNSUPPORTED,
                          "%s: tensor '%s' has dtype %s; only F32, F16 and BF16 can be read",
                          f->path, t->name, raana_dtype_name(t->dtype));
    }
}
