/* hadamard.c — fast Walsh-Hadamard transform and the piecewise randomized
 * rotation (see hadamard.h). The butterflies are written as plain loops
 * over contiguous halves so that the compiler vectorizes them; the first
 * three levels are fused into one radix-8 pass to save memory traffic. */
#include "raana/hadamard.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "raana/rng.h"
#include "raana/simd.h"

int raana_pow2_floor(int d)
{
    int k = 1;
    while (k <= d / 2)
        k *= 2;
    return k;
}

/* Levels 1, 2 and 4 of the transform on each group of 8 (portable path). */
static inline void fwht_radix8(float *x, size_t n)
{
    for (size_t i = 0; i < n; i += 8) {
        float a0 = x[i] + x[i + 1], a1 = x[i] - x[i + 1];
        float a2 = x[i + 2] + x[i + 3], a3 = x[i + 2] - x[i + 3];
        float a4 = x[i + 4] + x[i + 5], a5 = x[i + 4] - x[i + 5];
        float a6 = x[i + 6] + x[i + 7], a7 = x[i + 6] - x[i + 7];
        float b0 = a0 + a2, b2 = a0 - a2, b1 = a1 + a3, b3 = a1 - a3;
        float b4 = a4 + a6, b6 = a4 - a6, b5 = a5 + a7, b7 = a5 - a7;
        x[i] = b0 + b4, x[i + 4] = b0 - b4;
        x[i + 1] = b1 + b5, x[i + 5] = b1 - b5;
        x[i + 2] = b2 + b6, x[i + 6] = b2 - b6;
        x[i + 3] = b3 + b7, x[i + 7] = b3 - b7;
    }
}

#if defined(__GNUC__) && !defined(__clang__)
typedef float v16f __attribute__((vector_size(64)));
typedef int v16i __attribute__((vector_size(64)));

/* One level h (1, 2, 4 or 8) inside a vector of 16: partner i ^ h, sum in
 * the lower, difference in the upper element of each pair. */
__attribute__((always_inline)) static inline void level_in_vector(v16f *v, const v16i *partner,
                                                                  const v16i *upper)
{
    v16f u = __builtin_shuffle(*v, *partner);
    v16i sum, diff;
    v16f s = *v + u, d = u - *v;
    memcpy(&sum, &s, sizeof sum);
    memcpy(&diff, &d, sizeof diff);
    v16i r = (sum & ~*upper) | (diff & *upper);
    memcpy(v, &r, sizeof *v);
}

/* Levels 1, 2, 4 and 8 on each group of 16, in registers, after
 * multiplying by signs (if not NULL). */
__attribute__((always_inline)) static inline void fwht_first16(float *x, size_t n,
                                                               const float *signs)
{
    static const v16i p1 = {1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14};
    static const v16i p2 = {2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13};
    static const v16i p4 = {4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11};
    static const v16i p8 = {8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7};
    static const v16i m1 = {0, -1, 0, -1, 0, -1, 0, -1, 0, -1, 0, -1, 0, -1, 0, -1};
    static const v16i m2 = {0, 0, -1, -1, 0, 0, -1, -1, 0, 0, -1, -1, 0, 0, -1, -1};
    static const v16i m4 = {0, 0, 0, 0, -1, -1, -1, -1, 0, 0, 0, 0, -1, -1, -1, -1};
    static const v16i m8 = {0, 0, 0, 0, 0, 0, 0, 0, -1, -1, -1, -1, -1, -1, -1, -1};
    for (size_t i = 0; i < n; i += 16) {
        v16f v;
        memcpy(&v, x + i, sizeof v);
        if (signs) {
            v16f sv;
            memcpy(&sv, signs + i, sizeof sv);
            v *= sv;
        }
        level_in_vector(&v, &p1, &m1);
        level_in_vector(&v, &p2, &m2);
        level_in_vector(&v, &p4, &m4);
        level_in_vector(&v, &p8, &m8);
        memcpy(x + i, &v, sizeof v);
    }
}
#define HAVE_FIRST16 1
#endif

/* Levels h and 2h at once (one pass over memory instead of two). */
__attribute__((always_inline)) static inline void fwht_radix4_level(float *x, size_t n, size_t h)
{
#ifdef HAVE_FIRST16
    if (h % 16 == 0) {
        for (size_t i = 0; i < n; i += 4 * h)
            for (size_t j = i; j < i + h; j += 16) {
                v16f a, b, c, d;
                memcpy(&a, x + j, sizeof a);
                memcpy(&b, x + j + h, sizeof b);
                memcpy(&c, x + j + 2 * h, sizeof c);
                memcpy(&d, x + j + 3 * h, sizeof d);
                v16f s0 = a + b, d0 = a - b, s1 = c + d, d1 = c - d;
                a = s0 + s1, c = s0 - s1, b = d0 + d1, d = d0 - d1;
                memcpy(x + j, &a, sizeof a);
                memcpy(x + j + h, &b, sizeof b);
                memcpy(x + j + 2 * h, &c, sizeof c);
                memcpy(x + j + 3 * h, &d, sizeof d);
            }
        return;
    }
#endif
    for (size_t i = 0; i < n; i += 4 * h) {
        float *restrict a = x + i, *restrict b = a + h, *restrict c = a + 2 * h,
                        *restrict d = a + 3 * h;
        for (size_t j = 0; j < h; j++) {
            float s0 = a[j] + b[j], d0 = a[j] - b[j], s1 = c[j] + d[j], d1 = c[j] - d[j];
            a[j] = s0 + s1;
            c[j] = s0 - s1;
            b[j] = d0 + d1;
            d[j] = d0 - d1;
        }
    }
}

