/* test_hadamard.c — the fast Walsh-Hadamard transform against the dense
 * Sylvester matrix, and the piecewise randomized rotation: orthogonality
 * (norms, inner products), inverse, determinism of the signs. */
#include <stdlib.h>

#include "check.h"
#include "raana/hadamard.h"
#include "raana/rng.h"

static void test_against_dense(void)
{
    for (size_t n = 1; n <= 1024; n *= 2) {
        float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
        for (size_t i = 0; i < n; i++)
            x[i] = y[i] = (float)raana_rng_normal(1, n, i);
        raana_fwht(y, n);
        double worst = 0, scale = 1 / sqrt((double)n);
        for (size_t i = 0; i < n; i++) {
            double want = 0; /* H[i][j] = (-1)^popcount(i & j) / sqrt(n) */
            for (size_t j = 0; j < n; j++)
                want += (__builtin_popcountll(i & j) & 1 ? -1.0 : 1.0) * x[j];
            want *= scale;
            double diff = fabs(want - y[i]);
            worst = diff > worst ? diff : worst;
        }
        CHECK(worst < 1e-5);
        free(x);
        free(y);
    }
}

static void test_rotation(void)
{
    const int dims[] = {1, 2, 3, 192, 576, 4096, 11008, 28672};
    for (size_t k = 0; k < sizeof dims / sizeof dims[0]; k++) {
        int d = dims[k];
        raana_rotation rot;
        raana_error err;
        CHECK_INT(raana_rotation_create(&rot, d, raana_rng_layer_key(7, "layer"), &err), RAANA_OK);
        CHECK_INT(rot.k, d == 1       ? 1
                         : d == 3     ? 2
                         : d == 192   ? 128
                         : d == 576   ? 512
                         : d == 11008 ? 8192
                         : d == 28672 ? 16384
                                      : d);
        float *x = malloc(2 * (size_t)d * sizeof *x), *orig = malloc(2 * (size_t)d * sizeof *orig);
        double n0 = 0, n1 = 0, dot0 = 0, dot1 = 0;
        for (int i = 0; i < 2 * d; i++)
            orig[i] = x[i] = (float)raana_rng_normal(3, (uint64_t)d, (uint64_t)i);
        raana_rotation_apply(&rot, x, 2);
        for (int i = 0; i < d; i++) {
            n0 += (double)orig[i] * orig[i], n1 += (double)x[i] * x[i];
            dot0 += (double)orig[i] * orig[d + i], dot1 += (double)x[i] * x[d + i];
        }
        CHECK_NEAR(sqrt(n1), sqrt(n0), 1e-6 * sqrt(n0) / (sqrt(n0) > 1 ? sqrt(n0) : 1));
        CHECK(fabs(dot1 - dot0) <= 1e-5 * n0);
        raana_rotation_apply_inverse(&rot, x, 2);
        double worst = 0;
        for (int i = 0; i < 2 * d; i++)
            worst = fmax(worst, fabs((double)x[i] - orig[i]));
        CHECK(worst < 1e-5);
        raana_rotation_free(&rot);
        free(x);
        free(orig);
    }
}

static void test_signs_depend_on_seed_and_name(void)
{
    raana_rotation a, b, c;
    raana_error err;
    raana_rotation_create(&a, 300, raana_rng_layer_key(1, "model.layers.0.mlp.up_proj"), &err);
    raana_rotation_create(&b, 300, raana_rng_layer_key(1, "model.layers.0.mlp.up_proj"), &err);
    raana_rotation_create(&c, 300, raana_rng_layer_key(1, "model.layers.0.mlp.gate_proj"), &err);
    int same = 1, differ = 0, minus = 0;
    for (int i = 0; i < 300; i++) {
        same &= a.s1[i] == b.s1[i] && a.s2[i] == b.s2[i];
        differ += a.s1[i] != c.s1[i];
        minus += a.s1[i] < 0;
    }
    CHECK(same);
    CHECK(differ > 100 && differ < 200); /* about half the signs differ */
    CHECK(minus > 110 && minus < 190);
    /* the documented generator: first sign of s1 is bit 0 of u64(key, 1, 0) */
    uint64_t key = raana_rng_layer_key(1, "model.layers.0.mlp.up_proj");
    CHECK((a.s1[0] < 0) == (int)(raana_rng_u64(key, 1, 0) & 1));
    CHECK((a.s2[65] < 0) == (int)((raana_rng_u64(key, 2, 1) >> 1) & 1));
    /* the definition in rng.h, evaluated by hand for seed 0 and name "" */
    CHECK(raana_rng_layer_key(0, "") == raana_rng_mix64(0xcbf29ce484222325ull));
    raana_rotation_free(&a);
    raana_rotation_free(&b);
    raana_rotation_free(&c);
}

int main(void)
{
    test_against_dense();
    test_rotation();
    test_signs_depend_on_seed_and_name();
    return check_summary("test_hadamard");
}
