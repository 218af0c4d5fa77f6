/* memory_estimate.c — the calibration activations and the quantize
 * stage's working set in a rank's peak memory estimate (see
 * memory_estimate.h). */
#include "raana/memory_estimate.h"

#include <limits.h>
#include <math.h>

#include "raana/qlayer.h"

/* Bytes of one quantized layer as it sits in memory until written. */
static uint64_t quantized_layer_bytes(const raana_plan_layer *l, const raana_config *cfg)
{
    uint64_t d_in = (uint64_t)l->d_in, d_out = (uint64_t)l->d_out;
    uint64_t bytes = (uint64_t)ceil((double)(d_in * d_out) * cfg->avg_bits / 8) + 4 * d_out;
    if (cfg->tricks & RAANA_TRICK_CENTRALIZE)
        bytes += 4 * d_in;
    if (cfg->tricks & RAANA_TRICK_NORM_ROW)
        bytes += 4 * d_in;
    if (cfg->tricks & RAANA_TRICK_NORM_COL)
        bytes += (uint64_t)floor(cfg->norm_col_rate * (double)d_out) * (4 * d_in + 4);
    bytes += 2 * (uint64_t)raana_plan_layer_lowrank(cfg, l) * (d_in + d_out);
    return bytes;
}

/* LDLQ's working set for a layer, and the receive buffer of its gram. */
static void ldlq_bytes(const raana_plan_layer *l, const raana_config *cfg, uint64_t *work,
                       uint64_t *gram)
{
    uint64_t d_in = (uint64_t)l->d_in, d_out = (uint64_t)l->d_out;
    int has = raana_plan_layer_has_gram(cfg, l);
    *work = has && cfg->ldlq ? 8 * d_in * d_in + 5 * d_in * d_out : 0;
    *gram = has ? 4 * d_in * d_in : 0;
}

/* Low-rank factors' working set for a layer (lowrank.h): the weighted
 * error M in double (kept between layers), the dequantized layer it comes
 * from (the PCA trick: W in double, and W less its factors in float), and
 * dgesvd's copy of M, U and V^T. */
static uint64_t lowrank_bytes(const raana_plan_layer *l, const raana_config *cfg)
{
    uint64_t m = (uint64_t)l->d_in, n = (uint64_t)l->d_out, k = m < n ? m : n;
    if (raana_plan_layer_lowrank(cfg, l) == 0)
        return 0;
    return 8 * m * n + 4 * m * n + 8 * (m * n + k * (m + n));
}

uint64_t raana_estimate_gram_bytes(const raana_model_config *m, int first, int next,
                                   const raana_config *cfg)
{
    if (!raana_config_wants_grams(cfg))
        return 0;
    uint64_t h = (uint64_t)m->hidden_size, ctx = (uint64_t)m->num_heads * m->head_dim;
    uint64_t inter = (uint64_t)m->intermediate_size, bytes = 0;
    for (int b = first; b < next; b++) {
        bytes += 4 * (h * h + ctx * ctx);
        if (!raana_block_is_sparse(m, b))
            bytes += 4 * (h * h + inter * inter);
    }
    return bytes;
}

uint64_t raana_estimate_quantize_bytes(const raana_plan *plan, int first, int next,
                                       const raana_config *cfg)
{
    uint64_t own = 0, foreign = 0, kept = 0, ldlq = 0, gram = 0, lowrank = 0, split = 0;
    for (int i = 0; i < plan->n_layers; i++) {
        const raana_plan_layer *l = &plan->layers[i];
        uint64_t weights = (uint64_t)l->d_in * (uint64_t)l->d_out;
        if (!l->quantize)
            continue;
        if (l->block >= first && l->block < next)
            kept += quantized_layer_bytes(l, cfg);
        if (l->split) { /* a piece received and its tricked copy; the rescales twice and
                           three sums per column (column_split.c) */
            uint64_t piece = ((uint64_t)l->d_out + (uint64_t)plan->n_ranks - 1) /
                             (uint64_t)plan->n_ranks * (uint64_t)l->d_in;
            uint64_t work = 8 * piece + 32 * (uint64_t)l->d_out;
            split = work > split ? work : split;
            continue;
        }
        uint64_t work, g;
        ldlq_bytes(l, cfg, &work, &g);
        ldlq = work > ldlq ? work : ldlq;
        lowrank = lowrank_bytes(l, cfg) > lowrank ? lowrank_bytes(l, cfg) : lowrank;
        /* layers whose weights or gram exceed one MPI message never move (quantize.c) */
        int moves = weights <= INT_MAX && g / 4 <= INT_MAX;
        if (!(l->block >= first && l->block < next) && moves)
            gram = g > gram ? g : gram;
        if (l->block >= first && l->block < next) {
            own = 4 * weights > own ? 4 * weights : own;
        } else if (moves) {
            foreign = 4 * weights > foreign ? 4 * weights : foreign;
        }
    }
    /* the receive buffer stays through the rounds; the working copy is of
     * the layer being encoded, own or received; the split layers come
     * first, with their own buffers (quantize.c) */
    uint64_t rounds = foreign + (own > foreign ? own : foreign);
    return (rounds > split ? rounds : split) + kept + ldlq + gram + lowrank;
}

/* Attention is blocked: a trace keeps one log-sum-exp per head and
 * position, and the tiles' scratch is 2 x 128^2 floats. In chunks, the key
 * and value gradient sums of every block live through a window's backward
 * (whole windows: one block's at a time, with the working buffers). */
uint64_t raana_estimate_calibration_bytes(const raana_model_config *m, const raana_plan_rank *r,
                                          int seq_len, int n_traces, int chunk_tokens)
{
    uint64_t t = (uint64_t)seq_len, h = (uint64_t)m->hidden_size,
             inter = (uint64_t)m->intermediate_size, heads = (uint64_t)m->num_heads;
    if (m->moe_experts > 0) /* routed rows of the experts, the router's softmax */
        inter = (uint64_t)m->moe_top_k * ((uint64_t)m->moe_intermediate_size + h / 3) +
                (uint64_t)m->moe_shared_intermediate_size + (uint64_t)m->moe_experts;
    uint64_t per_block = t * (8 * h + 3 * inter + 2 + heads);
    uint64_t acts = (uint64_t)n_traces * (uint64_t)r->n_blocks * per_block + 4 * t * h +
                    2 * t * inter + 2 * 128 * 128 + t;
    if (chunk_tokens > 0 && chunk_tokens < seq_len)
        acts += 2 * t * (uint64_t)m->num_kv_heads * (uint64_t)m->head_dim * (uint64_t)r->n_blocks;
    if (r->owns_head) /* logits (their gradient in place), and one head gradient per trace */
        acts += t * (uint64_t)m->vocab_size + (uint64_t)n_traces * t * h;
    return 4 * acts;
}
