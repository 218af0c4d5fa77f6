/* bench_trick_norm.c — AllocateBits' norm after the tricks on one layer
 * (default 4096 x 11008, Llama-2-7B's up_proj; tricks centralize + norm_col
 * at 0.003, the defaults): the old way (raana_qlayer_trick_norm, a copy of
 * the layer) against the copy-free pass (raana_trick_norm, now in the load
 * stage). Prints process CPU seconds and minor page faults per call (best
 * of 3), and checks that both give the same bits.
 * Usage: bench_trick_norm [D_IN D_OUT] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "raana/qlayer.h"
#include "raana/trick_norm.h"

typedef raana_status (*norm_fn)(const float *, int, int, unsigned, double, double *, raana_error *);

static double cpu_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static long minor_faults(void)
{
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return u.ru_minflt;
}

static double measure(norm_fn f, const float *w, int d_in, int d_out, double *norm, long *faults)
{
    unsigned tricks = RAANA_TRICK_CENTRALIZE | RAANA_TRICK_NORM_COL;
    double best = 1e30;
    raana_error err;
    for (int rep = 0; rep < 3; rep++) {
        long f0 = minor_faults();
        double t0 = cpu_seconds();
        if (f(w, d_in, d_out, tricks, 0.003, norm, &err) != RAANA_OK) {
            fprintf(stderr, "bench_trick_norm: %s\n", err.msg);
            exit(1);
        }
        double t = cpu_seconds() - t0;
        *faults = minor_faults() - f0;
        best = t < best ? t : best;
    }
    return best;
}

int main(int argc, char **argv)
{
    int d_in = argc > 2 ? atoi(argv[1]) : 4096, d_out = argc > 2 ? atoi(argv[2]) : 11008;
    size_t n = (size_t)d_in * d_out;
    float *w = malloc(n * sizeof *w);
    if (!w)
        return 1;
    srand(7);
    for (size_t i = 0; i < n; i++)
        w[i] = (float)rand() / RAND_MAX - 0.5f + (i % (size_t)d_in == 5 ? 10.0f : 0.0f);
    double a, b;
    long fa, fb;
    double ta = measure(raana_qlayer_trick_norm, w, d_in, d_out, &a, &fa);
    double tb = measure(raana_trick_norm, w, d_in, d_out, &b, &fb);
    printf("| %d x %d, copy (raana_qlayer_trick_norm) | %.3f s CPU, %ld page faults |\n", d_in,
           d_out, ta, fa);
    printf("| %d x %d, copy-free (raana_trick_norm) | %.3f s CPU, %ld page faults |\n", d_in, d_out,
           tb, fb);
    printf("| same bits | %s |\n", memcmp(&a, &b, sizeof a) == 0 ? "yes" : "NO");
    free(w);
    return memcmp(&a, &b, sizeof a) != 0;
}
