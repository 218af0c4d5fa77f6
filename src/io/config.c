/* config.c — config.ini parsing on top of inih (see config.h).
 *
 * Every key is one row of config_keys[]: section, name, type, where it lives
 * in raana_config, its default and range. Parsing, --set, defaults and the
 * canonical writer all go through that table, so a key cannot be known to
 * one and not the others. inih (Debian's libinih) does the INI syntax; a
 * line-counting reader gives every message its FILE:LINE. */
#include "raana/config.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "raana/file.h"

typedef enum {
    KEY_PATH,
    KEY_INT,
    KEY_INT_AUTO, /* an integer in [min, max], or auto (stored as 0) */
    KEY_DOUBLE,
    KEY_BOOL,
    KEY_U64,
    KEY_SOURCE,
    KEY_ENCODER,
    KEY_ERROR_MODEL,
    KEY_BITS,
    KEY_TRICKS,
    KEY_GLOBS
} key_type;

typedef struct {
    const char *section;
    const char *name;
    key_type type;
    size_t offset;
    const char *default_value; /* parsed like a file value; NULL = required */
    double min, max;           /* for KEY_INT, KEY_INT_AUTO and KEY_DOUBLE */
} config_key;

#define FIELD(f) offsetof(raana_config, f)

static const config_key config_keys[] = {
    {"model", "path", KEY_PATH, FIELD(model_path), NULL, 0, 0},
    {"calibration", "source", KEY_SOURCE, FIELD(calib_source), "zeroshot", 0, 0},
    {"calibration", "text_file", KEY_PATH, FIELD(text_file), "", 0, 0},
    {"calibration", "n_samples", KEY_INT, FIELD(n_samples), "8", 1, 1000000},
    {"calibration", "seq_len", KEY_INT, FIELD(seq_len), "0", 0, 1048576},
    {"calibration", "statistics", KEY_PATH, FIELD(statistics), "", 0, 0},
    {"calibration", "windows_in_flight", KEY_INT_AUTO, FIELD(windows_in_flight), "auto", 1,
     1000000},
    {"calibration", "chunk_tokens", KEY_INT, FIELD(chunk_tokens), "512", 0, 1048576},
    {"calibration", "expert_ranks", KEY_INT_AUTO, FIELD(expert_ranks), "auto", 1, 4096},
    {"quantize", "avg_bits", KEY_DOUBLE, FIELD(avg_bits), "3", 0.5, 16},
    {"quantize", "bits", KEY_BITS, FIELD(bits), "1, 2, 3, 4, 5, 6, 7, 8", 0, 0},
    {"quantize", "tricks", KEY_TRICKS, FIELD(tricks), "centralize, norm_col", 0, 0},
    {"quantize", "norm_col_rate", KEY_DOUBLE, FIELD(norm_col_rate), "0.003", 0, 0.5},
    {"quantize", "seed", KEY_U64, FIELD(seed), "0", 0, 0},
    {"quantize", "encoder", KEY_ENCODER, FIELD(encoder), "exact", 0, 0},
    {"quantize", "error_model", KEY_ERROR_MODEL, FIELD(error_model), "paper", 0, 0},
    {"quantize", "exclude", KEY_GLOBS, FIELD(exclude), "", 0, 0},
    {"quantize", "ldlq", KEY_BOOL, FIELD(ldlq), "false", 0, 0},
    {"quantize", "ldlq_damp", KEY_DOUBLE, FIELD(ldlq_damp), "1", 1e-6, 1e6},
    {"quantize", "lowrank_rank", KEY_INT, FIELD(lowrank_rank), "0", 0, 4096},
    {"quantize", "lowrank_damp", KEY_DOUBLE, FIELD(lowrank_damp), "0.01", 1e-9, 1e6},
    {"quantize", "side_bits", KEY_INT, FIELD(side_bits), "32", 16, 32},
    {"quantize", "pca_rank", KEY_INT, FIELD(pca_rank), "0", 0, 4096},
    {"quantize", "lowrank_team_min_weights", KEY_INT, FIELD(lowrank_team_min_weights), "16777216",
     1, 2147483647},
    {"quantize", "split_min_weights", KEY_INT_AUTO, FIELD(split_min_weights), "auto", 1,
     2147483647},
    {"output", "path", KEY_PATH, FIELD(output_path), "quantized.h5", 0, 0},
    {"output", "zstd_level", KEY_INT, FIELD(zstd_level), "3", 1, 22},
    {"output", "overwrite", KEY_BOOL, FIELD(overwrite), "false", 0, 0},
    {"run", "threads", KEY_INT, FIELD(threads), "0", 0, 4096},
    {"cost", "read_gb_per_s", KEY_DOUBLE, FIELD(cost_read_gb_s), "1", 0.001, 1e6},
    {"cost", "load_ns_per_weight", KEY_DOUBLE, FIELD(cost_load_ns), "11.6", 0, 1e6},
    {"cost", "calibrate_gflops_per_thread", KEY_DOUBLE, FIELD(cost_calibrate_gflops), "87", 0.001,
     1e9},
    {"cost", "quantize_scale", KEY_DOUBLE, FIELD(cost_quantize_scale), "1.7", 0.001, 1e6},
    {"cost", "write_mb_per_s", KEY_DOUBLE, FIELD(cost_write_mb_s), "350", 0.001, 1e9},
};

