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
 * A tool describes its command line in one raana_cli_spec: usage, operands,
 * texts, its own options and the two callbacks that store them.
 * raana_cli_parse calls them, answers --help and --version itself, checks
 * the number of operands and reports a usage error; raana_cli_main is the
 * whole main() of a one-process tool around its work. */
#ifndef RAANA_TOOLS_CLI_H
#define RAANA_TOOLS_CLI_H

#include "raana/error.h"

typedef struct {
    const char *name;  /* long name without "--", e.g. "seq-len" */
    char short_name;   /* e.g. 'h' for -h, or 0 */
    const char *value; /* the value's placeholder in --help ("N"), NULL for a flag */
    const char *help;  /* --help text; '\n' starts an aligned continuation line */
} raana_cli_option;

#define RAANA_CLI_MAX_OPTIONS 16

/* Called once per option in command-line order: index into spec->options,
 * value NULL for a flag. Returns RAANA_OK or a usage error naming the
 * option ("--seq-len abc: expected ..."). While it runs, getopt's optind
 * indexes the word after the option and its value (raana-inspect's legacy
 * `--dequantize LAYER OUT.f32` reads it). */
typedef raana_status (*raana_cli_handler)(void *ctx, int index, const char *value,
                                          raana_error *err);

/* Called once after the options: the operands in order (within the counts
 * spec->operands allows), for the tool to take them and to check what
 * concerns several options. */
typedef raana_status (*raana_cli_finisher)(void *ctx, char **operand, int n_operands,
                                           raana_error *err);

/* A tool's command line, in the order --help prints it. */
typedef struct {
    const char *tool;  /* "raana-eval": the error prefix and the usage line */
    const char *usage; /* what follows "Usage: TOOL "; NULL: "[OPTIONS] " and the operands */
    /* The operands in order, separated by spaces: "CONTAINER.h5 OUTDIR";
     * a name in brackets is optional ("CONTAINER [OUT.f32]"); NULL: none. */
    const char *operands;
    const char *description; /* one paragraph, lines ending in '\n' */
    /* The tool's own options, [OPT_x] = {...}; the first unused entry is
     * zero. The short names 'h' and 'V' are taken by --help, --version. */
    raana_cli_option options[RAANA_CLI_MAX_OPTIONS];
    const char *epilog; /* after the options (may be NULL) */
    raana_cli_handler on_option;
    raana_cli_finisher finish; /* may be NULL */
} raana_cli_spec;

/* Parses argv with getopt_long (argv is permuted: operands end up last)
 * into ctx through spec->on_option and spec->finish. With --help or
 * --version it prints the help text or "TOOL VERSION" on stdout and sets
 * *done, without looking at the operands. A usage error is reported here,
 * as the tool's one error line, and its status is returned (the exit code):
 * the handlers' errors and
 *   unknown option '--x' (see --help)
 *   option '--x' needs a value (see --help)
 *   option '--x' takes no value
 *   missing OUTDIR (see --help)          (the required operands not given)
 *   unexpected argument 'x' (see --help) (the first operand too many)
 * Every process of a parallel launch sees the same command line: only the
 * first (raana_cli_launcher_rank) prints. */
raana_status raana_cli_parse(const raana_cli_spec *spec, int argc, char **argv, void *ctx,
                             int *done);

/* A tool's work once its command line is parsed into ctx. */
typedef raana_status (*raana_cli_runner)(void *ctx, raana_error *err);

/* main() of a tool that runs as one process: raana_cli_parse, then run
 * (unless --help or --version was answered), whose error becomes the one
 * error line. Returns the exit code. */
int raana_cli_main(const raana_cli_spec *spec, int argc, char **argv, void *ctx,
                   raana_cli_runner run);

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
