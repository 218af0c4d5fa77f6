/* test_qlayer_encode.c — a layer encoded in pieces of output columns
 * (qlayer_encode.h) against raana_qlayer_quantize of the whole layer:
 * every column's codes and rescale bitwise equal, the mean cosine and the
 * per-column relative error equal, for uneven pieces, with and without
 * the tricks (held-out columns inside and across pieces), below one bit,
 * with 16-bit side vectors and both encoders; decode_column against
 * dequantize; a piece that holds NaN is refused naming the entry. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "raana/qlayer.h"
#include "raana/qlayer_encode.h"
#include "raana/rng.h"

enum { D_IN = 96, D_OUT = 53 };

/* heavy-tailed columns: a few big ones, so norm_col holds some out */
static float *weights(uint64_t seed)
{
    float *w = malloc((size_t)D_IN * D_OUT * sizeof *w);
    for (size_t i = 0; i < (size_t)D_IN * D_OUT; i++)
        w[i] = (float)(raana_rng_normal(seed, 0, i) * (i / D_IN % 17 == 3 ? 9.0 : 1.0) + 0.1);
    return w;
}

/* The layer from pieces cut at cuts[0..n_cuts) (ascending, inside (0, D_OUT)). */
static void encode_in_pieces(const float *w, const raana_qlayer_params *p, const int *cuts,
                             int n_cuts, raana_qlayer *q, double *rel)
{
    raana_error err;
    CHECK_INT(raana_qlayer_layout(D_IN, D_OUT, p, q, &err), RAANA_OK);
    CHECK_INT(raana_qlayer_find_terms(q, w, p->norm_col_rate, "pieces", &err), RAANA_OK);
    q->packed = calloc(D_OUT, q->packed_bytes);
    q->rescale = calloc(D_OUT, sizeof *q->rescale);
    double cosine[D_OUT], diff[D_OUT], ref[D_OUT];
    float *scratch = malloc((size_t)D_IN * D_OUT * sizeof *scratch), col[D_IN], vals[D_IN];
    uint8_t codes[D_IN];
    for (int k = 0; k <= n_cuts; k++) {
        int c0 = k == 0 ? 0 : cuts[k - 1], c1 = k == n_cuts ? D_OUT : cuts[k];
        CHECK_INT(raana_qlayer_encode_piece(q, w + (size_t)c0 * D_IN, c0, c1 - c0, p->encoder, 2,
                                            scratch, q->packed + (size_t)c0 * q->packed_bytes,
                                            q->rescale + c0, cosine + c0, &err),
                  RAANA_OK);
    }
    raana_qlayer_finish_codes(q, cosine);
    for (int j = 0; j < D_OUT; j++) {
        const float *orig = w + (size_t)j * D_IN;
        if (raana_qlayer_is_held(q, j)) {
            raana_qlayer_column_error(orig, orig, D_IN, &diff[j], &ref[j]);
            continue;
        }
        raana_qlayer_decode_column(q, q->packed + (size_t)j * q->packed_bytes, q->rescale[j], codes,
                                   vals, col);
        raana_qlayer_column_error(col, orig, D_IN, &diff[j], &ref[j]);
    }
    *rel = raana_qlayer_relative_error(diff, ref, D_OUT);
    free(scratch);
}

/* ||What - W|| / ||W|| of the whole layer, by columns */
static double whole_rel(const raana_qlayer *q, const float *w)
{
    raana_error err;
    float *what = malloc((size_t)D_IN * D_OUT * sizeof *what);
    double diff[D_OUT], ref[D_OUT];
    CHECK_INT(raana_qlayer_dequantize(q, what, &err), RAANA_OK);
    for (int j = 0; j < D_OUT; j++)
        raana_qlayer_column_error(what + (size_t)j * D_IN, w + (size_t)j * D_IN, D_IN, &diff[j],
                                  &ref[j]);
    free(what);
    return raana_qlayer_relative_error(diff, ref, D_OUT);
}

