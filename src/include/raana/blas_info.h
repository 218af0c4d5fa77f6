/* blas_info.h — which BLAS runs and whether it runs the right kernels: the
 * library (openblas_get_config), the core OpenBLAS dispatched to
 * (openblas_get_corename), its thread count, and the CPU's vector units
 * (AVX2, AVX-512). Debian's OpenBLAS 0.3.21 falls back to its generic
 * "Prescott" SSE3 kernels on CPUs it does not know (seen on a recent
 * AVX-512 Xeon): sgemm, and so calibration, then runs 3-6x slower and
 * nothing says so. Every tool prints this at start-up and warns, naming the
 * fix (OPENBLAS_CORETYPE=Haswell or SkylakeX), when the kernel lacks AVX2 on
 * a CPU that has it (docs/SCALING.md, "BLAS kernels"). */
#ifndef RAANA_BLAS_INFO_H
#define RAANA_BLAS_INFO_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdio.h>

typedef struct {
    int avx2, avx512; /* avx512: AVX-512 Foundation (avx512f) */
    int avx512_skx;   /* avx512f, bw, dq and vl: what OpenBLAS's SkylakeX kernels use */
} raana_cpu_features;

typedef struct {
    char config[256]; /* "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH ..." */
    char core[64];    /* "Haswell", "SkylakeX", "Prescott", ... */
    int threads;
    raana_cpu_features cpu;
    int warn;         /* 1: generic kernel on an AVX2/AVX-512 CPU */
    char advice[400]; /* when warn: what is wrong and the fix */
    int note;         /* 1: AVX2 kernels on a CPU with AVX-512 */
    char hint[400];   /* when note: the core to try */
} raana_blas_info;

/* The features named in a /proc/cpuinfo "flags" line (whole words:
 * "avx2", "avx512f", "avx512bw", "avx512dq", "avx512vl"). Pure. */
void raana_cpu_features_parse_flags(const char *flags, raana_cpu_features *f);

/* This CPU's features: the first "flags" line of /proc/cpuinfo (what the
 * kernel lets processes use), else cpuid through gcc's builtins; none on
 * other architectures. */
void raana_cpu_features_detect(raana_cpu_features *f);

/* 1 when `core` (an openblas_get_corename() name, any case) is one of
 * OpenBLAS's x86 targets without AVX2 kernels (Prescott, Core2, Nehalem,
 * Sandybridge, Katmai, generic, ...). Pure. */
int raana_blas_core_lacks_avx2(const char *core);

/* The decision: 1 when OpenBLAS runs a core without AVX2 kernels on a CPU
 * with AVX2 or AVX-512; then `advice` says so and names the fix
 * (OPENBLAS_CORETYPE=SkylakeX with AVX-512, Haswell with AVX2 only). Pure. */
int raana_blas_kernel_advice(const raana_cpu_features *cpu, const char *core, char *advice,
                             size_t size);

/* The milder case: 1 when OpenBLAS runs AVX2 kernels (Haswell, Zen,
 * Skylake, ...) on a CPU with AVX-512 F/BW/DQ/VL; then `hint` names
 * OPENBLAS_CORETYPE=SkylakeX as worth measuring (on an AVX-512 AMD EPYC it
 * ran sgemm 1.9x and calibration 1.5x faster; on CPUs that split AVX-512
 * into two halves it may not). Pure. */
int raana_blas_kernel_hint(const raana_cpu_features *cpu, const char *core, char *hint,
                           size_t size);

/* The running library, core, threads and CPU, and the decisions. */
void raana_blas_info_read(raana_blas_info *b);

/* "blas: CONFIG; core CORE, N threads" (one line). */
void raana_blas_print_info(FILE *out, const raana_blas_info *b);

/* "PREFIXwarning: ADVICE" when b->warn, else nothing. */
void raana_blas_print_warning(FILE *out, const char *prefix, const raana_blas_info *b);

/* "PREFIXnote: HINT" when b->note, else nothing. */
void raana_blas_print_note(FILE *out, const char *prefix, const raana_blas_info *b);

/* At a tool's start-up: reads the BLAS and prints the info line to `info`
 * and "TOOL: warning: ..." and "TOOL: note: ..." to `warn` (either may be
 * NULL). */
void raana_blas_report(FILE *info, FILE *warn, const char *tool);

/* {"config", "core", "threads", "avx2", "avx512", "warning": text or null,
 * "note": text or null}
 * of the running BLAS, for a tool's --json output; NULL when out of memory. */
cJSON *raana_blas_json(void);

#endif
