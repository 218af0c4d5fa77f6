/* calibrate.c — the per-rank stage and the pipeline-parallel calibration
 * pass over MPI ranks (see calibrate.h; the text and its windows:
 * calib_text.c).
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
#include "raana/expert_stats.h"
#include "raana/link.h"
#include "raana/memory.h"

/* ---- the stage ------------------------------------------------------------- */

raana_status raana_stage_open(raana_stage *s, const char *model_dir, const raana_config *cfg,
                              int n_ranks, raana_error *err)
{
    raana_status st = raana_model_open(&s->model, model_dir, err);
    s->model_open = st == RAANA_OK;
    if (st == RAANA_OK)
        st = raana_plan_create(&s->model.config, cfg, n_ranks, &s->plan, err);
    return st;
}

raana_status raana_stage_open_model(raana_stage *s, raana_model *model, const raana_config *cfg,
                                    int n_ranks, raana_error *err)
{
    s->model = *model;
    memset(model, 0, sizeof *model);
    s->model_open = 1;
    return raana_plan_create(&s->model.config, cfg, n_ranks, &s->plan, err);
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

/* Columns of the per-layer accumulator: the five statistics summed over
 * the windows in which the layer saw tokens, that number of windows, and
 * the tokens (rows) over all windows. An expert's statistics are over the
 * tokens routed to it (docs/MOE.md). */
#define ACC_COLS 7

/* Adds one window's per-layer numbers (this rank's blocks) to acc. */
static void add_window_stats(const raana_plan *plan, const raana_llama *net,
                             const raana_linear_stats *s, double *acc)
{
    int first = raana_block_linear_offset(&net->cfg, net->first_block);
    int end = raana_block_linear_offset(&net->cfg, net->first_block + net->n_blocks);
    for (int li = first; li < end; li++) {
        const raana_plan_layer *layer = &plan->layers[li];
        const raana_linear_stats *ls = &s[li - first];
        double *a = acc + (size_t)li * ACC_COLS;
        a[6] += ls->rows;
        if (ls->rows <= 0)
            continue;
        a[0] += sqrt(ls->dy_sq) / sqrt(ls->rows * layer->d_out);
        a[1] += sqrt(ls->x_sq) / sqrt(ls->rows);
        a[2] += sqrt(ls->x_sq);
        a[3] += sqrt(ls->y_sq);
        a[4] += sqrt(ls->dy_sq);
        a[5] += 1;
    }
}

/* The reduced accumulator into stats (mean over the windows that routed
 * tokens to the layer), with the unrouted-expert fallback; prints the
 * tokens per expert of a mixture of experts on rank 0. */
static raana_status finish_stats(const raana_plan *plan, const double *all, int rank,
                                 raana_layer_stats *stats, FILE *progress, raana_error *err)
{
    double *tokens = malloc((size_t)(plan->n_layers ? plan->n_layers : 1) * sizeof *tokens);
    if (!tokens)
        return raana_fail(err, RAANA_ERR_NOMEM, "out of memory for %d layers", plan->n_layers);
    for (int li = 0; li < plan->n_layers; li++) {
        const double *a = all + (size_t)li * ACC_COLS;
        double w = a[5] > 0 ? a[5] : 1;
        stats[li] = (raana_layer_stats){a[0] / w, a[1] / w, a[2] / w, a[3] / w, a[4] / w};
        tokens[li] = a[6];
    }
    int filled = raana_expert_stats_fallback(plan, tokens, stats);
    if (progress && rank == 0) {
        raana_expert_tokens_print(progress, plan, tokens);
        if (filled)
            fprintf(progress,
                    "%d expert layers saw no calibration token: they use the mean statistics "
                    "of their routed siblings\n",
                    filled);
    }
    free(tokens);
    return RAANA_OK;
}

raana_status raana_pipeline_calibrate(MPI_Comm comm, const raana_llama *net, const raana_plan *plan,
                                      const raana_windows *w, raana_layer_stats *stats,
                                      double *loss, FILE *progress, raana_error *err)
{
    raana_link l;
    raana_link_init(&l, comm, (size_t)w->len * net->cfg.hidden_size);
    int n = w->n, nb = net->n_blocks, failed = 0;
    size_t n_acc = (size_t)plan->n_layers * ACC_COLS;
    size_t n_slots = (size_t)(raana_block_linear_offset(&net->cfg, net->first_block + nb) -
                              raana_block_linear_offset(&net->cfg, net->first_block));
    float *hidden = malloc((l.count + 1) * sizeof *hidden);
    float *grads = malloc((size_t)n * (l.count + 1) * sizeof *grads); /* last rank: head grads */
    raana_llama_trace **traces = calloc((size_t)n, sizeof *traces);
    raana_linear_stats *ws = malloc((n_slots ? n_slots : 1) * sizeof *ws);
    double *acc = calloc(n_acc, sizeof *acc), *all = calloc(n_acc, sizeof *all), sums = 0;
    double t0 = MPI_Wtime();
    if (!hidden || !grads || !traces || !ws || !acc || !all) {
        failed = 1;
        raana_fail(err, RAANA_ERR_NOMEM, "out of memory for %d calibration windows", n);
    }
    for (int i = 0; i < n && hidden && grads && traces; i++) { /* forward, every window */
        const int *tokens = w->tokens + (size_t)i * w->len;
        failed =
            raana_link_forward(&l, &net, 1, tokens, w->len, i, hidden, &traces[i], failed, err);
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
        memset(ws, 0, (n_slots ? n_slots : 1) * sizeof *ws);
        if (!failed && traces[i]) {
            failed |= raana_llama_backward_blocks(net, traces[i], g, ws, err) != RAANA_OK;
            add_window_stats(plan, net, ws, acc);
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
        st = finish_stats(plan, all, l.rank, stats, progress, err);
        *loss = sums / n;
    }
    for (int i = 0; traces && i < n; i++)
        raana_llama_trace_free(traces[i]);
    free(traces), free(hidden), free(grads), free(ws), free(acc), free(all);
    return st;
}
