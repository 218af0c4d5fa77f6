/* calibrate.c — calibration windows, the per-rank stage and the
 * pipeline-parallel calibration pass over MPI ranks (see calibrate.h).
 *
 * Protocol (messages: link.h): window i's activations go rank r -> r+1 with
 * tag i, its gradients r+1 -> r with tag n + i. Calibration runs every window's
 * forward before the backward passes (GPipe order), keeping one trace per
 * window. */
#include "raana/calibrate.h"

#include "raana/fault.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "raana/comm.h"
#include "raana/link.h"
#include "raana/memory.h"

const char raana_zeroshot_sentence[] =
    "The curious fox leaped over the quiet stream, its reflection rippling in the golden "
    "afternoon light. ";

/* ---- windows ---------------------------------------------------------------- */

void raana_windows_free(raana_windows *w)
{
    free(w->tokens);
    memset(w, 0, sizeof *w);
}

raana_status raana_windows_calib(const raana_tokenizer *tok, const char *text, size_t n, int len,
                                 int max_windows, raana_windows *w, raana_error *err)
{
    int *ids, bos = raana_tokenizer_bos(tok), body = bos >= 0 ? len - 1 : len;
    size_t count;
    memset(w, 0, sizeof *w);
    raana_status st = raana_tokenizer_encode(tok, text, n, 0, &ids, &count, err);
    if (st != RAANA_OK)
        return st;
    size_t available = body > 0 ? count / (size_t)body : 0;
    if (available == 0) {
        free(ids);
        return raana_fail(err, RAANA_ERR_INPUT,
                          "the calibration text has %zu tokens, fewer than one window of %d "
                          "(seq_len)",
                          count, len);
    }
    w->n = (int)(available < (size_t)max_windows ? available : (size_t)max_windows);
    w->len = len;
    w->tokens = malloc((size_t)w->n * len * sizeof *w->tokens);
    if (!w->tokens) {
        free(ids);
        return raana_fail(err, RAANA_ERR_NOMEM, "out of memory for calibration windows");
    }
    for (int i = 0; i < w->n; i++) {
        int *dst = w->tokens + (size_t)i * len;
        if (bos >= 0)
            *dst++ = bos;
        memcpy(dst, ids + (size_t)i * body, (size_t)body * sizeof *ids);
    }
    free(ids);
    return RAANA_OK;
}

raana_status raana_stage_open(raana_stage *s, const char *model_dir, const raana_config *cfg,
                              int n_ranks, raana_error *err)
{
    raana_status st = raana_model_open(&s->model, model_dir, err);
    s->model_open = st == RAANA_OK;
    if (st == RAANA_OK)
        st = raana_plan_build(&s->model.config, cfg, n_ranks, &s->plan, err);
    return st;
}

raana_status raana_stage_open_model(raana_stage *s, raana_model *model, const raana_config *cfg,
                                    int n_ranks, raana_error *err)
{
    s->model = *model;
    memset(model, 0, sizeof *model);
    s->model_open = 1;
    return raana_plan_build(&s->model.config, cfg, n_ranks, &s->plan, err);
}

raana_status raana_stage_check_memory(int rank, uint64_t planned_bytes, raana_error *err)
{
    raana_memory_state mem;
    raana_memory_read(&mem);
    if (raana_memory_check(&mem, planned_bytes, rank, err) == RAANA_OK)
        return RAANA_OK;
    err->agreed = 1; /* the message names the rank */
    return err->status;
}

raana_status raana_stage_load(raana_stage *s, int rank, raana_error *err)
{
    const raana_plan_rank *r = &s->plan.ranks[rank];
    raana_status st = raana_stage_check_memory(rank, r->forward_peak_bytes, err);
    if (st != RAANA_OK)
        return st;
    st = raana_llama_load(&s->net, &s->model, r->first_block, r->n_blocks, r->owns_embedding,
                          r->owns_head, err);
    s->net_loaded = st == RAANA_OK;
    return st;
}

void raana_stage_free(raana_stage *s)
{
    if (s->net_loaded)
        raana_llama_free(&s->net);
    free(s->w_fro);
    raana_windows_free(&s->windows);
    raana_tokenizer_free(s->tok);
    raana_plan_free(&s->plan);
    if (s->model_open)
        raana_model_close(&s->model);
    memset(s, 0, sizeof *s);
}

/* ---- calibration -------------------------------------------------------------------- */

