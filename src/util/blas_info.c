/* blas_info.c — the BLAS library, its dispatched core and threads, the
 * CPU's vector units, and the warning when OpenBLAS runs kernels older than
 * the CPU (see blas_info.h). */
#include "raana/blas_info.h"

#include <cblas.h>
#include <string.h>
#include <strings.h>

/* 1 when `word` occurs in `list` as a whole space-separated word. */
static int has_word(const char *list, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = strstr(list, word); p; p = strstr(p + 1, word)) {
        int starts = p == list || p[-1] == ' ' || p[-1] == '\t' || p[-1] == ':';
        int ends = p[n] == '\0' || p[n] == ' ' || p[n] == '\t' || p[n] == '\n';
        if (starts && ends)
            return 1;
    }
    return 0;
}

void raana_cpu_features_parse_flags(const char *flags, raana_cpu_features *f)
{
    f->avx2 = has_word(flags, "avx2");
    f->avx512 = has_word(flags, "avx512f");
    f->avx512_skx = f->avx512 && has_word(flags, "avx512bw") && has_word(flags, "avx512dq") &&
                    has_word(flags, "avx512vl");
}

/* The first "flags" line of /proc/cpuinfo into f; 0 when there is none. */
static int features_from_cpuinfo(raana_cpu_features *f)
{
    char line[8192];
    int found = 0;
    FILE *in = fopen("/proc/cpuinfo", "r");
    while (in && !found && fgets(line, sizeof line, in))
        if (strncmp(line, "flags", 5) == 0) {
            raana_cpu_features_parse_flags(line, f);
            found = 1;
        }
    if (in)
        fclose(in);
    return found;
}

void raana_cpu_features_detect(raana_cpu_features *f)
{
    memset(f, 0, sizeof *f);
    if (features_from_cpuinfo(f))
        return;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    f->avx2 = __builtin_cpu_supports("avx2") != 0;
    f->avx512 = __builtin_cpu_supports("avx512f") != 0;
    f->avx512_skx = f->avx512 && __builtin_cpu_supports("avx512bw") &&
                    __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
#endif
}

int raana_blas_core_lacks_avx2(const char *core)
{
    /* OpenBLAS's x86 targets without AVX2 kernels (TargetList.txt), as
     * openblas_get_corename() names them; "Opteron(SSE3)" by its prefix. */
    static const char *const old[] = {
        "generic",   "unknown", "katmai",      "coppermine", "northwood",  "prescott",
        "banias",    "yonah",   "core2",       "penryn",     "dunnington", "nehalem",
        "atom",      "nano",    "athlon",      "opteron",    "barcelona",  "shanghai",
        "istanbul",  "bobcat",  "sandybridge", "bulldozer",  "piledriver", "steamroller",
        "excavator", "p2"};
    if (!core)
        return 0;
    for (size_t i = 0; i < sizeof old / sizeof *old; i++) {
        size_t n = strlen(old[i]);
        if (strncasecmp(core, old[i], n) == 0 && (core[n] == '\0' || core[n] == '('))
            return 1;
    }
    return 0;
}

int raana_blas_kernel_advice(const raana_cpu_features *cpu, const char *core, char *advice,
                             size_t size)
{
    if (size)
        advice[0] = '\0';
    if (!(cpu->avx2 || cpu->avx512) || !raana_blas_core_lacks_avx2(core))
        return 0;
    const char *unit = cpu->avx512 ? "AVX-512" : "AVX2";
    snprintf(advice, size,
             "OpenBLAS runs its %s kernels on a CPU with %s, several times slower "
             "(calibration and sgemm baselines): set OPENBLAS_CORETYPE=%s in the job's "
             "environment (or unset it if it is set to %s)",
             core, unit, cpu->avx512 ? "SkylakeX" : "Haswell", core);
    return 1;
}

int raana_blas_kernel_hint(const raana_cpu_features *cpu, const char *core, char *hint, size_t size)
{
    /* OpenBLAS's x86 targets with AVX-512 kernels */
    static const char *const wide[] = {"skylakex", "cooperlake", "sapphirerapids"};
    if (size)
        hint[0] = '\0';
    if (!cpu->avx512_skx || !core || raana_blas_core_lacks_avx2(core))
        return 0;
    for (size_t i = 0; i < sizeof wide / sizeof *wide; i++)
        if (strcasecmp(core, wide[i]) == 0)
            return 0;
    snprintf(hint, size,
             "OpenBLAS runs its %s (AVX2) kernels on a CPU with AVX-512; "
             "OPENBLAS_CORETYPE=SkylakeX may be faster (on an AVX-512 AMD EPYC: sgemm 1.9x, "
             "calibration 1.5x; measure with bench_llama, docs/SCALING.md)",
             core);
    return 1;
}

void raana_blas_info_read(raana_blas_info *b)
{
    memset(b, 0, sizeof *b);
    const char *config = openblas_get_config(), *core = openblas_get_corename();
    snprintf(b->config, sizeof b->config, "%s", config ? config : "?");
    snprintf(b->core, sizeof b->core, "%s", core ? core : "?");
    b->threads = openblas_get_num_threads();
    raana_cpu_features_detect(&b->cpu);
    b->warn = raana_blas_kernel_advice(&b->cpu, b->core, b->advice, sizeof b->advice);
    b->note = raana_blas_kernel_hint(&b->cpu, b->core, b->hint, sizeof b->hint);
}

void raana_blas_print_info(FILE *out, const raana_blas_info *b)
{
    if (out)
        fprintf(out, "blas: %s; core %s, %d threads\n", b->config, b->core, b->threads);
}

void raana_blas_print_warning(FILE *out, const char *prefix, const raana_blas_info *b)
{
    if (out && b->warn)
        fprintf(out, "%swarning: %s\n", prefix, b->advice);
}

void raana_blas_print_note(FILE *out, const char *prefix, const raana_blas_info *b)
{
    if (out && b->note)
        fprintf(out, "%snote: %s\n", prefix, b->hint);
}

void raana_blas_report(FILE *info, FILE *warn, const char *tool)
{
    raana_blas_info b;
    char prefix[64];
    raana_blas_info_read(&b);
    snprintf(prefix, sizeof prefix, "%s: ", tool);
    raana_blas_print_info(info, &b);
    raana_blas_print_warning(warn, prefix, &b);
    raana_blas_print_note(warn, prefix, &b);
    if (info)
        fflush(info);
}

cJSON *raana_blas_json(void)
{
    raana_blas_info b;
    raana_blas_info_read(&b);
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, "config", b.config);
    cJSON_AddStringToObject(o, "core", b.core);
    cJSON_AddNumberToObject(o, "threads", b.threads);
    cJSON_AddBoolToObject(o, "avx2", b.cpu.avx2);
    cJSON_AddBoolToObject(o, "avx512", b.cpu.avx512);
    if (b.warn)
        cJSON_AddStringToObject(o, "warning", b.advice);
    else
        cJSON_AddNullToObject(o, "warning");
    if (b.note)
        cJSON_AddStringToObject(o, "note", b.hint);
    else
        cJSON_AddNullToObject(o, "note");
    return o;
}
