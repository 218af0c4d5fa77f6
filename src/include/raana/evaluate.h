/* evaluate.h — evaluation of one model, or of an original and a quantized
 * model side by side, on a text: the sliding windows over the text's token
 * stream, and the pipeline pass over MPI ranks that scores them (per-token
 * NLL of each model; for two models the KL divergence of their next-token
 * distributions and whether their argmax agrees). Protocol: docs/EVALUATION.md.
 * Every window's arithmetic is the same whichever rank runs which block, and
 * every summary is taken on one rank in token order, so results do not
 * depend on the number of ranks. */
#ifndef RAANA_EVALUATE_H
#define RAANA_EVALUATE_H

#include <mpi.h>
#include <stdio.h>

#include "raana/error.h"
#include "raana/llama.h"
#include "raana/tokenizer.h"

/* Fails (RAANA_ERR_INPUT, naming the byte offset) unless text[0..n) is valid
 * UTF-8 without NUL bytes. */
raana_status raana_text_check(const char *text, size_t n, raana_error *err);

/* The text as one token stream with bos once, and windows of len tokens
 * starting every stride tokens (i * stride), as many as fit whole (the
 * remainder is dropped), at most max_windows (0: no limit). Window i scores
 * the predictions of the tokens at its positions first..len-1 that no
 * earlier window scored: first = 1 for window 0, max(1, len - stride) after
 * (the Hugging Face sliding-window protocol). */
typedef struct {
    int n, len, stride;
    size_t n_tokens; /* of the stream */
    int *tokens;     /* the stream */
} raana_eval_windows;

/* Fails if the text has fewer tokens than one window. */
raana_status raana_eval_windows_create(const raana_tokenizer *tok, const char *text, size_t n,
                                       int len, int stride, int max_windows, raana_eval_windows *w,
                                       raana_error *err);
void raana_eval_windows_free(raana_eval_windows *w);
/* Window i's tokens (len of them) and its first scored position. */
const int *raana_eval_window_tokens(const raana_eval_windows *w, int i);
int raana_eval_window_first(const raana_eval_windows *w, int i);
/* Scored tokens over all windows. */
long raana_eval_windows_scored(const raana_eval_windows *w);

/* One model's numbers: mean per-token NLL, its sample standard deviation,
 * perplexity exp(mean_nll) and its standard error by the delta method,
 * ppl * sd / sqrt(n). */
typedef struct {
    double mean_nll, nll_sd, perplexity, perplexity_se;
} raana_eval_model;

typedef struct {
    int windows, n_models;
    long scored;
    raana_eval_model model[2];
    /* with two models (P = model 0, Q = model 1): */
    double ln_ppl_ratio, ppl_ratio; /* mean_nll[1] - mean_nll[0], its exp */
    double kl_mean, kl_p99, kl_max; /* KL(P || Q) per scored position */
    double top1_agreement;          /* share of positions where the argmaxes agree */
} raana_eval_result;

/* Collective. nets[n_models] (1 or 2, this rank's blocks of each per the same
 * plan) over the windows; fills *res on every rank. progress (rank 0 only,
 * may be NULL) gets one line per window. */
raana_status raana_pipeline_evaluate(MPI_Comm comm, const raana_llama *const *nets, int n_models,
                                     const raana_eval_windows *w, raana_eval_result *res,
                                     FILE *progress, raana_error *err);

#endif
