/* test_rabitq.c — the column code search against brute force, the error
 * shrinking with every bit, the fast search against the exact one (Gaussian
 * and the fixture's real weights), bit packing round trips and the
 * documented bit order. */
#include <stdlib.h>

#include "check.h"
#include "raana/bitpack.h"
#include "raana/hadamard.h"
#include "raana/model.h"
#include "raana/rabitq.h"
#include "raana/rng.h"

/* max over all u in {0..M}^d of cos(u + 1/2, |w|) by enumeration */
static double brute_force_cosine(const float *w, int d, int bits)
{
    int m = (1 << (bits - 1)) - 1, u[8] = {0};
    double best = -1, nw = 0;
    for (int i = 0; i < d; i++)
        nw += (double)w[i] * w[i];
    for (;;) {
        double dot = 0, ny = 0;
        for (int i = 0; i < d; i++) {
            double y = u[i] + 0.5;
            dot += y * fabs((double)w[i]);
            ny += y * y;
        }
        best = fmax(best, dot / sqrt(nw * ny));
        int i = 0;
        while (i < d && u[i] == m)
            u[i++] = 0;
        if (i == d)
            return best;
        u[i]++;
    }
}

static void test_exact_is_optimal(size_t merge_limit)
{
    raana_rabitq_work *work = raana_rabitq_work_new(8);
    raana_rabitq_work_set_merge_limit(work, merge_limit);
    uint8_t codes[8];
    float r, w[8];
    int cases = 0, optimal = 0;
    for (int bits = 1; bits <= 4; bits++)
        for (int d = 1; d <= 8; d++)
            for (int trial = 0; trial < (bits == 4 && d > 6 ? 2 : 12); trial++) {
                for (int i = 0; i < d; i++) /* some trials with repeated magnitudes */
                    w[i] = trial % 4 == 3
                               ? (float)(1 + i % 2) * (i % 3 ? 1.f : -1.f)
                               : (float)raana_rng_normal((uint64_t)trial, (uint64_t)(bits * 16 + d),
                                                         (uint64_t)i);
                double cos =
                    raana_rabitq_encode_column(w, d, bits, RAANA_ENCODER_EXACT, work, codes, &r);
                double from_codes = raana_rabitq_code_cosine(w, d, bits, codes);
                double brute = brute_force_cosine(w, d, bits);
                cases++;
                /* the search works on float |w|/||w||: cosines agree to float precision */
                optimal += from_codes >= brute - 1e-7 && fabs(cos - from_codes) < 1e-7;
                for (int i = 0; i < d; i++)
                    CHECK(codes[i] < (1 << bits));
            }
    CHECK_INT(optimal, cases);
    raana_rabitq_work_free(work);
}

/* The merge and heap sweeps find the same optimum on long columns. */
static void test_paths_agree(void)
{
    const int d = 3000;
    raana_rabitq_work *merge = raana_rabitq_work_new(d), *heap = raana_rabitq_work_new(d);
    raana_rabitq_work_set_merge_limit(heap, 0);
    float *w = malloc(d * sizeof *w), r1, r2;
    uint8_t *c1 = malloc(d), *c2 = malloc(d);
    int agree = 0, total = 0;
    for (int bits = 2; bits <= 8; bits += 3)
        for (int col = 0; col < 4; col++) {
            for (int i = 0; i < d; i++)
                w[i] = (float)raana_rng_normal(77, (uint64_t)(bits * 8 + col), (uint64_t)i);
            double a = raana_rabitq_encode_column(w, d, bits, RAANA_ENCODER_EXACT, merge, c1, &r1);
            double b = raana_rabitq_encode_column(w, d, bits, RAANA_ENCODER_EXACT, heap, c2, &r2);
            total++;
            agree += fabs(a - b) <= 1e-7 * a;
        }
    CHECK_INT(agree, total);
    raana_rabitq_work_free(merge);
    raana_rabitq_work_free(heap);
    free(w), free(c1), free(c2);
}

/* mean ||w - what|| / ||w|| over Gaussian columns of dimension 4096 */
static double mean_relative_error(int bits, raana_encoder enc, double *mean_cos)
{
    const int d = 4096, cols = 24;
    raana_rabitq_work *work = raana_rabitq_work_new(d);
    float *w = malloc(d * sizeof *w), *what = malloc(d * sizeof *what), r;
    uint8_t *codes = malloc(d);
    double sum = 0, cos_sum = 0;
    for (int c = 0; c < cols; c++) {
        double err2 = 0, n2 = 0;
        for (int i = 0; i < d; i++)
            w[i] = (float)raana_rng_normal(11, (uint64_t)c, (uint64_t)i);
        cos_sum += raana_rabitq_encode_column(w, d, bits, enc, work, codes, &r);
        raana_rabitq_decode_column(codes, d, bits, r, what);
        for (int i = 0; i < d; i++)
            err2 += ((double)w[i] - what[i]) * ((double)w[i] - what[i]), n2 += (double)w[i] * w[i];
        sum += sqrt(err2 / n2);
    }
    *mean_cos = cos_sum / cols;
    raana_rabitq_work_free(work);
    free(w);
    free(what);
    free(codes);
    return sum / cols;
}

