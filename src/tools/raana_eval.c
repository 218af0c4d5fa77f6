/* raana_eval.c — main() of raana-eval: an original model and a quantized
 * model (or either alone) on the same windows of a text, run as a pipeline
 * over MPI ranks like calibration: perplexities with standard errors, their
 * ratio, the KL divergence of the next-token distributions and top-1
 * agreement. The sides: --model DIR (original), --container C (quantized,
 * from the container alone) or --compare DIR (quantized, a plain
 * checkpoint). Protocol: docs/EVALUATION.md; the pass: evaluate.h. */
#include <limits.h>
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "raana/blas_info.h"
#include "raana/calibrate.h"
#include "raana/comm.h"
#include "raana/container.h"
#include "raana/container_model.h"
#include "raana/evaluate.h"
#include "raana/file.h"
#include "raana/fingerprint.h"
#include "raana/json.h"
#include "raana/memory.h"

#include "cli.h"

enum {
    OPT_MODEL,
    OPT_CONTAINER,
    OPT_COMPARE,
    OPT_TEXT,
    OPT_SEQ_LEN,
    OPT_STRIDE,
    OPT_MAX_WINDOWS,
    OPT_JSON,
    OPT_QUIET
};

typedef struct {
    const char *model, *container, *compare, *text;
    int seq_len, stride, max_windows, json, quiet;
    int done; /* --help answered */
} eval_args;

static raana_status on_option(void *ctx, int option, const char *value, raana_error *err)
{
    eval_args *a = ctx;
    switch (option) {
    case OPT_MODEL: a->model = value; break;
    case OPT_CONTAINER: a->container = value; break;
    case OPT_COMPARE: a->compare = value; break;
    case OPT_TEXT: a->text = value; break;
    case OPT_SEQ_LEN: return raana_cli_int("seq-len", value, 2, 1048576, &a->seq_len, err);
    case OPT_STRIDE: return raana_cli_int("stride", value, 1, 1048576, &a->stride, err);
    case OPT_MAX_WINDOWS:
        return raana_cli_int("max-windows", value, 1, 1048576, &a->max_windows, err);
    case OPT_JSON: a->json = 1; break;
    case OPT_QUIET: a->quiet = 1; break;
    default: return RAANA_INTERNAL(err, "option %d not handled", option);
    }
    return RAANA_OK;
}

/* What concerns several options; no operands. */
static raana_status check_sides(void *ctx, char **operand, int n_operands, raana_error *err)
{
    (void)operand, (void)n_operands;
    const eval_args *a = ctx;
    if (a->container && a->compare)
        return raana_fail(err, RAANA_ERR_USAGE,
                          "--container and --compare are both the quantized side: give one");
    if (!a->model && !a->container && !a->compare)
        return raana_fail(err, RAANA_ERR_USAGE,
                          "nothing to evaluate: give --model, --container or --compare "
                          "(see --help)");
    if (!a->text)
        return raana_fail(err, RAANA_ERR_USAGE, "--text is required (see --help)");
    return RAANA_OK;
}

static const raana_cli_spec cli = {
    .tool = "raana-eval",
    .usage = "[OPTIONS] --text FILE",
    .description =
        "Evaluates an original model (--model), a quantized one (--container or\n"
        "--compare), or both, in one pass over the same windows of the UTF-8 text in\n"
        "FILE. At least one side; the tokenizer is --model's, else the quantized side's.\n"
        "The text is one token stream (bos once); windows of N tokens start every S\n"
        "tokens as long as they fit whole. The first window scores its predictions of\n"
        "tokens 1..N-1, each later one only its last min(S, N-1) (the Hugging Face\n"
        "sliding-window protocol, without its final partial window). Prints each side's\n"
        "perplexity +- its standard error (ppl * sd(nll) / sqrt(n)), and with both sides\n"
        "the ppl ratio quantized/original (and its ln), the mean, 99th percentile and\n"
        "maximum over scored tokens of KL(P_original || P_quantized) (nats) and the\n"
        "share of tokens whose argmax agrees. Runs under MPI (mpirun -n P raana-eval ...)\n"
        "like raana-mpi; the result does not depend on P.\n",
    .options =
        {
            [OPT_MODEL] = {"model", 0, "DIR",
                           "the original model (a Hugging Face checkpoint directory)"},
            [OPT_CONTAINER] = {"container", 0, "FILE",
                               "the quantized model, built from a raana container alone\n"
                               "(its config, tokenizer, unquantized tensors and dequantized\n"
                               "layers); with --model, DIR must be the checkpoint the\n"
                               "container was made from (checkpoint fingerprints compared)"},
            [OPT_COMPARE] = {"compare", 0, "DIR",
                             "the quantized side from a plain checkpoint directory"},
            [OPT_TEXT] = {"text", 0, "FILE", "the UTF-8 text to evaluate on (required)"},
            [OPT_SEQ_LEN] = {"seq-len", 0, "N",
                             "window length in tokens (default: the model's\n"
                             "max_position_embeddings, at most 2048)"},
            [OPT_STRIDE] = {"stride", 0, "S", "a window starts every S tokens (default N)"},
            [OPT_MAX_WINDOWS] = {"max-windows", 0, "N", "keep the first N windows only"},
            [OPT_JSON] = {"json", 0, NULL, "one JSON object on stdout instead of text"},
            [OPT_QUIET] = {"quiet", 0, NULL, "no progress lines on stderr"},
        },
    .epilog = "Exit codes: 2 usage, 4 bad input (text not UTF-8 or shorter than one window,\n"
              "--model not the container's checkpoint), 5 I/O, 6 memory, 7 MPI.\n"
              "Details: docs/EVALUATION.md.\n",
    .on_option = on_option,
    .finish = check_sides};

