/* test_config.c — config.ini parsing: values, defaults against the
 * documented reference file, FILE:LINE errors, --set, the writer's round
 * trip. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "raana/config.h"

static raana_status parse(raana_config *cfg, const char *text, raana_error *err)
{
    raana_config_defaults(cfg);
    return raana_config_parse(cfg, text, strlen(text), "job.ini", "/base", err);
}

static void test_values(void)
{
    raana_config cfg;
    raana_error err;
    const char *text = "; comment\n"
                       "[model]\npath = ckpt\n"
                       "[calibration]\nsource = text\ntext_file = /abs/calib.txt\n"
                       "n_samples = 4\nseq_len = 256\nstatistics = runs/a.calibration.json\n"
                       "[quantize]\navg_bits = 2.5\nbits = 4, 0.5 1,2\n"
                       "tricks = norm_row\nseed = 0x10\nencoder = fast\n"
                       "exclude = *.down_proj, model.layers.0.*\n"
                       "[output]\npath = out.h5\nzstd_level = 9\noverwrite = yes\n"
                       "[run]\nthreads = 2\n";
    CHECK_INT(parse(&cfg, text, &err), RAANA_OK);
    CHECK(strcmp(cfg.model_path, "/base/ckpt") == 0);
    CHECK_INT(cfg.calib_source, RAANA_CALIB_TEXT);
    CHECK(strcmp(cfg.text_file, "/abs/calib.txt") == 0);
    CHECK(strcmp(cfg.statistics, "/base/runs/a.calibration.json") == 0);
    CHECK_INT(cfg.n_samples, 4);
    CHECK_INT(cfg.seq_len, 256);
    CHECK_NEAR(cfg.avg_bits, 2.5, 0);
    CHECK_INT(cfg.n_bits, 4);
    CHECK(cfg.bits[0] == 0.5 && cfg.bits[1] == 1 && cfg.bits[2] == 2 && cfg.bits[3] == 4);
    CHECK_INT(cfg.tricks, RAANA_TRICK_NORM_ROW);
    CHECK_INT(cfg.seed, 16);
    CHECK_INT(cfg.encoder, RAANA_ENCODER_FAST);
    CHECK_INT(cfg.n_exclude, 2);
    CHECK(strcmp(cfg.exclude[1], "model.layers.0.*") == 0);
    CHECK(strcmp(cfg.output_path, "/base/out.h5") == 0);
    CHECK_INT(cfg.zstd_level, 9);
    CHECK_INT(cfg.overwrite, 1);
    CHECK_INT(cfg.threads, 2);
    CHECK_INT(raana_config_validate(&cfg, &err), RAANA_OK);
    /* windows_in_flight: auto (0, the default) or an integer >= 1 */
    CHECK_INT(cfg.windows_in_flight, 0);
    CHECK_INT(parse(&cfg, "[calibration]\nwindows_in_flight = 3\n", &err), RAANA_OK);
    CHECK_INT(cfg.windows_in_flight, 3);
    CHECK_INT(parse(&cfg, "[calibration]\nwindows_in_flight = auto\n", &err), RAANA_OK);
    CHECK_INT(cfg.windows_in_flight, 0);
    CHECK_INT(raana_config_set(&cfg, "calibration.windows_in_flight=7", &err), RAANA_OK);
    CHECK_INT(cfg.windows_in_flight, 7);
    /* expert_ranks: auto (0, the default) or an integer >= 1 (expert_teams.h) */
    CHECK_INT(cfg.expert_ranks, 0);
    CHECK_INT(parse(&cfg, "[calibration]\nexpert_ranks = 3\n", &err), RAANA_OK);
    CHECK_INT(cfg.expert_ranks, 3);
    CHECK_INT(raana_config_set(&cfg, "calibration.expert_ranks=auto", &err), RAANA_OK);
    CHECK_INT(cfg.expert_ranks, 0);
}

