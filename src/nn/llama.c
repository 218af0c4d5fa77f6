/* llama.c — LLaMA-family forward pass and activation-gradient backward in
 * f32 on OpenBLAS (see llama.h). Each block keeps the activations its
 * backward needs in a trace; nothing computes weight gradients. */
#include "raana/llama.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "raana/attention.h"
#include "raana/huge_alloc.h"
#include "raana/moe.h"
#include "raana/scores.h"
#include "raana/swiglu.h"

/* ---- loading ------------------------------------------------------------- */

static raana_status read_tensor(const raana_model *m, const char *name, size_t count, float **out,
                                raana_error *err)
{
    *out = raana_malloc_large(count * sizeof **out);
    if (!*out)
        return raana_fail(err, RAANA_ERR_NOMEM, "out of memory reading %s (%zu values)", name,
                          count);
    return raana_model_read_f32(m, name, *out, count, err);
}

static raana_status load_norms(const raana_model *m, int block, raana_block_weights *bw,
                               raana_error *err)
{
    const raana_model_config *c = &m->config;
    char name[160];
    size_t h = (size_t)c->hidden_size, hd = (size_t)c->head_dim;
    snprintf(name, sizeof name, "model.layers.%d.input_layernorm.weight", block);
    RAANA_CALL(read_tensor(m, name, h, &bw->attn_norm, err));
    snprintf(name, sizeof name, "model.layers.%d.post_attention_layernorm.weight", block);
    RAANA_CALL(read_tensor(m, name, h, &bw->mlp_norm, err));
    if (!c->qk_norm)
        return RAANA_OK;
    snprintf(name, sizeof name, "model.layers.%d.self_attn.q_norm.weight", block);
    RAANA_CALL(read_tensor(m, name, hd, &bw->q_norm, err));
    snprintf(name, sizeof name, "model.layers.%d.self_attn.k_norm.weight", block);
    return read_tensor(m, name, hd, &bw->k_norm, err);
}

/* The norms, the attention, and a dense MLP or (moe.h) a sparse one. */
static raana_status load_block(const raana_model *m, int block, const unsigned char *keep,
                               raana_block_weights *bw, raana_error *err)
{
    const raana_model_config *c = &m->config;
    char name[160];
    int sparse = raana_block_is_sparse(c, block);
    RAANA_CALL(load_norms(m, block, bw, err));
    for (int k = 0; k < (sparse ? RAANA_LINEAR_GATE : RAANA_LINEAR_COUNT); k++) {
        raana_linear_info li;
        raana_block_linear(c, block, k, &li);
        snprintf(name, sizeof name, "%s.weight", li.name);
        RAANA_CALL(read_tensor(m, name, (size_t)li.d_in * li.d_out, &bw->w[k], err));
        if (li.has_bias) {
            snprintf(name, sizeof name, "%s.bias", li.name);
            RAANA_CALL(read_tensor(m, name, (size_t)li.d_out, &bw->b[k], err));
        }
    }
    return sparse ? raana_moe_load_keeping(m, block, keep, &bw->moe, err) : RAANA_OK;
}

/* RoPE frequencies as Hugging Face computes them (in f32), with linear and
 * llama3 scaling applied (dynamic scaling changes nothing up to
 * max_position_embeddings, the longest window raana runs). */
raana_status raana_llama_init_rope(raana_llama *net, raana_error *err)
{
    const raana_model_config *c = &net->cfg;
    int half = c->head_dim / 2;
    net->inv_freq = malloc((size_t)half * sizeof *net->inv_freq);
    if (!net->inv_freq)
        return raana_fail(err, RAANA_ERR_NOMEM, "out of memory");
    for (int i = 0; i < half; i++) {
        float f = 1.0f / powf((float)c->rope_theta, (float)(2 * i) / (float)c->head_dim);
        if (c->rope_type == RAANA_ROPE_LINEAR)
            f /= (float)c->rope_factor;
        if (c->rope_type == RAANA_ROPE_LLAMA3) {
            double old = c->rope_original_max_position_embeddings;
            double low_wl = old / c->rope_low_freq_factor, high_wl = old / c->rope_high_freq_factor;
            double wl = 2 * M_PI / f;
            if (wl > low_wl)
                f = (float)(f / c->rope_factor);
            else if (wl >= high_wl) {
                double smooth = (old / wl - c->rope_low_freq_factor) /
                                (c->rope_high_freq_factor - c->rope_low_freq_factor);
                f = (float)((1 - smooth) * f / c->rope_factor + smooth * f);
            }
        }
        net->inv_freq[i] = f;
    }
    return RAANA_OK;
}

raana_status raana_llama_load(raana_llama *net, const raana_model *model, int first, int n,
                              int with_embedding, int with_head, raana_error *err)
{
    return raana_llama_load_keeping(net, model, first, n, with_embedding, with_head, NULL, err);
}

