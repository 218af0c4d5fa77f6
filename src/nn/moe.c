/* moe.c — the sparse mixture-of-experts MLP: loading, forward with f32
 * top-k routing, and the activation-gradient backward (see moe.h). */
#include "raana/moe.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raana/huge_alloc.h"
#include "raana/swiglu.h"

/* ---- loading ------------------------------------------------------------- */

static raana_status read_weight(const raana_model *m, const raana_linear_info *li, float **out,
                                raana_error *err)
{
    char name[160];
    size_t count = (size_t)li->d_in * (size_t)li->d_out;
    snprintf(name, sizeof name, "%s.weight", li->name);
    *out = raana_malloc_large(count * sizeof **out);
    if (!*out)
        return raana_fail(err, RAANA_ERR_NOMEM, "out of memory reading %s (%zu values)", name,
                          count);
    return raana_model_read_f32(m, name, *out, count, err);
}

/* Where slot `slot` of a sparse block lives in w. */
static float **weight_slot(raana_moe_weights *w, const raana_linear_info *li)
{
    if (li->kind == RAANA_LINEAR_ROUTER)
        return &w->router;
    if (li->kind == RAANA_LINEAR_SHARED_GATE)
        return &w->shared_gate;
    int k = (int)li->kind - RAANA_LINEAR_GATE;
    return li->expert == RAANA_EXPERT_SHARED ? &w->shared[k] : &w->expert[3 * li->expert + k];
}

/* Block `block`'s weights; with keep, only the routed experts e with
 * keep[e], and the router and shared expert unless experts_only. */
static raana_status load_block(const raana_model *m, int block, const unsigned char *keep,
                               int experts_only, raana_moe_weights **out, raana_error *err)
{
    raana_status st = RAANA_OK;
    const raana_model_config *c = &m->config;
    raana_moe_weights *w = calloc(1, sizeof *w);
    if (!w)
        RAANA_FAIL_GOTO(err, RAANA_ERR_NOMEM, "out of memory for block %d's experts", block);
    w->n_experts = c->moe_experts, w->top_k = c->moe_top_k;
    w->inter = c->moe_intermediate_size, w->norm_topk = c->moe_norm_topk_prob;
    w->shared_inter = c->moe_shared_intermediate_size;
    w->expert = calloc((size_t)3 * w->n_experts, sizeof *w->expert);
    if (!w->expert)
        RAANA_FAIL_GOTO(err, RAANA_ERR_NOMEM, "out of memory for block %d's experts", block);
    int n = raana_block_linear_count(c, block);
    for (int s = 4; s < n; s++) {
        raana_linear_info li;
        raana_block_linear(c, block, s, &li);
        int routed = li.expert >= 0;
        if (routed ? !keep || keep[li.expert] : !experts_only)
            RAANA_CHECK(read_weight(m, &li, weight_slot(w, &li), err));
    }
cleanup:
    if (st != RAANA_OK)
        raana_moe_free(w), w = NULL;
    *out = w;
    return st;
}

raana_status raana_moe_load(const raana_model *m, int block, raana_moe_weights **out,
                            raana_error *err)
{
    return load_block(m, block, NULL, 0, out, err);
}

raana_status raana_moe_load_keeping(const raana_model *m, int block, const unsigned char *keep,
                                    raana_moe_weights **out, raana_error *err)
{
    return load_block(m, block, keep, 0, out, err);
}

raana_status raana_moe_load_experts(const raana_model *m, int block, const unsigned char *keep,
                                    raana_moe_weights **out, raana_error *err)
{
    return load_block(m, block, keep, 1, out, err);
}

void raana_moe_free(raana_moe_weights *w)
{
    if (!w)
        return;
    for (int i = 0; w->expert && i < 3 * w->n_experts; i++)
        free(w->expert[i]);
    free(w->expert);
    free(w->router);
    free(w->shared[0]), free(w->shared[1]), free(w->shared[2]);
    free(w->shared_gate);
    free(w);
}

/* ---- building blocks ----------------------------------------------------- */

