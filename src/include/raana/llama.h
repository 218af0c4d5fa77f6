/* llama.h — the LLaMA-family decoder in f32 on OpenBLAS: a range of
 * decoder blocks (plus, optionally, the embedding and the head), the
 * forward pass of one token sequence, mean next-token cross-entropy, and
 * the backward pass of activation gradients only (dL/dY of every linear
 * output, never weight gradients), with the per-layer statistics that
 * AllocateBits needs. No MPI: a pipeline stage hands activations and their
 * gradients across block ranges (see raana_llama_forward_blocks and
 * raana_llama_backward_blocks).
 *
 * Conventions follow Hugging Face LlamaForCausalLM: RMSNorm in f32,
 * (qwen3) per-head q_norm/k_norm before RoPE, sparse mixture-of-experts
 * MLPs in moe.h,
 * RoPE with rotate_half (dimension i pairs with i + head_dim/2), grouped
 * query attention with a causal mask, SwiGLU MLP down(silu(gate(x)) *
 * up(x)), optional q/k/v/o and MLP biases, tied or untied lm_head.
 * Attention is blocked (attention.h): a trace keeps each head's per-row
 * log-sum-exp, never the T x T probabilities. */
#ifndef RAANA_LLAMA_H
#define RAANA_LLAMA_H

#include <stddef.h>

#include "raana/error.h"
#include "raana/model.h"

typedef struct raana_moe_weights raana_moe_weights; /* moe.h */
typedef struct raana_llama_trace raana_llama_trace;

typedef struct {
    float *attn_norm, *mlp_norm;  /* [H] */
    float *q_norm, *k_norm;       /* [head_dim] (qwen3), or NULL */
    float *w[RAANA_LINEAR_COUNT]; /* HF layout [d_out][d_in]; no MLP ones in a sparse block */
    float *b[RAANA_LINEAR_COUNT]; /* bias [d_out] or NULL */
    raana_moe_weights *moe;       /* the sparse MLP (moe.h), or NULL */
} raana_block_weights;

typedef struct {
    raana_model_config cfg;
    int first_block, n_blocks;
    raana_block_weights *blocks;
    float *embed;      /* [V][H] or NULL */
    float *final_norm; /* [H] or NULL */
    float *lm_head;    /* [V][H] (may be embed when tied) or NULL */
    float *inv_freq;   /* [head_dim / 2], RoPE frequencies after scaling */

    int attention_block; /* attention tile edge (attention.h); 0 = default */
} raana_llama;

/* Reads blocks [first, first + n) and, if asked, the embedding and the
 * final norm + lm_head, converting to f32 (NaN/Inf refused by name). */
raana_status raana_llama_load(raana_llama *net, const raana_model *model, int first, int n,
                              int with_embedding, int with_head, raana_error *err);
/* The same, with only the routed experts e with keep[e] of each sparse
 * block (keep NULL: all; moe.h's raana_moe_load_keeping): an expert
 * team's block owner (docs/MOE.md, "Expert parallelism"). */
raana_status raana_llama_load_keeping(raana_llama *net, const raana_model *model, int first, int n,
                                      int with_embedding, int with_head, const unsigned char *keep,
                                      raana_error *err);
void raana_llama_free(raana_llama *net);

/* Sets net->inv_freq from net->cfg (done by raana_llama_load; for nets
 * assembled by hand, e.g. benchmarks with random weights). */
raana_status raana_llama_init_rope(raana_llama *net, raana_error *err);

/* Sums of squares over one sequence for one linear layer, and the number
 * of rows (tokens) that went through it: T, or for an expert the tokens
 * routed to it. */
typedef struct {
    double x_sq, y_sq, dy_sq;
    double rows;
} raana_linear_stats;

/* The weight [d_out][d_in] of slot `slot` (model.h) of decoder block
 * `block` (absolute index, loaded in this net). */
const float *raana_llama_linear_weight(const raana_llama *net, int block, int slot);

/* The experts chosen in the b-th block of the net (0 = first_block) for
 * each token, [T][moe_top_k], highest weight first; NULL for a dense block
 * or once the backward has consumed the trace. */
const int *raana_llama_trace_experts(const raana_llama_trace *trace, int b);

/* Activations of one sequence through this net's blocks, kept for the
 * backward pass. */
typedef struct raana_llama_trace raana_llama_trace;

/* The distinct inputs of a block's linear layers, whose second moments
 * (grams, sum over tokens of x x^T) LDLQ uses (ldlq.h): q, k and v share the
 * attention input, gate and up the MLP input. A sparse block's experts have
 * none (their inputs are the tokens routed to each). */