raana_status raana_llama_load_keeping(raana_llama *net, const raana_model *model, int first, int n,
                                      int with_embedding, int with_head, const unsigned char *keep,
                                      raana_error *err)
{
    raana_status st = RAANA_OK;
    memset(net, 0, sizeof *net);
    net->cfg = model->config;
    net->first_block = first;
    net->n_blocks = n;
    const raana_model_config *c = &model->config;
    size_t vh = (size_t)c->vocab_size * c->hidden_size;
    RAANA_CHECK(raana_llama_init_rope(net, err));
    net->blocks = calloc((size_t)(n > 0 ? n : 1), sizeof *net->blocks);
    if (!net->blocks)
        RAANA_FAIL_GOTO(err, RAANA_ERR_NOMEM, "out of memory");
    for (int b = 0; b < n; b++)
        RAANA_CHECK(load_block(model, first + b, keep, &net->blocks[b], err));
    if (with_embedding || (with_head && c->tie_word_embeddings))
        RAANA_CHECK(read_tensor(model, "model.embed_tokens.weight", vh, &net->embed, err));
    if (with_head) {
        RAANA_CHECK(
            read_tensor(model, "model.norm.weight", (size_t)c->hidden_size, &net->final_norm, err));
        if (c->tie_word_embeddings)
            net->lm_head = net->embed;
        else
            RAANA_CHECK(read_tensor(model, "lm_head.weight", vh, &net->lm_head, err));
    }
cleanup:
    if (st != RAANA_OK)
        raana_llama_free(net);
    return st;
}

void raana_llama_free(raana_llama *net)
{
    for (int b = 0; net->blocks && b < net->n_blocks; b++) {
        free(net->blocks[b].attn_norm);
        free(net->blocks[b].mlp_norm);
        free(net->blocks[b].q_norm);
        free(net->blocks[b].k_norm);
        raana_moe_free(net->blocks[b].moe);
        for (int k = 0; k < RAANA_LINEAR_COUNT; k++)
            free(net->blocks[b].w[k]), free(net->blocks[b].b[k]);
    }
    free(net->blocks);
    if (net->lm_head != net->embed)
        free(net->lm_head);
    free(net->embed);
    free(net->final_norm);
    free(net->inv_freq);
    memset(net, 0, sizeof *net);
}

/* ---- building blocks --------------------------------------------------------- */

/* y = x / rms(x) * w per row; r[i] = 1 / rms(row i) */
static void rmsnorm(const float *x, int t, int h, const float *w, double eps, float *r, float *y)
{
    for (int i = 0; i < t; i++) {
        const float *xi = x + (size_t)i * h;
        float ms = 0;
        for (int j = 0; j < h; j++)
            ms += xi[j] * xi[j];
        float ri = 1.0f / sqrtf(ms / (float)h + (float)eps);
        r[i] = ri;
        for (int j = 0; j < h; j++)
            y[(size_t)i * h + j] = xi[j] * ri * w[j];
    }
}

/* dx += d(rmsnorm)/dx^T dy: with g = w dy, dx = r g - x r^3 <g, x> / H */
static void rmsnorm_backward(const float *x, const float *r, int t, int h, const float *w,
                             const float *dy, float *dx)
{
    for (int i = 0; i < t; i++) {
        const float *xi = x + (size_t)i * h, *dyi = dy + (size_t)i * h;
        float *dxi = dx + (size_t)i * h, ri = r[i];
        double dot = 0;
        for (int j = 0; j < h; j++)
            dot += (double)w[j] * dyi[j] * xi[j];
        float coef = (float)(dot * ri * ri * ri / h);
        for (int j = 0; j < h; j++)
            dxi[j] += ri * w[j] * dyi[j] - xi[j] * coef;
    }
}

/* Rotates each head of x[T][n_heads * hd], rows at positions p0, p0 + 1,
 * ..., by position (sign = +1), or applies the transpose (sign = -1, for
 * gradients). */
static void rope(const raana_llama *net, float *x, int p0, int t, int n_heads, float sign)
{
    int hd = net->cfg.head_dim, half = hd / 2;
    for (int p = 0; p < t; p++)
        for (int i = 0; i < half; i++) {
            float ang = (float)(p0 + p) * net->inv_freq[i], c = cosf(ang), s = sign * sinf(ang);
            for (int hh = 0; hh < n_heads; hh++) {
                float *v = x + (size_t)p * n_heads * hd + (size_t)hh * hd;
                float a = v[i], b = v[i + half];
                v[i] = a * c - b * s;
                v[i + half] = b * c + a * s;
            }
        }
}

/* A sparse block's slots from the router on (model.h). */
#define MOE_FIRST_SLOT 4

/* ---- the trace ----------------------------------------------------------------- */

typedef struct {
    float *x_in, *r1, *h1, *q, *k, *v, *lse, *ctx, *x_mid, *r2, *h2, *g, *u, *a;
    float *q_pre, *k_pre, *rq, *rk; /* before q_norm/k_norm, and their 1/rms */
    float *dk, *dv;                 /* the backward's key and value gradients, summed over the
                                       chunks done so far (from its first chunk on) */
    raana_moe_trace *moe;           /* a sparse block's MLP */
} block_trace;

struct raana_llama_trace {
    int t, n_blocks;
    int done;    /* rows [0, done) have been through the forward */
    int pending; /* rows [0, pending) still wait for the backward */
    block_trace *blocks;
    raana_linear_stats *fwd; /* x_sq, y_sq and rows from the forward pass, by slot */
};

