/* test_statistics.c — the calibration statistics JSON: every double reads
 * back bit for bit (including values cJSON's own printing would round,
 * such as 0.1 + 0.2, subnormals and the extremes), the fingerprints and
 * settings round-trip, each kind of mismatch is refused naming what
 * differs, and broken files are refused with RAANA_ERR_CONFIG. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "raana/rng.h"
#include "raana/statistics.h"

#define N_LAYERS 7

typedef struct {
    raana_config cfg;
    raana_plan_layer layers[N_LAYERS];
    raana_stage stage;
    int tokens[3 * 16];
    raana_layer_stats stats[N_LAYERS];
} fixture;

/* A double with random bits (finite), from a splitmix counter. */
static double random_double(uint64_t *state)
{
    for (;;) {
        uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        z ^= z >> 31;
        double d;
        memcpy(&d, &z, sizeof d);
        if (isfinite(d))
            return d;
    }
}

static void make_fixture(fixture *f)
{
    memset(f, 0, sizeof *f);
    raana_config_defaults(&f->cfg);
    f->cfg.calib_source = RAANA_CALIB_TEXT;
    f->cfg.n_samples = 3;
    for (int i = 0; i < N_LAYERS; i++) {
        snprintf(f->layers[i].name, sizeof f->layers[i].name, "model.layers.%d.mlp.up_proj", i);
        f->layers[i].d_in = 64 + i, f->layers[i].d_out = 128;
    }
    f->stage.plan.n_layers = N_LAYERS;
    f->stage.plan.layers = f->layers;
    f->stage.windows.n = 3, f->stage.windows.len = 16, f->stage.windows.tokens = f->tokens;
    /* values cJSON_Print would shorten to 15 digits, and the extremes */
    const double hard[] = {
        0.1 + 0.2, 1.0 + DBL_EPSILON,     DBL_MIN, 4.9406564584124654e-324, DBL_MAX, -0.0,
        1.0 / 3.0, 4.3422000788662855e-05};
    uint64_t state = 42;
    for (int i = 0; i < N_LAYERS; i++)
        for (int k = 0; k < 5; k++) {
            double *v = &f->stats[i].grad_rms + k;
            size_t h = (size_t)(i * 5 + k);
            *v = h < sizeof hard / sizeof hard[0] ? hard[h] : random_double(&state);
        }
}

static raana_statistics_output output_of(const fixture *f, double loss)
{
    raana_statistics_output o = {&f->cfg,
                                 &f->stage.plan,
                                 &f->stage.windows,
                                 0x0123456789abcdefull,
                                 0xfedcba9876543210ull,
                                 f->stats,
                                 loss,
                                 NULL};
    return o;
}

static void test_round_trip(const char *dir)
{
    fixture *f = malloc(sizeof *f);
    make_fixture(f);
    char path[512];
    snprintf(path, sizeof path, "%s/s.calibration.json", dir);
    raana_error err;
    raana_statistics_output o = output_of(f, 2.2550612130286707);
    CHECK_INT(raana_statistics_write_json(path, &o, &err), RAANA_OK);
    raana_statistics s;
    CHECK_INT(raana_statistics_load(path, &s, &err), RAANA_OK);
    CHECK_INT(s.n_layers, N_LAYERS);
    CHECK(s.stats && memcmp(s.stats, f->stats, sizeof f->stats) == 0); /* bit for bit */
    CHECK(s.loss == 2.2550612130286707);
    CHECK(s.checkpoint_fp == 0x0123456789abcdefull && s.calibration_fp == 0xfedcba9876543210ull);
    CHECK(strcmp(s.source, "text") == 0);
    CHECK_INT(s.n_samples, 3);
    CHECK_INT(s.windows, 3);
    CHECK_INT(s.seq_len, 16);
    CHECK(s.names && strcmp(s.names[6], "model.layers.6.mlp.up_proj") == 0);
    CHECK(s.d_in && s.d_in[6] == 70 && s.d_out[6] == 128);
    CHECK_INT(raana_statistics_check(&s, path, &f->cfg, &f->stage, 0x0123456789abcdefull,
                                     0xfedcba9876543210ull, &err),
              RAANA_OK);
    raana_statistics_free(&s);

    /* --allocate-only's file (the same plus the allocation) reads the same */
    double w_fro[N_LAYERS], coef[N_LAYERS], bits[N_LAYERS];
    for (int i = 0; i < N_LAYERS; i++)
        w_fro[i] = 1.0 / (i + 3), coef[i] = 0.1 * (i + 1), bits[i] = 1 + i % 4;
    raana_allocation alloc = {N_LAYERS, w_fro, coef, bits, {0}, 0, NULL};
    alloc.result.achieved_avg_bits = 2.75, alloc.result.cost = 0.1 + 0.2;
    o.alloc = &alloc;
    snprintf(path, sizeof path, "%s/s.allocation.json", dir);
    CHECK_INT(raana_statistics_write_json(path, &o, &err), RAANA_OK);
    CHECK_INT(raana_statistics_load(path, &s, &err), RAANA_OK);
    CHECK(s.stats && memcmp(s.stats, f->stats, sizeof f->stats) == 0);
    CHECK(s.loss == 2.2550612130286707 && s.n_layers == N_LAYERS);
    raana_statistics_free(&s);
    free(f);
}

