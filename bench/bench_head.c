/* bench_head.c — the head's gradient dL/dhidden = dlogits · lm_head on
 * Llama-2-7B's head (hidden 4096, vocabulary 32000) over 256 tokens, one
 * thread: one sgemm (what raana_llama_head_rows does since 2026-12-01)
 * against the baseline, one sgemv per token (what it did before), measured
 * in the same run on the same dlogits; the largest relative difference of
 * the two results; and the whole raana_llama_head_rows (final norm, logits,
 * loss, gradient) for scale. Prints markdown. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raana/llama.h"

#include "bench_util.h"

void openblas_set_num_threads(int);

enum { T = 256, H = 4096, V = 32000 };

/* Seconds of the faster of 3 runs of the per-token sgemv baseline (out: its result). */
static double per_token(const float *dl, const float *head, float *out)
{
    double best = 1e30;
    for (int r = 0; r < 3; r++) {
        double t0 = now();
        for (int p = 0; p < T; p++)
            cblas_sgemv(CblasRowMajor, CblasTrans, V, H, 1.0f, head, H, dl + (size_t)p * V, 1, 0.0f,
                        out + (size_t)p * H, 1);
        best = fmin(best, now() - t0);
    }
    return best;
}

static double one_sgemm(const float *dl, const float *head, float *out)
{
    double best = 1e30;
    for (int r = 0; r < 3; r++) {
        double t0 = now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, H, V, 1.0f, dl, V, head, H, 0.0f,
                    out, H);
        best = fmin(best, now() - t0);
    }
    return best;
}

/* The faster of 3 runs of the whole head with its gradient. */
static double whole_head(const float *head)
{
    raana_llama net;
    raana_error err;
    memset(&net, 0, sizeof net);
    net.cfg.hidden_size = H, net.cfg.vocab_size = V, net.cfg.rms_norm_eps = 1e-5;
    net.lm_head = (float *)head;
    net.final_norm = random_matrix(H, 3, 2);
    float *x = random_matrix((size_t)T * H, 4, 2), *dx = malloc((size_t)T * H * sizeof *dx);
    int *tokens = malloc((T + 1) * sizeof *tokens);
    for (int i = 0; i <= T; i++)
        tokens[i] = (int)((i * 7919L) % V);
    double best = 1e30, loss;
    for (int r = 0; r < 3; r++) {
        double t0 = now();
        if (raana_llama_head_rows(&net, x, tokens, 0, T, T + 1, NULL, &loss, dx, &err) != RAANA_OK)
            return -1;
        best = fmin(best, now() - t0);
    }
    free(net.final_norm), free(x), free(dx), free(tokens);
    return best;
}

int main(void)
{
    openblas_set_num_threads(1);
    float *head = random_matrix((size_t)V * H, 1, 0.05f);
    float *dl = random_matrix((size_t)T * V, 2, 1e-4f);
    float *a = malloc((size_t)T * H * sizeof *a), *b = malloc((size_t)T * H * sizeof *b);
    double base = per_token(dl, head, a), fast = one_sgemm(dl, head, b), worst = 0, norm = 0;
    for (size_t i = 0; i < (size_t)T * H; i++)
        norm = fmax(norm, fabs(a[i]));
    for (size_t i = 0; i < (size_t)T * H; i++)
        worst = fmax(worst, fabs(a[i] - b[i]) / norm);
    double flops = 2.0 * T * V * H;
    printf("| head gradient, %d tokens, H %d, V %d, 1 thread, OpenBLAS core %s | seconds | "
           "GFLOP/s |\n|---|---|---|\n",
           T, H, V, openblas_get_corename());
    printf("| one sgemv per token (baseline) | %.3f | %.1f |\n", base, flops / base / 1e9);
    printf("| one sgemm | %.3f | %.1f |\n", fast, flops / fast / 1e9);
    printf("| speedup | **%.1fx** | max difference %.1e of the largest entry |\n", base / fast,
           worst);
    printf("| raana_llama_head_rows (norm, logits, loss, gradient) | %.3f | |\n", whole_head(head));
    free(head), free(dl), free(a), free(b);
    return worst < 1e-5 ? 0 : 1;
}