/* Index of block b's (0 = first_block) slot 0 in this net's stats. */
static size_t slot_base(const raana_llama *net, int b)
{
    return (size_t)(raana_block_linear_offset(&net->cfg, net->first_block + b) -
                    raana_block_linear_offset(&net->cfg, net->first_block));
}

const float *raana_llama_linear_weight(const raana_llama *net, int block, int slot)
{
    const raana_block_weights *bw = &net->blocks[block - net->first_block];
    if (!bw->moe || slot < RAANA_LINEAR_GATE)
        return bw->w[slot];
    raana_linear_info li;
    raana_block_linear(&net->cfg, block, slot, &li);
    if (li.kind == RAANA_LINEAR_ROUTER)
        return bw->moe->router;
    if (li.kind == RAANA_LINEAR_SHARED_GATE)
        return bw->moe->shared_gate;
    int k = (int)li.kind - RAANA_LINEAR_GATE;
    return li.expert == RAANA_EXPERT_SHARED ? bw->moe->shared[k]
                                            : bw->moe->expert[3 * li.expert + k];
}

const int *raana_llama_trace_experts(const raana_llama_trace *trace, int b)
{
    const raana_moe_trace *m = trace->blocks[b].moe;
    return m ? raana_moe_trace_experts(m) : NULL;
}

int raana_llama_gram_group(const raana_llama *net, int block, int slot)
{
    if (net->blocks[block - net->first_block].moe && slot >= MOE_FIRST_SLOT)
        return -1; /* the router, the experts: no shared input gram */
    switch (slot) {
    case RAANA_LINEAR_Q:
    case RAANA_LINEAR_K:
    case RAANA_LINEAR_V: return RAANA_GRAM_ATTN_IN;
    case RAANA_LINEAR_O: return RAANA_GRAM_ATTN_CTX;
    case RAANA_LINEAR_GATE:
    case RAANA_LINEAR_UP: return RAANA_GRAM_MLP_IN;
    case RAANA_LINEAR_DOWN: return RAANA_GRAM_MLP_ACT;
    default: return -1;
    }
}

int raana_gram_dim(const raana_model_config *c, int group)
{
    switch (group) {
    case RAANA_GRAM_ATTN_IN:
    case RAANA_GRAM_MLP_IN: return c->hidden_size;
    case RAANA_GRAM_ATTN_CTX: return c->num_heads * c->head_dim;
    default: return c->intermediate_size;
    }
}

void raana_llama_trace_add_grams(const raana_llama *net, const raana_llama_trace *tr,
                                 float *const *grams)
{
    for (int b = 0; b < tr->n_blocks; b++) {
        const block_trace *bt = &tr->blocks[b];
        const float *x[RAANA_GRAM_GROUPS] = {bt->h1, bt->ctx, bt->moe ? NULL : bt->h2,
                                             bt->moe ? NULL : bt->a};
        for (int g = 0; g < RAANA_GRAM_GROUPS; g++) {
            float *gram = grams[b * RAANA_GRAM_GROUPS + g];
            int d = raana_gram_dim(&net->cfg, g);
            if (gram && x[g])
                cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, d, tr->t, 1.0f, x[g], d, 1.0f,
                            gram, d);
        }
    }
}

static void block_trace_free(block_trace *b)
{
    float **f[] = {&b->x_in,  &b->r1,    &b->h1, &b->q,  &b->k,  &b->v, &b->lse,
                   &b->ctx,   &b->x_mid, &b->r2, &b->h2, &b->g,  &b->u, &b->a,
                   &b->q_pre, &b->k_pre, &b->rq, &b->rk, &b->dk, &b->dv};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        free(*f[i]), *f[i] = NULL;
    raana_moe_trace_free(b->moe);
    b->moe = NULL;
}

void raana_llama_trace_free(raana_llama_trace *tr)
{
    if (!tr)
        return;
    for (int b = 0; b < tr->n_blocks; b++)
        block_trace_free(&tr->blocks[b]);
    free(tr->blocks);
    free(tr->fwd);
    free(tr);
}

static int block_trace_alloc(block_trace *b, const raana_model_config *c, int t, int sparse)
{
    size_t T = (size_t)t, h = (size_t)c->hidden_size, q = (size_t)c->num_heads * c->head_dim,
           kv = (size_t)c->num_kv_heads * c->head_dim, in = (size_t)c->intermediate_size;
    b->x_in = raana_malloc_large(T * h * 4), b->r1 = raana_malloc_large(T * 4),
    b->h1 = raana_malloc_large(T * h * 4);
    b->q = raana_malloc_large(T * q * 4), b->k = raana_malloc_large(T * kv * 4),
    b->v = raana_malloc_large(T * kv * 4);
    b->lse = raana_malloc_large((size_t)c->num_heads * T * 4),
    b->ctx = raana_malloc_large(T * q * 4);
    b->x_mid = raana_malloc_large(T * h * 4), b->r2 = raana_malloc_large(T * 4),
    b->h2 = raana_malloc_large(T * h * 4);
    int ok = b->x_in && b->r1 && b->h1 && b->q && b->k && b->v && b->lse && b->ctx && b->x_mid &&
             b->r2 && b->h2;
    if (!sparse) {
        b->g = raana_malloc_large(T * in * 4), b->u = raana_malloc_large(T * in * 4),
        b->a = raana_malloc_large(T * in * 4);
        ok = ok && b->g && b->u && b->a;
    }
    if (c->qk_norm) {
        b->q_pre = raana_malloc_large(T * q * 4), b->k_pre = raana_malloc_large(T * kv * 4);
        b->rq = raana_malloc_large(T * (size_t)c->num_heads * 4),
        b->rk = raana_malloc_large(T * (size_t)c->num_kv_heads * 4);
        ok = ok && b->q_pre && b->k_pre && b->rq && b->rk;
    }
    return ok;
}

