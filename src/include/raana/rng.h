/* rng.h — the counter-based generator behind every random choice raana
 * makes (rotation signs). A value depends only on (key, stream, counter),
 * and a layer's key only on (global seed, layer name), so results never
 * depend on which rank or thread computes them or in what order.
 *
 * Definition (docs/FORMAT.md repeats it for readers of containers):
 *   mix64(z)   = SplitMix64's finalizer:
 *                z ^= z >> 30; z *= 0xbf58476d1ce4e5b9;
 *                z ^= z >> 27; z *= 0x94d049bb133111eb; z ^= z >> 31
 *   fnv1a64(s) = FNV-1a over the bytes of s (offset 0xcbf29ce484222325,
 *                prime 0x100000001b3)
 *   layer key  = mix64(seed ^ fnv1a64(name))
 *   u64(key, stream, i) = mix64(mix64(key ^ (stream * 0x9e3779b97f4a7c15))
 *                               + (i + 1) * 0x9e3779b97f4a7c15)
 * all arithmetic modulo 2^64. */
#ifndef RAANA_RNG_H
#define RAANA_RNG_H

#include <stdint.h>

#define RAANA_RNG_ID "raana-splitmix-ctr-v1"

uint64_t raana_rng_mix64(uint64_t z);
uint64_t raana_rng_layer_key(uint64_t seed, const char *name);
uint64_t raana_rng_u64(uint64_t key, uint64_t stream, uint64_t counter);
/* Uniform double in [0, 1) from the top 53 bits of u64(key, stream, i). */
double raana_rng_uniform(uint64_t key, uint64_t stream, uint64_t counter);
/* Standard normal from two uniforms (Box-Muller), for tests and benchmarks. */
double raana_rng_normal(uint64_t key, uint64_t stream, uint64_t counter);

#endif
