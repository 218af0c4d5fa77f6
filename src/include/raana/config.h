/* config.h — the job configuration (config.ini): every key, its type, default
 * and range, parsing with FILE:LINE messages, command-line overrides
 * (--set section.key=value) and the canonical text form stored with results.
 *
 * The authoritative list of keys with their meaning is config/raana.ini;
 * tests check that file against the defaults compiled in here. */
#ifndef RAANA_CONFIG_H
#define RAANA_CONFIG_H

#include <stdint.h>
#include <stdio.h>

#include "raana/error.h"
#include "raana/tricks.h" /* raana_encoder, RAANA_TRICK_* */

#define RAANA_PATH_MAX           4096
#define RAANA_MAX_BIT_CANDIDATES 11 /* {0.5, 0.75, 1, 2, ..., 8, 16} */
#define RAANA_MAX_EXCLUDE        64
#define RAANA_PATTERN_MAX        256

typedef enum { RAANA_CALIB_ZEROSHOT = 0, RAANA_CALIB_TEXT = 1 } raana_calib_source;
typedef enum { RAANA_ERROR_MODEL_PAPER = 0, RAANA_ERROR_MODEL_CALIBRATED = 1 } raana_error_model;

typedef struct raana_config {
    char source[RAANA_PATH_MAX]; /* the config file read ("" if none) */

    /* [model] */
    char model_path[RAANA_PATH_MAX];
    /* [calibration] */
    raana_calib_source calib_source;
    char text_file[RAANA_PATH_MAX];
    int n_samples;
    int seq_len; /* 0 = the model's context, see docs */
    /* statistics from --calibrate-only's JSON or a container; "" = calibrate */
    char statistics[RAANA_PATH_MAX];
    /* windows whose activations are held at once; 0 = auto (plan.h). Not
     * part of any fingerprint: it never changes a result. */
    int windows_in_flight;
    /* tokens of a window per pipeline message: chunks of a window overlap
     * across ranks; 0 = whole windows. Changes the rounding of the
     * statistics (it is in the calibration's fingerprint), never with the
     * rank count. */
    int chunk_tokens;
    /* ranks per sparse block's experts (expert_teams.h); 0 = auto: more
     * than one only when the experts do not fit the owner's memory */
    int expert_ranks;
    /* [quantize] */
    double avg_bits;
    int n_bits;
    double bits[RAANA_MAX_BIT_CANDIDATES]; /* ascending, distinct */
    unsigned tricks;                       /* RAANA_TRICK_* */
    double norm_col_rate;
    uint64_t seed;
    raana_encoder encoder;
    /* AllocateBits' f(b): the paper's 2^-b, or measured per width
     * (error_table.h) */
    raana_error_model error_model;
    /* LDLQ codes from the calibration inputs' second moments (ldlq.h) */
    int ldlq;
    double ldlq_damp; /* > 0 */
    /* low-rank compensation of each dense layer's error (lowrank.h): rank
     * (0 = off), the damping of the inputs' second moments, and the size
     * from which a team of ranks computes the SVD with ScaLAPACK */
    int lowrank_rank;
    double lowrank_damp;
    int lowrank_team_min_weights;
    /* the PCA trick (quantize.c): the top pca_rank singular directions of
     * each quantized weight kept as the same 16-bit factors, the codes for
     * the rest; 0 = off. Not with lowrank_rank. */
    int pca_rank;
    /* stored width of the per-column rescales and the trick vectors (mu,
     * row scales): 32 (float32) or 16 (half_scaled.h) */
    int side_bits;
    /* layers with at least this many weights are encoded by every rank, each
     * a piece of the output columns (column_split.h); 0 = auto (plan.h,
     * raana_plan_layer_split) */
    int split_min_weights;
    int n_exclude;
    char exclude[RAANA_MAX_EXCLUDE][RAANA_PATTERN_MAX];
    /* [output] */
    char output_path[RAANA_PATH_MAX];
    int zstd_level;
    int overwrite;
    /* [run] */
    int threads; /* 0 = OMP_NUM_THREADS, else 1 */
    /* [cost]: the rates --dry-run predicts the job's time with
     * (cost_model.h); they never change a result */
    double cost_read_gb_s, cost_load_ns, cost_calibrate_gflops, cost_quantize_scale,
        cost_write_mb_s;
} raana_config;

/* Fills every key with its default (model.path empty: it is required). */
void raana_config_defaults(raana_config *cfg);

/* Parses INI text on top of the current values. label names the text in
 * messages ("jobs/x.ini"); relative paths resolve against base_dir. Errors
 * are RAANA_ERR_CONFIG with "LABEL:LINE: message". */
raana_status raana_config_parse(raana_config *cfg, const char *text, size_t len, const char *label,
                                const char *base_dir, raana_error *err);

/* Defaults, then the file at path (relative paths against its directory). */
raana_status raana_config_load(raana_config *cfg, const char *path, raana_error *err);

/* Applies "section.key=value" (from --set); relative paths resolve against
 * the current directory. */
raana_status raana_config_set(raana_config *cfg, const char *assignment, raana_error *err);

/* Checks that need several keys (required keys, avg_bits within the
 * candidates, text_file for source = text). Call after all parsing. */
raana_status raana_config_validate(const raana_config *cfg, raana_error *err);

/* Writes the configuration as INI text that raana_config_parse reads back to
 * the same values. */
void raana_config_write(FILE *out, const raana_config *cfg);

/* Names for printing. */
const char *raana_encoder_name(raana_encoder e);
const char *raana_calib_source_name(raana_calib_source s);
const char *raana_error_model_name(raana_error_model m);
/* "centralize,norm_col" or "none" into buf. */
void raana_tricks_format(unsigned tricks, char *buf, size_t size);

#endif