/* ---- the two sides ---------------------------------------------------------------- */

enum { ORIGINAL, QUANTIZED };

typedef struct {
    raana_stage side[2];
    const char *source[2]; /* what each side was read from, NULL if absent */
    raana_tokenizer *tok;
    raana_eval_windows windows;
} eval_job;

static void eval_job_free(eval_job *j)
{
    for (int k = 0; k < 2; k++)
        raana_stage_free(&j->side[k]);
    raana_tokenizer_free(j->tok);
    raana_eval_windows_free(&j->windows);
    memset(j, 0, sizeof *j);
}

/* The two sides must be the same architecture, so that they share a plan. */
static raana_status check_same_shape(const eval_job *j, raana_error *err)
{
    const raana_model_config *a = &j->side[ORIGINAL].model.config,
                             *b = &j->side[QUANTIZED].model.config;
    const struct {
        const char *key;
        int x, y;
    } dims[] = {{"vocab_size", a->vocab_size, b->vocab_size},
                {"hidden_size", a->hidden_size, b->hidden_size},
                {"intermediate_size", a->intermediate_size, b->intermediate_size},
                {"num_hidden_layers", a->num_layers, b->num_layers},
                {"num_attention_heads", a->num_heads, b->num_heads},
                {"num_key_value_heads", a->num_kv_heads, b->num_kv_heads},
                {"head_dim", a->head_dim, b->head_dim}};
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++)
        if (dims[i].x != dims[i].y)
            return raana_fail(
                err, RAANA_ERR_INPUT, "%s and %s are not the same architecture: %s %d vs %d",
                j->source[ORIGINAL], j->source[QUANTIZED], dims[i].key, dims[i].x, dims[i].y);
    const raana_plan *p = &j->side[ORIGINAL].plan, *q = &j->side[QUANTIZED].plan;
    for (int r = 0; r < p->n_ranks; r++)
        if (p->ranks[r].first_block != q->ranks[r].first_block ||
            p->ranks[r].n_blocks != q->ranks[r].n_blocks)
            return RAANA_INTERNAL(err, "the two sides' plans differ at rank %d", r);
    return RAANA_OK;
}

/* Headers of every side and the plan (the same for both). */
static raana_status open_sides(const eval_args *a, eval_job *j, int size, raana_error *err)
{
    raana_config cfg;
    raana_config_defaults(&cfg);
    cfg.seq_len = a->seq_len;
    if (a->model) {
        j->source[ORIGINAL] = a->model;
        RAANA_CALL(raana_stage_open(&j->side[ORIGINAL], a->model, &cfg, size, err));
    }
    if (a->compare) {
        j->source[QUANTIZED] = a->compare;
        RAANA_CALL(raana_stage_open(&j->side[QUANTIZED], a->compare, &cfg, size, err));
    }
    if (a->container) {
        raana_model m;
        memset(&m, 0, sizeof m);
        j->source[QUANTIZED] = a->container;
        RAANA_CALL(raana_container_model_open(&m, a->container, err));
        RAANA_CALL(raana_stage_open_model(&j->side[QUANTIZED], &m, &cfg, size, err));
    }
    if (j->source[ORIGINAL] && j->source[QUANTIZED])
        RAANA_CALL(check_same_shape(j, err));
    return RAANA_OK;
}