static void compare(const raana_qlayer *a, const raana_qlayer *b, double rel_a, double rel_b,
                    const char *what)
{
    int same =
        a->packed_bytes == b->packed_bytes && a->n_held == b->n_held &&
        memcmp(a->packed, b->packed, (size_t)D_OUT * a->packed_bytes) == 0 &&
        memcmp(a->rescale, b->rescale, D_OUT * sizeof *a->rescale) == 0 &&
        (a->n_held == 0 ||
         (memcmp(a->held_cols, b->held_cols, (size_t)a->n_held * sizeof *a->held_cols) == 0 &&
          memcmp(a->held_values, b->held_values,
                 (size_t)a->n_held * D_IN * sizeof *a->held_values) == 0)) &&
        (!a->mu || memcmp(a->mu, b->mu, D_IN * sizeof *a->mu) == 0) &&
        (!a->row_scale || memcmp(a->row_scale, b->row_scale, D_IN * sizeof(float)) == 0) &&
        a->mean_cosine == b->mean_cosine && rel_a == rel_b;
    if (!same)
        fprintf(stderr, "pieces differ from the whole layer: %s\n", what);
    CHECK(same);
}

static void test_pieces_equal_whole(void)
{
    const double bits[] = {0.5, 1, 3, 8};
    const unsigned tricks[] = {0, RAANA_TRICK_CENTRALIZE | RAANA_TRICK_NORM_COL,
                               RAANA_TRICK_CENTRALIZE | RAANA_TRICK_NORM_ROW |
                                   RAANA_TRICK_NORM_COL};
    const int cuts[] = {1, 3, 20, 21, 40}; /* one-column pieces, and uneven ones */
    float *w = weights(5);
    for (int b = 0; b < 4; b++)
        for (int t = 0; t < 3; t++)
            for (int side = 16; side <= 32; side += 16)
                for (int e = 0; e < 2; e++) {
                    raana_qlayer_params p = {bits[b],
                                             tricks[t],
                                             0.06,
                                             raana_rng_layer_key(3, "pieces"),
                                             e ? RAANA_ENCODER_FAST : RAANA_ENCODER_EXACT,
                                             2,
                                             NULL,
                                             0,
                                             side};
                    raana_qlayer whole, pieces;
                    raana_error err;
                    double rel_pieces = -1;
                    CHECK_INT(raana_qlayer_quantize(w, D_IN, D_OUT, &p, "pieces", &whole, &err),
                              RAANA_OK);
                    encode_in_pieces(w, &p, cuts, 5, &pieces, &rel_pieces);
                    char what[96];
                    snprintf(what, sizeof what, "bits %g, tricks %u, side %d, encoder %d", bits[b],
                             tricks[t], side, e);
                    compare(&whole, &pieces, whole_rel(&whole, w), rel_pieces, what);
                    if (tricks[t] & RAANA_TRICK_NORM_COL)
                        CHECK(whole.n_held == 3); /* floor(0.06 * 53): some big columns */
                    raana_qlayer_free(&whole);
                    raana_qlayer_free(&pieces);
                }
    free(w);
}

/* NaN in the whole weight: find_terms names the entry */
static void test_nan_refused(void)
{
    float *w = weights(6);
    w[(size_t)30 * D_IN + 7] = NAN;
    raana_qlayer_params p = {3, RAANA_TRICK_CENTRALIZE, 0.003, 1, RAANA_ENCODER_EXACT, 1, NULL, 0,
                             32};
    raana_qlayer q;
    raana_error err;
    CHECK_INT(raana_qlayer_layout(D_IN, D_OUT, &p, &q, &err), RAANA_OK);
    CHECK_INT(raana_qlayer_find_terms(&q, w, 0.003, "nan.layer", &err), RAANA_ERR_NUMERIC);
    CHECK_MSG(err, "nan.layer", "NaN", "[30][7]");
    raana_qlayer_free(&q);
    free(w);
}

int main(void)
{
    test_pieces_equal_whole();
    test_nan_refused();
    return check_summary("test_qlayer_encode");
}
