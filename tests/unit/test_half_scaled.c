/* test_half_scaled.c — 16-bit side vectors (half_scaled.h): the exponent
 * puts the largest value in the top octave of half precision and is stable
 * under rounding (a writer recomputes it from the rounded values); rounding
 * is to the nearest half times 2^e, brute-forced over all 65536 halves on
 * small vectors; decoding gives the rounded values back exactly; zeros,
 * signs and values far below the largest; the bit count at 16 bits; and a
 * layer quantized with side_bits = 16 stores rescales, means and row scales
 * that are such values, loses almost nothing against float32 and counts 16
 * bits for each. */
#include <math.h>
#include <stdlib.h>

#include "check.h"
#include "raana/bits.h"
#include "raana/half_scaled.h"
#include "raana/qlayer.h"
#include "raana/rng.h"
#include "raana/safetensors.h"

/* The value of the nearest of all 65536 halves times 2^e (ties to the even
 * half), by brute force. */
static double brute_nearest(float v, int e)
{
    double best = NAN, best_d = INFINITY;
    int best_bits = 0;
    for (unsigned h = 0; h < 65536; h++) {
        float f = raana_f16_to_f32((uint16_t)h);
        if (!isfinite(f))
            continue;
        double x = ldexp((double)f, e), d = fabs(x - (double)v);
        if (d < best_d || (d == best_d && (h & 1) == 0 && (best_bits & 1))) {
            best = x, best_d = d, best_bits = (int)h;
        }
    }
    return best;
}

static void test_known_values(void)
{
    float v[3] = {1.0f, -0.5f, 3.0f};
    CHECK_INT(raana_half_scaled_exponent(v, 3), 2 - 15); /* 3 = 0.75 2^2 */
    uint16_t h[3];
    raana_half_scaled_encode(v, 3, -13, h);
    float back[3];
    raana_half_scaled_decode(h, 3, -13, back);
    for (int i = 0; i < 3; i++)
        CHECK(back[i] == v[i]);
    float zero[4] = {0, 0, 0, 0};
    CHECK_INT(raana_half_scaled_exponent(zero, 4), 0);
    CHECK_INT(raana_half_scaled_round(zero, 4), 0);
    CHECK(zero[0] == 0 && zero[3] == 0);
    /* a largest value that rounds up to a power of two: the exponent is
     * that of the rounded value, one more */
    float up[2] = {ldexpf(1.0f - ldexpf(1.0f, -13), 5), 1.0f};
    CHECK_INT(raana_half_scaled_exponent(up, 2), 6 - 15);
}

/* Random vectors of several scales: nearest rounding (brute force on a few
 * entries), stability of the exponent and of the values, exact decoding. */
static void test_random_vectors(void)
{
    enum { N = 64 };
    int brute = 0;
    for (int t = 0; t < 40; t++) {
        float v[N], r[N];
        double scale = ldexp(1.0, -30 + 3 * (t % 20));
        for (int i = 0; i < N; i++) {
            double g = raana_rng_normal(99, (uint64_t)t, (uint64_t)i);
            /* some values far below the largest: half's subnormal range */
            v[i] = (float)(scale * g * (i % 7 == 0 ? ldexp(1.0, -30) : 1.0));
            r[i] = v[i];
        }
        int e = raana_half_scaled_round(r, N);
        CHECK_INT(raana_half_scaled_exponent(r, N), e);
        float top = 0;
        for (int i = 0; i < N; i++)
            top = fabsf(r[i]) > top ? fabsf(r[i]) : top;
        CHECK(ldexp(top, -e) >= 8192 && ldexp(top, -e) <= 32768);
        uint16_t h[N];
        float again[N];
        raana_half_scaled_encode(r, N, e, h);
        raana_half_scaled_decode(h, N, e, again);
        int same = 1;
        for (int i = 0; i < N; i++)
            same &= again[i] == r[i] && (v[i] < 0) == (r[i] < 0 || (r[i] == 0 && signbit(r[i])));
        CHECK(same);
        for (int i = 0; i < N && t % 8 == 0; i += 9, brute++)
            CHECK(brute_nearest(v[i], e) == (double)r[i]);
        for (int i = 0; i < N; i++) /* relative error of half precision where normal */
            if (fabs(ldexp(v[i], -e)) >= ldexp(1.0, -14))
                CHECK(fabs(r[i] - v[i]) <= ldexp(fabs(v[i]), -11));
    }
    CHECK(brute > 20);
}