#define N_KEYS (sizeof config_keys / sizeof config_keys[0])

static const double allowed_bits[] = {0.5, 0.75, 1, 2, 3, 4, 5, 6, 7, 8, 16};

/* ---- value parsers: each writes a reason into why on failure ---------- */

static const char *skip_space(const char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    return s;
}

static int parse_double(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *skip_space(end) != '\0' || errno == ERANGE || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

static int parse_long(const char *s, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *skip_space(end) != '\0' || errno == ERANGE)
        return -1;
    *out = v;
    return 0;
}

/* Splits a comma/space separated list and calls item() on each word. */
static int for_each_item(const char *value, int (*item)(void *, const char *, char *, size_t),
                         void *ctx, char *why, size_t why_size)
{
    const char *p = value;
    while (*p) {
        while (*p == ',' || isspace((unsigned char)*p))
            p++;
        if (!*p)
            break;
        const char *start = p;
        while (*p && *p != ',' && !isspace((unsigned char)*p))
            p++;
        char word[RAANA_PATTERN_MAX];
        size_t n = (size_t)(p - start);
        if (n >= sizeof word) {
            snprintf(why, why_size, "item '%.40s...' is too long", start);
            return -1;
        }
        memcpy(word, start, n);
        word[n] = '\0';
        if (item(ctx, word, why, why_size) != 0)
            return -1;
    }
    return 0;
}

static int bits_item(void *ctx, const char *word, char *why, size_t why_size)
{
    raana_config *cfg = ctx;
    double b;
    size_t i;
    if (parse_double(word, &b) != 0) {
        snprintf(why, why_size, "'%s' is not a number", word);
        return -1;
    }
    for (i = 0; i < sizeof allowed_bits / sizeof allowed_bits[0]; i++)
        if (allowed_bits[i] == b)
            break;
    if (i == sizeof allowed_bits / sizeof allowed_bits[0]) {
        snprintf(why, why_size,
                 "%s is not a supported bit width (0.5, 0.75, 1, 2, ..., 8, or 16 to keep)", word);
        return -1;
    }
    for (int j = 0; j < cfg->n_bits; j++)
        if (cfg->bits[j] == b) {
            snprintf(why, why_size, "%s is listed twice", word);
            return -1;
        }
    cfg->bits[cfg->n_bits++] = b;
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int tricks_item(void *ctx, const char *word, char *why, size_t why_size)
{
    unsigned *tricks = ctx;
    if (strcmp(word, "none") == 0)
        return 0;
    if (strcmp(word, "centralize") == 0)
        *tricks |= RAANA_TRICK_CENTRALIZE;
    else if (strcmp(word, "norm_col") == 0)
        *tricks |= RAANA_TRICK_NORM_COL;
    else if (strcmp(word, "norm_row") == 0)
        *tricks |= RAANA_TRICK_NORM_ROW;
    else {
        snprintf(why, why_size, "unknown trick '%s' (known: centralize, norm_col, norm_row, none)",
                 word);
        return -1;
    }
    return 0;
}

static int glob_item(void *ctx, const char *word, char *why, size_t why_size)
{
    raana_config *cfg = ctx;
    if (cfg->n_exclude == RAANA_MAX_EXCLUDE) {
        snprintf(why, why_size, "more than %d patterns", RAANA_MAX_EXCLUDE);
        return -1;
    }
    snprintf(cfg->exclude[cfg->n_exclude++], RAANA_PATTERN_MAX, "%s", word);
    return 0;
}

static int parse_bool(const char *s, int *out)
{
    static const char *yes[] = {"true", "yes", "on", "1"}, *no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0)
            return *out = 1, 0;
        if (strcasecmp(s, no[i]) == 0)
            return *out = 0, 0;
    }
    return -1;
}

