/* evaluate.c — text checks, sliding evaluation windows and the evaluation
 * pass over MPI ranks (see evaluate.h; protocol in docs/EVALUATION.md).
 *
 * Window i's activations of every model go rank r -> r+1 in one message
 * with tag i (link.h). The last rank turns them into logits, scores the
 * window's new positions and keeps every per-token value, so the summaries
 * (means, standard errors, the exact 99th percentile and maximum) are taken
 * over all scored tokens at once, in token order, then broadcast. */
#include "raana/evaluate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "raana/comm.h"
#include "raana/link.h"
#include "raana/scores.h"

raana_status raana_text_check(const char *text, size_t n, raana_error *err)
{
    const utf8proc_uint8_t *s = (const utf8proc_uint8_t *)text;
    size_t at = 0;
    while (at < n) {
        utf8proc_int32_t c;
        utf8proc_ssize_t step = utf8proc_iterate(s + at, (utf8proc_ssize_t)(n - at), &c);
        if (step < 0)
            return raana_fail(err, RAANA_ERR_INPUT, "not valid UTF-8 at byte offset %zu", at);
        if (c == 0)
            return raana_fail(err, RAANA_ERR_INPUT, "not text: a NUL byte at byte offset %zu", at);
        at += (size_t)step;
    }
    return RAANA_OK;
}

/* ---- windows ---------------------------------------------------------------- */

raana_status raana_eval_windows_create(const raana_tokenizer *tok, const char *text, size_t n,
                                       int len, int stride, int max_windows, raana_eval_windows *w,
                                       raana_error *err)
{
    raana_status st = RAANA_OK;
    int *ids = NULL;
    size_t count;
    memset(w, 0, sizeof *w);
    RAANA_CHECK(raana_tokenizer_encode(tok, text, n, 1, &ids, &count, err));
    if (count < (size_t)len)
        RAANA_FAIL_GOTO(err, RAANA_ERR_INPUT,
                        "the text has %zu tokens, fewer than one window of %d", count, len);
    size_t fit = (count - (size_t)len) / (size_t)stride + 1;
    if (max_windows > 0 && fit > (size_t)max_windows)
        fit = (size_t)max_windows;
    if (fit > 1u << 30)
        RAANA_FAIL_GOTO(err, RAANA_ERR_INPUT, "%zu windows of %d tokens are too many", fit, len);
    w->n = (int)fit, w->len = len, w->stride = stride;
    w->n_tokens = count, w->tokens = ids;
    ids = NULL; /* w's now */
cleanup:
    free(ids);
    return st;
}

void raana_eval_windows_free(raana_eval_windows *w)
{
    free(w->tokens);
    memset(w, 0, sizeof *w);
}

const int *raana_eval_window_tokens(const raana_eval_windows *w, int i)
{
    return w->tokens + (size_t)i * (size_t)w->stride;
}

int raana_eval_window_first(const raana_eval_windows *w, int i)
{
    if (i == 0 || w->stride >= w->len)
        return 1;
    return w->len - w->stride;
}

long raana_eval_windows_scored(const raana_eval_windows *w)
{
    long total = 0;
    for (int i = 0; i < w->n; i++)
        total += w->len - raana_eval_window_first(w, i);
    return total;
}

/* ---- scoring (last rank) ----------------------------------------------------------- */

/* Every scored position's numbers, in token order. */
typedef struct {
    double *nll[2], *kl;
    long n, agree;
} token_values;

static raana_status token_values_alloc(token_values *tv, long scored, int n_models,
                                       raana_error *err)
{
    memset(tv, 0, sizeof *tv);
    size_t n = scored > 0 ? (size_t)scored : 1;
    int ok = 1;
    for (int m = 0; m < n_models; m++)
        ok &= (tv->nll[m] = malloc(n * sizeof(double))) != NULL;
    if (n_models == 2)
        ok &= (tv->kl = malloc(n * sizeof(double))) != NULL;
    return ok ? RAANA_OK
              : raana_fail(err, RAANA_ERR_NOMEM, "out of memory for %ld per-token values", scored);
}

static void token_values_free(token_values *tv)
{
    free(tv->nll[0]), free(tv->nll[1]), free(tv->kl);
    memset(tv, 0, sizeof *tv);
}

/* Logits of every model for one window (hidden: the models' activations one
 * after the other), then its scored positions into tv. */