/* The checkpoint fingerprint the container at `path` records. */
static raana_status container_fingerprint(const char *path, uint64_t *made_from, raana_error *err)
{
    raana_status st = RAANA_OK;
    raana_container *c = NULL;
    RAANA_CHECK(raana_container_open(path, &c, err));
    RAANA_CHECK(raana_container_checkpoint_fingerprint(c, made_from, err));
cleanup:
    raana_container_close(c);
    return st;
}

/* Collective. --model must be the checkpoint the container was made from. */
static raana_status check_fingerprint(MPI_Comm comm, const eval_args *a, eval_job *j, int rank,
                                      raana_error *err)
{
    uint64_t made_from = 0;
    raana_fingerprints f;
    raana_status st = RAANA_OK;
    memset(&f, 0, sizeof f);
    RAANA_CHECK(raana_comm_agree(comm, container_fingerprint(a->container, &made_from, err), err));
    RAANA_CHECK(raana_fingerprint_checkpoint(comm, &j->side[ORIGINAL], rank, &f, err));
    if (f.checkpoint != made_from)
        RAANA_FAIL_GOTO(err, RAANA_ERR_INPUT,
                        "--model %s (checkpoint fingerprint %016llx) is not the checkpoint %s "
                        "was made from (%016llx)",
                        a->model, (unsigned long long)f.checkpoint, a->container,
                        (unsigned long long)made_from);
cleanup:
    raana_fingerprints_free(&f);
    return st;
}

/* The tokenizer: --model's, else the quantized side's (a container's
 * /model/tokenizer.json). */
static raana_status load_tokenizer(const eval_args *a, eval_job *j, raana_error *err)
{
    if (a->model || a->compare)
        return raana_tokenizer_create(&j->tok, a->model ? a->model : a->compare, err);
    char *json = NULL, label[4200];
    size_t len = 0;
    raana_container *c = NULL;
    raana_status st = RAANA_OK;
    snprintf(label, sizeof label, "%s:/model/tokenizer.json", a->container);
    RAANA_CHECK(raana_container_open(a->container, &c, err));
    RAANA_CHECK(raana_container_model_file(c, "tokenizer.json", &json, &len, err));
    if (!json)
        RAANA_FAIL_GOTO(err, RAANA_ERR_INPUT, "%s: not there (give --model DIR for a tokenizer)",
                        label);
    RAANA_CHECK(raana_tokenizer_parse(&j->tok, json, len, label, err));
cleanup:
    raana_container_close(c);
    free(json);
    return st;
}

static raana_status make_windows(const eval_args *a, eval_job *j, raana_error *err)
{
    const raana_stage *s = &j->side[j->source[ORIGINAL] ? ORIGINAL : QUANTIZED];
    int len = s->plan.seq_len, stride = a->stride ? a->stride : len;
    char *text = NULL;
    size_t n;
    raana_status st = RAANA_OK;
    RAANA_CHECK(raana_read_file(a->text, &text, &n, err));
    RAANA_CHECK(raana_text_check(text, n, err));
    RAANA_CHECK(
        raana_eval_windows_create(j->tok, text, n, len, stride, a->max_windows, &j->windows, err));
cleanup:
    if (st != RAANA_OK && st != RAANA_ERR_IO && st != RAANA_ERR_NOMEM)
        raana_error_prefix(err, "%s", a->text);
    free(text);
    return st;
}

static raana_status load_nets(eval_job *j, int rank, raana_error *err)
{
    for (int k = 0; k < 2; k++)
        if (j->source[k])
            RAANA_CALL(raana_stage_load(&j->side[k], rank, err));
    return RAANA_OK;
}

/* This rank's part of prepare: tokenizer, windows, weights. */
static raana_status prepare_local(const eval_args *a, eval_job *j, int rank, raana_error *err)
{
    RAANA_CALL(load_tokenizer(a, j, err));
    RAANA_CALL(make_windows(a, j, err));
    return load_nets(j, rank, err);
}

/* Collective: everything before the evaluation pass. */
static raana_status prepare(MPI_Comm comm, const eval_args *a, eval_job *j, int rank, int size,
                            raana_error *err)
{
    RAANA_CALL(raana_comm_agree(comm, open_sides(a, j, size, err), err));
    if (a->model && a->container)
        RAANA_CALL(raana_comm_agree(comm, check_fingerprint(comm, a, j, rank, err), err));
    return raana_comm_agree(comm, prepare_local(a, j, rank, err), err);
}

