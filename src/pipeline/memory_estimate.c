/* memory_estimate.c — the quantize stage's working set in a rank's peak
 * memory estimate (see memory_estimate.h). */
#include "raana/memory_estimate.h"

#include <math.h>

#include "raana/qlayer.h"

/* Bytes of one quantized layer as it sits in memory until written. */
static uint64_t quantized_layer_bytes(const raana_plan_layer *l, const raana_config *cfg)
{
    uint64_t d_in = (uint64_t)l->d_in, d_out = (uint64_t)l->d_out;
    uint64_t bytes = (uint64_t)ceil((double)(d_in * d_out) * cfg->avg_bits / 8) + 4 * d_out;
    if (cfg->tricks & RAANA_TRICK_CENTRALIZE)
        bytes += 4 * d_in;
    if (cfg->tricks & RAANA_TRICK_NORM_ROW)
        bytes += 4 * d_in;
    if (cfg->tricks & RAANA_TRICK_NORM_COL)
        bytes += (uint64_t)floor(cfg->norm_col_rate * (double)d_out) * (4 * d_in + 4);
    return bytes;
}

uint64_t raana_estimate_quantize_bytes(const raana_plan *plan, int first, int next,
                                       const raana_config *cfg)
{
    uint64_t largest = 0, kept = 0;
    for (int i = 0; i < plan->n_layers; i++) {
        const raana_plan_layer *l = &plan->layers[i];
        if (!l->quantize || l->block < first || l->block >= next)
            continue;
        uint64_t f32 = 4 * (uint64_t)l->d_in * (uint64_t)l->d_out;
        largest = f32 > largest ? f32 : largest;
        kept += quantized_layer_bytes(l, cfg);
    }
    return largest + kept;
}