/* 0 if path, written as an INI value, reads back as itself: inih ends a
 * value at a line break and at ';' after a space or tab (an inline comment)
 * and trims spaces at both ends, and has no quoting. -1 with a reason if
 * not, so that --print-config and the config stored in the container always
 * read back. */
static int path_fits_ini(const char *path, char *why, size_t why_size)
{
    size_t n = strlen(path);
    const char *bad = NULL;
    for (size_t i = 0; i < n && !bad; i++)
        if (path[i] == '\n' || path[i] == '\r')
            bad = "a line break";
        else if (path[i] == ';' && i > 0 && (path[i - 1] == ' ' || path[i - 1] == '\t'))
            bad = "' ;' (the start of a comment)";
    if (!bad && n > 0 && (isspace((unsigned char)path[0]) || isspace((unsigned char)path[n - 1])))
        bad = "leading or trailing white space";
    if (!bad)
        return 0;
    snprintf(why, why_size, "path '%.200s' contains %s, which config.ini cannot hold; rename it",
             path, bad);
    return -1;
}

/* The index of value in names[0..n), or -1 with the reason "'value' is not
 * one of: a, b". */
static int choice_index(const char *value, const char *const *names, int n, char *why,
                        size_t why_size)
{
    for (int i = 0; i < n; i++)
        if (strcmp(value, names[i]) == 0)
            return i;
    int len = snprintf(why, why_size, "'%s' is not one of: ", value);
    for (int i = 0; i < n && len >= 0 && (size_t)len < why_size; i++)
        len += snprintf(why + len, why_size - (size_t)len, "%s%s", i ? ", " : "", names[i]);
    return -1;
}

/* value as an integer in [key->min, key->max] into *v: 0, or -1 with a
 * reason (which, if auto_ok, also offers "auto"). */
static int parse_int_key(const char *value, const config_key *key, int auto_ok, long *v, char *why,
                         size_t why_size)
{
    if (parse_long(value, v) != 0) {
        snprintf(why, why_size,
                 auto_ok ? "'%s' is neither an integer nor auto" : "'%s' is not an integer", value);
        return -1;
    }
    if (*v < key->min || *v > key->max) {
        snprintf(why, why_size, "%ld is out of range [%.0f, %.0f]%s", *v, key->min, key->max,
                 auto_ok ? " (or auto)" : "");
        return -1;
    }
    return 0;
}