/* Each mismatch is refused with RAANA_ERR_CONFIG and a message naming it. */
static void test_mismatches(const char *dir)
{
    fixture *f = malloc(sizeof *f);
    make_fixture(f);
    char path[512];
    snprintf(path, sizeof path, "%s/m.calibration.json", dir);
    raana_error err;
    raana_statistics_output o = output_of(f, 1.5);
    CHECK_INT(raana_statistics_write_json(path, &o, &err), RAANA_OK);
    raana_statistics s;
    CHECK_INT(raana_statistics_load(path, &s, &err), RAANA_OK);
    uint64_t ck = o.checkpoint_fp, cal = o.calibration_fp;

    CHECK_INT(raana_statistics_check(&s, path, &f->cfg, &f->stage, ck + 1, cal, &err),
              RAANA_ERR_CONFIG);
    CHECK_MSG(err, path, "another checkpoint", "0123456789abcdef there, 0123456789abcdf0 here");

    f->stage.windows.len = 32;
    CHECK_INT(raana_statistics_check(&s, path, &f->cfg, &f->stage, ck, cal, &err),
              RAANA_ERR_CONFIG);
    CHECK_MSG(err, "other calibration settings (seq_len 16 there, 32 here)");
    f->stage.windows.len = 16;

    f->cfg.n_samples = 4, f->cfg.calib_source = RAANA_CALIB_ZEROSHOT;
    CHECK_INT(raana_statistics_check(&s, path, &f->cfg, &f->stage, ck, cal, &err),
              RAANA_ERR_CONFIG);
    CHECK_MSG(err, "source text there, zeroshot here; n_samples 3 there, 4 here");
    f->cfg.n_samples = 3, f->cfg.calib_source = RAANA_CALIB_TEXT;

    CHECK_INT(raana_statistics_check(&s, path, &f->cfg, &f->stage, ck, cal ^ 1, &err),
              RAANA_ERR_CONFIG);
    CHECK_MSG(err, "other calibration tokens");

    snprintf(f->layers[4].name, sizeof f->layers[4].name, "model.layers.4.mlp.gate_proj");
    CHECK_INT(raana_statistics_check(&s, path, &f->cfg, &f->stage, ck, cal, &err),
              RAANA_ERR_CONFIG);
    CHECK_MSG(err, "another layer list (layer 4 is model.layers.4.mlp.up_proj 128x68 there, "
                   "model.layers.4.mlp.gate_proj 128x68 here)");
    f->stage.plan.n_layers = N_LAYERS - 1;
    CHECK_INT(raana_statistics_check(&s, path, &f->cfg, &f->stage, ck, cal, &err),
              RAANA_ERR_CONFIG);
    CHECK_MSG(err, "7 layers there, 6 here");
    raana_statistics_free(&s);
    free(f);
}

static void write_text(const char *path, const char *text, size_t len)
{
    FILE *fp = fopen(path, "wb");
    CHECK(fp != NULL);
    if (fp) {
        fwrite(text, 1, len, fp);
        fclose(fp);
    }
}

/* Truncated, garbage, binary, old-format and missing files. */
static void test_broken_files(const char *dir)
{
    fixture *f = malloc(sizeof *f);
    make_fixture(f);
    char good[512], path[512];
    snprintf(good, sizeof good, "%s/g.calibration.json", dir);
    snprintf(path, sizeof path, "%s/broken.json", dir);
    raana_error err;
    raana_statistics_output o = output_of(f, 1.5);
    CHECK_INT(raana_statistics_write_json(good, &o, &err), RAANA_OK);
    FILE *fp = fopen(good, "rb");
    char text[16384];
    size_t len = fp ? fread(text, 1, sizeof text, fp) : 0;
    if (fp)
        fclose(fp);
    CHECK(len > 200 && len < sizeof text);
    raana_statistics s;

    write_text(path, text, len / 2);
    CHECK_INT(raana_statistics_load(path, &s, &err), RAANA_ERR_CONFIG);
    CHECK_MSG(err, path, "not usable calibration statistics: not JSON");

    write_text(path, "\x89PNG\r\n\x1a\n\0\0\0", 11);
    CHECK_INT(raana_statistics_load(path, &s, &err), RAANA_ERR_CONFIG);
    CHECK_MSG(err, "a binary file, and not HDF5");

    write_text(path, "\x89HDF\r\n\x1a\n\0\0\0", 11); /* the signature, then nothing */
    CHECK_INT(raana_statistics_load(path, &s, &err), RAANA_ERR_CONFIG);
    CHECK_MSG(err, path, "cannot open as HDF5");

    const char *old = "{\"format\": \"raana-calibration-v1\", \"windows\": 3, \"seq_len\": 16, "
                      "\"loss\": 1, \"layers\": []}";
    write_text(path, old, strlen(old));
    CHECK_INT(raana_statistics_load(path, &s, &err), RAANA_ERR_CONFIG);
    CHECK_MSG(err, "no checkpoint_fingerprint");

    /* one statistic that is not a number */
    char *at = strstr(text, "\"x_fro\":");
    CHECK(at != NULL);
    if (at) {
        memcpy(at, "\"x_frX\"", 7);
        write_text(path, text, len);
        CHECK_INT(raana_statistics_load(path, &s, &err), RAANA_ERR_CONFIG);
        CHECK_MSG(err, "layers[0] lacks its name, shape or a finite statistic");
    }

    snprintf(path, sizeof path, "%s/missing.json", dir);
    CHECK_INT(raana_statistics_load(path, &s, &err), RAANA_ERR_CONFIG);
    CHECK_MSG(err, "[calibration] statistics", path);
    free(f);
}

int main(void)
{
    char dir[] = "/tmp/raana-test-statistics-XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    test_round_trip(dir);
    test_mismatches(dir);
    test_broken_files(dir);
    const char *files[] = {"s.calibration.json", "s.allocation.json", "m.calibration.json",
                           "g.calibration.json", "broken.json"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char p[512];
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        unlink(p);
    }
    rmdir(dir);
    return check_summary("test_statistics");
}
