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

typedef struct {
    float *attn_norm, *mlp_norm;  /* [H] */
    float *w[RAANA_LINEAR_COUNT]; /* HF layout [d_out][d_in] */
    float *b[RAANA_LINEAR_COUNT]; /* bias [d_out] or NULL */
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
void raana_llama_free(raana_llama *net);

/* Sets net->inv_freq from net->cfg (done by raana_llama_load; for nets
 * assembled by hand, e.g. benchmarks with random weights). */
raana_status raana_llama_init_rope(raana_llama *net, raana_error *err);

/* Sums of squares over one sequence for one linear layer. */
typedef struct {
    double x_sq, y_sq, dy_sq;
} raana_linear_stats;

/* Activations of one sequence through this net's blocks, kept for the
 * backward pass. */
typedef struct raana_llama_trace raana_llama_trace;

/* hidden[T][H] = embedding of tokens (needs the embedding). */
raana_status raana_llama_embed(const raana_llama *net, const int *tokens, int t, float *hidden,
                               raana_error *err);

/* Runs hidden[T][H] through the blocks in place, recording a trace. */
raana_status raana_llama_forward_blocks(const raana_llama *net, float *hidden, int t,
                                        raana_llama_trace **trace, raana_error *err);

/* Final norm, logits (optional out, [T][V]) and the mean cross-entropy of
 * predicting tokens[1..T) from positions 0..T-2; also dL/dhidden (the
 * gradient flowing back into the last block), [T][H]. */
raana_status raana_llama_head(const raana_llama *net, const float *hidden, const int *tokens, int t,
                              float *logits, double *loss, float *dhidden, raana_error *err);

/* Final norm and logits[T][V] only (what raana_llama_head computes first). */
raana_status raana_llama_logits(const raana_llama *net, const float *hidden, int t, float *logits,
                                raana_error *err);

/* Backward through the blocks: dhidden[T][H] (gradient at the blocks'
 * output) becomes the gradient at their input, in place; adds each linear
 * layer's sums of squares to stats[n_blocks * RAANA_LINEAR_COUNT]
 * (block-major, raana_linear_kind order). Frees the trace. */
raana_status raana_llama_backward_blocks(const raana_llama *net, raana_llama_trace *trace,
                                         float *dhidden, raana_linear_stats *stats,
                                         raana_error *err);
void raana_llama_trace_free(raana_llama_trace *trace);

#endif
