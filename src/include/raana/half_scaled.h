/* half_scaled.h — a vector of floats stored in 16 bits: IEEE half precision
 * times one power of two per vector, v_i = h_i * 2^e ([quantize] side_bits =
 * 16: the per-column rescales and the trick vectors mu and row scales,
 * docs/FORMAT.md). The exponent puts the largest |v_i| in [2^14, 2^15) of
 * the half range, so every value within 2^-28 of the largest keeps half
 * precision's 11 significant bits. Decoding is exact in float32: the
 * quantizer rounds its values in memory with raana_half_scaled_round, so
 * what it computes with is what a reader rebuilds. Pure arithmetic. */
#ifndef RAANA_HALF_SCALED_H
#define RAANA_HALF_SCALED_H

#include <stddef.h>
#include <stdint.h>

/* The readers' bound on a stored exponent (|e| <= this). */
#define RAANA_HALF_SCALED_EXP_MAX 200

/* The exponent e for v[0..n): 0 when every value is 0. v must be finite.
 * Stable: the values raana_half_scaled_round leaves give the same e, so a
 * writer recomputes it from the values in memory. */
int raana_half_scaled_exponent(const float *v, size_t n);

/* h[i] = the half bits of v[i] * 2^-e, rounded to nearest, ties to even. */
void raana_half_scaled_encode(const float *v, size_t n, int e, uint16_t *h);

/* v[i] = h[i] * 2^e (non-finite halves decode to non-finite values). */
void raana_half_scaled_decode(const uint16_t *h, size_t n, int e, float *v);

/* v[i] = decode(encode(v[i])) with e = raana_half_scaled_exponent(v, n):
 * the values a 16-bit container stores; returns e. */
int raana_half_scaled_round(float *v, size_t n);

#endif