static float sigmoidf(float x)
{
    return 1.0f / (1.0f + expf(-x));
}

/* ---- the trace ----------------------------------------------------------- */

/* One SwiGLU expert over n rows: which tokens, their routing weights, and
 * the activations the backward needs. */
typedef struct {
    int n;
    int *idx;    /* token of row r */
    float *wt;   /* routing weight of row r (1 for the shared expert) */
    int *choice; /* position of this expert in the token's top-k */
    float *g, *u, *a, *y;
    void *handle; /* a remote expert's (raana_moe_runner), or NULL */
} expert_trace;

struct raana_moe_trace {
    int t, hidden, n_experts, top_k;
    float *p;              /* [T][E] router softmax */
    int *sel;              /* [T][k] chosen experts, highest first */
    float *wsel;           /* [T][k] their weights */
    expert_trace *experts; /* [E + 1]: the shared expert at [E] */
    float *shared_sig;     /* [T] sigmoid of the shared gate, or NULL */
    const raana_moe_runner *runner;
};

static void expert_trace_free(expert_trace *e)
{
    free(e->idx), free(e->wt), free(e->choice);
    free(e->g), free(e->u), free(e->a), free(e->y);
}

void raana_moe_trace_free(raana_moe_trace *tr)
{
    if (!tr)
        return;
    for (int e = 0; tr->experts && e <= tr->n_experts; e++) {
        if (tr->experts[e].handle)
            tr->runner->release(tr->runner->ctx, tr->experts[e].handle);
        expert_trace_free(&tr->experts[e]);
    }
    free(tr->experts);
    free(tr->p), free(tr->sel), free(tr->wsel), free(tr->shared_sig);
    free(tr);
}

const int *raana_moe_trace_experts(const raana_moe_trace *tr)
{
    return tr->sel;
}

/* ---- forward ------------------------------------------------------------- */

/* Softmax of one token's router logits (f32, as the reference) and its
 * top-k, highest first (ties to the lower index), renormalized if asked. */
static void route_token(const raana_moe_weights *w, const float *logits, float *p, int *sel,
                        float *wsel)
{
    int E = w->n_experts, k = w->top_k;
    float mx = logits[0], sum = 0;
    for (int e = 1; e < E; e++)
        mx = logits[e] > mx ? logits[e] : mx;
    for (int e = 0; e < E; e++)
        sum += p[e] = expf(logits[e] - mx);
    for (int e = 0; e < E; e++)
        p[e] /= sum;
    float total = 0;
    for (int j = 0; j < k; j++) {
        int best = -1;
        for (int e = 0; e < E; e++) {
            int taken = 0;
            for (int i = 0; i < j; i++)
                taken |= sel[i] == e;
            if (!taken && (best < 0 || p[e] > p[best]))
                best = e;
        }
        sel[j] = best;
        total += wsel[j] = p[best];
    }
    for (int j = 0; w->norm_topk && j < k; j++)
        wsel[j] /= total;
}

/* Rows of n tokens; inter = 0 for a remote expert (its runner keeps the
 * activations). */
static raana_status expert_alloc(expert_trace *x, int n, int inter, int hidden, raana_error *err)
{
    size_t rows = (size_t)(n > 0 ? n : 1);
    inter = inter > 0 ? inter : 1;
    x->n = 0;
    x->idx = malloc(rows * sizeof *x->idx), x->choice = malloc(rows * sizeof *x->choice);
    x->wt = malloc(rows * sizeof *x->wt);
    x->g = malloc(rows * inter * sizeof *x->g), x->u = malloc(rows * inter * sizeof *x->u);
    x->a = malloc(rows * inter * sizeof *x->a), x->y = malloc(rows * hidden * sizeof *x->y);
    if (!x->idx || !x->choice || !x->wt || !x->g || !x->u || !x->a || !x->y)
        return raana_fail(err, RAANA_ERR_NOMEM, "out of memory for the activations of %d tokens",
                          n);
    return RAANA_OK;
}

