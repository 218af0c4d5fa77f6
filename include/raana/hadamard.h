/* hadamard.h — the fast Walsh-Hadamard transform and the piecewise
 * randomized Hadamard rotation of RaBitQ-H for any dimension d >= 1.
 *
 * Rotation of a vector v of length d, with k the largest power of two
 * <= d and s1, s2 random +-1 vectors of length d (DESIGN section 4):
 *   v <- v * s1;  v[0:k] <- H_k v[0:k];  v <- v * s2;  v[d-k:d] <- H_k v[d-k:d]
 * H_k is the orthonormal (1/sqrt(k)-scaled) Sylvester Hadamard matrix, so
 * the map is orthogonal; its inverse applies the steps backwards. Signs come
 * from rng.h: s1[i] = bit (i mod 64) of u64(key, 1, i / 64) (0 -> +1,
 * 1 -> -1), s2 the same with stream 2. */
#ifndef RAANA_HADAMARD_H
#define RAANA_HADAMARD_H

#include <stddef.h>
#include <stdint.h>

#include "raana/error.h"

/* In-place orthonormal transform of x[0..n), n a power of two (n >= 1). */
void raana_fwht(float *x, size_t n);

typedef struct {
    int d, k;
    float *s1, *s2;   /* +-1.0f; s1 owns the one allocation of all three */
    float *s2_scaled; /* s2 with the first block's 1/sqrt(k) folded in */
} raana_rotation;

raana_status raana_rotation_create(raana_rotation *rot, int d, uint64_t key, raana_error *err);
void raana_rotation_free(raana_rotation *rot);

/* Rotates (or un-rotates) each of n_rows contiguous rows of length d. */
void raana_rotation_apply(const raana_rotation *rot, float *rows, size_t n_rows);
void raana_rotation_apply_inverse(const raana_rotation *rot, float *rows, size_t n_rows);

/* Largest power of two <= d (d >= 1). */
int raana_pow2_floor(int d);

#endif