/* ---- forward ---------------------------------------------------------------------- */

raana_status raana_llama_embed(const raana_llama *net, const int *tokens, int t, float *hidden,
                               raana_error *err)
{
    int h = net->cfg.hidden_size;
    for (int i = 0; i < t; i++) {
        if (tokens[i] < 0 || tokens[i] >= net->cfg.vocab_size)
            return raana_fail(err, RAANA_ERR_INPUT,
                              "token id %d at position %d is outside the "
                              "vocabulary (%d)",
                              tokens[i], i, net->cfg.vocab_size);
        memcpy(hidden + (size_t)i * h, net->embed + (size_t)tokens[i] * h, (size_t)h * 4);
    }
    return RAANA_OK;
}

/* Rows [t0, t0 + n) of a window of T tokens: one chunk of it, or all. */
typedef struct {
    int t0, n, T;
} chunk_rows;

/* The attention of the chunk's queries over the window's keys up to its end. */
static raana_attention_shape attention_shape(const raana_llama *net, chunk_rows rw)
{
    const raana_model_config *c = &net->cfg;
    return (raana_attention_shape){rw.t0 + rw.n, c->num_heads,         c->num_kv_heads,
                                   c->head_dim,  net->attention_block, rw.t0,
                                   rw.T};
}

static chunk_rows whole_window(int t)
{
    return (chunk_rows){0, t, t};
}

/* q and k of every head through q_norm/k_norm (qwen3), keeping the inputs. */
static void qk_norm_forward(const raana_llama *net, const raana_block_weights *bw, block_trace *bt,
                            chunk_rows rw)
{
    const raana_model_config *c = &net->cfg;
    size_t R = (size_t)rw.n, o = (size_t)rw.t0, q = (size_t)c->num_heads * c->head_dim,
           kv = (size_t)c->num_kv_heads * c->head_dim;
    memcpy(bt->q_pre + o * q, bt->q + o * q, R * q * 4);
    memcpy(bt->k_pre + o * kv, bt->k + o * kv, R * kv * 4);
    rmsnorm(bt->q_pre + o * q, rw.n * c->num_heads, c->head_dim, bw->q_norm, c->rms_norm_eps,
            bt->rq + o * c->num_heads, bt->q + o * q);
    rmsnorm(bt->k_pre + o * kv, rw.n * c->num_kv_heads, c->head_dim, bw->k_norm, c->rms_norm_eps,
            bt->rk + o * c->num_kv_heads, bt->k + o * kv);
}

static void attention_forward(const raana_llama *net, const raana_block_weights *bw, float *x,
                              chunk_rows rw, block_trace *bt, raana_linear_stats *st, float *tmp,
                              float *work)
{
    const raana_model_config *c = &net->cfg;
    int h = c->hidden_size, q = c->num_heads * c->head_dim, kv = c->num_kv_heads * c->head_dim;
    int t = rw.n;
    size_t R = (size_t)t, o = (size_t)rw.t0;
    float *h1 = bt->h1 + o * h, *yq = bt->q + o * q, *yk = bt->k + o * kv, *yv = bt->v + o * kv;
    memcpy(bt->x_in + o * h, x, R * h * 4);
    rmsnorm(x, t, h, bw->attn_norm, c->rms_norm_eps, bt->r1 + o, h1);
    raana_nn_linear(h1, t, h, q, bw->w[RAANA_LINEAR_Q], bw->b[RAANA_LINEAR_Q], yq);
    raana_nn_linear(h1, t, h, kv, bw->w[RAANA_LINEAR_K], bw->b[RAANA_LINEAR_K], yk);
    raana_nn_linear(h1, t, h, kv, bw->w[RAANA_LINEAR_V], bw->b[RAANA_LINEAR_V], yv);
    double h1_sq = raana_nn_sum_sq(h1, R * h);
    st[RAANA_LINEAR_Q] = (raana_linear_stats){h1_sq, raana_nn_sum_sq(yq, R * q), 0, t};
    st[RAANA_LINEAR_K] = (raana_linear_stats){h1_sq, raana_nn_sum_sq(yk, R * kv), 0, t};
    st[RAANA_LINEAR_V] = (raana_linear_stats){h1_sq, raana_nn_sum_sq(yv, R * kv), 0, t};
    if (c->qk_norm)
        qk_norm_forward(net, bw, bt, rw);
    rope(net, yq, rw.t0, t, c->num_heads, 1.0f);
    rope(net, yk, rw.t0, t, c->num_kv_heads, 1.0f);
    raana_attention_shape as = attention_shape(net, rw);
    raana_attention_forward(&as, bt->q, bt->k, bt->v, bt->ctx, bt->lse, work);
    const float *ctx = bt->ctx + o * q;
    raana_nn_linear(ctx, t, q, h, bw->w[RAANA_LINEAR_O], bw->b[RAANA_LINEAR_O], tmp);
    st[RAANA_LINEAR_O] =
        (raana_linear_stats){raana_nn_sum_sq(ctx, R * q), raana_nn_sum_sq(tmp, R * h), 0, t};
    for (size_t i = 0; i < R * h; i++)
        x[i] += tmp[i];
}

