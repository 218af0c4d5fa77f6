/* cli.c — the shared command-line convention of the raana tools: option
 * parsing through getopt_long with named errors, --help and --version, the
 * operand count, the --help layout and the one error line (see cli.h). */
#include "cli.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_OPTIONS (RAANA_CLI_MAX_OPTIONS + N_BUILTINS)
#define LONG_BASE   256 /* getopt_long's val for option i is LONG_BASE + i */
#define LABEL_MAX   30  /* wider labels put their text on the next line */

/* Every tool's options after its own: index count_options(spec) + OPT_x. */
enum { BUILTIN_HELP, BUILTIN_VERSION, N_BUILTINS };
static const raana_cli_option builtins[N_BUILTINS] = {
    [BUILTIN_HELP] = {"help", 'h', NULL, "this text"},
    [BUILTIN_VERSION] = {"version", 'V', NULL, "version and exit"}};

static int count_options(const raana_cli_spec *spec)
{
    int n = 0;
    while (n < RAANA_CLI_MAX_OPTIONS && spec->options[n].name)
        n++;
    return n;
}

/* Option i of the tool's own followed by the builtins, or NULL past them. */
static const raana_cli_option *option_at(const raana_cli_spec *spec, int i)
{
    int n = count_options(spec);
    if (i < n)
        return &spec->options[i];
    return i - n < N_BUILTINS ? &builtins[i - n] : NULL;
}

/* The index of the option getopt_long reported as val (a short option's
 * character or LONG_BASE + index), or -1. */
static int option_index(const raana_cli_spec *spec, int val)
{
    if (val >= LONG_BASE)
        return val - LONG_BASE;
    for (int i = 0; val > 0 && option_at(spec, i); i++)
        if (option_at(spec, i)->short_name == val)
            return i;
    return -1;
}

/* The option as the user typed it, without any "=value". */
static void typed_option(const raana_cli_spec *spec, char **argv, int val, char *out, size_t size)
{
    int i = option_index(spec, val);
    const char *arg = argv[optind - 1];
    if (val > 0 && val < LONG_BASE && (i < 0 || strncmp(arg, "--", 2) != 0))
        snprintf(out, size, "-%c", val); /* a short option, possibly in a cluster */
    else if (strncmp(arg, "--", 2) == 0 || i < 0)
        snprintf(out, size, "%.*s", (int)strcspn(arg, "="), arg);
    else
        snprintf(out, size, "--%s", option_at(spec, i)->name);
}

static raana_status option_error(const raana_cli_spec *spec, char **argv, int c, raana_error *err)
{
    char typed[256];
    typed_option(spec, argv, optopt, typed, sizeof typed);
    int i = option_index(spec, optopt);
    if (c == ':')
        return raana_fail(err, RAANA_ERR_USAGE, "option '%s' needs a value (see --help)", typed);
    if (i >= 0 && !option_at(spec, i)->value)
        return raana_fail(err, RAANA_ERR_USAGE, "option '%s' takes no value", typed);
    return raana_fail(err, RAANA_ERR_USAGE, "unknown option '%s' (see --help)", typed);
}

/* getopt_long's tables for spec and the builtins: longs[n + 1], and the
 * short option string (":" first, so that a missing value is reported as
 * ':'). */
static void build_tables(const raana_cli_spec *spec, struct option *longs, char *shorts)
{
    int n = count_options(spec) + N_BUILTINS, k = 0;
    shorts[k++] = ':';
    for (int i = 0; i < n; i++) {
        const raana_cli_option *o = option_at(spec, i);
        longs[i] = (struct option){o->name, o->value ? required_argument : no_argument, NULL,
                                   LONG_BASE + i};
        if (o->short_name) {
            shorts[k++] = o->short_name;
            if (o->value)
                shorts[k++] = ':';
        }
    }
    longs[n] = (struct option){NULL, 0, NULL, 0};
    shorts[k] = '\0';
}

/* "  -h, --help" or "  --name VALUE" into out; returns its length. */
static int option_label(const raana_cli_option *o, char *out, size_t size)
{
    char shortname[8] = "";
    if (o->short_name)
        snprintf(shortname, sizeof shortname, "-%c, ", o->short_name);
    return snprintf(out, size, "  %s--%s%s%s", shortname, o->name, o->value ? " " : "",
                    o->value ? o->value : "");
}

static int help_column(const raana_cli_spec *spec)
{
    int column = 0;
    for (int i = 0; option_at(spec, i); i++) {
        char label[128];
        int len = option_label(option_at(spec, i), label, sizeof label);
        if (len <= LABEL_MAX && len > column)
            column = len;
    }
    return column + 3;
}

static void print_option(FILE *out, const raana_cli_option *o, int column)
{
    char label[128];
    int len = option_label(o, label, sizeof label);
    fputs(label, out);
    if (len + 1 > column) { /* too wide: the text starts on the next line */
        fputc('\n', out);
        len = 0;
    }
    const char *text = o->help;
    for (;;) {
        size_t line = strcspn(text, "\n");
        fprintf(out, "%*s%.*s\n", column - len, "", (int)line, text);
        if (!text[line] || !text[line + 1])
            break;
        text += line + 1;
        len = 0;
    }
}