/* Sets one key from its text value. Returns 0, or -1 with a reason. */
static int set_key(raana_config *cfg, const config_key *key, const char *value,
                   const char *base_dir, char *why, size_t why_size)
{
    char *field = (char *)cfg + key->offset;
    value = skip_space(value);
    switch (key->type) {
    case KEY_PATH: {
        raana_error e;
        if (value[0] == '\0') {
            ((char *)field)[0] = '\0';
            return 0;
        }
        if (raana_path_resolve(field, RAANA_PATH_MAX, base_dir, value, &e) != RAANA_OK) {
            snprintf(why, why_size, "path longer than %d bytes", RAANA_PATH_MAX - 1);
            return -1;
        }
        return path_fits_ini(field, why, why_size);
    }
    case KEY_INT: {
        long v;
        if (parse_int_key(value, key, 0, &v, why, why_size) != 0)
            return -1;
        if (key->offset == FIELD(seq_len) && v == 1) {
            snprintf(why, why_size,
                     "1 is too short: a window holds the bos token and at least one more "
                     "(0 = automatic, or 2 and more)");
            return -1;
        }
        if (key->offset == FIELD(side_bits) && v != 16 && v != 32) {
            snprintf(why, why_size,
                     "%ld is not a stored width: 32 (float32) or 16 (half precision times a "
                     "power of two per vector)",
                     v);
            return -1;
        }
        *(int *)field = (int)v;
        return 0;
    }
    case KEY_INT_AUTO: {
        long v;
        if (strcmp(value, "auto") == 0) {
            *(int *)field = 0;
            return 0;
        }
        if (parse_int_key(value, key, 1, &v, why, why_size) != 0)
            return -1;
        *(int *)field = (int)v;
        return 0;
    }
    case KEY_DOUBLE: {
        double v;
        if (parse_double(value, &v) != 0) {
            snprintf(why, why_size, "'%s' is not a number", value);
            return -1;
        }
        if (v < key->min || v > key->max) {
            snprintf(why, why_size, "%g is out of range [%g, %g]", v, key->min, key->max);
            return -1;
        }
        *(double *)field = v;
        return 0;
    }
    case KEY_BOOL:
        if (parse_bool(value, (int *)field) != 0) {
            snprintf(why, why_size, "'%s' is not a boolean (true or false)", value);
            return -1;
        }
        return 0;
    case KEY_U64: {
        char *end;
        errno = 0;
        /* decimal, or hex after 0x; a leading 0 is not octal (010 is ten) */
        int hex = value[0] == '0' && (value[1] == 'x' || value[1] == 'X');
        const char *digits = hex ? value + 2 : value;
        size_t n_digits =
            hex ? strspn(digits, "0123456789abcdefABCDEF") : strspn(digits, "0123456789");
        unsigned long long v = strtoull(digits, &end, hex ? 16 : 10);
        if (n_digits == 0 || end != digits + n_digits || *skip_space(end) != '\0' ||
            errno == ERANGE) {
            snprintf(why, why_size, "'%s' is not an unsigned 64-bit integer (decimal or 0x hex)",
                     value);
            return -1;
        }
        *(uint64_t *)field = (uint64_t)v;
        return 0;
    }
    case KEY_SOURCE:
    case KEY_ENCODER:
    case KEY_ERROR_MODEL: {
        /* each list is in its enum's order (raana_calib_source, raana_encoder,
         * raana_error_model) */
        static const char *const sources[] = {"zeroshot", "text"},
                                 *const encoders[] = {"exact", "fast"},
                                 *const models[] = {"paper", "calibrated"};
        const char *const *names = key->type == KEY_SOURCE    ? sources
                                   : key->type == KEY_ENCODER ? encoders
                                                              : models;
        int i = choice_index(value, names, 2, why, why_size);
        if (i < 0)
            return -1;
        if (key->type == KEY_SOURCE)
            cfg->calib_source = (raana_calib_source)i;
        else if (key->type == KEY_ENCODER)
            cfg->encoder = (raana_encoder)i;
        else
            cfg->error_model = (raana_error_model)i;
        return 0;
    }
    case KEY_BITS:
        cfg->n_bits = 0;
        if (for_each_item(value, bits_item, cfg, why, why_size) != 0)
            return -1;
        if (cfg->n_bits == 0) {
            snprintf(why, why_size, "the candidate list is empty");
            return -1;
        }
        qsort(cfg->bits, (size_t)cfg->n_bits, sizeof cfg->bits[0], cmp_double);
        return 0;
    case KEY_TRICKS: {
        unsigned tricks = 0;
        if (for_each_item(value, tricks_item, &tricks, why, why_size) != 0)
            return -1;
        cfg->tricks = tricks;
        return 0;
    }
    case KEY_GLOBS: cfg->n_exclude = 0; return for_each_item(value, glob_item, cfg, why, why_size);
    }
    snprintf(why, why_size, "internal: unhandled key type");
    return -1;
}

static const config_key *find_key(const char *section, const char *name)
{
    for (size_t i = 0; i < N_KEYS; i++)
        if (strcmp(config_keys[i].section, section) == 0 && strcmp(config_keys[i].name, name) == 0)
            return &config_keys[i];
    return NULL;
}

static int section_known(const char *section)
{
    for (size_t i = 0; i < N_KEYS; i++)
        if (strcmp(config_keys[i].section, section) == 0)
            return 1;
    return 0;
}