/* Each bad input gives RAANA_ERR_CONFIG naming file, line and culprit. */
static void test_errors(void)
{
    static const struct {
        const char *text;
        const char *parts[3];
    } cases[] = {
        {"[model]\npath = x\ncolour = red\n", {"job.ini:3:", "unknown key 'colour'", "[model]"}},
        {"[modle]\npath = x\n", {"job.ini:2:", "unknown section [modle]", ""}},
        {"[quantize]\navg_bits = three\n", {"job.ini:2:", "avg_bits", "'three' is not a number"}},
        {"[quantize]\navg_bits = 17\n", {"job.ini:2:", "out of range", ""}},
        {"[model]\npath = a\n\npath = b\n", {"job.ini:4:", "duplicate key 'path'", "line 2"}},
        {"[quantize]\nbits = 1, 2.5\n", {"job.ini:2:", "2.5 is not a supported bit width", ""}},
        {"[quantize]\nbits = 1, 1\n", {"job.ini:2:", "listed twice", ""}},
        {"[quantize]\nbits = ,\n", {"job.ini:2:", "candidate list is empty", ""}},
        {"[quantize]\ntricks = magic\n", {"job.ini:2:", "unknown trick 'magic'", ""}},
        {"[quantize]\nseed = -1\n", {"job.ini:2:", "unsigned 64-bit", ""}},
        {"[output]\noverwrite = maybe\n", {"job.ini:2:", "not a boolean", ""}},
        {"[output]\nzstd_level = 0\n", {"job.ini:2:", "zstd_level", "out of range [1, 22]"}},
        {"[calibration]\nsource = web\n", {"job.ini:2:", "zeroshot, text", ""}},
        {"[calibration]\nn_samples = 2.5\n", {"job.ini:2:", "not an integer", ""}},
        {"[calibration]\nwindows_in_flight = 0\n",
         {"job.ini:2:", "[calibration] windows_in_flight", "0 is out of range [1, 1000000]"}},
        {"[calibration]\nexpert_ranks = 0\n",
         {"job.ini:2:", "[calibration] expert_ranks", "0 is out of range [1, 4096]"}},
        {"[calibration]\nwindows_in_flight = -1\n",
         {"job.ini:2:", "windows_in_flight", "-1 is out of range"}},
        {"[calibration]\nwindows_in_flight = x\n",
         {"job.ini:2:", "windows_in_flight", "'x' is neither an integer nor auto"}},
        {"[cost]\nwrite_mb_per_s = 0\n",
         {"job.ini:2:", "[cost] write_mb_per_s", "0 is out of range [0.001, 1e+09]"}},
        {"path = x\n", {"job.ini:1:", "outside any [section]", ""}},
        {"[model]\nthis line has no equals sign\n", {"job.ini:2:", "syntax error", ""}},
        {"[run\nthreads = 1\n", {"job.ini:1:", "syntax error", ""}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        raana_config cfg;
        raana_error err;
        CHECK_INT(parse(&cfg, cases[i].text, &err), RAANA_ERR_CONFIG);
        CHECK_MSG(err, cases[i].parts[0], cases[i].parts[1], cases[i].parts[2]);
    }
    /* a line longer than inih's buffer is refused, not silently split */
    char text[600] = "[model]\npath = ";
    memset(text + strlen(text), 'a', 400);
    strcat(text, "\n[run]\nthreads = 1\n");
    raana_config cfg;
    raana_error err;
    CHECK_INT(parse(&cfg, text, &err), RAANA_ERR_CONFIG);
    CHECK_MSG(err, "job.ini:2:", "line longer than");
    /* the line after a long line keeps its number */
    strcpy(text, "[model]\npath = x\n[run]\nthreads = lots\n");
    CHECK_INT(parse(&cfg, text, &err), RAANA_ERR_CONFIG);
    CHECK_MSG(err, "job.ini:4:");
}

static void test_cross_checks(void)
{
    raana_config cfg;
    raana_error err;
    CHECK_INT(parse(&cfg, "[quantize]\navg_bits = 2\n", &err), RAANA_OK);
    CHECK_INT(raana_config_validate(&cfg, &err), RAANA_ERR_CONFIG);
    CHECK_MSG(err, "[model] path is required");
    CHECK_INT(parse(&cfg, "[model]\npath=m\n[quantize]\nbits = 2, 3\navg_bits = 1.5\n", &err),
              RAANA_OK);
    CHECK_INT(raana_config_validate(&cfg, &err), RAANA_ERR_CONFIG);
    CHECK_MSG(err, "avg_bits = 1.5 is outside the candidate bits [2, 3]");
    CHECK_INT(parse(&cfg, "[model]\npath=m\n[calibration]\nsource = text\n", &err), RAANA_OK);
    CHECK_INT(raana_config_validate(&cfg, &err), RAANA_ERR_CONFIG);
    CHECK_MSG(err, "text_file");
    /* LDLQ's grams are not in a statistics file */
    CHECK_INT(
        parse(&cfg,
              "[model]\npath=m\n[calibration]\nstatistics = s.json\n[quantize]\nldlq = true\n",
              &err),
        RAANA_OK);
    CHECK_INT(raana_config_validate(&cfg, &err), RAANA_ERR_CONFIG);
    CHECK_MSG(err, "[quantize] ldlq = true", "[calibration] statistics", "ldlq = false");
    CHECK_INT(parse(&cfg, "[model]\npath=m\n[calibration]\nstatistics = s.json\n", &err), RAANA_OK);
    CHECK_INT(raana_config_validate(&cfg, &err), RAANA_OK); /* ldlq is off by default */
    CHECK_INT(parse(&cfg, "[quantize]\nldlq_damp = 0\n", &err), RAANA_ERR_CONFIG);
    /* nor are the second moments low-rank compensation weights by */
    CHECK_INT(parse(&cfg,
                    "[model]\npath=m\n[calibration]\nstatistics = s.json\n[quantize]\n"
                    "lowrank_rank = 8\n",
                    &err),
              RAANA_OK);
    CHECK_INT(raana_config_validate(&cfg, &err), RAANA_ERR_CONFIG);
    CHECK_MSG(err, "[quantize] lowrank_rank = 8", "[calibration] statistics", "lowrank_rank = 0");
    CHECK_INT(parse(&cfg, "[quantize]\nlowrank_rank = -1\n", &err), RAANA_ERR_CONFIG);
    CHECK_INT(parse(&cfg, "[quantize]\nlowrank_rank = 4097\n", &err), RAANA_ERR_CONFIG);
    CHECK_INT(parse(&cfg, "[quantize]\nlowrank_damp = 0\n", &err), RAANA_ERR_CONFIG);
    CHECK_INT(parse(&cfg, "[quantize]\nlowrank_team_min_weights = 0\n", &err), RAANA_ERR_CONFIG);
    /* the side vectors' stored width: 32 (the default) or 16, nothing between */
    CHECK_INT(parse(&cfg, "[quantize]\n", &err), RAANA_OK);
    CHECK_INT(cfg.side_bits, 32);
    CHECK_INT(parse(&cfg, "[quantize]\nside_bits = 16\n", &err), RAANA_OK);
    CHECK_INT(cfg.side_bits, 16);
    CHECK_INT(parse(&cfg, "[quantize]\nside_bits = 24\n", &err), RAANA_ERR_CONFIG);
    CHECK_MSG(err, "side_bits", "24 is not a stored width: 32 (float32) or 16");
    CHECK_INT(parse(&cfg, "[quantize]\nside_bits = 8\n", &err), RAANA_ERR_CONFIG);
    /* the PCA trick and the compensation store the same factors: one of them */
    CHECK_INT(parse(&cfg, "[model]\npath=m\n[quantize]\npca_rank = 2\n", &err), RAANA_OK);
    CHECK_INT(raana_config_validate(&cfg, &err), RAANA_OK);
    CHECK_INT(cfg.pca_rank, 2);
    CHECK_INT(parse(&cfg, "[model]\npath=m\n[quantize]\npca_rank = 2\nlowrank_rank = 1\n", &err),
              RAANA_OK);
    CHECK_INT(raana_config_validate(&cfg, &err), RAANA_ERR_CONFIG);
    CHECK_MSG(err, "lowrank_rank = 1 and pca_rank = 2", "set one of them to 0");
    CHECK_INT(parse(&cfg, "[quantize]\npca_rank = -1\n", &err), RAANA_ERR_CONFIG);
    /* AllocateBits' error model: paper (the default) or calibrated */
    CHECK_INT(parse(&cfg, "[quantize]\n", &err), RAANA_OK);
    CHECK_INT(cfg.error_model, RAANA_ERROR_MODEL_PAPER);
    CHECK_INT(parse(&cfg, "[quantize]\nerror_model = calibrated\n", &err), RAANA_OK);
    CHECK_INT(cfg.error_model, RAANA_ERROR_MODEL_CALIBRATED);
    CHECK(strcmp(raana_error_model_name(cfg.error_model), "calibrated") == 0);
    CHECK_INT(parse(&cfg, "[quantize]\nerror_model = measured\n", &err), RAANA_ERR_CONFIG);
    CHECK_MSG(err, "error_model", "measured");
}

static void test_set_and_files(void)
{
    raana_config cfg;
    raana_error err;
    raana_config_defaults(&cfg);
    CHECK_INT(raana_config_set(&cfg, "quantize.avg_bits=2.25", &err), RAANA_OK);
    CHECK_NEAR(cfg.avg_bits, 2.25, 0);
    CHECK_INT(raana_config_set(&cfg, "model.path=rel/dir", &err), RAANA_OK);
    char expect[RAANA_PATH_MAX + 16], cwd[RAANA_PATH_MAX];
    CHECK(getcwd(cwd, sizeof cwd) != NULL);
    snprintf(expect, sizeof expect, "%s/rel/dir", cwd);
    CHECK(strcmp(cfg.model_path, expect) == 0); /* --set paths resolve against the cwd */
    CHECK_INT(raana_config_set(&cfg, "calibration.statistics=a.h5", &err), RAANA_OK);
    snprintf(expect, sizeof expect, "%s/a.h5", cwd);
    CHECK(strcmp(cfg.statistics, expect) == 0);
    CHECK_INT(raana_config_set(&cfg, "quantize.colour=red", &err), RAANA_ERR_CONFIG);
    CHECK_MSG(err, "--set quantize.colour=red", "unknown key");
    CHECK_INT(raana_config_set(&cfg, "avg_bits=2", &err), RAANA_ERR_USAGE);
    CHECK_INT(raana_config_set(&cfg, "output.zstd_level=99", &err), RAANA_ERR_CONFIG);
    CHECK_MSG(err, "out of range");

    CHECK_INT(raana_config_load(&cfg, "/nonexistent/job.ini", &err), RAANA_ERR_CONFIG);
    CHECK_MSG(err, "/nonexistent/job.ini", "cannot open");

    /* the shipped reference file documents every key at its default */
    raana_config ref, dflt;
    CHECK_INT(raana_config_load(&ref, RAANA_SOURCE_DIR "/config/raana.ini", &err), RAANA_OK);
    raana_config_defaults(&dflt);
    CHECK(strlen(ref.model_path) > 0);
    memset(ref.model_path, 0, sizeof ref.model_path);
    memset(ref.source, 0, sizeof ref.source);
    /* output.path in the file is relative to config/, the default to the cwd */
    CHECK(strcmp(ref.output_path, RAANA_SOURCE_DIR "/config/quantized.h5") == 0);
    memcpy(ref.output_path, dflt.output_path, sizeof ref.output_path);
    CHECK(memcmp(&ref, &dflt, sizeof ref) == 0);
}

static void test_round_trip(void)
{
    raana_config cfg, back;
    raana_error err;
    CHECK_INT(parse(&cfg,
                    "[model]\npath=/m\n[calibration]\nstatistics=/s/x.h5\n"
                    "windows_in_flight=5\n"
                    "[quantize]\nbits=0.5,0.75,3\navg_bits=0.8\n"
                    "exclude=a*,b?\ntricks=none\nseed=18446744073709551615\n",
                    &err),
              RAANA_OK);
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    raana_config_write(mem, &cfg);
    fclose(mem);
    raana_config_defaults(&back);
    CHECK_INT(raana_config_parse(&back, buf, len, "written", "", &err), RAANA_OK);
    CHECK(memcmp(&cfg, &back, sizeof cfg) == 0);
    CHECK_INT(back.seed, (long long)18446744073709551615ull);
    CHECK(strcmp(back.statistics, "/s/x.h5") == 0);
    CHECK_INT(back.windows_in_flight, 5);
    free(buf);
}

int main(void)
{
    test_values();
    test_errors();
    test_cross_checks();
    test_set_and_files();
    test_round_trip();
    return check_summary("test_config");
}