/* Expert weights w (gate, up, down) as a SwiGLU (swiglu.h). */
static raana_swiglu expert_mlp(const float *const w[3], int inter, int hidden)
{
    return (raana_swiglu){
        hidden, inter, {w[0], w[1], w[2]}, {NULL, NULL, NULL}, RAANA_SILU_PRODUCT};
}

raana_swiglu raana_moe_expert_mlp(const raana_moe_weights *w, int expert, int hidden)
{
    const float *ew[3] = {w->expert[3 * expert], w->expert[3 * expert + 1],
                          w->expert[3 * expert + 2]};
    return expert_mlp(ew, w->inter, hidden);
}

static int is_remote(const raana_moe_weights *w, int expert)
{
    return w->runner && w->runner->remote[expert];
}

/* One SwiGLU expert over the rows of x (already gathered into xr). */
static void expert_forward(const float *const w[3], expert_trace *x, const float *xr, int inter,
                           int hidden, raana_linear_stats *ls)
{
    if (x->n == 0) { /* an expert no token was routed to */
        ls[0] = ls[1] = ls[2] = (raana_linear_stats){0, 0, 0, 0};
        return;
    }
    raana_swiglu mlp = expert_mlp(w, inter, hidden);
    raana_swiglu_trace tr = {x->g, x->u, x->a};
    raana_swiglu_forward(&mlp, xr, x->n, &tr, x->y, ls);
}

/* Routes every token and fills each expert's row lists. */
static raana_status route(const raana_moe_weights *w, raana_moe_trace *tr, const float *h,
                          int hidden, raana_linear_stats *ls, raana_error *err)
{
    raana_status st = RAANA_OK;
    int t = tr->t, E = w->n_experts, k = w->top_k;
    float *logits = malloc((size_t)t * E * sizeof *logits + 1);
    int *count = calloc((size_t)E, sizeof *count);
    if (!logits || !count)
        RAANA_FAIL_GOTO(err, RAANA_ERR_NOMEM, "out of memory for the router of %d tokens", t);
    raana_nn_linear(h, t, hidden, E, w->router, NULL, logits);
    ls[0] = (raana_linear_stats){raana_nn_sum_sq(h, (size_t)t * hidden),
                                 raana_nn_sum_sq(logits, (size_t)t * E), 0, t};
    for (int i = 0; i < t; i++) {
        route_token(w, logits + (size_t)i * E, tr->p + (size_t)i * E, tr->sel + (size_t)i * k,
                    tr->wsel + (size_t)i * k);
        for (int j = 0; j < k; j++)
            count[tr->sel[(size_t)i * k + j]]++;
    }
    for (int e = 0; e < E; e++)
        RAANA_CHECK(
            expert_alloc(&tr->experts[e], count[e], is_remote(w, e) ? 0 : w->inter, hidden, err));
    for (int i = 0; i < t; i++) /* rows in token order */
        for (int j = 0; j < k; j++) {
            expert_trace *x = &tr->experts[tr->sel[(size_t)i * k + j]];
            x->idx[x->n] = i, x->choice[x->n] = j, x->wt[x->n] = tr->wsel[(size_t)i * k + j];
            x->n++;
        }
cleanup:
    free(logits), free(count);
    return st;
}

static void gather_rows(const float *h, const expert_trace *x, int hidden, float *xr)
{
    for (int r = 0; r < x->n; r++)
        memcpy(xr + (size_t)r * hidden, h + (size_t)x->idx[r] * hidden,
               (size_t)hidden * sizeof *xr);
}

