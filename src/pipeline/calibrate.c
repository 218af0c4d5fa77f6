/* calibrate.c — the per-rank stage and the pipeline-parallel calibration
 * pass over MPI ranks (see calibrate.h; the text and its windows:
 * calib_text.c).
 *
 * Protocol (messages: link.h): window i's activations go rank r -> r+1 with
 * tag i, its gradients r+1 -> r with tag n + i. Calibration runs in rounds
 * of M windows in flight (plan.h): the forward passes of windows
 * [k M, k M + M), keeping one trace per window, then their backward passes,
 * both in window order, then the next round. Every rank uses the same M (it
 * is in the plan, and auto's run-time fit is agreed). The statistics and the
 * loss are summed in window order whatever M is, so results are
 * bit-identical for every M. An expert team (expert_team.h) adds its own
 * messages, on its own communicator, between a block's owner and the ranks
 * that compute some of its experts. */
#include "raana/calibrate.h"

#include "raana/fault.h"
#include "raana/huge_alloc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "raana/allocate.h"
#include "raana/comm.h"
#include "raana/expert_stats.h"
#include "raana/joblog.h"
#include "raana/link.h"
#include "raana/memory.h"
#include "raana/memory_estimate.h"

/* ---- the stage ------------------------------------------------------------- */

/* The candidate 16 keeps a layer's checkpoint weight as it is, which is 16
 * bits only for a BF16 or F16 tensor (allocate.h, RAANA_BITS_KEEP). */
static raana_status check_keep_dtypes(const raana_stage *s, const raana_config *cfg,
                                      raana_error *err)
{
    if (cfg->bits[cfg->n_bits - 1] != RAANA_BITS_KEEP)
        return RAANA_OK;
    for (int i = 0; i < s->plan.n_layers; i++) {
        const raana_plan_layer *l = &s->plan.layers[i];
        if (!l->quantize)
            continue;
        char name[sizeof l->name + 8];
        snprintf(name, sizeof name, "%s.weight", l->name);
        const raana_tensor_entry *e = raana_model_find(&s->model, name); /* present: model.h */
        raana_dtype d = e->tensor->dtype;
        if (d != RAANA_DTYPE_BF16 && d != RAANA_DTYPE_F16)
            return raana_fail(err, RAANA_ERR_CONFIG,
                              "[quantize] bits lists 16, which keeps a layer's 16-bit weight as "
                              "stored, but %s is %s; remove 16 or exclude the layer",
                              name, raana_dtype_name(d));
    }
    return RAANA_OK;
}

static raana_status plan_stage(raana_stage *s, const raana_config *cfg, int n_ranks,
                               raana_error *err)
{
    RAANA_CALL(raana_plan_create(&s->model.config, cfg, n_ranks, &s->plan, err));
    return check_keep_dtypes(s, cfg, err);
}

raana_status raana_stage_open(raana_stage *s, const char *model_dir, const raana_config *cfg,
                              int n_ranks, raana_error *err)
{
    RAANA_CALL(raana_model_open(&s->model, model_dir, err));
    s->model_open = 1;
    return plan_stage(s, cfg, n_ranks, err);
}