static void test_bits(void)
{
    raana_layer_bits b = raana_layer_bits_count(192, 64, 48, 1, 1, 1);
    raana_layer_bits_set_side(&b, 192, 64, 16);
    CHECK(b.rescales == 16.0 * 64 && b.mu == 16.0 * 192 && b.row_scale == 16.0 * 192);
    CHECK(b.held == 32.0 * 192 + 32);
    double want = (8.0 * 48 * 64 + 16.0 * 64 + 2 * 16.0 * 192 + 32.0 * 192 + 32 + 2 * 8.0 * 24) /
                  (192.0 * 64);
    CHECK_NEAR(raana_layer_bits_per_weight(&b), want, 1e-15);
    raana_layer_bits_set_side(&b, 192, 64, 32);
    CHECK(b.rescales == 32.0 * 64 && b.mu == 32.0 * 192);
    raana_layer_bits c = raana_layer_bits_count(192, 64, 48, 0, 0, 0);
    raana_layer_bits_set_side(&c, 192, 64, 16);
    CHECK(c.mu == 0 && c.row_scale == 0);
}

/* Every value of v is a half times 2^e for its own exponent. */
static int stored_exactly(const float *v, int n)
{
    int e = raana_half_scaled_exponent(v, (size_t)n), ok = 1;
    uint16_t h;
    float back;
    for (int i = 0; i < n; i++) {
        raana_half_scaled_encode(v + i, 1, e, &h);
        raana_half_scaled_decode(&h, 1, e, &back);
        ok &= back == v[i];
    }
    return ok;
}

static double rel_error(const float *w, const raana_qlayer *q, int d_in, int d_out)
{
    float *what = malloc(sizeof(float) * (size_t)d_in * d_out);
    raana_error err;
    CHECK_INT(raana_qlayer_dequantize(q, what, &err), RAANA_OK);
    double num = 0, den = 0;
    for (int i = 0; i < d_in * d_out; i++)
        num += (double)(w[i] - what[i]) * (w[i] - what[i]), den += (double)w[i] * w[i];
    free(what);
    return sqrt(num / den);
}

static void test_layer(void)
{
    enum { D_IN = 96, D_OUT = 40 };
    float *w = malloc(sizeof(float) * D_IN * D_OUT);
    for (int i = 0; i < D_IN * D_OUT; i++)
        w[i] = (float)(0.02 * raana_rng_normal(5, 1, (uint64_t)i) + 0.003 * (i % D_IN % 3));
    unsigned tricks = RAANA_TRICK_CENTRALIZE | RAANA_TRICK_NORM_ROW | RAANA_TRICK_NORM_COL;
    for (int bits = 2; bits <= 8; bits += 6) {
        raana_qlayer q32, q16;
        raana_qlayer_params p = {bits, tricks, 0.05, 11, RAANA_ENCODER_EXACT, 1, NULL, 0, 32};
        raana_error err;
        CHECK_INT(raana_qlayer_quantize(w, D_IN, D_OUT, &p, "half", &q32, &err), RAANA_OK);
        p.side_bits = 16;
        CHECK_INT(raana_qlayer_quantize(w, D_IN, D_OUT, &p, "half", &q16, &err), RAANA_OK);
        CHECK_INT(q16.side_bits, 16);
        CHECK_INT(q32.side_bits, 32);
        CHECK(stored_exactly(q16.rescale, D_OUT) && stored_exactly(q16.mu, D_IN) &&
              stored_exactly(q16.row_scale, D_IN));
        CHECK(!stored_exactly(q32.rescale, D_OUT)); /* float32 values are not all halves */
        double e32 = rel_error(w, &q32, D_IN, D_OUT), e16 = rel_error(w, &q16, D_IN, D_OUT);
        /* half precision's 2^-11 is far below the code's error at 2 and 8 bits */
        CHECK(e16 <= e32 * 1.001 + 1e-4);
        CHECK_NEAR(raana_qlayer_effective_bits(&q32) - raana_qlayer_effective_bits(&q16),
                   16.0 * (D_OUT + 2 * D_IN) / (D_IN * D_OUT), 1e-12);
        raana_qlayer_free(&q32);
        raana_qlayer_free(&q16);
    }
    free(w);
}

int main(void)
{
    test_known_values();
    test_random_vectors();
    test_bits();
    test_layer();
    return check_summary("test_half_scaled");
}
