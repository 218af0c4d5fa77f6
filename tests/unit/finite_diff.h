/* finite_diff.h — the unit tests' check of the activation-gradient backward
 * (llama.h) against central differences: d loss / d (block input) from
 * raana_llama_backward_blocks, compared with (L(x + eps e_i) - L(x - eps
 * e_i)) / 2 eps on every stride-th coordinate of the embedded input. Used by
 * test_llama.c (dense) and test_moe.c (mixtures of experts). */
#ifndef RAANA_TEST_FINITE_DIFF_H
#define RAANA_TEST_FINITE_DIFF_H

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "raana/llama.h"

/* |fd - backward| / |backward| over the sampled coordinates for tokens[t]
 * through every block of net; the backward's statistics go to stats (one
 * per linear slot of net, zeroed by the caller). */
static double fd_relative_error(const raana_llama *net, const int *tokens, int t, int stride,
                                float eps, raana_linear_stats *stats)
{
    size_t n = (size_t)t * net->cfg.hidden_size;
    float *x0 = malloc(n * sizeof *x0), *x = malloc(n * sizeof *x), *dx = malloc(n * sizeof *dx);
    CHECK(x0 && x && dx);
    raana_llama_trace *tr;
    raana_error err;
    double loss, num = 0, den = 0;
    CHECK_INT(raana_llama_embed(net, tokens, t, x0, &err), RAANA_OK);
    memcpy(x, x0, n * sizeof *x);
    CHECK_INT(raana_llama_forward_blocks(net, x, t, &tr, &err), RAANA_OK);
    CHECK_INT(raana_llama_head(net, x, tokens, t, NULL, &loss, dx, &err), RAANA_OK);
    CHECK_INT(raana_llama_backward_blocks(net, tr, dx, stats, &err), RAANA_OK);
    for (size_t i = 0; i < n; i += (size_t)stride) {
        double lp, lm;
        for (int sgn = -1; sgn <= 1; sgn += 2) {
            memcpy(x, x0, n * sizeof *x);
            x[i] += (float)sgn * eps;
            CHECK_INT(raana_llama_forward_blocks(net, x, t, &tr, &err), RAANA_OK);
            raana_llama_trace_free(tr);
            CHECK_INT(raana_llama_head(net, x, tokens, t, NULL, sgn < 0 ? &lm : &lp, NULL, &err),
                      RAANA_OK);
        }
        double fd = (lp - lm) / (2.0 * eps);
        num += (fd - dx[i]) * (fd - dx[i]);
        den += (double)dx[i] * dx[i];
    }
    free(x0), free(x), free(dx);
    return sqrt(num / den);
}

#endif