raana_status raana_stage_open_model(raana_stage *s, raana_model *model, const raana_config *cfg,
                                    int n_ranks, raana_error *err)
{
    s->model = *model;
    memset(model, 0, sizeof *model);
    s->model_open = 1;
    return plan_stage(s, cfg, n_ranks, err);
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

/* With an expert team of n, a block owner loads only its experts
 * e % n == 0 (the team members hold the others); NULL keeps all. */
static raana_status owner_experts(const raana_stage *s, unsigned char **keep, raana_error *err)
{
    int n = s->teams.size, E = s->model.config.moe_experts;
    *keep = NULL;
    if (n <= 1 || E <= 0)
        return RAANA_OK;
    *keep = calloc((size_t)E, 1);
    if (!*keep)
        return raana_fail(err, RAANA_ERR_NOMEM, "out of memory for %d experts", E);
    for (int e = 0; e < E; e++)
        (*keep)[e] = e % n == 0;
    return RAANA_OK;
}

raana_status raana_stage_load(raana_stage *s, int rank, raana_error *err)
{
    raana_status st = RAANA_OK;
    const raana_plan_rank *r = &s->plan.ranks[rank];
    unsigned char *keep = NULL;
    RAANA_CHECK(raana_stage_check_memory(rank, r->forward_peak_bytes, err));
    RAANA_CHECK(owner_experts(s, &keep, err));
    RAANA_CHECK(raana_llama_load_keeping(&s->net, &s->model, r->first_block, r->n_blocks,
                                         r->owns_embedding, r->owns_head, keep, err));
    s->net_loaded = 1;
    RAANA_CHECK(raana_expert_team_create(&s->plan, &s->teams, &s->model, &s->net, &s->team, err));
cleanup:
    free(keep);
    return st;
}

const float *raana_stage_layer_weight(const raana_stage *s, int layer)
{
    const raana_plan_layer *l = &s->plan.layers[layer];
    const raana_llama *net = &s->net;
    const float *w = NULL;
    if (s->net_loaded && l->block >= net->first_block &&
        l->block < net->first_block + net->n_blocks)
        w = raana_llama_linear_weight(net, l->block, l->slot);
    return w ? w : raana_expert_team_weight(s->team, &s->model.config, l->block, l->slot);
}

raana_status raana_stage_alloc_grams(raana_stage *s, raana_error *err)
{
    const raana_llama *net = &s->net;
    size_t n = (size_t)net->n_blocks * RAANA_GRAM_GROUPS;
    s->grams = calloc(n ? n : 1, sizeof *s->grams);
    if (!s->grams)
        return raana_fail(err, RAANA_ERR_NOMEM, "out of memory for the LDLQ grams");
    for (size_t k = 0; k < n; k++) {
        int block = net->first_block + (int)(k / RAANA_GRAM_GROUPS),
            g = (int)(k % RAANA_GRAM_GROUPS);
        int slot = g == RAANA_GRAM_MLP_IN    ? RAANA_LINEAR_GATE
                   : g == RAANA_GRAM_MLP_ACT ? RAANA_LINEAR_DOWN
                                             : RAANA_LINEAR_Q;
        if (raana_llama_gram_group(net, block, slot) < 0)
            continue;
        size_t d = (size_t)raana_gram_dim(&net->cfg, g);
        s->grams[k] = raana_calloc_large(d * d, sizeof **s->grams);
        if (!s->grams[k])
            return raana_fail(err, RAANA_ERR_NOMEM,
                              "out of memory for block %d's %zux%zu LDLQ gram ([quantize] ldlq)",
                              block, d, d);
    }
    return RAANA_OK;
}

const float *raana_stage_layer_gram(const raana_stage *s, int layer)
{
    const raana_plan_layer *l = &s->plan.layers[layer];
    const raana_llama *net = &s->net;
    if (!s->grams || !s->net_loaded || l->block < net->first_block ||
        l->block >= net->first_block + net->n_blocks)
        return NULL;
    int g = raana_llama_gram_group(net, l->block, l->slot);
    return g < 0 ? NULL : s->grams[(size_t)(l->block - net->first_block) * RAANA_GRAM_GROUPS + g];
}

void raana_stage_free(raana_stage *s)
{
    for (int k = 0; s->grams && k < s->net.n_blocks * RAANA_GRAM_GROUPS; k++)
        free(s->grams[k]);
    free(s->grams);
    raana_expert_team_free(s->team, s->net_loaded ? &s->net : NULL);
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

/* One calibration pass on this rank: the link, M buffers and the sums. */
typedef struct {
    raana_link l;
    const raana_llama *net;
    const raana_plan *plan;
    const raana_windows *w;
    float *const *grams;        /* the stage's input grams, or NULL */
    int in_flight;              /* M, at most w->n */
    int chunk;                  /* rows per pipeline message (plan.h's chunk_tokens) */
    size_t n_slots;             /* this rank's linear layers */
    float *hidden;              /* one message: chunk x H activations or gradients + flag */
    float *head_grads;          /* last rank: M windows' head gradients, t x H each */
    raana_llama_trace **traces; /* [M]: the round's traces, slot i - round start */
    raana_linear_stats *ws;     /* [n_slots]: one window's sums of squares */
    double *acc;                /* [n_layers x ACC_COLS], summed in window order */
    double *all;                /* acc summed over the ranks */
    double loss_sum;            /* last rank: the windows' losses, in window order */
    double t0;
    FILE *progress;
} calib_run;

static raana_status calib_run_create(calib_run *c, MPI_Comm comm, const raana_llama *net,
                                     const raana_plan *plan, const raana_windows *w, FILE *progress,
                                     raana_error *err)
{
    memset(c, 0, sizeof *c);
    c->chunk = plan->chunk_tokens > 0 && plan->chunk_tokens < w->len ? plan->chunk_tokens : w->len;
    raana_link_init(&c->l, comm, (size_t)c->chunk * net->cfg.hidden_size);
    c->net = net, c->plan = plan, c->w = w, c->progress = progress;
    c->in_flight = plan->windows_in_flight < w->n ? plan->windows_in_flight : w->n;
    c->n_slots = (size_t)(raana_block_linear_offset(&net->cfg, net->first_block + net->n_blocks) -
                          raana_block_linear_offset(&net->cfg, net->first_block));
    size_t window = (size_t)w->len * net->cfg.hidden_size,
           m = (size_t)(c->in_flight > 0 ? c->in_flight : 1);
    c->hidden = raana_malloc_large((c->l.count + 1) * sizeof *c->hidden);
    c->head_grads =
        c->l.rank == c->l.size - 1 ? raana_malloc_large(m * window * sizeof *c->head_grads) : NULL;
    c->traces = calloc(m, sizeof *c->traces);
    c->ws = malloc((c->n_slots ? c->n_slots : 1) * sizeof *c->ws);
    c->acc = calloc((size_t)plan->n_layers * ACC_COLS, sizeof *c->acc);
    c->all = calloc((size_t)plan->n_layers * ACC_COLS, sizeof *c->all);
    c->t0 = MPI_Wtime();
    if (!c->hidden || (c->l.rank == c->l.size - 1 && !c->head_grads) || !c->traces || !c->ws ||
        !c->acc || !c->all)
        return raana_fail(err, RAANA_ERR_NOMEM,
                          "out of memory for %d calibration windows in flight of %d tokens",
                          c->in_flight, w->len);
    return RAANA_OK;
}

static void calib_run_free(calib_run *c)
{
    for (int k = 0; c->traces && k < c->in_flight; k++)
        raana_llama_trace_free(c->traces[k]);
    free(c->traces), free(c->hidden), free(c->head_grads), free(c->ws), free(c->acc), free(c->all);
    memset(c, 0, sizeof *c);
}

/* Rows of window rows [t0, ...): a chunk, or what is left. */
static int chunk_rows(const calib_run *c, int t0)
{
    return c->w->len - t0 < c->chunk ? c->w->len - t0 : c->chunk;
}

/* The rows [t0, t0 + n) of window i (slot k) through this rank's blocks,
 * the activations received from the rank before (or embedded) and passed
 * on; on the last rank their part of the loss and the head's gradient. */
static int forward_chunk(calib_run *c, int i, int k, int t0, int n, double *loss_sum, int failed,
                         raana_error *err)
{
    const raana_link *l = &c->l;
    const int *tokens = c->w->tokens + (size_t)i * c->w->len;
    int len = c->w->len, h = c->net->cfg.hidden_size;
    if (l->rank > 0)
        failed |= raana_link_recv(l, l->rank - 1, i, c->hidden);
    if (!failed && l->rank == 0)
        failed = raana_llama_embed(c->net, tokens + t0, n, c->hidden, err) != RAANA_OK;
    if (!failed)
        failed = raana_llama_forward_chunk(c->net, c->hidden, t0, n, len, &c->traces[k], err) !=
                 RAANA_OK;
    if (l->rank == l->size - 1 && !failed) {
        double part = 0;
        float *g = c->head_grads + ((size_t)k * len + (size_t)t0) * h;
        failed = raana_llama_head_rows(c->net, c->hidden, tokens, t0, n, len, NULL, &part, g,
                                       err) != RAANA_OK;
        *loss_sum += part;
    }
    if (l->rank < l->size - 1)
        raana_link_send(l, l->rank + 1, i, c->hidden, failed);
    return failed;
}

/* Window i's forward pass (slot k of its round), chunk by chunk; on
 * the last rank also the loss and the head's gradient. Returns nonzero once
 * any rank has failed. */
static int forward_window(calib_run *c, int i, int k, int failed, raana_error *err)
{
    const raana_link *l = &c->l;
    double loss_sum = 0;
    for (int t0 = 0; t0 < c->w->len; t0 += c->chunk)
        failed = forward_chunk(c, i, k, t0, chunk_rows(c, t0), &loss_sum, failed, err);
    if (l->rank == l->size - 1 && c->w->len > 1)
        c->loss_sum += loss_sum / (c->w->len - 1);
    if (!failed && c->grams && c->traces[k])
        raana_llama_trace_add_grams(c->net, c->traces[k], c->grams);
    raana_fault_point("calibrate", l->rank);
    if (l->rank == 0)
        raana_progress_line(c->progress, "calibrate (forward)", i + 1, c->w->n, c->t0);
    return failed;
}

/* The gradients of the rows [t0, t0 + n) of window i (slot k), received
 * from the rank after (on the last rank: the head's), back through this
 * rank's blocks and on to the rank before. */
static int backward_chunk(calib_run *c, int i, int k, int t0, int n, int failed, raana_error *err)
{
    const raana_link *l = &c->l;
    size_t h = (size_t)c->net->cfg.hidden_size;
    if (l->rank < l->size - 1)
        failed |= raana_link_recv(l, l->rank + 1, c->w->n + i, c->hidden);
    else
        memcpy(c->hidden, c->head_grads + ((size_t)k * c->w->len + (size_t)t0) * h,
               (size_t)n * h * sizeof *c->hidden);
    if (!failed && c->traces[k]) /* the chunk at row 0 frees the trace */
        failed = raana_llama_backward_chunk(c->net, &c->traces[k], c->hidden, t0, n, c->ws, err) !=
                 RAANA_OK;
    if (l->rank > 0)
        raana_link_send(l, l->rank - 1, c->w->n + i, c->hidden, failed);
    return failed;
}

/* Window i's backward pass (slot k of its round), chunk by chunk from the
 * last, then its statistics into acc. */
static int backward_window(calib_run *c, int i, int k, int failed, raana_error *err)
{
    const raana_link *l = &c->l;
    int n = c->w->n, had_trace = c->traces[k] != NULL;
    memset(c->ws, 0, (c->n_slots ? c->n_slots : 1) * sizeof *c->ws);
    for (int t0 = (c->w->len - 1) / c->chunk * c->chunk; t0 >= 0; t0 -= c->chunk)
        failed = backward_chunk(c, i, k, t0, chunk_rows(c, t0), failed, err);
    if (!failed && had_trace)
        add_window_stats(c->plan, c->net, c->ws, c->acc);
    raana_llama_trace_free(c->traces[k]);
    c->traces[k] = NULL;
    if (l->rank == 0)
        raana_progress_line(c->progress, "calibrate (backward)", i + 1, n, c->t0);
    return failed;
}

/* Every window, M at a time. A rank that fails keeps passing flagged
 * messages, so no rank waits forever (link.h). */
static int run_rounds(calib_run *c, raana_error *err)
{
    int failed = 0;
    for (int first = 0; first < c->w->n; first += c->in_flight) {
        int end = first + c->in_flight < c->w->n ? first + c->in_flight : c->w->n;
        for (int i = first; i < end; i++)
            failed = forward_window(c, i, i - first, failed, err);
        for (int i = first; i < end; i++)
            failed = backward_window(c, i, i - first, failed, err);
    }
    return failed;
}

raana_status raana_pipeline_calibrate(MPI_Comm comm, const raana_llama *net, const raana_plan *plan,
                                      const raana_windows *w, raana_expert_team *team,
                                      float *const *grams, raana_layer_stats *stats, double *loss,
                                      FILE *progress, raana_error *err)
{
    raana_status st = RAANA_OK;
    calib_run c;
    /* before any message: a rank without its buffers must not leave the others waiting */
    RAANA_CHECK(
        raana_comm_agree(comm, calib_run_create(&c, comm, net, plan, w, progress, err), err));
    c.grams = grams;
    char chunks[48] = "";
    if (c.chunk < w->len)
        snprintf(chunks, sizeof chunks, " in chunks of %d", c.chunk);
    if (progress && c.l.rank == 0)
        raana_log_line(progress, "calibrate: %d windows of %d tokens%s, %d in flight%s", w->n,
                       w->len, chunks, c.in_flight,
                       plan->windows_fit_from ? " (auto, lowered to fit the memory limits)" : "");
    if (progress && c.l.rank == 0 && team) {
        char desc[512];
        raana_expert_team_describe(team, desc, sizeof desc);
        raana_log_line(progress, "calibrate: %s", desc);
    }
    raana_expert_team_begin(comm, team); /* members serve while they wait */
    int failed = run_rounds(&c, err);
    failed |= raana_expert_team_end(comm, team, err);
    RAANA_CHECK(raana_comm_agree(comm, failed ? err->status : RAANA_OK, err));
    /* each layer's numbers come from exactly one rank */
    MPI_Allreduce(c.acc, c.all, plan->n_layers * ACC_COLS, MPI_DOUBLE, MPI_SUM, comm);
    MPI_Bcast(&c.loss_sum, 1, MPI_DOUBLE, c.l.size - 1, comm);
    RAANA_CHECK(finish_stats(plan, c.all, c.l.rank, stats, progress, err));
    *loss = c.loss_sum / w->n;
cleanup:
    calib_run_free(&c);
    return st;
}

/* The largest M (at most the plan's) whose estimated peak on this rank
 * fits its memory limits now, before its weights are loaded; 1 if none. */
static int fitting_windows(const raana_stage *s, int rank)
{
    raana_memory_state mem;
    raana_memory_read(&mem);
    const raana_plan_rank *r = &s->plan.ranks[rank];
    for (int m = s->plan.windows_in_flight; m > 1; m--) {
        uint64_t calib = raana_estimate_calibration_bytes(&s->model.config, r, s->plan.seq_len, m,
                                                          s->plan.chunk_tokens);
        uint64_t need =
            4 * r->params + r->gram_bytes + (calib > r->quantize_bytes ? calib : r->quantize_bytes);
        raana_error scratch;
        if (raana_memory_check(&mem, need, rank, &scratch) == RAANA_OK)
            return m;
    }
    return 1;
}

void raana_stage_fit_windows(MPI_Comm comm, raana_stage *s, const raana_config *cfg, int rank)
{
    if (!s->plan.windows_auto || s->plan.windows_in_flight <= 1)
        return; /* the same plan on every rank: all return here, or none */
    int mine = fitting_windows(s, rank), all = mine;
    MPI_Allreduce(&mine, &all, 1, MPI_INT, MPI_MIN, comm);
    if (all < s->plan.windows_in_flight) {
        int from = s->plan.windows_in_flight;
        raana_plan_set_windows_in_flight(&s->plan, &s->model.config, cfg, all);
        s->plan.windows_fit_from = from;
    }
}

raana_status raana_stage_plan_experts(MPI_Comm comm, raana_stage *s, const raana_config *cfg,
                                      raana_error *err)
{
    raana_memory_state mem;
    raana_memory_read(&mem);
    const char *limit;
    uint64_t mine = raana_memory_room(&mem, &limit), budget = mine;
    MPI_Allreduce(&mine, &budget, 1, MPI_UINT64_T, MPI_MIN, comm);
    raana_expert_teams_plan(&s->plan, &s->model.config, cfg->expert_ranks, budget, &s->teams);
    raana_status st = raana_expert_teams_check(&s->teams, &s->plan, &s->model.config, err);
    if (st != RAANA_OK) {
        err->agreed = 1; /* the same message on every rank, naming its ranks */
        return st;
    }
    raana_expert_teams_apply(&s->teams, &s->plan, &s->model.config, cfg);
    return RAANA_OK;
}
