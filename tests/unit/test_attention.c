/* test_attention.c — blocked causal GQA attention (attention.h) against a
 * straightforward implementation kept here as the reference (the full T x T
 * probabilities per head, in double, as llama.c computed them before it was
 * blocked): outputs, per-row log-sum-exp and the gradients of q, k and v on
 * random inputs at T = 1, 7, 64, 300 and 1000, with tile edges that divide
 * T, that do not, and that exceed it; and with large scores, where the
 * online softmax must rescale its running maximum. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "raana/attention.h"
#include "raana/rng.h"

enum { HEADS = 4, KV_HEADS = 2, HD = 32 };

typedef struct {
    int t;
    float *q, *k, *v, *dctx;          /* inputs */
    double *ctx, *lse, *dq, *dk, *dv; /* reference outputs */
} problem;

static void fill(float *x, size_t n, uint64_t seed, float scale)
{
    for (size_t i = 0; i < n; i++)
        x[i] = scale * (float)(2 * raana_rng_uniform(seed, 0, i) - 1);
}

/* The reference, one head at a time, in double. */
static void reference(problem *pb)
{
    int t = pb->t, qs = HEADS * HD, kvs = KV_HEADS * HD, group = HEADS / KV_HEADS;
    double scale = 1 / sqrt((double)HD);
    double *p = malloc((size_t)t * t * sizeof *p), *dp = malloc((size_t)t * sizeof *dp);
    memset(pb->dk, 0, (size_t)t * kvs * sizeof *pb->dk);
    memset(pb->dv, 0, (size_t)t * kvs * sizeof *pb->dv);
    for (int h = 0; h < HEADS; h++) {
        int kh = h / group;
        for (int i = 0; i < t; i++) {
            double mx = -INFINITY, sum = 0;
            for (int j = 0; j <= i; j++) {
                double s = 0;
                for (int d = 0; d < HD; d++)
                    s += (double)pb->q[i * qs + h * HD + d] * pb->k[j * kvs + kh * HD + d];
                p[(size_t)i * t + j] = s * scale;
                mx = fmax(mx, s * scale);
            }
            for (int j = 0; j <= i; j++)
                sum += p[(size_t)i * t + j] = exp(p[(size_t)i * t + j] - mx);
            pb->lse[h * t + i] = mx + log(sum);
            for (int d = 0; d < HD; d++) {
                double c = 0;
                for (int j = 0; j <= i; j++)
                    c += p[(size_t)i * t + j] / sum * pb->v[j * kvs + kh * HD + d];
                pb->ctx[i * qs + h * HD + d] = c;
            }
            for (int j = 0; j <= i; j++)
                p[(size_t)i * t + j] /= sum;
        }
        for (int i = 0; i < t; i++) {
            const float *doi = pb->dctx + i * qs + h * HD;
            double dot = 0;
            for (int j = 0; j <= i; j++) {
                double s = 0;
                for (int d = 0; d < HD; d++)
                    s += (double)doi[d] * pb->v[j * kvs + kh * HD + d];
                dp[j] = s;
                dot += s * p[(size_t)i * t + j];
                for (int d = 0; d < HD; d++)
                    pb->dv[j * kvs + kh * HD + d] += p[(size_t)i * t + j] * doi[d];
            }
            for (int d = 0; d < HD; d++)
                pb->dq[i * qs + h * HD + d] = 0;
            for (int j = 0; j <= i; j++) {
                double ds = p[(size_t)i * t + j] * (dp[j] - dot) * scale;
                for (int d = 0; d < HD; d++) {
                    pb->dq[i * qs + h * HD + d] += ds * pb->k[j * kvs + kh * HD + d];
                    pb->dk[j * kvs + kh * HD + d] += ds * pb->q[i * qs + h * HD + d];
                }
            }
        }
    }
    free(p), free(dp);
}

static double rel_diff(const float *got, const double *want, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++)
        num += (got[i] - want[i]) * (got[i] - want[i]), den += want[i] * want[i];
    return sqrt(num / (den > 0 ? den : 1));
}

static void check_blocked(const problem *pb, int block, double *worst)
{
    size_t t = (size_t)pb->t, nq = t * HEADS * HD, nkv = t * KV_HEADS * HD;
    raana_attention_shape s = {pb->t, HEADS, KV_HEADS, HD, block, 0, 0};
    float *work = malloc(raana_attention_work_floats(&s) * sizeof *work);
    float *ctx = malloc(nq * 4), *lse = malloc(t * HEADS * 4), *dq = malloc(nq * 4);
    float *dk = malloc(nkv * 4), *dv = malloc(nkv * 4);
    raana_attention_forward(&s, pb->q, pb->k, pb->v, ctx, lse, work);
    raana_attention_backward(&s, pb->q, pb->k, pb->v, ctx, lse, pb->dctx, dq, dk, dv, work);
    double d[5] = {rel_diff(ctx, pb->ctx, nq), rel_diff(lse, pb->lse, t * HEADS),
                   rel_diff(dq, pb->dq, nq), rel_diff(dk, pb->dk, nkv), rel_diff(dv, pb->dv, nkv)};
    for (int i = 0; i < 5; i++) {
        CHECK(d[i] < 1e-5);
        worst[i] = fmax(worst[i], d[i]);
    }
    free(work), free(ctx), free(lse), free(dq), free(dk), free(dv);
}

static void test_sizes(float q_scale)
{
    const int ts[5] = {1, 7, 64, 300, 1000};
    const int blocks[5] = {0, 16, 64, 100, 256};
    for (int c = 0; c < 5; c++) {
        problem pb = {.t = ts[c]};
        size_t t = (size_t)ts[c], nq = t * HEADS * HD, nkv = t * KV_HEADS * HD;
        pb.q = malloc(nq * 4), pb.k = malloc(nkv * 4), pb.v = malloc(nkv * 4);
        pb.dctx = malloc(nq * 4);
        pb.ctx = malloc(nq * 8), pb.lse = malloc(t * HEADS * 8), pb.dq = malloc(nq * 8);
        pb.dk = malloc(nkv * 8), pb.dv = malloc(nkv * 8);
        fill(pb.q, nq, 100 + (uint64_t)c, q_scale);
        fill(pb.k, nkv, 200 + (uint64_t)c, 1);
        fill(pb.v, nkv, 300 + (uint64_t)c, 1);
        fill(pb.dctx, nq, 400 + (uint64_t)c, 1);
        reference(&pb);
        double worst[5] = {0};
        for (int b = 0; b < 5; b++)
            if (t < 1000 || blocks[b] == 64 || blocks[b] == 256)
                check_blocked(&pb, blocks[b], worst);
        printf("  T %4d, |q| <= %4.1f: worst rel diff ctx %.1e lse %.1e dq %.1e dk %.1e dv %.1e\n",
               ts[c], q_scale, worst[0], worst[1], worst[2], worst[3], worst[4]);
        free(pb.q), free(pb.k), free(pb.v), free(pb.dctx);
        free(pb.ctx), free(pb.lse), free(pb.dq), free(pb.dk), free(pb.dv);
    }
}

int main(void)
{
    test_sizes(1.0f);
    test_sizes(12.0f); /* peaked rows: later tiles raise the running maximum */
    return check_summary("test_attention");
}
