/* balance.c — the quantize stage's cost model and the LPT assignment of
 * layers to ranks (see balance.h). */
#include "raana/balance.h"

#include <math.h>
#include <stdlib.h>

#include "raana/ranked.h"

/* Nanoseconds per weight, one thread, fitted by bench/bench_quant_cost.c
 * (bench/RESULTS.md, "Quantize cost model"; docs/SCALING.md):
 *   every weight of the layer:  COST_BASE (tricks, rotation, normalizing,
 *                               packing, and decoding for the error)
 *   every coded weight, B >= 2: exact: COST_EXACT0 + COST_EXACT1 * M,
 *                               fast:  COST_FAST
 * where M = 2^(B-1) - 1 is the number of events per coordinate the exact
 * search buckets and sweeps (rabitq.c, fill_buckets and sweep_marked), and
 * the fast search is a fixed number (20) of O(D) passes over the column
 * (rabitq.c, fast_code). At B = 1 (and below) nothing is searched.
 * Refitted 2026-12-01 after the encoders got 2x (exact) and 1.9x (fast)
 * faster; only the ratios matter to the balance, and the dry run's
 * [cost] quantize_scale converts them into seconds. */
#define COST_BASE   6.56
#define COST_EXACT0 2.44
#define COST_EXACT1 1.622
#define COST_FAST   1.05

static double encode_ns_per_weight(int code_bits, raana_encoder encoder)
{
    if (code_bits < 2)
        return 0;
    if (encoder == RAANA_ENCODER_FAST)
        return COST_FAST;
    double m = ldexp(1.0, code_bits - 1) - 1;
    return COST_EXACT0 + COST_EXACT1 * m;
}

double raana_quantize_cost(int d_in, int d_out, double bits, raana_encoder encoder)
{
    if (d_in <= 0 || d_out <= 0 || !(bits > 0))
        return 0;
    int code_bits = bits < 1 ? 1 : (int)bits;
    double n_kept = bits < 1 ? fmax(1, round(bits * d_in)) : d_in;
    double per_col = d_in * COST_BASE + n_kept * encode_ns_per_weight(code_bits, encoder);
    return 1e-9 * per_col * d_out;
}

double raana_ldlq_cost(int d_in, int d_out, double bits)
{
    if (d_in <= 0 || d_out <= 0 || !(bits >= 1))
        return 0;
    double d = d_in;
    return (2.0 / 3.0 * d * d * d + 2.0 * d * d * d_out) / 89e9;
}

double raana_lowrank_cost(int d_in, int d_out)
{
    if (d_in <= 0 || d_out <= 0)
        return 0;
    double m = d_in, n = d_out, k = m < n ? m : n;
    return 14.0 * m * n * k / 1e9;
}

static int least_loaded(const double *load, int n_ranks)
{
    int best = 0;
    for (int r = 1; r < n_ranks; r++)
        if (load[r] < load[best])
            best = r;
    return best;
}

raana_status raana_balance_lpt(const double *cost, const int *pinned, int n, int n_ranks,
                               int *rank_of, double *load, raana_error *err)
{
    raana_status st = RAANA_OK;
    raana_ranked *items = malloc((size_t)(n > 0 ? n : 1) * sizeof *items);
    double *sum = calloc((size_t)(n_ranks > 0 ? n_ranks : 1), sizeof *sum);
    int n_free = 0;
    if (!items || !sum)
        RAANA_FAIL_GOTO(err, RAANA_ERR_NOMEM, "out of memory for the balance of %d layers", n);
    if (n_ranks < 1)
        RAANA_CHECK(RAANA_INTERNAL(err, "balance over %d ranks", n_ranks));
    for (int i = 0; i < n; i++) {
        rank_of[i] = -1;
        if (!(cost[i] >= 0))
            continue;
        int pin = pinned ? pinned[i] : -1;
        if (pin >= n_ranks)
            RAANA_CHECK(RAANA_INTERNAL(err, "item %d pinned to rank %d of %d", i, pin, n_ranks));
        if (pin >= 0)
            rank_of[i] = pin, sum[pin] += cost[i];
        else
            items[n_free++] = (raana_ranked){cost[i], i};
    }
    raana_ranked_sort_desc(items, (size_t)n_free);
    for (int k = 0; k < n_free; k++) {
        int r = least_loaded(sum, n_ranks);
        rank_of[items[k].index] = r;
        sum[r] += items[k].key;
    }
    for (int r = 0; load && r < n_ranks; r++)
        load[r] = sum[r];
cleanup:
    free(items);
    free(sum);
    return st;
}