/* Qwen2-MoE: out += sigmoid(h . shared_gate) * shared_expert(h). */
static raana_status shared_forward(const raana_moe_weights *w, raana_moe_trace *tr, const float *h,
                                   int hidden, float *out, raana_linear_stats *ls, raana_error *err)
{
    int t = tr->t;
    expert_trace *x = &tr->experts[w->n_experts];
    RAANA_CALL(expert_alloc(x, t, w->shared_inter, hidden, err));
    tr->shared_sig = malloc((size_t)t * sizeof *tr->shared_sig);
    if (!tr->shared_sig)
        return raana_fail(err, RAANA_ERR_NOMEM, "out of memory for the shared expert");
    x->n = t;
    for (int i = 0; i < t; i++)
        x->idx[i] = i, x->choice[i] = 0, x->wt[i] = 1.0f;
    const float *sw[3] = {w->shared[0], w->shared[1], w->shared[2]};
    expert_forward(sw, x, h, w->shared_inter, hidden, ls);
    double logit_sq = 0;
    for (int i = 0; i < t; i++) {
        const float *hi = h + (size_t)i * hidden;
        float logit = 0;
        for (int d = 0; d < hidden; d++)
            logit += hi[d] * w->shared_gate[d];
        logit_sq += (double)logit * logit;
        float s = tr->shared_sig[i] = sigmoidf(logit);
        for (int d = 0; d < hidden; d++)
            out[(size_t)i * hidden + d] += s * x->y[(size_t)i * hidden + d];
    }
    ls[3] = (raana_linear_stats){raana_nn_sum_sq(h, (size_t)t * hidden), logit_sq, 0, t};
    return RAANA_OK;
}

static raana_status trace_alloc(const raana_moe_weights *w, int t, int hidden,
                                raana_moe_trace **out, raana_error *err)
{
    int E = w->n_experts, k = w->top_k;
    raana_moe_trace *tr = calloc(1, sizeof *tr);
    *out = tr;
    if (!tr)
        return raana_fail(err, RAANA_ERR_NOMEM, "out of memory for the router of %d tokens", t);
    tr->t = t, tr->hidden = hidden, tr->n_experts = E, tr->top_k = k, tr->runner = w->runner;
    tr->p = malloc((size_t)t * E * sizeof *tr->p);
    tr->sel = malloc((size_t)t * k * sizeof *tr->sel);
    tr->wsel = malloc((size_t)t * k * sizeof *tr->wsel);
    tr->experts = calloc((size_t)E + 1, sizeof *tr->experts);
    if (!tr->p || !tr->sel || !tr->wsel || !tr->experts)
        return raana_fail(err, RAANA_ERR_NOMEM, "out of memory for the router of %d tokens", t);
    return RAANA_OK;
}

raana_status raana_moe_forward(const raana_moe_weights *w, const float *h, int t, int hidden,
                               float *out, raana_linear_stats *ls, raana_moe_trace **trace,
                               raana_error *err)
{
    raana_status st = RAANA_OK;
    raana_moe_trace *tr = NULL;
    float *xr = malloc((size_t)(t > 0 ? t : 1) * hidden * sizeof *xr);
    if (!xr)
        RAANA_FAIL_GOTO(err, RAANA_ERR_NOMEM, "out of memory for the experts' inputs");
    RAANA_CHECK(trace_alloc(w, t, hidden, &tr, err));
    RAANA_CHECK(route(w, tr, h, hidden, ls, err));
    memset(out, 0, (size_t)t * hidden * sizeof *out);
    for (int e = 0; e < w->n_experts; e++) { /* expert order: the same sum on every rank */
        expert_trace *x = &tr->experts[e];
        const float *ew[3] = {w->expert[3 * e], w->expert[3 * e + 1], w->expert[3 * e + 2]};
        gather_rows(h, x, hidden, xr);
        if (is_remote(w, e) && x->n > 0)
            RAANA_CHECK(w->runner->forward(w->runner->ctx, e, xr, x->n, x->y, ls + 1 + 3 * e,
                                           &x->handle, err));
        else
            expert_forward(ew, x, xr, w->inter, hidden, ls + 1 + 3 * e);
        for (int r = 0; r < x->n; r++)
            for (int d = 0; d < hidden; d++)
                out[(size_t)x->idx[r] * hidden + d] += x->wt[r] * x->y[(size_t)r * hidden + d];
    }
    if (w->shared_inter > 0)
        RAANA_CHECK(shared_forward(w, tr, h, hidden, out, ls + 1 + 3 * w->n_experts, err));
cleanup:
    free(xr);
    if (st != RAANA_OK)
        raana_moe_trace_free(tr), tr = NULL;
    *trace = tr;
    return st;
}

