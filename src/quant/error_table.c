/* error_table.c — the calibrated per-width error of AllocateBits (see
 * error_table.h). */
#include "raana/error_table.h"

#include <math.h>
#include <stdlib.h>

#include "raana/allocate.h"
#include "raana/qlayer.h"
#include "raana/rng.h"

enum { TABLE_SEED = 0x7ab1e };

raana_status raana_error_table_rel_error(const float *weight, int d_in, int d_out, double bits,
                                         raana_encoder encoder, double *rel, raana_error *err)
{
    raana_status st = RAANA_OK;
    raana_qlayer q = {0};
    size_t n = (size_t)d_in * (size_t)d_out;
    float *what = malloc(n * sizeof *what);
    raana_qlayer_params p = {bits, 0, 0, TABLE_SEED, encoder, 1, NULL, 0, 32};
    if (!what)
        RAANA_FAIL_GOTO(err, RAANA_ERR_NOMEM, "out of memory measuring the error table");
    RAANA_CHECK(raana_qlayer_quantize(weight, d_in, d_out, &p, "error table", &q, err));
    RAANA_CHECK(raana_qlayer_dequantize(&q, what, err));
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double e = (double)weight[i] - what[i];
        num += e * e, den += (double)weight[i] * weight[i];
    }
    *rel = den > 0 ? sqrt(num / den) : 0;
cleanup:
    raana_qlayer_free(&q);
    free(what);
    return st;
}

raana_status raana_error_table_measure(const double *bits, int n_bits, raana_encoder encoder,
                                       double *f, raana_error *err)
{
    raana_status st = RAANA_OK;
    int d = RAANA_ERROR_TABLE_D_IN, cols = RAANA_ERROR_TABLE_COLUMNS;
    float *w = malloc((size_t)d * cols * sizeof *w);
    if (!w)
        return raana_fail(err, RAANA_ERR_NOMEM, "out of memory measuring the error table");
    for (size_t i = 0; i < (size_t)d * cols; i++)
        w[i] = (float)raana_rng_normal(TABLE_SEED, 0, i);
    for (int k = 0; k < n_bits; k++) {
        f[k] = 0; /* the kept 16-bit weight has none */
        if (bits[k] != RAANA_BITS_KEEP)
            RAANA_CHECK(raana_error_table_rel_error(w, d, cols, bits[k], encoder, &f[k], err));
    }
cleanup:
    free(w);
    return st;
}