/* The dense MLP's SwiGLU (swiglu.h) of block weights bw. */
static raana_swiglu dense_mlp(const raana_llama *net, const raana_block_weights *bw)
{
    enum { G = RAANA_LINEAR_GATE, U = RAANA_LINEAR_UP, D = RAANA_LINEAR_DOWN };
    return (raana_swiglu){net->cfg.hidden_size,
                          net->cfg.intermediate_size,
                          {bw->w[G], bw->w[U], bw->w[D]},
                          {bw->b[G], bw->b[U], bw->b[D]},
                          RAANA_SILU_QUOTIENT};
}

/* The chunk's rows of a dense block's SwiGLU trace. */
static raana_swiglu_trace dense_mlp_rows(const raana_llama *net, const block_trace *bt,
                                         chunk_rows rw)
{
    size_t o = (size_t)rw.t0 * (size_t)net->cfg.intermediate_size;
    return (raana_swiglu_trace){bt->g + o, bt->u + o, bt->a + o};
}

static raana_status block_forward(const raana_llama *net, const raana_block_weights *bw, float *x,
                                  chunk_rows rw, block_trace *bt, raana_linear_stats *st,
                                  float *tmp, float *work, raana_error *err)
{
    const raana_model_config *c = &net->cfg;
    int h = c->hidden_size;
    size_t R = (size_t)rw.n, o = (size_t)rw.t0;
    attention_forward(net, bw, x, rw, bt, st, tmp, work);
    memcpy(bt->x_mid + o * h, x, R * h * 4);
    rmsnorm(x, rw.n, h, bw->mlp_norm, c->rms_norm_eps, bt->r2 + o, bt->h2 + o * h);
    if (bw->moe) {
        if (rw.n != rw.T)
            return RAANA_INTERNAL(err, "a sparse block runs whole windows only");
        RAANA_CALL(
            raana_moe_forward(bw->moe, bt->h2, rw.n, h, tmp, st + MOE_FIRST_SLOT, &bt->moe, err));
    } else {
        raana_swiglu mlp = dense_mlp(net, bw);
        raana_swiglu_trace tr = dense_mlp_rows(net, bt, rw);
        raana_swiglu_forward(&mlp, bt->h2 + o * h, rw.n, &tr, tmp, st + RAANA_LINEAR_GATE);
    }
    for (size_t i = 0; i < R * h; i++)
        x[i] += tmp[i];
    return RAANA_OK;
}

/* A new trace of a window of t tokens, every block's buffers allocated. */
static raana_status trace_create(const raana_llama *net, int t, raana_llama_trace **out,
                                 raana_error *err)
{
    size_t n_slots = slot_base(net, net->n_blocks);
    raana_llama_trace *tr = calloc(1, sizeof *tr);
    *out = tr;
    if (!tr ||
        !(tr->blocks = calloc((size_t)(net->n_blocks ? net->n_blocks : 1), sizeof *tr->blocks)) ||
        !(tr->fwd = calloc(n_slots ? n_slots : 1, sizeof *tr->fwd)))
        return raana_fail(err, RAANA_ERR_NOMEM, "out of memory for activations");
    tr->t = t;
    tr->n_blocks = net->n_blocks;
    for (int b = 0; b < net->n_blocks; b++)
        if (!block_trace_alloc(&tr->blocks[b], &net->cfg, t, net->blocks[b].moe != NULL))
            return raana_fail(err, RAANA_ERR_NOMEM,
                              "out of memory for the activations of %d tokens", t);
    return RAANA_OK;
}

/* The chunk's rows through every block; its statistics added to tr->fwd. */
static raana_status forward_rows(const raana_llama *net, float *hidden, chunk_rows rw,
                                 raana_llama_trace *tr, raana_error *err)
{
    raana_status st = RAANA_OK;
    size_t n_slots = slot_base(net, net->n_blocks);
    raana_attention_shape as = attention_shape(net, whole_window(rw.T));
    float *tmp = raana_malloc_large((size_t)rw.n * net->cfg.hidden_size * 4);
    float *work = raana_malloc_large(raana_attention_work_floats(&as) * sizeof *work);
    raana_linear_stats *cs = calloc(n_slots ? n_slots : 1, sizeof *cs);
    if (!tmp || !work || !cs)
        RAANA_FAIL_GOTO(err, RAANA_ERR_NOMEM, "out of memory for activations");
    for (int b = 0; b < net->n_blocks; b++)
        RAANA_CHECK(block_forward(net, &net->blocks[b], hidden, rw, &tr->blocks[b],
                                  cs + slot_base(net, b), tmp, work, err));
    for (size_t k = 0; k < n_slots; k++) {
        tr->fwd[k].x_sq += cs[k].x_sq, tr->fwd[k].y_sq += cs[k].y_sq;
        tr->fwd[k].rows += cs[k].rows;
    }
    tr->done = tr->pending = rw.t0 + rw.n;
cleanup:
    free(tmp), free(work), free(cs);
    return st;
}