/* ---- backward ------------------------------------------------------------ */

typedef struct {
    float *dy, *da, *dg, *du, *dx;
} expert_scratch;

/* An expert's output gradient dY_r = wt_r * dout[idx_r] into s->dy and,
 * for the routing weight, dw[idx_r][choice_r] = <dout[idx_r], y_r>. */
static void routed_dy(const expert_trace *x, int hidden, const float *dout, float *dw, int k,
                      expert_scratch *s)
{
    for (int r = 0; r < x->n; r++) {
        const float *dor = dout + (size_t)x->idx[r] * hidden, *yr = x->y + (size_t)r * hidden;
        float *dyr = s->dy + (size_t)r * hidden;
        double dot = 0;
        for (int d = 0; d < hidden; d++) {
            dyr[d] = x->wt[r] * dor[d];
            dot += (double)dor[d] * yr[d];
        }
        if (dw)
            dw[(size_t)x->idx[r] * k + x->choice[r]] = (float)dot;
    }
}

/* dh[idx_r] += dX_r from s->dx. */
static void scatter_dx(const expert_trace *x, int hidden, const expert_scratch *s, float *dh)
{
    for (int r = 0; r < x->n; r++)
        for (int d = 0; d < hidden; d++)
            dh[(size_t)x->idx[r] * hidden + d] += s->dx[(size_t)r * hidden + d];
}

/* One expert here: routed_dy, its SwiGLU backward, scatter_dx. */
static void expert_backward(const float *const w[3], const expert_trace *x, int inter, int hidden,
                            const float *dout, float *dh, float *dw, int k, expert_scratch *s,
                            raana_linear_stats *ls)
{
    if (x->n == 0)
        return;
    routed_dy(x, hidden, dout, dw, k, s);
    raana_swiglu mlp = expert_mlp(w, inter, hidden);
    raana_swiglu_trace tr = {x->g, x->u, x->a};
    raana_swiglu_scratch sc = {s->da, s->dg, s->du};
    raana_swiglu_backward(&mlp, &tr, x->n, s->dy, &sc, s->dx, ls);
    scatter_dx(x, hidden, s, dh);
}

/* The same for expert e on the runner (raana_moe_runner). */
static raana_status remote_backward(const raana_moe_runner *run, int e, const expert_trace *x,
                                    int hidden, const float *dout, float *dh, float *dw, int k,
                                    expert_scratch *s, raana_linear_stats *ls, raana_error *err)
{
    routed_dy(x, hidden, dout, dw, k, s);
    RAANA_CALL(run->backward(run->ctx, e, x->handle, s->dy, x->n, s->dx, ls, err));
    scatter_dx(x, hidden, s, dh);
    return RAANA_OK;
}

/* dL/dlogits of one token from dL/dw of its chosen experts: back through
 * the renormalization (w_j = p_j / S) and the softmax. */
static void router_token_backward(const raana_moe_weights *w, const float *p, const int *sel,
                                  const float *wsel, const float *dw, float *dp, float *dlogit)
{
    int E = w->n_experts, k = w->top_k;
    float total = 0, wdot = 0;
    for (int j = 0; j < k; j++)
        total += p[sel[j]], wdot += dw[j] * wsel[j];
    memset(dp, 0, (size_t)E * sizeof *dp);
    for (int j = 0; j < k; j++)
        dp[sel[j]] = w->norm_topk ? (dw[j] - wdot) / total : dw[j];
    float pdp = 0;
    for (int e = 0; e < E; e++)
        pdp += p[e] * dp[e];
    for (int e = 0; e < E; e++)
        dlogit[e] = p[e] * (dp[e] - pdp);
}

static raana_status scratch_alloc(expert_scratch *s, int rows, int inter, int hidden,
                                  raana_error *err)
{
    size_t n = (size_t)(rows > 0 ? rows : 1);
    s->dy = malloc(n * hidden * sizeof *s->dy), s->dx = malloc(n * hidden * sizeof *s->dx);
    s->da = malloc(n * inter * sizeof *s->da), s->dg = malloc(n * inter * sizeof *s->dg);
    s->du = malloc(n * inter * sizeof *s->du);
    if (!s->dy || !s->dx || !s->da || !s->dg || !s->du)
        return raana_fail(err, RAANA_ERR_NOMEM, "out of memory for the experts' backward");
    return RAANA_OK;
}

