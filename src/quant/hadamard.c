/* hadamard.c — fast Walsh-Hadamard transform and the piecewise randomized
 * rotation (see hadamard.h). The butterflies are written as plain loops
 * over contiguous halves so that the compiler vectorizes them; the first
 * three levels are fused into one radix-8 pass to save memory traffic. */
#include "raana/hadamard.h"

#include <math.h>
#include <stdlib.h>

#include "raana/rng.h"

int raana_pow2_floor(int d)
{
    int k = 1;
    while (k <= d / 2)
        k *= 2;
    return k;
}

/* Levels 1, 2 and 4 of the transform on each group of 8. */
static void fwht_radix8(float *x, size_t n)
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

void raana_fwht(float *x, size_t n)
{
    size_t h = 1;
    if (n >= 8) {
        fwht_radix8(x, n);
        h = 8;
    }
    for (; h < n; h *= 2)
        for (size_t i = 0; i < n; i += 2 * h) {
            float *restrict a = x + i, *restrict b = x + i + h;
            for (size_t j = 0; j < h; j++) {
                float u = a[j], v = b[j];
                a[j] = u + v;
                b[j] = u - v;
            }
        }
    float scale = (float)(1.0 / sqrt((double)n));
    for (size_t i = 0; i < n; i++)
        x[i] *= scale;
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

raana_status raana_rotation_init(raana_rotation *rot, int d, uint64_t key, raana_error *err)
{
    rot->d = d;
    rot->k = raana_pow2_floor(d);
    rot->s1 = malloc((size_t)d * sizeof *rot->s1);
    rot->s2 = malloc((size_t)d * sizeof *rot->s2);
    if (!rot->s1 || !rot->s2) {
        raana_rotation_free(rot);
        return raana_fail(err, RAANA_ERR_NOMEM, "out of memory for a rotation of dimension %d", d);
    }
    fill_signs(rot->s1, d, key, 1);
    fill_signs(rot->s2, d, key, 2);
    return RAANA_OK;
}

void raana_rotation_free(raana_rotation *rot)
{
    free(rot->s1);
    free(rot->s2);
    rot->s1 = rot->s2 = NULL;
}

static void multiply(float *restrict v, const float *restrict s, int d)
{
    for (int i = 0; i < d; i++)
        v[i] *= s[i];
}

void raana_rotation_apply(const raana_rotation *rot, float *rows, size_t n_rows)
{
    int d = rot->d, k = rot->k;
    for (size_t r = 0; r < n_rows; r++) {
        float *v = rows + r * (size_t)d;
        multiply(v, rot->s1, d);
        raana_fwht(v, (size_t)k);
        multiply(v, rot->s2, d);
        raana_fwht(v + (d - k), (size_t)k);
    }
}

void raana_rotation_apply_inverse(const raana_rotation *rot, float *rows, size_t n_rows)
{
    int d = rot->d, k = rot->k;
    for (size_t r = 0; r < n_rows; r++) {
        float *v = rows + r * (size_t)d;
        raana_fwht(v + (d - k), (size_t)k);
        multiply(v, rot->s2, d);
        raana_fwht(v, (size_t)k);
        multiply(v, rot->s1, d);
    }
}
