/* swiglu.h — the SwiGLU MLP, y = W_down (silu(W_gate x) .* (W_up x)), forward
 * and activation-gradient backward over the n rows of x, with each of its
 * three linear layers' sums of squares; and the dense-layer building blocks
 * it is made of, which llama.c and moe.c use for their other layers too.
 * The dense LLaMA MLP (llama.c) and every MoE expert (moe.c) run through it.
 * f32 on OpenBLAS; no MPI, no files. */
#ifndef RAANA_SWIGLU_H
#define RAANA_SWIGLU_H

#include <stddef.h>

#include "raana/llama.h"

/* y[T][out] = x[T][in] W^T (+ b; b may be NULL), W stored [out][in]. */
void raana_nn_linear(const float *x, int t, int d_in, int d_out, const float *w, const float *b,
                     float *y);

/* dx[T][in] = dy[T][out] W + beta dx (beta: 0 overwrite, 1 add). */
void raana_nn_linear_backward(const float *dy, int t, int d_in, int d_out, const float *w,
                              float beta, float *dx);

/* sum of x[i]^2 in double, in index order. */
double raana_nn_sum_sq(const float *x, size_t n);

/* How silu(g) is rounded in f32: the dense MLP has always computed
 * g / (1 + e^-g), the MoE experts g * (1 / (1 + e^-g)). The two differ in the
 * last bit, and the calibration statistics a container records would change
 * with either, so each keeps its own (the backward is the same for both). */
typedef enum { RAANA_SILU_QUOTIENT, RAANA_SILU_PRODUCT } raana_silu_rounding;

typedef struct {
    int hidden, inter;
    const float *w[3]; /* gate, up: [inter][hidden]; down: [hidden][inter] */
    const float *b[3]; /* their biases, or NULL */
    raana_silu_rounding silu;
} raana_swiglu;

/* What the forward keeps for the backward: each [n][inter]. */
typedef struct {
    float *g, *u, *a; /* gate and up outputs, a = silu(g) .* u */
} raana_swiglu_trace;

/* The backward's scratch: each [n][inter]. */
typedef struct {
    float *da, *dg, *du;
} raana_swiglu_scratch;

/* y[n][hidden] from x[n][hidden]; fills tr and ls[0..2] (gate, up, down:
 * x_sq, y_sq, rows = n; dy_sq = 0). */
void raana_swiglu_forward(const raana_swiglu *m, const float *x, int n, raana_swiglu_trace *tr,
                          float *y, raana_linear_stats ls[3]);

/* dx[n][hidden] = the gradient at the input from dy[n][hidden] at the
 * output; adds each layer's sum of dY^2 to ls[0..2].dy_sq. */
void raana_swiglu_backward(const raana_swiglu *m, const raana_swiglu_trace *tr, int n,
                           const float *dy, raana_swiglu_scratch *s, float *dx,
                           raana_linear_stats ls[3]);

#endif