/* Adds one window's per-layer numbers (this rank's blocks) to acc. */
static void add_window_stats(const raana_plan *plan, int first_block, int n_blocks, int t,
                             const raana_linear_stats *s, double *acc)
{
    for (int b = 0; b < n_blocks; b++)
        for (int k = 0; k < RAANA_LINEAR_COUNT; k++) {
            int li = (first_block + b) * RAANA_LINEAR_COUNT + k;
            const raana_plan_layer *layer = &plan->layers[li];
            const raana_linear_stats *ls = &s[b * RAANA_LINEAR_COUNT + k];
            double *a = acc + (size_t)li * 5;
            a[0] += sqrt(ls->dy_sq) / sqrt((double)t * layer->d_out);
            a[1] += sqrt(ls->x_sq) / sqrt((double)t);
            a[2] += sqrt(ls->x_sq);
            a[3] += sqrt(ls->y_sq);
            a[4] += sqrt(ls->dy_sq);
        }
}

raana_status raana_pipeline_calibrate(MPI_Comm comm, const raana_llama *net, const raana_plan *plan,
                                      const raana_windows *w, raana_layer_stats *stats,
                                      double *loss, FILE *progress, raana_error *err)
{
    raana_link l;
    raana_link_init(&l, comm, (size_t)w->len * net->cfg.hidden_size);
    int n = w->n, nb = net->n_blocks, failed = 0;
    size_t n_acc = (size_t)plan->n_layers * 5;
    float *hidden = malloc((l.count + 1) * sizeof *hidden);
    float *grads = malloc((size_t)n * (l.count + 1) * sizeof *grads); /* last rank: head grads */
    raana_llama_trace **traces = calloc((size_t)n, sizeof *traces);
    raana_linear_stats *ws = malloc((size_t)(nb ? nb : 1) * RAANA_LINEAR_COUNT * sizeof *ws);
    double *acc = calloc(n_acc, sizeof *acc), *all = calloc(n_acc, sizeof *all), sums = 0;
    double t0 = MPI_Wtime();
    if (!hidden || !grads || !traces || !ws || !acc || !all) {
        failed = 1;
        raana_fail(err, RAANA_ERR_NOMEM, "out of memory for %d calibration windows", n);
    }
    for (int i = 0; i < n && hidden && grads && traces; i++) { /* forward, every window */
        const int *tokens = w->tokens + (size_t)i * w->len;
        failed = raana_link_forward(&l, &net, 1, tokens, w->len, i, hidden, &traces[i], failed, err);
        if (l.rank == l.size - 1 && !failed) {
            double li;
            failed |= raana_llama_head(net, hidden, tokens, w->len, NULL, &li,
                                       grads + (size_t)i * (l.count + 1), err) != RAANA_OK;
            sums += li;
        }
        raana_fault_point("calibrate", l.rank);
        if (l.rank == 0)
            raana_progress_line(progress, "calibrate (forward)", i + 1, n, t0);
    }
    for (int i = 0; i < n && hidden && grads && traces && ws && acc; i++) { /* backward */
        float *g = l.rank == l.size - 1 ? grads + (size_t)i * (l.count + 1) : hidden;
        if (l.rank < l.size - 1)
            failed |= raana_link_recv(&l, l.rank + 1, n + i, g);
        memset(ws, 0, (size_t)(nb ? nb : 1) * RAANA_LINEAR_COUNT * sizeof *ws);
        if (!failed && traces[i]) {
            failed |= raana_llama_backward_blocks(net, traces[i], g, ws, err) != RAANA_OK;
            add_window_stats(plan, net->first_block, nb, w->len, ws, acc);
        } else
            raana_llama_trace_free(traces[i]);
        traces[i] = NULL;
        if (l.rank > 0)
            raana_link_send(&l, l.rank - 1, n + i, g, failed);
        if (l.rank == 0)
            raana_progress_line(progress, "calibrate (backward)", i + 1, n, t0);
    }
    raana_status st = raana_comm_agree(comm, failed ? err->status : RAANA_OK, err);
    if (st == RAANA_OK) { /* each layer's numbers come from exactly one rank */
        MPI_Allreduce(acc, all, (int)n_acc, MPI_DOUBLE, MPI_SUM, comm);
        MPI_Bcast(&sums, 1, MPI_DOUBLE, l.size - 1, comm);
        for (int li = 0; li < plan->n_layers; li++) {
            const double *a = all + (size_t)li * 5;
            stats[li] = (raana_layer_stats){a[0] / n, a[1] / n, a[2] / n, a[3] / n, a[4] / n};
        }
        *loss = sums / n;
    }
    for (int i = 0; traces && i < n; i++)
        raana_llama_trace_free(traces[i]);
    free(traces), free(hidden), free(grads), free(ws), free(acc), free(all);
    return st;
}