static void scratch_free(expert_scratch *s)
{
    free(s->dy), free(s->da), free(s->dg), free(s->du), free(s->dx);
}

/* Qwen2-MoE's shared expert and its sigmoid gate. */
static void shared_backward(const raana_moe_weights *w, const raana_moe_trace *tr, const float *h,
                            int hidden, const float *dout, float *dh, expert_scratch *s,
                            raana_linear_stats *ls)
{
    const expert_trace *x = &tr->experts[w->n_experts];
    expert_trace scaled = *x; /* dY = sigmoid * dout: the gate value as the row weight */
    scaled.wt = tr->shared_sig;
    const float *sw[3] = {w->shared[0], w->shared[1], w->shared[2]};
    expert_backward(sw, &scaled, w->shared_inter, hidden, dout, dh, NULL, 1, s, ls);
    for (int i = 0; i < tr->t; i++) {
        const float *dor = dout + (size_t)i * hidden, *yr = x->y + (size_t)i * hidden;
        double dot = 0;
        for (int d = 0; d < hidden; d++)
            dot += (double)dor[d] * yr[d];
        float sg = tr->shared_sig[i], dlogit = (float)dot * sg * (1.0f - sg);
        ls[3].dy_sq += (double)dlogit * dlogit;
        for (int d = 0; d < hidden; d++)
            dh[(size_t)i * hidden + d] += dlogit * w->shared_gate[d];
    }
    (void)h;
}

raana_status raana_moe_backward(const raana_moe_weights *w, const raana_moe_trace *tr,
                                const float *h, const float *dout, float *dh,
                                raana_linear_stats *ls, raana_error *err)
{
    raana_status st = RAANA_OK;
    int t = tr->t, E = w->n_experts, k = w->top_k, hidden = tr->hidden;
    int rows = t > 0 ? t : 1; /* an expert has at most T rows */
    expert_scratch s = {0};
    float *dw = calloc((size_t)t * k + 1, sizeof *dw);
    float *dp = malloc((size_t)E * sizeof *dp), *dlogits = malloc((size_t)t * E * sizeof *dlogits);
    if (!dw || !dp || !dlogits)
        RAANA_FAIL_GOTO(err, RAANA_ERR_NOMEM, "out of memory for the router's backward");
    RAANA_CHECK(scratch_alloc(&s, rows, w->inter > w->shared_inter ? w->inter : w->shared_inter,
                              hidden, err));
    memset(dh, 0, (size_t)t * hidden * sizeof *dh);
    for (int e = 0; e < E; e++) {
        const float *ew[3] = {w->expert[3 * e], w->expert[3 * e + 1], w->expert[3 * e + 2]};
        const expert_trace *x = &tr->experts[e];
        if (is_remote(w, e) && x->n > 0)
            RAANA_CHECK(
                remote_backward(w->runner, e, x, hidden, dout, dh, dw, k, &s, ls + 1 + 3 * e, err));
        else
            expert_backward(ew, x, w->inter, hidden, dout, dh, dw, k, &s, ls + 1 + 3 * e);
    }
    for (int i = 0; i < t; i++)
        router_token_backward(w, tr->p + (size_t)i * E, tr->sel + (size_t)i * k,
                              tr->wsel + (size_t)i * k, dw + (size_t)i * k, dp,
                              dlogits + (size_t)i * E);
    ls[0].dy_sq += raana_nn_sum_sq(dlogits, (size_t)t * E);
    raana_nn_linear_backward(dlogits, t, hidden, E, w->router, 1.0f, dh);
    if (w->shared_inter > 0)
        shared_backward(w, tr, h, hidden, dout, dh, &s, ls + 1 + 3 * E);
cleanup:
    scratch_free(&s);
    free(dw), free(dp), free(dlogits);
    return st;
}