enum {
    RAANA_GRAM_ATTN_IN,  /* q, k, v: [hidden] */
    RAANA_GRAM_ATTN_CTX, /* o: [heads * head_dim] */
    RAANA_GRAM_MLP_IN,   /* gate, up: [hidden] (dense blocks) */
    RAANA_GRAM_MLP_ACT,  /* down: [intermediate] (dense blocks) */
    RAANA_GRAM_GROUPS
};
/* The group of slot `slot` (model.h) of block `block` (absolute, loaded
 * in net), or -1 (a sparse block's router and experts). */
int raana_llama_gram_group(const raana_llama *net, int block, int slot);
/* The dimension of group g's input. */
int raana_gram_dim(const raana_model_config *c, int group);
/* Adds X^T X (upper triangle, row-major [d][d]) of one window's inputs to
 * grams[b * RAANA_GRAM_GROUPS + g] for block b (0 = first_block) and group
 * g, for every non-NULL pointer (a sparse block's MLP groups are skipped);
 * from a forward trace, before the backward frees it. */
void raana_llama_trace_add_grams(const raana_llama *net, const raana_llama_trace *tr,
                                 float *const *grams);

/* hidden[T][H] = embedding of tokens (needs the embedding). */
raana_status raana_llama_embed(const raana_llama *net, const int *tokens, int t, float *hidden,
                               raana_error *err);

/* Runs hidden[T][H] through the blocks in place, recording a trace. */
raana_status raana_llama_forward_blocks(const raana_llama *net, float *hidden, int t,
                                        raana_llama_trace **trace, raana_error *err);

/* A window of t tokens in chunks, for a pipeline whose unit is smaller
 * than a window: runs the rows [t0, t0 + n) (hidden[n][H], in place)
 * through the blocks. The first chunk (t0 = 0) creates *trace (NULL
 * before); the others follow in order, each attending to the keys and
 * values of the rows before it, which the trace holds. Only dense blocks
 * take chunks smaller than the window. On failure the trace is freed and
 * *trace is NULL. One chunk of t rows is raana_llama_forward_blocks. */
raana_status raana_llama_forward_chunk(const raana_llama *net, float *hidden, int t0, int n, int t,
                                       raana_llama_trace **trace, raana_error *err);

/* Final norm, logits (optional out, [T][V]) and the mean cross-entropy of
 * predicting tokens[1..T) from positions 0..T-2; also dL/dhidden (the
 * gradient flowing back into the last block), [T][H]. */
raana_status raana_llama_head(const raana_llama *net, const float *hidden, const int *tokens, int t,
                              float *logits, double *loss, float *dhidden, raana_error *err);

/* raana_llama_head for the rows [t0, t0 + n) of a window of t tokens
 * (hidden, logits and dhidden hold those rows): *loss_sum is the sum of
 * the cross-entropies of the predictions at those rows (position t - 1
 * predicts nothing), dhidden the gradient of the window's mean. */
raana_status raana_llama_head_rows(const raana_llama *net, const float *hidden, const int *tokens,
                                   int t0, int n, int t, float *logits, double *loss_sum,
                                   float *dhidden, raana_error *err);

/* Final norm and logits[T][V] only (what raana_llama_head computes first). */
raana_status raana_llama_logits(const raana_llama *net, const float *hidden, int t, float *logits,
                                raana_error *err);

/* Backward through the blocks: dhidden[T][H] (gradient at the blocks'
 * output) becomes the gradient at their input, in place; adds each linear
 * layer's sums of squares to stats (block-major, slot order of model.h:
 * block first_block + b starts at raana_block_linear_offset(cfg, first +
 * b) - raana_block_linear_offset(cfg, first); n_blocks * RAANA_LINEAR_COUNT
 * entries for a dense model). Frees the trace. */
raana_status raana_llama_backward_blocks(const raana_llama *net, raana_llama_trace *trace,
                                         float *dhidden, raana_linear_stats *stats,
                                         raana_error *err);

/* The backward of the chunk [t0, t0 + n) of a forward trace (dhidden
 * [n][H], in place, stats as above): chunks from the window's last to its
 * first, the same chunks as the forward's. The first adds the forward's
 * statistics to stats; the last (t0 = 0) frees the trace and sets *trace
 * to NULL, as does a failure. */
raana_status raana_llama_backward_chunk(const raana_llama *net, raana_llama_trace **trace,
                                        float *dhidden, int t0, int n, raana_linear_stats *stats,
                                        raana_error *err);
void raana_llama_trace_free(raana_llama_trace *trace);

#endif
