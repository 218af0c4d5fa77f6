/* moe.h — the sparse mixture-of-experts MLP of a decoder block in f32
 * (Mixtral, Qwen2-MoE, Qwen3-MoE; docs/MOE.md): the router's softmax over
 * all experts and its top-k in f32, optional renormalization of the chosen
 * weights, each expert down(silu(gate(x)) * up(x)) over the tokens routed
 * to it, the sigmoid-gated shared expert of Qwen2-MoE, and the
 * activation-gradient backward through all of it (routing weights and
 * router softmax included; the top-k choice has no gradient). No MPI, no
 * files.
 *
 * Statistics slots (raana_linear_stats, rows = tokens through the layer)
 * follow the block's slot numbering from slot 4 (model.h): router, then
 * gate, up, down of each expert, then the shared expert's gate, up, down
 * and the shared gate. */
#ifndef RAANA_MOE_H
#define RAANA_MOE_H

#include "raana/error.h"
#include "raana/llama.h"
#include "raana/model.h"
#include "raana/swiglu.h"

/* Runs some routed experts elsewhere (docs/MOE.md, "Expert parallelism"):
 * for an expert e with remote[e] set, the forward and backward hand its
 * gathered rows to these calls instead of computing its SwiGLU here, and
 * combine what comes back exactly as a local expert's output, in expert
 * order (so results are bit-identical when the runner computes the same
 * SwiGLU, raana_moe_expert_mlp). Experts no token reached are never
 * handed over. The runner keeps whatever its backward needs under
 * *handle; raana_moe_trace_free releases every handle of the trace. */
typedef struct {
    void *ctx;
    const unsigned char *remote; /* [E] */
    /* y[n][H] of xr[n][H]; ls[0..2] as raana_swiglu_forward fills them */
    raana_status (*forward)(void *ctx, int expert, const float *xr, int n, float *y,
                            raana_linear_stats ls[3], void **handle, raana_error *err);
    /* dx[n][H] from dy[n][H]; adds dy_sq to ls[0..2] */
    raana_status (*backward)(void *ctx, int expert, void *handle, const float *dy, int n, float *dx,
                             raana_linear_stats ls[3], raana_error *err);
    void (*release)(void *ctx, void *handle);
} raana_moe_runner;

struct raana_moe_weights {
    int n_experts, top_k, inter, norm_topk, shared_inter;
    const raana_moe_runner *runner; /* NULL: every expert runs here */
    float *router;                  /* [E][H] */
    float **expert;     /* [3E]: expert e's gate, up, down at 3e + 0, 1, 2 (HF layout) */
    float *shared[3];   /* shared expert gate, up, down, or NULL */
    float *shared_gate; /* [H] or NULL */
};

typedef struct raana_moe_trace raana_moe_trace;

/* Routed expert e of w as a SwiGLU (swiglu.h): its forward over rows
 * gathered by the router is raana_swiglu_forward, as in raana_moe_forward. */
raana_swiglu raana_moe_expert_mlp(const raana_moe_weights *w, int expert, int hidden);

/* Reads block `block`'s router and experts (and shared expert). */
raana_status raana_moe_load(const raana_model *m, int block, raana_moe_weights **out,
                            raana_error *err);
/* The router, any shared expert and the routed experts e with keep[e]
 * (keep NULL: all), what the owner of a block with an expert team holds;
 * the others stay NULL and must be remote in its runner. */
raana_status raana_moe_load_keeping(const raana_model *m, int block, const unsigned char *keep,
                                    raana_moe_weights **out, raana_error *err);
/* Only the routed experts e with keep[e] of block `block` (what an expert
 * team member holds; the others, the router and any shared expert NULL). */
raana_status raana_moe_load_experts(const raana_model *m, int block, const unsigned char *keep,
                                    raana_moe_weights **out, raana_error *err);
void raana_moe_free(raana_moe_weights *w);

/* out[T][H] = the MLP of h[T][H]; sets st[slot - 4].x_sq, y_sq, rows. */
raana_status raana_moe_forward(const raana_moe_weights *w, const float *h, int t, int hidden,
                               float *out, raana_linear_stats *st, raana_moe_trace **trace,
                               raana_error *err);

/* dh[T][H] (overwritten) = gradient at h from dout[T][H] at the output;
 * adds dy_sq to st. Does not free the trace. */
raana_status raana_moe_backward(const raana_moe_weights *w, const raana_moe_trace *tr,
                                const float *h, const float *dout, float *dh,
                                raana_linear_stats *st, raana_error *err);

/* The experts chosen for each token, [T][top_k], highest weight first. */
const int *raana_moe_trace_experts(const raana_moe_trace *tr);
void raana_moe_trace_free(raana_moe_trace *tr);

#endif