void raana_config_defaults(raana_config *cfg)
{
    char why[256];
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < N_KEYS; i++)
        if (config_keys[i].default_value)
            (void)set_key(cfg, &config_keys[i], config_keys[i].default_value, "", why, sizeof why);
}

/* ---- INI parsing --------------------------------------------------------- */

typedef struct {
    const char *pos, *end; /* the text not yet handed to inih */
    int line;              /* number of the line inih is processing */
    int long_line;         /* first line that exceeded inih's buffer, or 0 */
} line_reader;

/* An ini_reader that hands inih one line at a time and counts lines, so the
 * handler knows which line it is looking at. */
static char *read_line(char *str, int num, void *stream)
{
    line_reader *r = stream;
    if (r->pos >= r->end)
        return NULL;
    const char *nl = memchr(r->pos, '\n', (size_t)(r->end - r->pos));
    const char *stop = nl ? nl + 1 : r->end;
    size_t n = (size_t)(stop - r->pos);
    r->line++;
    if (n > (size_t)num - 1) {
        if (!r->long_line)
            r->long_line = r->line;
        n = (size_t)num - 1;
    }
    memcpy(str, r->pos, n);
    str[n] = '\0';
    r->pos = stop;
    return str;
}

typedef struct {
    raana_config *cfg;
    line_reader reader;
    const char *label, *base_dir;
    int set_on_line[N_KEYS];
    int error_line; /* line of the handler's first error, 0 if none */
    raana_error *err;
} parse_state;

static int on_key(void *user, const char *section, const char *name, const char *value)
{
    parse_state *st = user;
    int line = st->reader.line;
    char why[512];
    if (st->err->status != RAANA_OK)
        return 0;          /* report the first problem only */
    st->error_line = line; /* cleared again below if the key is fine */
    if (section[0] == '\0') {
        raana_fail(st->err, RAANA_ERR_CONFIG, "%s:%d: key '%s' is outside any [section]", st->label,
                   line, name);
        return 0;
    }
    if (!section_known(section)) {
        raana_fail(st->err, RAANA_ERR_CONFIG,
                   "%s:%d: unknown section [%s] (known: model, calibration, quantize, output, run)",
                   st->label, line, section);
        return 0;
    }
    const config_key *key = find_key(section, name);
    if (!key) {
        raana_fail(st->err, RAANA_ERR_CONFIG, "%s:%d: unknown key '%s' in [%s]", st->label, line,
                   name, section);
        return 0;
    }
    size_t k = (size_t)(key - config_keys);
    if (st->set_on_line[k]) {
        raana_fail(st->err, RAANA_ERR_CONFIG,
                   "%s:%d: duplicate key '%s' in [%s] (first set on line %d)", st->label, line,
                   name, section, st->set_on_line[k]);
        return 0;
    }
    st->set_on_line[k] = line;
    if (set_key(st->cfg, key, value, st->base_dir, why, sizeof why) != 0) {
        raana_fail(st->err, RAANA_ERR_CONFIG, "%s:%d: [%s] %s: %s", st->label, line, section, name,
                   why);
        return 0;
    }
    st->error_line = 0;
    return 1;
}

raana_status raana_config_parse(raana_config *cfg, const char *text, size_t len, const char *label,
                                const char *base_dir, raana_error *err)
{
    parse_state st;
    memset(&st, 0, sizeof st);
    st.cfg = cfg;
    st.reader.pos = text;
    st.reader.end = text + len;
    st.label = label;
    st.base_dir = base_dir;
    st.err = err;
    raana_error_clear(err);
    if (memchr(text, '\0', len))
        return raana_fail(err, RAANA_ERR_CONFIG, "%s: contains a NUL byte (not a text file)",
                          label);
    int rc = ini_parse_stream(read_line, &st.reader, on_key, &st);
    /* A line longer than inih's buffer reached inih cut short, so whatever
     * inih or our handler said about it (or a later line) is not the
     * problem: report the long line when it comes first. */
    int first_problem = err->status != RAANA_OK ? st.error_line : rc;
    if (st.reader.long_line && (first_problem <= 0 || st.reader.long_line <= first_problem))
        return raana_fail(err, RAANA_ERR_CONFIG,
                          "%s:%d: line longer than %d characters (shorten it, or use --set)", label,
                          st.reader.long_line, INI_MAX_LINE - 2);
    /* inih returns the first failing line, a syntax error or one our handler
     * refused (then err already holds the message). */
    if (err->status != RAANA_OK && (rc <= 0 || rc == st.error_line))
        return err->status;
    if (rc > 0)
        return raana_fail(err, RAANA_ERR_CONFIG,
                          "%s:%d: syntax error (expected '[section]', 'key = value' or a comment)",
                          label, rc);
    if (rc < 0)
        return raana_fail(err, RAANA_ERR_NOMEM, "%s: parser could not allocate memory", label);
    return RAANA_OK;
}