raana_status raana_llama_forward_chunk(const raana_llama *net, float *hidden, int t0, int n, int t,
                                       raana_llama_trace **trace, raana_error *err)
{
    raana_status st = RAANA_OK;
    raana_llama_trace *tr = *trace;
    if (t0 == 0 && !tr) {
        RAANA_CHECK(raana_model_check_window(&net->cfg, t, "config.json", err));
        RAANA_CHECK(trace_create(net, t, trace, err));
        tr = *trace;
    }
    if (!tr || tr->t != t || tr->done != t0 || n <= 0 || t0 + n > t) {
        st = RAANA_INTERNAL(err, "forward chunk [%d, %d) of a %d-token window out of order", t0,
                            t0 + n, t);
        goto cleanup;
    }
    RAANA_CHECK(forward_rows(net, hidden, (chunk_rows){t0, n, t}, tr, err));
cleanup:
    if (st != RAANA_OK) {
        raana_llama_trace_free(*trace);
        *trace = NULL;
    }
    return st;
}

raana_status raana_llama_forward_blocks(const raana_llama *net, float *hidden, int t,
                                        raana_llama_trace **out, raana_error *err)
{
    *out = NULL;
    return raana_llama_forward_chunk(net, hidden, 0, t, t, out, err);
}

/* A row's cross-entropy against target from its logits (double), and
 * (dl non-NULL) dl = (softmax - onehot) / n_pred, which may be the row. */
static double cross_entropy_row(const float *row, int v, int target, int n_pred, float *dl)
{
    double lse = raana_logsumexp(row, v), loss = lse - row[target];
    if (dl) {
        for (int j = 0; j < v; j++)
            dl[j] = (float)(exp((double)row[j] - lse) / n_pred);
        dl[target] -= 1.0f / (float)n_pred;
    }
    return loss;
}

raana_status raana_llama_head_rows(const raana_llama *net, const float *hidden, const int *tokens,
                                   int t0, int n, int t, float *logits_out, double *loss_sum,
                                   float *dhidden, raana_error *err)
{
    raana_status st = RAANA_OK;
    const raana_model_config *c = &net->cfg;
    int h = c->hidden_size, v = c->vocab_size;
    size_t nv = (size_t)n * v;
    float *r = malloc((size_t)n * 4), *hn = raana_malloc_large((size_t)n * h * 4);
    float *logits = logits_out ? logits_out : raana_malloc_large(nv * 4);
    /* dlogits overwrite the logits unless the caller keeps them */
    float *dlogits = !dhidden ? NULL : logits_out ? raana_calloc_large(nv, 4) : logits;
    float *dhn = dhidden ? raana_malloc_large((size_t)n * h * 4) : NULL;
    if (!r || !hn || !logits || (dhidden && (!dlogits || !dhn)))
        RAANA_FAIL_GOTO(err, RAANA_ERR_NOMEM, "out of memory for %d x %d logits", n, v);
    rmsnorm(hidden, n, h, net->final_norm, c->rms_norm_eps, r, hn);
    raana_nn_linear(hn, n, h, v, net->lm_head, NULL, logits);
    double total = 0;
    int n_pred = t - 1, end = t0 + n < n_pred ? n : n_pred - t0; /* rows that predict */
    end = end > 0 ? end : 0;
    for (int i = 0; i < end; i++)
        total += cross_entropy_row(logits + (size_t)i * v, v, tokens[t0 + i + 1], n_pred,
                                   dlogits ? dlogits + (size_t)i * v : NULL);
    *loss_sum = total;
    if (dhidden) { /* position t - 1 predicts nothing: its gradient is 0 */
        if (end < n)
            memset(dlogits + (size_t)end * v, 0, (size_t)(n - end) * v * 4);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, h, v, 1.0f, dlogits, v,
                    net->lm_head, h, 0.0f, dhn, h);
        memset(dhidden, 0, (size_t)n * h * 4);
        rmsnorm_backward(hidden, r, n, h, net->final_norm, dhn, dhidden);
    }
cleanup:
    if (dlogits != logits)
        free(dlogits);
    if (!logits_out)
        free(logits);
    free(r), free(hn), free(dhn);
    return st;
}

raana_status raana_llama_head(const raana_llama *net, const float *hidden, const int *tokens, int t,
                              float *logits, double *loss, float *dhidden, raana_error *err)
{
    double total = 0;
    RAANA_CALL(raana_llama_head_rows(net, hidden, tokens, 0, t, t, logits, &total, dhidden, err));
    *loss = t > 1 ? total / (t - 1) : 0;
    return RAANA_OK;
}

raana_status raana_llama_logits(const raana_llama *net, const float *hidden, int t, float *logits,
                                raana_error *err)
{
    const raana_model_config *c = &net->cfg;
    int h = c->hidden_size;
    float *r = malloc((size_t)t * 4), *hn = raana_malloc_large((size_t)t * h * 4);
    if (!r || !hn) {
        free(r), free(hn);
        return raana_fail(err, RAANA_ERR_NOMEM, "out of memory for %d x %d activations", t, h);
    }
    rmsnorm(hidden, t, h, net->final_norm, c->rms_norm_eps, r, hn);
    raana_nn_linear(hn, t, h, c->vocab_size, net->lm_head, NULL, logits);
    free(r), free(hn);
    return RAANA_OK;
}

