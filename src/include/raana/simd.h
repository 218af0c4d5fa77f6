/* simd.h — RAANA_HOT marks a hot kernel that GCC compiles several times
 * (AVX-512, AVX2, baseline) and picks at load time for the running CPU
 * (function multiversioning via ifunc), so one binary is both portable and
 * vectorized. Elsewhere it expands to nothing. */
#ifndef RAANA_SIMD_H
#define RAANA_SIMD_H

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) &&                             \
    !defined(__SANITIZE_ADDRESS__)
#define RAANA_HOT __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define RAANA_HOT
#endif

#endif