raana_status raana_config_load(raana_config *cfg, const char *path, raana_error *err)
{
    raana_status st = RAANA_OK;
    char *text = NULL, dir[RAANA_PATH_MAX];
    size_t len;
    raana_config_defaults(cfg);
    if (raana_read_file(path, &text, &len, err) != RAANA_OK)
        RAANA_CHECK(raana_error_restatus(err, RAANA_ERR_CONFIG));
    snprintf(cfg->source, sizeof cfg->source, "%s", path);
    raana_path_dirname(dir, sizeof dir, path);
    char absolute[RAANA_PATH_MAX]; /* paths stored with results must not depend on the cwd */
    RAANA_CHECK(
        raana_config_parse(cfg, text, len, path, realpath(dir, absolute) ? absolute : dir, err));
cleanup:
    free(text);
    return st;
}

raana_status raana_config_set(raana_config *cfg, const char *assignment, raana_error *err)
{
    char section[64], name[64], why[512];
    const char *dot = strchr(assignment, '.'), *eq = strchr(assignment, '=');
    if (!dot || !eq || dot > eq || (size_t)(dot - assignment) >= sizeof section ||
        (size_t)(eq - dot - 1) >= sizeof name)
        return raana_fail(err, RAANA_ERR_USAGE, "--set %s: expected section.key=value", assignment);
    snprintf(section, sizeof section, "%.*s", (int)(dot - assignment), assignment);
    snprintf(name, sizeof name, "%.*s", (int)(eq - dot - 1), dot + 1);
    const config_key *key = find_key(section, name);
    if (!key)
        return raana_fail(err, RAANA_ERR_CONFIG, "--set %s: unknown key '%s.%s'", assignment,
                          section, name);
    char cwd[RAANA_PATH_MAX];
    if (set_key(cfg, key, eq + 1, getcwd(cwd, sizeof cwd) ? cwd : "", why, sizeof why) != 0)
        return raana_fail(err, RAANA_ERR_CONFIG, "--set %s: %s", assignment, why);
    return RAANA_OK;
}

raana_status raana_config_validate(const raana_config *cfg, raana_error *err)
{
    const char *where = cfg->source[0] ? cfg->source : "configuration";
    if (cfg->model_path[0] == '\0')
        return raana_fail(err, RAANA_ERR_CONFIG, "%s: [model] path is required", where);
    if (cfg->calib_source == RAANA_CALIB_TEXT && cfg->text_file[0] == '\0')
        return raana_fail(err, RAANA_ERR_CONFIG,
                          "%s: [calibration] source = text needs [calibration] text_file", where);
    if (cfg->output_path[0] == '\0')
        return raana_fail(err, RAANA_ERR_CONFIG, "%s: [output] path is empty", where);
    double lo = cfg->bits[0], hi = cfg->bits[cfg->n_bits - 1];
    if (cfg->avg_bits < lo || cfg->avg_bits > hi)
        return raana_fail(err, RAANA_ERR_CONFIG,
                          "%s: [quantize] avg_bits = %g is outside the candidate bits [%g, %g]",
                          where, cfg->avg_bits, lo, hi);
    if (cfg->ldlq && cfg->statistics[0])
        return raana_fail(err, RAANA_ERR_CONFIG,
                          "%s: [quantize] ldlq = true needs the calibration inputs' second "
                          "moments, which [calibration] statistics does not store: calibrate in "
                          "this job (statistics empty) or set ldlq = false",
                          where);
    if (cfg->lowrank_rank > 0 && cfg->pca_rank > 0)
        return raana_fail(err, RAANA_ERR_CONFIG,
                          "%s: [quantize] lowrank_rank = %d and pca_rank = %d both store a layer's "
                          "low-rank factors, in the same two datasets: set one of them to 0",
                          where, cfg->lowrank_rank, cfg->pca_rank);
    if (cfg->lowrank_rank > 0 && cfg->statistics[0])
        return raana_fail(err, RAANA_ERR_CONFIG,
                          "%s: [quantize] lowrank_rank = %d weights the error by the calibration "
                          "inputs' second moments, which [calibration] statistics does not store: "
                          "calibrate in this job (statistics empty) or set lowrank_rank = 0",
                          where, cfg->lowrank_rank);
    return RAANA_OK;
}

