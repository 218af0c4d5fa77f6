/* bench_attention.c — calibration forward + activation-gradient backward
 * over one T-token sequence (default 4096) through one Llama-2-7B-shaped
 * decoder block (hidden 4096, intermediate 11008, 32 heads of 128) with
 * random weights, one thread, blocked attention (src/nn/attention.c): the
 * rate as a fraction of the single-threaded sgemm rate measured in the same
 * run (issue 11 target: >= 60% at T = 4096), the attention's share of the
 * time, and peak resident memory. Prints the OpenBLAS core, since a generic
 * kernel makes every ratio to sgemm too flattering.
 * Usage: bench_attention [T [TILE]] */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "raana/attention.h"
#include "raana/llama.h"
#include "raana/rng.h"

#include "bench_util.h"

void openblas_set_num_threads(int);
char *openblas_get_corename(void);

static void make_block(raana_llama *net, int tile)
{
    raana_error err;
    memset(net, 0, sizeof *net);
    raana_model_config *c = &net->cfg;
    c->hidden_size = 4096, c->intermediate_size = 11008, c->num_heads = 32, c->num_kv_heads = 32;
    c->head_dim = 128, c->num_layers = 1, c->vocab_size = 32000, c->rms_norm_eps = 1e-5;
    c->rope_theta = 10000, c->max_position_embeddings = 4096;
    net->n_blocks = 1;
    net->attention_block = tile;
    net->blocks = calloc(1, sizeof *net->blocks);
    raana_llama_init_rope(net, &err);
    net->blocks[0].attn_norm = random_matrix(4096, 3, 2);
    net->blocks[0].mlp_norm = random_matrix(4096, 4, 2);
    for (int k = 0; k < RAANA_LINEAR_COUNT; k++) {
        int d_in, d_out;
        raana_linear_shape(c, (raana_linear_kind)k, &d_in, &d_out);
        net->blocks[0].w[k] = random_matrix((size_t)d_in * d_out, 10 + (uint64_t)k, 0.03f);
    }
}

/* Seconds of blocked attention alone, forward + backward, on random q/k/v. */
static double attention_seconds(int t, int tile)
{
    raana_attention_shape s = {t, 32, 32, 128, tile, 0, 0};
    size_t n = (size_t)t * 4096;
    float *q = random_matrix(n, 20, 1), *k = random_matrix(n, 21, 1), *v = random_matrix(n, 22, 1);
    float *d = random_matrix(n, 23, 1), *ctx = malloc(n * 4), *lse = malloc((size_t)t * 32 * 4);
    float *dq = malloc(n * 4), *dk = malloc(n * 4), *dv = malloc(n * 4);
    float *work = malloc(raana_attention_work_floats(&s) * 4);
    double t0 = now();
    raana_attention_forward(&s, q, k, v, ctx, lse, work);
    raana_attention_backward(&s, q, k, v, ctx, lse, d, dq, dk, dv, work);
    double el = now() - t0;
    free(q), free(k), free(v), free(d), free(ctx), free(lse), free(dq), free(dk), free(dv);
    free(work);
    return el;
}

int main(int argc, char **argv)
{
    int t = argc > 1 ? atoi(argv[1]) : 4096, tile = argc > 2 ? atoi(argv[2]) : 0;
    if (t < 1 || tile < 0) {
        fprintf(stderr, "bench_attention: error: usage: bench_attention [T [TILE]]\n");
        return 2;
    }
    openblas_set_num_threads(1);
    double rate = sgemm_rate();
    raana_llama net;
    raana_error err;
    make_block(&net, tile);
    float *x = random_matrix((size_t)t * 4096, 5, 1),
          *dx = random_matrix((size_t)t * 4096, 6, 1e-3f);
    raana_linear_stats stats[RAANA_LINEAR_COUNT];
    raana_llama_trace *tr;
    memset(stats, 0, sizeof stats);
    double t0 = now();
    if (raana_llama_forward_blocks(&net, x, t, &tr, &err) != RAANA_OK ||
        raana_llama_backward_blocks(&net, tr, dx, stats, &err) != RAANA_OK) {
        fprintf(stderr, "bench_attention: error: %s\n", err.msg);
        return 6;
    }
    double el = now() - t0, att = attention_seconds(t, tile);
    double h = 4096, in = 11008, T = t, heads = 32, hd = 128;
    double linear = 2 * T * (4 * h * h + 3 * h * in); /* forward; input gradients: same */
    double attention = 2 * T * T * hd * heads;        /* causal QK^T and PV; backward 2x */
    double flops = 2 * linear + 3 * attention;
    printf("| OpenBLAS core | %s |\n", openblas_get_corename());
    printf("| sgemm rate, 1 thread (2048^3) | %.1f GFLOP/s |\n", rate);
    printf("| forward + backward, %d tokens, tile %d, 1 thread | %.2f s, %.1f GFLOP/s = **%.0f%%** "
           "of sgemm (target >= 60%% at 4096) |\n",
           t, tile ? tile : RAANA_ATTENTION_BLOCK, el, flops / el / 1e9,
           100 * flops / el / 1e9 / rate);
    printf("| attention alone (forward + backward) | %.2f s = %.0f%% of the block's time, %.1f "
           "GFLOP/s |\n",
           att, 100 * att / el, 3 * attention / att / 1e9);
    printf("| peak resident memory | %.0f MiB |\n", peak_rss_mib());
    free(x), free(dx);
    raana_llama_free(&net);
    return 0;
}
