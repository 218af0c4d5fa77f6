/* swiglu.c — the SwiGLU MLP's forward and backward, and the dense-layer
 * building blocks (see swiglu.h). */
#include "raana/swiglu.h"

#include <cblas.h>
#include <math.h>

void raana_nn_linear(const float *x, int t, int d_in, int d_out, const float *w, const float *b,
                     float *y)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, t, d_out, d_in, 1.0f, x, d_in, w, d_in,
                0.0f, y, d_out);
    if (b)
        for (int i = 0; i < t; i++)
            for (int j = 0; j < d_out; j++)
                y[(size_t)i * d_out + j] += b[j];
}

void raana_nn_linear_backward(const float *dy, int t, int d_in, int d_out, const float *w,
                              float beta, float *dx)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, t, d_in, d_out, 1.0f, dy, d_out, w, d_in,
                beta, dx, d_in);
}

double raana_nn_sum_sq(const float *x, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)x[i] * x[i];
    return s;
}

/* a = silu(g) .* u, silu rounded as `silu` says (swiglu.h). */
static void gate_product(raana_silu_rounding silu, const float *g, const float *u, size_t count,
                         float *a)
{
    if (silu == RAANA_SILU_QUOTIENT)
        for (size_t i = 0; i < count; i++)
            a[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
    else
        for (size_t i = 0; i < count; i++)
            a[i] = g[i] * (1.0f / (1.0f + expf(-g[i]))) * u[i];
}

void raana_swiglu_forward(const raana_swiglu *m, const float *x, int n, raana_swiglu_trace *tr,
                          float *y, raana_linear_stats ls[3])
{
    size_t xs = (size_t)n * m->hidden, as = (size_t)n * m->inter;
    raana_nn_linear(x, n, m->hidden, m->inter, m->w[0], m->b[0], tr->g);
    raana_nn_linear(x, n, m->hidden, m->inter, m->w[1], m->b[1], tr->u);
    gate_product(m->silu, tr->g, tr->u, as, tr->a);
    raana_nn_linear(tr->a, n, m->inter, m->hidden, m->w[2], m->b[2], y);
    double x_sq = raana_nn_sum_sq(x, xs);
    ls[0] = (raana_linear_stats){x_sq, raana_nn_sum_sq(tr->g, as), 0, (double)n};
    ls[1] = (raana_linear_stats){x_sq, raana_nn_sum_sq(tr->u, as), 0, (double)n};
    ls[2] = (raana_linear_stats){raana_nn_sum_sq(tr->a, as), raana_nn_sum_sq(y, xs), 0, (double)n};
}

void raana_swiglu_backward(const raana_swiglu *m, const raana_swiglu_trace *tr, int n,
                           const float *dy, raana_swiglu_scratch *s, float *dx,
                           raana_linear_stats ls[3])
{
    size_t xs = (size_t)n * m->hidden, as = (size_t)n * m->inter;
    ls[2].dy_sq += raana_nn_sum_sq(dy, xs);
    raana_nn_linear_backward(dy, n, m->inter, m->hidden, m->w[2], 0.0f, s->da);
    for (size_t i = 0; i < as; i++) {
        float g = tr->g[i], sg = 1.0f / (1.0f + expf(-g));
        s->dg[i] = s->da[i] * tr->u[i] * sg * (1.0f + g * (1.0f - sg));
        s->du[i] = s->da[i] * g * sg;
    }
    ls[0].dy_sq += raana_nn_sum_sq(s->dg, as);
    ls[1].dy_sq += raana_nn_sum_sq(s->du, as);
    raana_nn_linear_backward(s->dg, n, m->hidden, m->inter, m->w[0], 0.0f, dx);
    raana_nn_linear_backward(s->du, n, m->hidden, m->inter, m->w[1], 1.0f, dx);
}