/* ---- backward ------------------------------------------------------------------------ */

typedef struct {
    float *da, *dg, *du, *dh, *dctx, *dq, *dq_pre, *dk_pre, *work;
} backward_scratch;

static void scratch_free(backward_scratch *s)
{
    free(s->da), free(s->dg), free(s->du), free(s->dh), free(s->dctx);
    free(s->dq), free(s->dq_pre), free(s->dk_pre), free(s->work);
}

/* Buffers of one chunk's rows (the attention's work: the window's). */
static int scratch_alloc(backward_scratch *s, const raana_llama *net, chunk_rows rw)
{
    const raana_model_config *c = &net->cfg;
    raana_attention_shape as = attention_shape(net, whole_window(rw.T));
    size_t R = (size_t)rw.n, in = (size_t)c->intermediate_size, h = (size_t)c->hidden_size,
           q = (size_t)c->num_heads * c->head_dim, kv = (size_t)c->num_kv_heads * c->head_dim;
    s->da = raana_malloc_large(R * in * 4), s->dg = raana_malloc_large(R * in * 4),
    s->du = raana_malloc_large(R * in * 4);
    s->dh = raana_malloc_large(R * h * 4), s->dctx = raana_malloc_large(R * q * 4),
    s->dq = raana_malloc_large(R * q * 4);
    s->dq_pre = raana_malloc_large(R * q * 4), s->dk_pre = raana_malloc_large(R * kv * 4);
    s->work = raana_malloc_large(raana_attention_work_floats(&as) * sizeof *s->work);
    return s->da && s->dg && s->du && s->dh && s->dctx && s->dq && s->dq_pre && s->dk_pre &&
           s->work;
}

/* s->dh = gradient at the MLP input h2 from dx at the MLP output. */
static void dense_mlp_backward(const raana_llama *net, const raana_block_weights *bw,
                               const block_trace *bt, chunk_rows rw, const float *dx,
                               raana_linear_stats *st, backward_scratch *s)
{
    raana_swiglu mlp = dense_mlp(net, bw);
    raana_swiglu_trace tr = dense_mlp_rows(net, bt, rw);
    raana_swiglu_scratch sc = {s->da, s->dg, s->du};
    raana_swiglu_backward(&mlp, &tr, rw.n, dx, &sc, s->dh, st + RAANA_LINEAR_GATE);
}

/* dq and dk (the chunk's rows, w.r.t. the normalized q and k) back through
 * q_norm/k_norm: the gradients at the projections' outputs in dq_pre/dk_pre. */
static void qk_norm_backward(const raana_llama *net, const raana_block_weights *bw,
                             const block_trace *bt, chunk_rows rw, const float *dk,
                             backward_scratch *s)
{
    const raana_model_config *c = &net->cfg;
    size_t R = (size_t)rw.n, o = (size_t)rw.t0, q = (size_t)c->num_heads * c->head_dim,
           kv = (size_t)c->num_kv_heads * c->head_dim;
    memset(s->dq_pre, 0, R * q * 4);
    memset(s->dk_pre, 0, R * kv * 4);
    rmsnorm_backward(bt->q_pre + o * q, bt->rq + o * c->num_heads, rw.n * c->num_heads, c->head_dim,
                     bw->q_norm, s->dq, s->dq_pre);
    rmsnorm_backward(bt->k_pre + o * kv, bt->rk + o * c->num_kv_heads, rw.n * c->num_kv_heads,
                     c->head_dim, bw->k_norm, dk, s->dk_pre);
}

/* The chunk's queries add to the window's key and value gradients (bt->dk,
 * bt->dv); the chunk's own rows of those are then final (later chunks went
 * first) and go back through the projections. */
static void attention_backward(const raana_llama *net, const raana_block_weights *bw,
                               block_trace *bt, chunk_rows rw, float *dx, raana_linear_stats *st,
                               backward_scratch *s)
{
    const raana_model_config *c = &net->cfg;
    int h = c->hidden_size, q = c->num_heads * c->head_dim, kv = c->num_kv_heads * c->head_dim;
    int t = rw.n;
    size_t R = (size_t)t, o = (size_t)rw.t0;
    st[RAANA_LINEAR_O].dy_sq += raana_nn_sum_sq(dx, R * h); /* dY_o = dx */
    raana_nn_linear_backward(dx, t, q, h, bw->w[RAANA_LINEAR_O], 0.0f, s->dctx);
    raana_attention_shape as = attention_shape(net, rw);
    raana_attention_backward_rows(&as, bt->q, bt->k, bt->v, bt->ctx, bt->lse, s->dctx, s->dq,
                                  bt->dk, bt->dv, s->work);
    float *dk_rope = bt->dk + o * kv, *dv = bt->dv + o * kv;
    rope(net, s->dq, rw.t0, t, c->num_heads, -1.0f); /* gradient w.r.t. the pre-RoPE q and k */
    rope(net, dk_rope, rw.t0, t, c->num_kv_heads, -1.0f);
    const float *dq = s->dq, *dk = dk_rope;
    if (c->qk_norm) {
        qk_norm_backward(net, bw, bt, rw, dk_rope, s);
        dq = s->dq_pre, dk = s->dk_pre;
    }
    st[RAANA_LINEAR_Q].dy_sq += raana_nn_sum_sq(dq, R * q);
    st[RAANA_LINEAR_K].dy_sq += raana_nn_sum_sq(dk, R * kv);
    st[RAANA_LINEAR_V].dy_sq += raana_nn_sum_sq(dv, R * kv);
    raana_nn_linear_backward(dq, t, h, q, bw->w[RAANA_LINEAR_Q], 0.0f, s->dh);
    raana_nn_linear_backward(dk, t, h, kv, bw->w[RAANA_LINEAR_K], 1.0f, s->dh);
    raana_nn_linear_backward(dv, t, h, kv, bw->w[RAANA_LINEAR_V], 1.0f, s->dh);
    rmsnorm_backward(bt->x_in + o * h, bt->r1 + o, t, h, bw->attn_norm, s->dh, dx);
}

