/* test_blas_info.c — the OpenBLAS kernel decision (blas_info.h) as a pure
 * function of CPU flags and core name, over every combination that matters;
 * the flags parser on real /proc/cpuinfo lines; and the live reading
 * against an independent read of /proc/cpuinfo and OpenBLAS's own answer. */
#include <cblas.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "raana/blas_info.h"

static void test_parse_flags(void)
{
    raana_cpu_features f;
    /* an AMD EPYC (Zen 4) and a Haswell-era Xeon, abridged */
    raana_cpu_features_parse_flags("flags\t\t: fpu vme sse3 avx avx2 avx512f avx512dq bmi2\n", &f);
    CHECK_INT(f.avx2, 1);
    CHECK_INT(f.avx512, 1);
    raana_cpu_features_parse_flags("flags\t\t: fpu sse4_2 avx f16c avx2 fma\n", &f);
    CHECK_INT(f.avx2, 1);
    CHECK_INT(f.avx512, 0);
    /* AVX only (Sandy Bridge), and words that merely contain the names */
    raana_cpu_features_parse_flags("flags\t\t: fpu sse4_2 avx xavx2 avx2x avx512fx avx512_bf16\n",
                                   &f);
    CHECK_INT(f.avx2, 0);
    CHECK_INT(f.avx512, 0);
    raana_cpu_features_parse_flags("flags\t\t: avx512f", &f); /* last word, no newline */
    CHECK_INT(f.avx512, 1);
    CHECK_INT(f.avx512_skx, 0);
    /* SkylakeX's kernels need F, BW, DQ and VL (a Zen 5 EPYC has them; Knights
     * Landing has F without BW, DQ, VL) */
    raana_cpu_features_parse_flags(
        "flags\t: avx2 avx512f avx512dq avx512ifma avx512cd avx512bw avx512vl avx512_bf16\n", &f);
    CHECK_INT(f.avx512_skx, 1);
    raana_cpu_features_parse_flags("flags\t: avx2 avx512f avx512pf avx512er avx512cd\n", &f);
    CHECK_INT(f.avx512, 1);
    CHECK_INT(f.avx512_skx, 0);
    raana_cpu_features_parse_flags("flags\t: avx2 avx512f avx512bw avx512vl\n", &f); /* no dq */
    CHECK_INT(f.avx512_skx, 0);
}

static void test_core_list(void)
{
    const char *old[] = {"Prescott",  "PRESCOTT", "Core2",       "Nehalem",       "Katmai",
                         "Penryn",    "Atom",     "Sandybridge", "Opteron(SSE3)", "Bulldozer",
                         "Excavator", "generic",  "Unknown"};
    const char *avx2[] = {"Haswell", "SkylakeX", "Cooperlake", "SapphireRapids",
                          "Zen",     "ARMV8",    "NeoverseN1", "POWER9"};
    for (size_t i = 0; i < sizeof old / sizeof *old; i++)
        CHECK_INT(raana_blas_core_lacks_avx2(old[i]), 1);
    for (size_t i = 0; i < sizeof avx2 / sizeof *avx2; i++)
        CHECK_INT(raana_blas_core_lacks_avx2(avx2[i]), 0);
    CHECK_INT(raana_blas_core_lacks_avx2("Prescottish"), 0); /* whole names only */
    CHECK_INT(raana_blas_core_lacks_avx2(NULL), 0);
}

/* warn iff (AVX2 or AVX-512) and a core without AVX2; the fix names the
 * core type that fits the CPU */