/* ---- output ---------------------------------------------------------------------- */

static void print_text(const eval_job *j, const raana_eval_result *r)
{
    printf("windows: %d of %d tokens (stride %d), scored tokens: %ld\n", r->windows, j->windows.len,
           j->windows.stride, r->scored);
    int m = 0;
    static const char *const names[2] = {"original", "quantized"};
    for (int k = 0; k < 2; k++)
        if (j->source[k]) {
            printf("%s perplexity: %.6f \u00b1 %.6f\n", names[k], r->model[m].perplexity,
                   r->model[m].perplexity_se);
            m++;
        }
    if (r->n_models == 2) {
        printf("ppl ratio: %.6f (ln %.6f)\n", r->ppl_ratio, r->ln_ppl_ratio);
        printf("KL divergence: mean %.6f, p99 %.6f, max %.6f\n", r->kl_mean, r->kl_p99, r->kl_max);
        printf("top-1 agreement: %.6f\n", r->top1_agreement);
    }
}

static cJSON *model_json(const raana_eval_model *m)
{
    cJSON *o = cJSON_CreateObject();
    raana_json_add_number(o, "perplexity", m->perplexity);
    raana_json_add_number(o, "perplexity_se", m->perplexity_se);
    raana_json_add_number(o, "mean_nll", m->mean_nll);
    return o;
}

static raana_status print_json(const eval_job *j, const raana_eval_result *r, raana_error *err)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "seq_len", j->windows.len);
    cJSON_AddNumberToObject(o, "stride", j->windows.stride);
    cJSON_AddNumberToObject(o, "windows", r->windows);
    cJSON_AddNumberToObject(o, "scored_tokens", (double)r->scored);
    int m = 0;
    static const char *const names[2] = {"original", "quantized"};
    for (int k = 0; k < 2; k++)
        if (j->source[k])
            cJSON_AddItemToObject(o, names[k], model_json(&r->model[m++]));
    if (r->n_models == 2) {
        raana_json_add_number(o, "ppl_ratio", r->ppl_ratio);
        raana_json_add_number(o, "ln_ppl_ratio", r->ln_ppl_ratio);
        cJSON *kl = cJSON_AddObjectToObject(o, "kl");
        raana_json_add_number(kl, "mean", r->kl_mean);
        raana_json_add_number(kl, "p99", r->kl_p99);
        raana_json_add_number(kl, "max", r->kl_max);
        raana_json_add_number(o, "top1_agreement", r->top1_agreement);
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!s)
        return raana_fail(err, RAANA_ERR_NOMEM, "out of memory for the JSON output");
    puts(s);
    free(s);
    return RAANA_OK;
}

int main(int argc, char **argv)
{
    eval_args a;
    memset(&a, 0, sizeof a);
    raana_status st = raana_cli_parse(&cli, argc, argv, &a, &a.done);
    if (st != RAANA_OK || a.done)
        return (int)st;
    raana_error err;
    raana_error_clear(&err);
    /* OpenBLAS spins forever when it cannot get its buffer (see raana-mpi) */
    const char *launch_rank = getenv("OMPI_COMM_WORLD_RANK");
    char who[32];
    snprintf(who, sizeof who, "rank %s", launch_rank ? launch_rank : "0");
    if ((st = raana_memory_check_startup(who, &err)) != RAANA_OK) {
        raana_cli_report(cli.tool, &err);
        fflush(stderr);
        _exit((int)st);
    }
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    raana_blas_report(rank == 0 && !a.quiet ? stderr : NULL, rank == 0 ? stderr : NULL,
                      "raana-eval");
    eval_job j;
    memset(&j, 0, sizeof j);
    st = prepare(MPI_COMM_WORLD, &a, &j, rank, size, &err);
    raana_eval_result res;
    if (st == RAANA_OK) {
        const raana_llama *nets[2];
        int n = 0;
        for (int k = 0; k < 2; k++)
            if (j.source[k])
                nets[n++] = &j.side[k].net;
        st = raana_pipeline_evaluate(MPI_COMM_WORLD, nets, n, &j.windows, &res,
                                     rank == 0 && !a.quiet ? stderr : NULL, &err);
    }
    if (rank == 0 && st == RAANA_OK) {
        if (a.json)
            st = print_json(&j, &res, &err);
        else
            print_text(&j, &res);
    }
    if (rank == 0 && st != RAANA_OK)
        raana_cli_report(cli.tool, &err);
    eval_job_free(&j);
    MPI_Finalize();
    return (int)st;
}
