/* attention.h — causal grouped-query attention of one sequence, blocked:
 * queries and keys in tiles of `block` rows, an online softmax (running
 * maximum and sum per query row) in the forward pass, and the tile
 * probabilities recomputed from each row's log-sum-exp in the backward pass
 * (FlashAttention-2). Memory is O(block^2 + T) per call instead of O(T^2)
 * per head; tiles above the diagonal are skipped. No MPI, no files.
 *
 * Layouts (row-major, positions are rows): q and ctx [T][n_heads * hd],
 * k and v [T][n_kv_heads * hd], lse [n_heads][T]. Query head h reads key
 * and value head h / (n_heads / n_kv_heads). q and k are after RoPE. */
#ifndef RAANA_ATTENTION_H
#define RAANA_ATTENTION_H

#include <stddef.h>

#define RAANA_ATTENTION_BLOCK 128 /* default tile edge */

typedef struct {
    int t, n_heads, n_kv_heads, head_dim;
    int block; /* tile edge in positions; 0 means RAANA_ATTENTION_BLOCK */
} raana_attention_shape;

/* Floats of scratch `work` that the forward and the backward need. */
size_t raana_attention_work_floats(const raana_attention_shape *s);

/* ctx = softmax(q k^T / sqrt(hd), causal) v per head; lse[h][i] is the
 * natural log of row i's softmax denominator (after the scaling), kept for
 * the backward. */
void raana_attention_forward(const raana_attention_shape *s, const float *q, const float *k,
                             const float *v, float *ctx, float *lse, float *work);

/* Gradients of q, k and v (overwritten) from dctx, given the forward's
 * inputs, its output ctx and lse. */
void raana_attention_backward(const raana_attention_shape *s, const float *q, const float *k,
                              const float *v, const float *ctx, const float *lse, const float *dctx,
                              float *dq, float *dk, float *dv, float *work);

#endif