static void test_decision(void)
{
    char advice[400];
    const raana_cpu_features none = {0, 0, 0}, avx2 = {1, 0, 0}, avx512 = {1, 1, 1},
                             only512 = {0, 1, 0};
    CHECK_INT(raana_blas_kernel_advice(&none, "Prescott", advice, sizeof advice), 0);
    CHECK(advice[0] == '\0');
    CHECK_INT(raana_blas_kernel_advice(&avx2, "Haswell", advice, sizeof advice), 0);
    CHECK_INT(raana_blas_kernel_advice(&avx512, "SkylakeX", advice, sizeof advice), 0);
    CHECK_INT(raana_blas_kernel_advice(&avx512, "Haswell", advice, sizeof advice), 0);
    CHECK_INT(raana_blas_kernel_advice(&avx512, "Zen", advice, sizeof advice), 0);

    CHECK_INT(raana_blas_kernel_advice(&avx2, "Nehalem", advice, sizeof advice), 1);
    CHECK(strstr(advice, "OPENBLAS_CORETYPE=Haswell") != NULL);
    CHECK(strstr(advice, "AVX2") != NULL && strstr(advice, "Nehalem") != NULL);

    CHECK_INT(raana_blas_kernel_advice(&avx512, "Prescott", advice, sizeof advice), 1);
    CHECK(strstr(advice, "OPENBLAS_CORETYPE=SkylakeX") != NULL);
    CHECK(strstr(advice, "AVX-512") != NULL && strstr(advice, "Prescott") != NULL);

    CHECK_INT(raana_blas_kernel_advice(&only512, "Core2", advice, sizeof advice), 1);
    CHECK(strstr(advice, "OPENBLAS_CORETYPE=SkylakeX") != NULL);

    char small[16]; /* truncates, never overflows */
    CHECK_INT(raana_blas_kernel_advice(&avx2, "Katmai", small, sizeof small), 1);
    CHECK_INT(strlen(small), sizeof small - 1);
}

/* the hint iff AVX-512 F/BW/DQ/VL and a core with AVX2 but not AVX-512
 * kernels; never together with the warning */
static void test_hint(void)
{
    char hint[400];
    const raana_cpu_features avx2 = {1, 0, 0}, knl = {1, 1, 0}, skx = {1, 1, 1};
    CHECK_INT(raana_blas_kernel_hint(&skx, "Haswell", hint, sizeof hint), 1);
    CHECK(strstr(hint, "OPENBLAS_CORETYPE=SkylakeX") != NULL && strstr(hint, "Haswell") != NULL);
    CHECK_INT(raana_blas_kernel_hint(&skx, "Zen", hint, sizeof hint), 1);
    CHECK_INT(raana_blas_kernel_hint(&skx, "SkylakeX", hint, sizeof hint), 0);
    CHECK(hint[0] == '\0');
    CHECK_INT(raana_blas_kernel_hint(&skx, "COOPERLAKE", hint, sizeof hint), 0);
    CHECK_INT(raana_blas_kernel_hint(&skx, "SapphireRapids", hint, sizeof hint), 0);
    CHECK_INT(raana_blas_kernel_hint(&skx, "Prescott", hint, sizeof hint), 0); /* the warning's */
    CHECK_INT(raana_blas_kernel_hint(&skx, NULL, hint, sizeof hint), 0);
    CHECK_INT(raana_blas_kernel_hint(&avx2, "Haswell", hint, sizeof hint), 0);
    CHECK_INT(raana_blas_kernel_hint(&knl, "Haswell", hint, sizeof hint), 0);
    const char *cores[] = {"Haswell", "Zen", "SkylakeX", "Prescott", "Nehalem"};
    const raana_cpu_features *cpus[] = {&avx2, &knl, &skx};
    for (size_t c = 0; c < 3; c++)
        for (size_t k = 0; k < sizeof cores / sizeof *cores; k++)
            CHECK(!(raana_blas_kernel_hint(cpus[c], cores[k], hint, sizeof hint) &&
                    raana_blas_kernel_advice(cpus[c], cores[k], hint, sizeof hint)));
}

/* The live reading: OpenBLAS's own answers, and the CPU's flags read here
 * independently of the parser. */
static void test_live(void)
{
    raana_blas_info b;
    raana_blas_info_read(&b);
    CHECK(strcmp(b.core, openblas_get_corename()) == 0);
    CHECK_INT(b.threads, openblas_get_num_threads());
    CHECK(strncmp(b.config, "OpenBLAS", 8) == 0);
    char line[8192];
    FILE *f = fopen("/proc/cpuinfo", "r");
    int avx2 = -1;
    while (f && avx2 < 0 && fgets(line, sizeof line, f))
        if (strncmp(line, "flags", 5) == 0)
            avx2 = strstr(line, " avx2 ") != NULL || strstr(line, " avx2\n") != NULL;
    if (f)
        fclose(f);
    if (avx2 >= 0)
        CHECK_INT(b.cpu.avx2, avx2);
    CHECK_INT(b.warn, raana_blas_kernel_advice(&b.cpu, b.core, line, sizeof line));
    CHECK_INT(b.note, raana_blas_kernel_hint(&b.cpu, b.core, line, sizeof line));
}

int main(void)
{
    test_parse_flags();
    test_core_list();
    test_decision();
    test_hint();
    test_live();
    return check_summary("test_blas_info");
}