static void print_help(FILE *out, const raana_cli_spec *spec)
{
    if (spec->usage)
        fprintf(out, "Usage: %s %s\n\n", spec->tool, spec->usage);
    else
        fprintf(out, "Usage: %s [OPTIONS]%s%s\n\n", spec->tool, spec->operands ? " " : "",
                spec->operands ? spec->operands : "");
    fprintf(out, "%s\nOptions:\n", spec->description);
    int column = help_column(spec);
    for (int i = 0; option_at(spec, i); i++)
        print_option(out, option_at(spec, i), column);
    if (spec->epilog)
        fprintf(out, "\n%s", spec->epilog);
}

/* The next space-separated word of *s, advancing *s past it; NULL after
 * the last. */
static const char *next_word(const char **s, int *len)
{
    if (!*s)
        return NULL;
    const char *w = *s + strspn(*s, " ");
    *len = (int)strcspn(w, " ");
    *s = w + *len;
    return *len ? w : NULL;
}

/* "missing OUTDIR (see --help)": the required operands from w on (optional
 * ones follow the required ones). */
static raana_status missing_operands(const char *w, raana_error *err)
{
    int len = (int)strcspn(w, "[");
    while (len > 0 && w[len - 1] == ' ')
        len--;
    return raana_fail(err, RAANA_ERR_USAGE, "missing %.*s (see --help)", len, w);
}

/* Usage errors for the n operands against spec->operands. */
static raana_status check_operands(const raana_cli_spec *spec, char **operand, int n,
                                   raana_error *err)
{
    const char *s = spec->operands, *w;
    int len, max = 0;
    while ((w = next_word(&s, &len)))
        if (max++ == n && w[0] != '[')
            return missing_operands(w, err);
    if (n > max)
        return raana_fail(err, RAANA_ERR_USAGE, "unexpected argument '%s' (see --help)",
                          operand[max]);
    return RAANA_OK;
}

/* --help or --version (builtin b), answered by the first process only. */
static void answer_builtin(const raana_cli_spec *spec, int b)
{
    if (raana_cli_launcher_rank() != 0)
        return;
    if (b == BUILTIN_HELP)
        print_help(stdout, spec);
    else
        printf("%s %s\n", spec->tool, RAANA_VERSION);
}

/* raana_cli_parse, with the error in err and not yet reported. */
static raana_status parse(const raana_cli_spec *spec, int argc, char **argv, void *ctx, int *done,
                          raana_error *err)
{
    struct option longs[MAX_OPTIONS + 1];
    char shorts[2 * MAX_OPTIONS + 2];
    int n = count_options(spec), builtin = N_BUILTINS;
    build_tables(spec, longs, shorts);
    opterr = 0;
    optind = 1;
    *done = 0;
    for (int c; (c = getopt_long(argc, argv, shorts, longs, NULL)) != -1;) {
        if (c == '?' || c == ':')
            return option_error(spec, argv, c, err);
        int i = option_index(spec, c);
        if (i < 0)
            return RAANA_INTERNAL(err, "getopt_long returned %d", c);
        if (i >= n && i - n < builtin)
            builtin = i - n; /* --help wins over --version */
        else if (i < n)
            RAANA_CALL(spec->on_option(ctx, i, spec->options[i].value ? optarg : NULL, err));
    }
    if (builtin < N_BUILTINS) {
        answer_builtin(spec, builtin);
        *done = 1;
        return RAANA_OK;
    }
    RAANA_CALL(check_operands(spec, argv + optind, argc - optind, err));
    return spec->finish ? spec->finish(ctx, argv + optind, argc - optind, err) : RAANA_OK;
}

raana_status raana_cli_parse(const raana_cli_spec *spec, int argc, char **argv, void *ctx,
                             int *done)
{
    raana_error err;
    raana_error_clear(&err);
    raana_status st = parse(spec, argc, argv, ctx, done, &err);
    if (st != RAANA_OK && raana_cli_launcher_rank() == 0)
        raana_cli_report(spec->tool, &err);
    return st;
}

int raana_cli_main(const raana_cli_spec *spec, int argc, char **argv, void *ctx,
                   raana_cli_runner run)
{
    int done;
    raana_status st = raana_cli_parse(spec, argc, argv, ctx, &done);
    if (st != RAANA_OK || done)
        return (int)st;
    raana_error err;
    raana_error_clear(&err);
    st = run(ctx, &err);
    return st == RAANA_OK ? 0 : raana_cli_report(spec->tool, &err);
}

int raana_cli_launcher_rank(void)
{
    const char *vars[] = {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "SLURM_PROCID"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        if (v)
            return atoi(v);
    }
    return 0;
}

int raana_cli_report(const char *tool, const raana_error *err)
{
    fprintf(stderr, "%s: error: %s\n", tool, err->msg);
    return (int)err->status;
}

raana_status raana_cli_int(const char *name, const char *value, long min, long max, int *out,
                           raana_error *err)
{
    char *end;
    long n = strtol(value, &end, 10);
    if (!*value || *end || n < min || n > max)
        return raana_fail(err, RAANA_ERR_USAGE, "--%s %s: expected an integer in %ld..%ld", name,
                          value, min, max);
    *out = (int)n;
    return RAANA_OK;
}
