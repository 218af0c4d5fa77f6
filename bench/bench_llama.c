/* bench_llama.c — forward + activation-gradient backward through one
 * Llama-2-7B-shaped decoder block (hidden 4096, intermediate 11008, 32
 * heads) with random weights at 512 tokens, one thread: throughput in
 * GFLOP/s as a fraction of the single-threaded sgemm rate measured in the
 * same run (target >= 50%), and peak resident memory against the block's
 * f32 weights (target <= 1.5x plus the activations, documented below). */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "raana/llama.h"
#include "raana/rng.h"

#include "bench_util.h"

void openblas_set_num_threads(int);

int main(void)
{
    openblas_set_num_threads(1);
    double rate = sgemm_rate();
    raana_llama net;
    raana_error err;
    memset(&net, 0, sizeof net);
    raana_model_config *c = &net.cfg;
    c->hidden_size = 4096, c->intermediate_size = 11008, c->num_heads = 32, c->num_kv_heads = 32;
    c->head_dim = 128, c->num_layers = 1, c->vocab_size = 32000, c->rms_norm_eps = 1e-5;
    c->rope_theta = 10000, c->max_position_embeddings = 4096;
    net.n_blocks = 1;
    net.blocks = calloc(1, sizeof *net.blocks);
    raana_llama_init_rope(&net, &err);
    double rss0 = peak_rss_mib();
    size_t weights = 0;
    net.blocks[0].attn_norm = random_matrix(4096, 3, 2);
    net.blocks[0].mlp_norm = random_matrix(4096, 4, 2);
    for (int k = 0; k < RAANA_LINEAR_COUNT; k++) {
        int d_in, d_out;
        raana_linear_shape(c, (raana_linear_kind)k, &d_in, &d_out);
        net.blocks[0].w[k] = random_matrix((size_t)d_in * d_out, 10 + (uint64_t)k, 0.03f);
        weights += (size_t)d_in * d_out;
    }
    double weights_mib = weights * 4.0 / 1048576, rss_w = peak_rss_mib();
    const int t = 512;
    float *x = random_matrix((size_t)t * 4096, 5, 1),
          *dx = random_matrix((size_t)t * 4096, 6, 1e-3f);
    raana_linear_stats stats[RAANA_LINEAR_COUNT];
    double best = 1e30;
    for (int r = 0; r < 3; r++) {
        raana_llama_trace *tr;
        memset(stats, 0, sizeof stats);
        double t0 = now();
        raana_llama_forward_blocks(&net, x, t, &tr, &err);
        raana_llama_backward_blocks(&net, tr, dx, stats, &err);
        double el = now() - t0;
        best = el < best ? el : best;
    }
    double h = 4096, in = 11008, T = t, heads = 32, hd = 128;
    double linear = 2 * T * (4 * h * h + 3 * h * in); /* forward; backward input grads: same */
    double attention = 2 * 2 * T * T * hd * heads;    /* QK^T and PV; backward: twice that */
    double flops = 2 * linear + 3 * attention;
    double activations_mib = T * (8 * h + 3 * in + heads) * 4 / 1048576;
    printf("| sgemm rate, 1 thread (2048^3), OpenBLAS core %s | %.1f GFLOP/s |\n",
           openblas_get_corename(), rate);
    printf("| forward + backward, 512 tokens, 1 thread | %.3f s, %.1f GFLOP/s = **%.0f%%** of "
           "sgemm (target >= 50%%) |\n",
           best, flops / best / 1e9, 100 * flops / best / 1e9 / rate);
    printf("| f32 weights of the block | %.0f MiB |\n", weights_mib);
    printf("| activations kept for the backward (T (8H + 3I + heads) floats) | %.0f MiB |\n",
           activations_mib);
    printf("| peak resident memory | %.0f MiB = %.2f x weights (before the weights: %.0f MiB; "
           "after: %.0f MiB) |\n",
           peak_rss_mib(), peak_rss_mib() / weights_mib, rss0, rss_w);
    printf("| peak / (weights + activations) | %.2f (target <= 1.5) |\n",
           (peak_rss_mib() - rss0) / (weights_mib + activations_mib));
    free(x), free(dx);
    raana_llama_free(&net);
    return 0;
}