/* ---- names and the canonical writer ------------------------------------ */

const char *raana_encoder_name(raana_encoder e)
{
    return e == RAANA_ENCODER_FAST ? "fast" : "exact";
}

const char *raana_error_model_name(raana_error_model m)
{
    return m == RAANA_ERROR_MODEL_CALIBRATED ? "calibrated" : "paper";
}

const char *raana_calib_source_name(raana_calib_source s)
{
    return s == RAANA_CALIB_TEXT ? "text" : "zeroshot";
}

void raana_tricks_format(unsigned tricks, char *buf, size_t size)
{
    static const struct {
        unsigned bit;
        const char *name;
    } names[] = {{RAANA_TRICK_CENTRALIZE, "centralize"},
                 {RAANA_TRICK_NORM_COL, "norm_col"},
                 {RAANA_TRICK_NORM_ROW, "norm_row"}};
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < 3; i++)
        if (tricks & names[i].bit)
            used += (size_t)snprintf(buf + used, used < size ? size - used : 0, "%s%s",
                                     used ? ", " : "", names[i].name);
    if (used == 0)
        snprintf(buf, size, "none");
}

/* The shortest decimal that reads back as the same double (2.1, not
 * 2.1000000000000001). */
static void write_double(FILE *out, double v)
{
    char buf[40];
    for (int digits = 15; digits <= 17; digits++) {
        snprintf(buf, sizeof buf, "%.*g", digits, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    fputs(buf, out);
}

static void write_value(FILE *out, const raana_config *cfg, const config_key *key)
{
    const char *field = (const char *)cfg + key->offset;
    char buf[1024];
    switch (key->type) {
    case KEY_PATH: fprintf(out, "%s", field); break;
    case KEY_INT: fprintf(out, "%d", *(const int *)field); break;
    case KEY_INT_AUTO:
        if (*(const int *)field == 0)
            fprintf(out, "auto");
        else
            fprintf(out, "%d", *(const int *)field);
        break;
    case KEY_DOUBLE: write_double(out, *(const double *)field); break;
    case KEY_BOOL: fprintf(out, "%s", *(const int *)field ? "true" : "false"); break;
    case KEY_U64: fprintf(out, "%" PRIu64, *(const uint64_t *)field); break;
    case KEY_SOURCE: fprintf(out, "%s", raana_calib_source_name(cfg->calib_source)); break;
    case KEY_ENCODER: fprintf(out, "%s", raana_encoder_name(cfg->encoder)); break;
    case KEY_ERROR_MODEL: fprintf(out, "%s", raana_error_model_name(cfg->error_model)); break;
    case KEY_BITS:
        for (int i = 0; i < cfg->n_bits; i++)
            fprintf(out, "%s%g", i ? ", " : "", cfg->bits[i]);
        break;
    case KEY_TRICKS:
        raana_tricks_format(cfg->tricks, buf, sizeof buf);
        fprintf(out, "%s", buf);
        break;
    case KEY_GLOBS:
        for (int i = 0; i < cfg->n_exclude; i++)
            fprintf(out, "%s%s", i ? ", " : "", cfg->exclude[i]);
        break;
    }
}

void raana_config_write(FILE *out, const raana_config *cfg)
{
    const char *section = "";
    for (size_t i = 0; i < N_KEYS; i++) {
        const config_key *key = &config_keys[i];
        if (strcmp(section, key->section) != 0) {
            fprintf(out, "%s[%s]\n", i ? "\n" : "", key->section);
            section = key->section;
        }
        fprintf(out, "%s = ", key->name);
        write_value(out, cfg, key);
        fputc('\n', out);
    }
}