static raana_status block_backward(const raana_llama *net, const raana_block_weights *bw,
                                   block_trace *bt, chunk_rows rw, float *dx,
                                   raana_linear_stats *st, backward_scratch *s, raana_error *err)
{
    const raana_model_config *c = &net->cfg;
    size_t o = (size_t)rw.t0 * (size_t)c->hidden_size;
    if (bw->moe) {
        if (rw.n != rw.T)
            return RAANA_INTERNAL(err, "a sparse block runs whole windows only");
        RAANA_CALL(
            raana_moe_backward(bw->moe, bt->moe, bt->h2, dx, s->dh, st + MOE_FIRST_SLOT, err));
    } else
        dense_mlp_backward(net, bw, bt, rw, dx, st, s);
    rmsnorm_backward(bt->x_mid + o, bt->r2 + rw.t0, rw.n, c->hidden_size, bw->mlp_norm, s->dh, dx);
    attention_backward(net, bw, bt, rw, dx, st, s);
    return RAANA_OK;
}

/* Block b's key and value gradient sums, at its first backward chunk (a
 * whole window's: allocated just before the block and freed after it). */
static raana_status key_value_sums(const raana_llama *net, block_trace *bt, int t, raana_error *err)
{
    if (bt->dk)
        return RAANA_OK;
    size_t kv = (size_t)t * (size_t)net->cfg.num_kv_heads * net->cfg.head_dim;
    bt->dk = raana_calloc_large(kv, sizeof *bt->dk);
    bt->dv = raana_calloc_large(kv, sizeof *bt->dv);
    if (!bt->dk || !bt->dv)
        return raana_fail(err, RAANA_ERR_NOMEM, "out of memory for the backward pass");
    return RAANA_OK;
}

/* Before a window's first backward chunk (its last rows): the forward's
 * statistics into stats. */
static void add_forward_stats(const raana_llama *net, const raana_llama_trace *tr,
                              raana_linear_stats *stats)
{
    for (size_t k = 0; k < slot_base(net, net->n_blocks); k++) {
        stats[k].x_sq += tr->fwd[k].x_sq;
        stats[k].y_sq += tr->fwd[k].y_sq;
        stats[k].rows += tr->fwd[k].rows;
    }
}

raana_status raana_llama_backward_chunk(const raana_llama *net, raana_llama_trace **trace,
                                        float *dhidden, int t0, int n, raana_linear_stats *stats,
                                        raana_error *err)
{
    raana_status st = RAANA_OK;
    raana_llama_trace *tr = *trace;
    backward_scratch s;
    memset(&s, 0, sizeof s);
    if (!tr || tr->done != tr->t || tr->pending != t0 + n || n <= 0 || t0 < 0) {
        st = RAANA_INTERNAL(err, "backward chunk [%d, %d) out of order", t0, t0 + n);
        goto cleanup;
    }
    chunk_rows rw = {t0, n, tr->t};
    if (tr->pending == tr->t)
        add_forward_stats(net, tr, stats);
    if (!scratch_alloc(&s, net, rw))
        RAANA_FAIL_GOTO(err, RAANA_ERR_NOMEM, "out of memory for the backward pass");
    for (int b = net->n_blocks - 1; b >= 0; b--) {
        RAANA_CHECK(key_value_sums(net, &tr->blocks[b], tr->t, err));
        RAANA_CHECK(block_backward(net, &net->blocks[b], &tr->blocks[b], rw, dhidden,
                                   stats + slot_base(net, b), &s, err));
        if (t0 == 0)
            block_trace_free(&tr->blocks[b]); /* its memory is not needed any more */
    }
    tr->pending = t0;
cleanup:
    scratch_free(&s);
    if (st != RAANA_OK || t0 == 0) {
        raana_llama_trace_free(*trace);
        *trace = NULL;
    }
    return st;
}

raana_status raana_llama_backward_blocks(const raana_llama *net, raana_llama_trace *tr,
                                         float *dhidden, raana_linear_stats *stats,
                                         raana_error *err)
{
    if (!tr)
        return RAANA_INTERNAL(err, "backward without a trace");
    return raana_llama_backward_chunk(net, &tr, dhidden, 0, tr->t, stats, err);
}
