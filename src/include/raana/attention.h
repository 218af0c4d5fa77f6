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
    int block;      /* tile edge in positions; 0 means RAANA_ATTENTION_BLOCK */
    int q_begin;    /* queries are rows [q_begin, t) (a chunk of a window); keys rows [0, t) */
    int lse_stride; /* lse's row length, the window's T; 0 means t */
} raana_attention_shape;

/* Floats of scratch `work` that the forward and the backward need. */
size_t raana_attention_work_floats(const raana_attention_shape *s);

/* ctx = softmax(q k^T / sqrt(hd), causal) v per head, for the query rows
 * [q_begin, t); lse[h][i] is the natural log of row i's softmax
 * denominator (after the scaling), kept for the backward. q, k, v, ctx and
 * lse are the whole window's (rows from 0). */
void raana_attention_forward(const raana_attention_shape *s, const float *q, const float *k,
                             const float *v, float *ctx, float *lse, float *work);

/* Gradients of q, k and v (overwritten) from dctx, given the forward's
 * inputs, its output ctx and lse (q_begin 0). */
void raana_attention_backward(const raana_attention_shape *s, const float *q, const float *k,
                              const float *v, const float *ctx, const float *lse, const float *dctx,
                              float *dq, float *dk, float *dv, float *work);

/* The same for the query rows [q_begin, t) of a window: dctx and dq
 * (overwritten) hold those rows only, from row q_begin; dk and dv are the
 * window's rows [0, t), added to. Run over a window's chunks from the last
 * to the first, rows [q_begin, t) of dk and dv are final after the chunk
 * that starts at q_begin. */
void raana_attention_backward_rows(const raana_attention_shape *s, const float *q, const float *k,
                                   const float *v, const float *ctx, const float *lse,
                                   const float *dctx, float *dq, float *dk, float *dv, float *work);

#endif
