/* test_trick_norm.c — the copy-free norm after the tricks (trick_norm.h)
 * against qlayer.c's raana_qlayer_trick_norm, which materializes the
 * tricked matrix as the quantizer does: bitwise equal (the container
 * stores w_fro and must not change) for every combination of tricks, hold-
 * out rates from none to many columns, heavy-tailed weights with outlier
 * channels, tied column norms (duplicate columns: the tie-break by index),
 * all-zero rows (row scale 1) and odd shapes; plus closed forms: plain
 * Frobenius norm without tricks, and d_in * d_out after centralize +
 * norm_row on a matrix without zero rows. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "raana/qlayer.h"
#include "raana/trick_norm.h"

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static double uniform(void)
{
    rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
    return ((rng_state >> 11) + 0.5) / 9007199254740992.0;
}

/* Student-t-ish heavy tails: normal / sqrt(uniform), a few outlier input
 * channels x20, two duplicated columns, one all-zero input channel. */
static float *make_weight(int d_in, int d_out)
{
    float *w = malloc((size_t)d_in * d_out * sizeof *w);
    for (int j = 0; j < d_out; j++)
        for (int i = 0; i < d_in; i++) {
            double g = sqrt(-2 * log(uniform())) * cos(6.283185307179586 * uniform());
            double v = g / sqrt(0.2 + uniform()) / sqrt((double)d_in);
            if (i % 17 == 3)
                v *= 20;
            w[(size_t)j * d_in + i] = (float)(v + 0.01);
        }
    if (d_out >= 4) { /* columns 1 and 3 tie with column 0 */
        memcpy(w + (size_t)1 * d_in, w, (size_t)d_in * sizeof *w);
        memcpy(w + (size_t)3 * d_in, w, (size_t)d_in * sizeof *w);
    }
    if (d_in >= 3)
        for (int j = 0; j < d_out; j++)
            w[(size_t)j * d_in + 2] = 0;
    return w;
}

static void test_bitwise(void)
{
    const int shapes[][2] = {{64, 48}, {33, 257}, {128, 500}, {7, 5}, {1, 9}};
    const double rates[] = {0, 0.003, 0.05, 0.3};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        int d_in = shapes[s][0], d_out = shapes[s][1];
        float *w = make_weight(d_in, d_out);
        for (unsigned tricks = 0; tricks < 8; tricks++)
            for (size_t r = 0; r < sizeof rates / sizeof *rates; r++) {
                raana_error err;
                double ref = -1, got = -2;
                CHECK(raana_qlayer_trick_norm(w, d_in, d_out, tricks, rates[r], &ref, &err) ==
                      RAANA_OK);
                CHECK(raana_trick_norm(w, d_in, d_out, tricks, rates[r], &got, &err) == RAANA_OK);
                if (memcmp(&ref, &got, sizeof ref) != 0) {
                    check_failed++;
                    fprintf(stderr, "%dx%d tricks %u rate %g: %.17g != %.17g\n", d_out, d_in,
                            tricks, rates[r], got, ref);
                } else
                    check_passed++;
            }
        free(w);
    }
}

static void test_closed_forms(void)
{
    int d_in = 40, d_out = 30;
    float *w = make_weight(d_in, d_out);
    double fro = 0, got;
    raana_error err;
    for (size_t i = 0; i < (size_t)d_in * d_out; i++)
        fro += (double)w[i] * w[i];
    CHECK(raana_trick_norm(w, d_in, d_out, 0, 0.1, &got, &err) == RAANA_OK);
    CHECK_NEAR(got, sqrt(fro), 1e-12);
    /* centralized, each input channel scaled to unit RMS: every nonzero row
     * contributes d_out; the all-zero channel 2 contributes nothing */
    CHECK(raana_trick_norm(w, d_in, d_out, RAANA_TRICK_CENTRALIZE | RAANA_TRICK_NORM_ROW, 0, &got,
                           &err) == RAANA_OK);
    CHECK_NEAR(got * got, (double)(d_in - 1) * d_out, 1e-5);
    free(w);
}

int main(void)
{
    test_bitwise();
    test_closed_forms();
    return check_summary("test_trick_norm");
}
