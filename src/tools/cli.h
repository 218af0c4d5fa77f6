/* cli.h — the command-line convention every raana tool shares (issue 14):
 * getopt_long underneath, so `--opt value` and `--opt=value` both work and
 * options and operands come in any order (`--` ends the options); one
 * message for an unknown option, one for a missing value, one for a missing
 * or unexpected operand; --help and --version in every tool; one --help
 * layout; one error line.
 *
 *   Usage: TOOL USAGE
 *
 *   One paragraph of description.
 *
 *   Options:
 *     --name VALUE   text, continued on aligned lines after '\n'
 *     -h, --help     this text
 *     -V, --version  version and exit
 *
 *   Epilog (exit codes, examples), if any.
 *
 * A tool describes its own options in a raana_cli_option table ending in a
 * zeroed entry and its operands in the spec; raana_cli_parse hands each
 * option back through a callback, answers --help and --version itself and
 * checks the number of operands. */
#ifndef RAANA_TOOLS_CLI_H
#define RAANA_TOOLS_CLI_H

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
    const raana_cli_option *options; /* ends with an entry whose name is NULL; the short
                                        names 'h' and 'V' are taken by --help, --version */
    const char *epilog;              /* after the options (may be NULL) */
    /* The operands in order, separated by spaces: "CONTAINER.h5 OUTDIR";
     * a name in brackets is optional ("CONTAINER [OUT.f32]"); NULL: none. */
    const char *operands;
} raana_cli_spec;

/* What raana_cli_parse leaves for the tool. */
typedef struct {
    char **operand; /* the operands in order (argv permuted: its tail) */
    int n_operands; /* within the counts the spec allows */
    int done;       /* --help or --version was answered: exit 0 */
} raana_cli_result;

/* Called once per option in command-line order: index into spec->options,
 * value NULL for a flag. Returns RAANA_OK or a usage error naming the
 * option ("--seq-len abc: expected ..."). While it runs, getopt's optind
 * indexes the word after the option and its value (raana-inspect's legacy
 * `--dequantize LAYER OUT.f32` reads it). */
typedef raana_status (*raana_cli_handler)(void *ctx, int index, const char *value,
                                          raana_error *err);

/* Parses argv with getopt_long (argv is permuted: operands end up last).
 * With --help or --version it prints the help text or "TOOL VERSION" on
 * stdout (in the first process of a parallel launch only, see
 * raana_cli_launcher_rank) and sets result->done, without checking the
 * operands. Errors (RAANA_ERR_USAGE):
 *   unknown option '--x' (see --help)
 *   option '--x' needs a value (see --help)
 *   option '--x' takes no value
 *   missing OUTDIR (see --help)          (the required operands not given)
 *   unexpected argument 'x' (see --help) (the first operand too many) */
raana_status raana_cli_parse(const raana_cli_spec *spec, int argc, char **argv,
                             raana_cli_handler on_option, void *ctx, raana_cli_result *result,
                             raana_error *err);

/* This process's rank as the launcher (mpirun, srun) numbers it, before
 * MPI_Init; 0 when not launched in parallel. */
int raana_cli_launcher_rank(void);

/* "TOOL: error: MSG" on stderr, one line. Returns the status (the exit code). */
int raana_cli_report(const char *tool, const raana_error *err);

/* Parses a decimal integer in min..max; on failure the usage error
 * "--NAME VALUE: expected an integer in MIN..MAX". */
raana_status raana_cli_int(const char *name, const char *value, long min, long max, int *out,
                           raana_error *err);

#endif
