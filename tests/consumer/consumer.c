/* consumer.c — a program outside raana built against the installed
 * libraana (pkg-config raana, or find_package(raana)), using only the public
 * API: it opens a container, lists its layers, and dequantizes one of them
 * twice, as a weight and through the quantized product with the identity.
 *
 * Usage: consumer CONTAINER OUT.f32 [LAYER]
 * Writes LAYER's (default: the first layer's) weight [d_out][d_in] as raw
 * float32 to OUT.f32 and prints "LAYER D_OUT D_IN BITS EFFECTIVE_BITS";
 * exit = raana status (1 if the two dequantizations disagree). */
#include <raana/raana.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Y = I What^T: the quantized product with the d_in x d_in identity gives
 * the weight transposed; it must equal the dequantization exactly up to
 * float rounding. */
static raana_status check_matmul(const raana_container *c, const char *name, const float *w,
                                 raana_error *err)
{
    raana_status st = RAANA_OK;
    raana_qlayer q;
    float *x = NULL, *y = NULL;
    RAANA_CALL(raana_container_read_layer(c, name, &q, err));
    size_t d_in = (size_t)q.d_in, d_out = (size_t)q.d_out;
    x = calloc(d_in * d_in, sizeof *x);
    y = calloc(d_in * d_out, sizeof *y);
    if (!x || !y)
        RAANA_FAIL_GOTO(err, RAANA_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < d_in; i++)
        x[i * d_in + i] = 1.0f;
    RAANA_CHECK(raana_qlayer_matmul(&q, x, q.d_in, y, err));
    double diff = 0, norm = 0;
    for (size_t j = 0; j < d_out; j++)
        for (size_t i = 0; i < d_in; i++) {
            double a = y[i * d_out + j], b = w[j * d_in + i];
            diff += (a - b) * (a - b), norm += b * b;
        }
    if (diff > 1e-10 * norm)
        RAANA_FAIL_GOTO(err, RAANA_ERR_INTERNAL, "%s: matmul and dequantize disagree", name);
cleanup:
    free(x);
    free(y);
    raana_qlayer_free(&q);
    return st;
}

static raana_status run(const char *path, const char *out, const char *want, raana_error *err)
{
    raana_status st = RAANA_OK;
    raana_container *c = NULL;
    raana_container_layer info;
    float *w = NULL;
    int d_out = 0, d_in = 0, i = 0;
    FILE *f = NULL;
    RAANA_CHECK(raana_container_open(path, &c, err));
    if (raana_container_layer_count(c) == 0)
        RAANA_FAIL_GOTO(err, RAANA_ERR_INPUT, "%s: no quantized layers", path);
    while (want && i + 1 < raana_container_layer_count(c) &&
           strcmp(raana_container_layer_name(c, i), want) != 0)
        i++;
    RAANA_CHECK(raana_container_layer_info(c, i, &info, err));
    RAANA_CHECK(raana_container_dequantize_layer(c, info.name, &w, &d_out, &d_in, err));
    RAANA_CHECK(check_matmul(c, info.name, w, err));
    if (!(f = fopen(out, "wb")) ||
        fwrite(w, sizeof *w, (size_t)d_out * d_in, f) != (size_t)d_out * d_in)
        RAANA_FAIL_GOTO(err, RAANA_ERR_IO, "%s: cannot write", out);
    printf("%s %d %d %.17g %.17g\n", info.name, d_out, d_in, info.bits,
           raana_layer_bits_per_weight(&info.stored));
cleanup:
    if (f && fclose(f) != 0 && st == RAANA_OK)
        st = raana_fail(err, RAANA_ERR_IO, "%s: cannot write", out);
    free(w);
    raana_container_close(c);
    return st;
}

int main(int argc, char **argv)
{
    raana_error err;
    raana_error_clear(&err);
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: consumer CONTAINER OUT.f32 [LAYER]\n");
        return RAANA_ERR_USAGE;
    }
    raana_status st = run(argv[1], argv[2], argc == 4 ? argv[3] : NULL, &err);
    if (st != RAANA_OK)
        fprintf(stderr, "consumer: error: %s\n", err.msg);
    return (int)st;
}