/* The unnormalized butterflies of diag(signs) x (signs may be NULL). */
RAANA_HOT static void fwht_butterflies_signed(float *x, size_t n, const float *signs)
{
    size_t h = 1;
#ifdef HAVE_FIRST16
    if (n >= 16) {
        fwht_first16(x, n, signs);
        h = 16;
        signs = NULL;
    }
#endif
    if (signs)
        for (size_t i = 0; i < n; i++)
            x[i] *= signs[i];
    if (h == 1 && n >= 8) {
        fwht_radix8(x, n);
        h = 8;
    }
    for (; 4 * h <= n; h *= 4)
        fwht_radix4_level(x, n, h);
    for (; h < n; h *= 2)
        for (size_t i = 0; i < n; i += 2 * h) {
            float *restrict a = x + i, *restrict b = x + i + h;
            for (size_t j = 0; j < h; j++) {
                float u = a[j], v = b[j];
                a[j] = u + v;
                b[j] = u - v;
            }
        }
}

static void fwht_butterflies(float *x, size_t n)
{
    fwht_butterflies_signed(x, n, NULL);
}

RAANA_HOT static void scale_by(float *restrict x, size_t n, float scale)
{
    for (size_t i = 0; i < n; i++)
        x[i] *= scale;
}

void raana_fwht(float *x, size_t n)
{
    fwht_butterflies(x, n);
    scale_by(x, n, (float)(1.0 / sqrt((double)n)));
}

static void fill_signs(float *s, int d, uint64_t key, uint64_t stream)
{
    uint64_t bits = 0;
    for (int i = 0; i < d; i++) {
        if (i % 64 == 0)
            bits = raana_rng_u64(key, stream, (uint64_t)(i / 64));
        s[i] = (bits >> (i % 64)) & 1 ? -1.0f : 1.0f;
    }
}

/* s1, s2 and s2_scaled are one block of 3 d floats, owned through s1. */
raana_status raana_rotation_create(raana_rotation *rot, int d, uint64_t key, raana_error *err)
{
    rot->d = d;
    rot->k = raana_pow2_floor(d);
    rot->s1 = malloc(3 * (size_t)d * sizeof *rot->s1);
    if (!rot->s1) {
        rot->s2 = rot->s2_scaled = NULL;
        return raana_fail(err, RAANA_ERR_NOMEM, "out of memory for a rotation of dimension %d", d);
    }
    rot->s2 = rot->s1 + d;
    rot->s2_scaled = rot->s2 + d;
    fill_signs(rot->s1, d, key, 1);
    fill_signs(rot->s2, d, key, 2);
    float inv = (float)(1.0 / sqrt((double)rot->k));
    for (int i = 0; i < d; i++)
        rot->s2_scaled[i] = i < rot->k ? rot->s2[i] * inv : rot->s2[i];
    return RAANA_OK;
}

void raana_rotation_free(raana_rotation *rot)
{
    free(rot->s1); /* with s2 and s2_scaled */
    rot->s1 = rot->s2 = rot->s2_scaled = NULL;
}

RAANA_HOT static void multiply(float *restrict v, const float *restrict s, int d)
{
    for (int i = 0; i < d; i++)
        v[i] *= s[i];
}

/* The 1/sqrt(k) of both Hadamard blocks is folded into the sign vectors:
 * forward uses s1 and s2 * g (g = 1/sqrt(k) on [0, k), 1 elsewhere) and
 * scales the last block at the end; the inverse mirrors it. */
void raana_rotation_apply(const raana_rotation *rot, float *rows, size_t n_rows)
{
    int d = rot->d, k = rot->k;
    float inv = (float)(1.0 / sqrt((double)k));
    for (size_t r = 0; r < n_rows; r++) {
        float *v = rows + r * (size_t)d;
        fwht_butterflies_signed(v, (size_t)k, rot->s1);
        multiply(v + k, rot->s1 + k, d - k);
        multiply(v, rot->s2_scaled, d - k); /* the part the second block leaves out */
        fwht_butterflies_signed(v + (d - k), (size_t)k, rot->s2_scaled + (d - k));
        scale_by(v + (d - k), (size_t)k, inv);
    }
}

void raana_rotation_apply_inverse(const raana_rotation *rot, float *rows, size_t n_rows)
{
    int d = rot->d, k = rot->k;
    float inv = (float)(1.0 / sqrt((double)k));
    for (size_t r = 0; r < n_rows; r++) {
        float *v = rows + r * (size_t)d;
        fwht_butterflies(v + (d - k), (size_t)k);
        scale_by(v + (d - k), (size_t)k, inv);
        multiply(v, rot->s2_scaled, d);
        fwht_butterflies(v, (size_t)k);
        multiply(v, rot->s1, d);
    }
}