static raana_status score_window(const raana_llama *const *nets, int n_models, const float *hidden,
                                 const int *tokens, int len, int first, float *logits,
                                 token_values *tv, raana_error *err)
{
    size_t h = (size_t)nets[0]->cfg.hidden_size, v = (size_t)nets[0]->cfg.vocab_size;
    for (int m = 0; m < n_models; m++)
        RAANA_CALL(raana_llama_logits(nets[m], hidden + (size_t)m * len * h, len,
                                      logits + (size_t)m * len * v, err));
    for (int p = first; p < len; p++, tv->n++) { /* row p - 1 predicts token p */
        const float *row[2];
        double lse[2];
        for (int m = 0; m < n_models; m++) {
            row[m] = logits + (size_t)m * len * v + (size_t)(p - 1) * v;
            lse[m] = raana_logsumexp(row[m], (int)v);
            tv->nll[m][tv->n] = lse[m] - (double)row[m][tokens[p]];
        }
        if (n_models == 2) {
            tv->kl[tv->n] = raana_kl_logits(row[0], lse[0], row[1], lse[1], (int)v);
            tv->agree += raana_argmax(row[0], (int)v) == raana_argmax(row[1], (int)v);
        }
    }
    return RAANA_OK;
}

/* The summaries over all scored tokens (sorts tv->kl). */
static void summarize(token_values *tv, int n_models, raana_eval_result *res)
{
    size_t n = (size_t)tv->n;
    res->scored = tv->n;
    for (int m = 0; m < n_models; m++) {
        raana_eval_model *r = &res->model[m];
        r->mean_nll = raana_mean(tv->nll[m], n);
        r->nll_sd = raana_sd(tv->nll[m], n, r->mean_nll);
        r->perplexity = exp(r->mean_nll);
        r->perplexity_se = r->perplexity * r->nll_sd / sqrt((double)n);
    }
    if (n_models == 2) {
        res->ln_ppl_ratio = res->model[1].mean_nll - res->model[0].mean_nll;
        res->ppl_ratio = exp(res->ln_ppl_ratio);
        res->kl_mean = raana_mean(tv->kl, n);
        res->kl_p99 = raana_quantile_sort(tv->kl, n, 0.99);
        res->kl_max = tv->kl[n - 1];
        res->top1_agreement = (double)tv->agree / (double)n;
    }
}

/* ---- the pass ------------------------------------------------------------------------ */

raana_status raana_pipeline_evaluate(MPI_Comm comm, const raana_llama *const *nets, int n_models,
                                     const raana_eval_windows *w, raana_eval_result *res,
                                     FILE *progress, raana_error *err)
{
    size_t one = (size_t)w->len * (size_t)nets[0]->cfg.hidden_size;
    raana_link l;
    raana_link_init(&l, comm, one * (size_t)n_models);
    int last = l.rank == l.size - 1, failed = 0;
    memset(res, 0, sizeof *res);
    res->windows = w->n, res->n_models = n_models;
    token_values tv;
    memset(&tv, 0, sizeof tv);
    float *hidden = malloc((l.count + 1) * sizeof *hidden), *logits = NULL;
    if (!hidden)
        failed = raana_fail(err, RAANA_ERR_NOMEM, "out of memory for activations") != RAANA_OK;
    else if (last) {
        size_t n_logits = (size_t)n_models * w->len * (size_t)nets[0]->cfg.vocab_size;
        failed = token_values_alloc(&tv, raana_eval_windows_scored(w), n_models, err) != RAANA_OK;
        if (!failed && !(logits = malloc(n_logits * sizeof *logits)))
            failed = raana_fail(err, RAANA_ERR_NOMEM, "out of memory for logits") != RAANA_OK;
    }
    double t0 = MPI_Wtime();
    for (int i = 0; i < w->n && hidden; i++) {
        const int *tokens = raana_eval_window_tokens(w, i);
        failed =
            raana_link_forward(&l, nets, n_models, tokens, w->len, i, hidden, NULL, failed, err);
        if (last && !failed)
            failed = score_window(nets, n_models, hidden, tokens, w->len,
                                  raana_eval_window_first(w, i), logits, &tv, err) != RAANA_OK;
        if (l.rank == 0)
            raana_progress_line(progress, "eval", i + 1, w->n, t0);
    }
    if (last && !failed)
        summarize(&tv, n_models, res);
    free(hidden), free(logits);
    token_values_free(&tv);
    RAANA_CALL(raana_comm_agree(comm, failed ? err->status : RAANA_OK, err));
    MPI_Bcast(res, (int)sizeof *res, MPI_BYTE, l.size - 1, comm);
    return RAANA_OK;
}