static void test_error_shrinks_per_bit(void)
{
    double prev = 0, cos_exact, cos_fast;
    for (int bits = 1; bits <= 8; bits++) {
        double e = mean_relative_error(bits, RAANA_ENCODER_EXACT, &cos_exact);
        mean_relative_error(bits, RAANA_ENCODER_FAST, &cos_fast);
        if (bits > 1 && bits <= 6)
            CHECK(prev / e >= 1.7);
        /* fast loses less than 0.1% of the exact cosine */
        CHECK(cos_fast >= cos_exact * (1 - 1e-3));
        CHECK(cos_fast <= cos_exact + 1e-12);
        printf("  B=%d mean relative error %.5f (x%.2f), cosine exact %.6f fast %.6f\n", bits, e,
               bits > 1 ? prev / e : 0.0, cos_exact, cos_fast);
        prev = e;
    }
}

/* Fast against exact on real weight columns: the fixture's rotated rows. */
static void test_fast_on_real_weights(void)
{
    raana_model m;
    raana_error err;
    CHECK_INT(raana_model_open(&m, RAANA_SOURCE_DIR "/tests/data/kjv-tiny", &err), RAANA_OK);
    const char *names[] = {"model.layers.1.self_attn.q_proj.weight",
                           "model.layers.2.mlp.down_proj.weight"};
    for (int k = 0; k < 2; k++) {
        const raana_tensor_entry *e = raana_model_find(&m, names[k]);
        int d_out = (int)e->tensor->shape[0], d_in = (int)e->tensor->shape[1];
        float *w = malloc(e->tensor->numel * sizeof *w);
        CHECK_INT(raana_model_read_f32(&m, names[k], w, e->tensor->numel, &err), RAANA_OK);
        raana_rotation rot;
        raana_rotation_create(&rot, d_in, raana_rng_layer_key(0, names[k]), &err);
        raana_rotation_apply(&rot, w, (size_t)d_out);
        raana_rabitq_work *work = raana_rabitq_work_new(d_in);
        uint8_t *codes = malloc((size_t)d_in);
        float r;
        for (int bits = 2; bits <= 8; bits++) {
            double ce = 0, cf = 0;
            for (int j = 0; j < 64; j++) {
                ce += raana_rabitq_encode_column(w + (size_t)j * d_in, d_in, bits,
                                                 RAANA_ENCODER_EXACT, work, codes, &r);
                cf += raana_rabitq_encode_column(w + (size_t)j * d_in, d_in, bits,
                                                 RAANA_ENCODER_FAST, work, codes, &r);
            }
            CHECK(cf >= ce * (1 - 1e-3));
        }
        raana_rotation_free(&rot);
        raana_rabitq_work_free(work);
        free(codes);
        free(w);
    }
    raana_model_close(&m);
}

static void test_bitpack(void)
{
    /* the documented example: B = 3, codes 5, 1, 6 */
    uint8_t codes[3] = {5, 1, 6}, packed[2];
    CHECK_INT(raana_packed_size(3, 3), 2);
    raana_pack_codes(codes, 3, 3, packed);
    CHECK_INT(packed[0], 0x8D);
    CHECK_INT(packed[1], 0x01);
    for (int bits = 1; bits <= 8; bits++)
        for (size_t n = 0; n < 70; n += 7) {
            uint8_t in[70], back[70], buf[70];
            for (size_t i = 0; i < n; i++)
                in[i] = (uint8_t)(raana_rng_u64(5, (uint64_t)bits, i) & ((1u << bits) - 1));
            raana_pack_codes(in, n, bits, buf);
            raana_unpack_codes(buf, n, bits, back);
            CHECK(n == 0 || memcmp(in, back, n) == 0);
            /* bit k*B + b of the stream is bit b of code k */
            int order_ok = 1;
            for (size_t k = 0; k < n; k++)
                for (int b = 0; b < bits; b++) {
                    size_t bit = k * (size_t)bits + (size_t)b;
                    order_ok &= ((buf[bit / 8] >> (bit % 8)) & 1) == ((in[k] >> b) & 1);
                }
            CHECK(order_ok);
        }
}

int main(void)
{
    test_exact_is_optimal((size_t)1 << 20); /* merge of all events */
    test_exact_is_optimal(0);               /* heap */
    test_paths_agree();
    test_error_shrinks_per_bit();
    test_fast_on_real_weights();
    test_bitpack();
    return check_summary("test_rabitq");
}
