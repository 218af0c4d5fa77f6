/* raana_eval.c — main() of raana-eval: perplexity of a checkpoint on a text,
 * run as a pipeline over MPI ranks like calibration. The text is one token
 * stream (bos once), cut into non-overlapping windows of --seq-len tokens,
 * each scored on its own; the remainder is dropped. */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raana/calibrate.h"
#include "raana/comm.h"
#include "raana/container.h"
#include "raana/file.h"

static const char usage_text[] =
    "usage: raana-eval --model DIR --text FILE [--container FILE.h5] [--seq-len N] [--quiet]\n"
    "\n"
    "Perplexity of the checkpoint in DIR on the UTF-8 text in FILE: one token stream\n"
    "(bos once) cut into non-overlapping windows of N tokens (default: the model's\n"
    "max_position_embeddings, at most 2048), each scored on its own. Runs under MPI\n"
    "like raana-mpi (mpirun -n P raana-eval ...); the result does not depend on P.\n"
    "Prints 'perplexity: X' and the number of scored tokens.\n"
    "With --container, the quantized layers of a raana container (made from DIR)\n"
    "replace their weights: the quantized model's perplexity.\n";

typedef struct {
    const char *model, *text, *container;
    int seq_len, quiet, help;
} eval_args;

static raana_status parse_args(int argc, char **argv, eval_args *a, raana_error *err)
{
    memset(a, 0, sizeof *a);
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(s, "-h") || !strcmp(s, "--help"))
            a->help = 1;
        else if (!strcmp(s, "--quiet"))
            a->quiet = 1;
        else if ((!strcmp(s, "--model") || !strcmp(s, "--text") || !strcmp(s, "--seq-len") ||
                  !strcmp(s, "--container")) &&
                 !v)
            return raana_fail(err, RAANA_ERR_USAGE, "%s needs a value", s);
        else if (!strcmp(s, "--model"))
            a->model = argv[++i];
        else if (!strcmp(s, "--text"))
            a->text = argv[++i];
        else if (!strcmp(s, "--container"))
            a->container = argv[++i];
        else if (!strcmp(s, "--seq-len")) {
            char *end;
            long n = strtol(argv[++i], &end, 10);
            if (*end || n < 2 || n > 1048576)
                return raana_fail(err, RAANA_ERR_USAGE, "--seq-len %s: expected 2..1048576",
                                  argv[i]);
            a->seq_len = (int)n;
        } else
            return raana_fail(err, RAANA_ERR_USAGE, "unknown argument '%s' (see --help)", s);
    }
    if (!a->help && (!a->model || !a->text))
        return raana_fail(err, RAANA_ERR_USAGE, "--model and --text are required (see --help)");
    return RAANA_OK;
}

/* Replaces this rank's quantized layers' weights by their dequantization
 * from the container (each rank reads its own layers, without MPI-IO). */
static raana_status load_quantized(raana_stage *s, const char *path, raana_error *err)
{
    hid_t file;
    raana_status st = raana_container_open(path, &file, err);
    int first = s->net.first_block, last = first + s->net.n_blocks;
    for (int i = 0; st == RAANA_OK && i < s->plan.n_layers; i++) {
        const raana_plan_layer *l = &s->plan.layers[i];
        if (l->block < first || l->block >= last)
            continue;
        char group[200];
        snprintf(group, sizeof group, "/layers/%s", l->name);
        if (H5Lexists(file, "/layers", H5P_DEFAULT) <= 0 ||
            H5Lexists(file, group, H5P_DEFAULT) <= 0)
            continue; /* kept in original precision */
        raana_qlayer q;
        st = raana_container_read_layer(file, path, l->name, &q, err);
        if (st == RAANA_OK && (q.d_in != l->d_in || q.d_out != l->d_out))
            st = raana_fail(err, RAANA_ERR_INPUT, "%s: layer %s is %dx%d, the model's is %dx%d",
                            path, l->name, q.d_out, q.d_in, l->d_out, l->d_in);
        if (st == RAANA_OK)
            st = raana_qlayer_dequantize(&q, s->net.blocks[l->block - first].w[l->kind], err);
        if (st == RAANA_OK)
            raana_qlayer_free(&q);
    }
    if (st == RAANA_OK)
        H5Fclose(file);
    return st;
}

static raana_status prepare(const eval_args *a, raana_stage *s, int rank, int size,
                            raana_error *err)
{
    raana_config cfg;
    char *text = NULL;
    size_t len;
    raana_config_defaults(&cfg);
    cfg.seq_len = a->seq_len;
    raana_status st = raana_stage_open(s, a->model, &cfg, size, err);
    if (st == RAANA_OK)
        st = raana_tokenizer_load(&s->tok, a->model, err);
    if (st == RAANA_OK && (st = raana_read_file(a->text, &text, &len, err)) == RAANA_OK) {
        st = raana_windows_eval(s->tok, text, len, s->plan.seq_len, &s->windows, err);
        if (st != RAANA_OK)
            raana_error_prefix(err, "%s", a->text);
    }
    free(text);
    if (st == RAANA_OK)
        st = raana_stage_load(s, rank, err);
    if (st == RAANA_OK && a->container)
        st = load_quantized(s, a->container, err);
    return st;
}

int main(int argc, char **argv)
{
    eval_args a;
    raana_error err;
    raana_error_clear(&err);
    raana_status st = parse_args(argc, argv, &a, &err);
    if (st != RAANA_OK || a.help) {
        if (st != RAANA_OK)
            fprintf(stderr, "raana-eval: error: %s\n", err.msg);
        else
            fputs(usage_text, stdout);
        return (int)st;
    }
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    raana_stage s;
    memset(&s, 0, sizeof s);
    st = raana_comm_agree(MPI_COMM_WORLD, prepare(&a, &s, rank, size, &err), &err);
    double nll = 0;
    long count = 0;
    if (st == RAANA_OK)
        st = raana_pipeline_eval(MPI_COMM_WORLD, &s.net, &s.windows, &nll, &count,
                                 rank == 0 && !a.quiet ? stderr : NULL, &err);
    if (rank == 0) {
        if (st == RAANA_OK)
            printf("perplexity: %.6f\nmean_nll: %.9f\nscored_tokens: %ld\nwindows: %d of %d "
                   "tokens\n",
                   exp(nll / count), nll / count, count, s.windows.n, s.windows.len);
        else
            fprintf(stderr, "raana-eval: error: %s\n", err.msg);
    }
    raana_stage_free(&s);
    MPI_Finalize();
    return (int)st;
}
