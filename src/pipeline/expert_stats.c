/* expert_stats.c — the unrouted-expert fallback and the tokens-per-expert
 * report (see expert_stats.h). */
#include "raana/expert_stats.h"

#include <string.h>

/* [first, end): the plan indices of the block that plan layer i is in. */
static void block_range(const raana_plan *plan, int i, int *first, int *end)
{
    int b = plan->layers[i].block;
    *first = i, *end = i + 1;
    while (*first > 0 && plan->layers[*first - 1].block == b)
        (*first)--;
    while (*end < plan->n_layers && plan->layers[*end].block == b)
        (*end)++;
}

/* Mean statistics of the routed experts' layers of the same kind as layer
 * i in its block; 0 when there is none. */
static int sibling_mean(const raana_plan *plan, int i, const double *tokens,
                        const raana_layer_stats *stats, raana_layer_stats *out)
{
    int first, end, n = 0;
    raana_layer_stats sum = {0, 0, 0, 0, 0};
    block_range(plan, i, &first, &end);
    for (int j = first; j < end; j++) {
        const raana_plan_layer *s = &plan->layers[j];
        if (s->expert < 0 || s->kind != plan->layers[i].kind || tokens[j] <= 0)
            continue;
        sum.grad_rms += stats[j].grad_rms, sum.x_rms += stats[j].x_rms;
        sum.x_fro += stats[j].x_fro, sum.y_fro += stats[j].y_fro, sum.dy_fro += stats[j].dy_fro;
        n++;
    }
    if (n == 0)
        return 0;
    *out = (raana_layer_stats){sum.grad_rms / n, sum.x_rms / n, sum.x_fro / n, sum.y_fro / n,
                               sum.dy_fro / n};
    return 1;
}

int raana_expert_stats_fallback(const raana_plan *plan, const double *tokens,
                                raana_layer_stats *stats)
{
    int filled = 0;
    for (int i = 0; i < plan->n_layers; i++) {
        if (plan->layers[i].expert < 0 || tokens[i] > 0)
            continue;
        /* computed from the routed siblings only, so the order does not matter */
        filled += sibling_mean(plan, i, tokens, stats, &stats[i]);
    }
    return filled;
}

void raana_expert_tokens_print(FILE *out, const raana_plan *plan, const double *tokens)
{
    int block = -1;
    for (int i = 0; i < plan->n_layers; i++) {
        const raana_plan_layer *l = &plan->layers[i];
        if (l->expert < 0 || l->kind != RAANA_LINEAR_GATE)
            continue;
        if (l->block != block) {
            fprintf(out, "%sblock %d tokens per expert:", block >= 0 ? "\n" : "", l->block);
            block = l->block;
        }
        fprintf(out, " %.0f", tokens[i]);
    }
    if (block >= 0)
        fprintf(out, "\n");
}
