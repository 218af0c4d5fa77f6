/* cli.h — the command-line convention every raana tool shares (issue 14):
 * getopt_long underneath, so `--opt value` and `--opt=value` both work and
 * options and operands come in any order (`--` ends the options); one
 * message for an unknown option, one for a missing value; one --help
 * layout; one error line.
 *
 *   Usage: TOOL [OPTIONS] ARGS
 *
 *   One paragraph of description.
 *
 *   Options:
 *     --name VALUE   text, continued on aligned lines after '\n'
 *
 *   Epilog (exit codes, examples), if any.
 *
 * A tool describes its options in a raana_cli_option table ending in a
 * zeroed entry, and gets each one back through a callback. */
#ifndef RAANA_TOOLS_CLI_H
#define RAANA_TOOLS_CLI_H

#include <stdio.h>

#include "raana/error.h"

typedef struct {
    const char *name;  /* long name without "--", e.g. "seq-len" */
    char short_name;   /* e.g. 'h' for -h, or 0 */
    const char *value; /* the value's placeholder in --help ("N"), NULL for a flag */
    const char *help;  /* --help text; '\n' starts an aligned continuation line */
} raana_cli_option;

typedef struct {
    const char *tool;                /* "raana-eval": the error prefix and the usage line */
    const char *usage;               /* what follows "Usage: TOOL ", e.g. "[OPTIONS] CONFIG.ini" */
    const char *description;         /* one paragraph, lines ending in '\n' */
    const raana_cli_option *options; /* ends with an entry whose name is NULL */
    const char *epilog;              /* after the options (may be NULL) */
} raana_cli_spec;

/* Called once per option in command-line order: index into spec->options,
 * value NULL for a flag. Returns RAANA_OK or a usage error naming the
 * option ("--seq-len abc: expected ..."). While it runs, getopt's optind
 * indexes the word after the option and its value (raana-inspect's legacy
 * `--dequantize LAYER OUT.f32` reads it). */
typedef raana_status (*raana_cli_handler)(void *ctx, int index, const char *value,
                                          raana_error *err);

/* Parses argv with getopt_long (argv is permuted: operands end up last).
 * *first_operand: index in argv of the first operand. Errors (RAANA_ERR_USAGE):
 *   unknown option '--x' (see --help)
 *   option '--x' needs a value (see --help)
 *   option '--x' takes no value */
raana_status raana_cli_parse(const raana_cli_spec *spec, int argc, char **argv,
                             raana_cli_handler on_option, void *ctx, int *first_operand,
                             raana_error *err);

/* The --help text, in the shared layout. */
void raana_cli_print_help(FILE *out, const raana_cli_spec *spec);

/* "TOOL: error: MSG" on stderr, one line. Returns the status (the exit code). */
int raana_cli_report(const char *tool, const raana_error *err);

/* Parses a decimal integer in min..max; on failure the usage error
 * "--NAME VALUE: expected an integer in MIN..MAX". */
raana_status raana_cli_int(const char *name, const char *value, long min, long max, int *out,
                           raana_error *err);

#endif
