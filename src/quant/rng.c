/* rng.c — the counter-based generator (see rng.h for the definition). */
#include "raana/rng.h"

#include <math.h>

#define GOLDEN 0x9e3779b97f4a7c15ull

uint64_t raana_rng_mix64(uint64_t z)
{
    z ^= z >> 30;
    z *= 0xbf58476d1ce4e5b9ull;
    z ^= z >> 27;
    z *= 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t raana_rng_layer_key(uint64_t seed, const char *name)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        h ^= *p;
        h *= 0x100000001b3ull;
    }
    return raana_rng_mix64(seed ^ h);
}

uint64_t raana_rng_u64(uint64_t key, uint64_t stream, uint64_t counter)
{
    return raana_rng_mix64(raana_rng_mix64(key ^ (stream * GOLDEN)) + (counter + 1) * GOLDEN);
}

double raana_rng_uniform(uint64_t key, uint64_t stream, uint64_t counter)
{
    return (double)(raana_rng_u64(key, stream, counter) >> 11) * 0x1.0p-53;
}

double raana_rng_normal(uint64_t key, uint64_t stream, uint64_t counter)
{
    double u1 = raana_rng_uniform(key, stream, 2 * counter);
    double u2 = raana_rng_uniform(key, stream, 2 * counter + 1);
    return sqrt(-2.0 * log(1.0 - u1)) * cos(6.283185307179586 * u2);
}
