/* cost_model.c — the job's predicted time per stage and per rank from the
 * plan and the [cost] rates (see cost_model.h, docs/SCALING.md "Cost
 * model"). */
#include "raana/cost_model.h"

#include <math.h>
#include <stdlib.h>

#include "raana/balance.h"
#include "raana/memory_estimate.h"

/* Weights a token passes through in plan layer l: an expert's projection
 * is used by top_k of the experts. */
static double active_weights(const raana_plan_layer *l, const raana_model_config *model)
{
    double w = (double)l->d_in * l->d_out;
    if (l->expert >= 0 && model->moe_experts > 0)
        w *= (double)model->moe_top_k / model->moe_experts;
    return w;
}

/* Forward + activation-gradient backward FLOPs of one window through rank
 * r's blocks (and the head on its owner). */
static double window_flops(const raana_plan *plan, const raana_model_config *model, int r, int T)
{
    const raana_plan_rank *pr = &plan->ranks[r];
    double linear = 0, q_dim = (double)model->num_heads * model->head_dim;
    for (int i = 0; i < plan->n_layers; i++) {
        int b = plan->layers[i].block;
        if (b >= pr->first_block && b < pr->first_block + pr->n_blocks)
            linear += active_weights(&plan->layers[i], model);
    }
    double flops = 4.0 * T * linear + 6.0 * (double)T * T * q_dim * pr->n_blocks;
    if (pr->owns_head)
        flops += 4.0 * T * (double)model->vocab_size * model->hidden_size;
    return flops;
}

/* Every linear layer's sgemm packs its weights once per call, which a
 * window in chunks pays once per chunk: a chunk of R rows costs as R + this
 * many rows would without packing (7B block shapes, one thread: chunks of
 * 128 and of 64 rows of 256-token windows measured 7.5% and 16% more
 * calibration time, docs/CALIBRATION.md). */
#define CHUNK_PACK_ROWS 17.0

/* The calibration time of a window in chunks of plan->chunk_tokens over
 * that of a whole window; *chunks per window. */
static double chunk_factor(const raana_plan *plan, int *chunks)
{
    int t = plan->seq_len, c = plan->chunk_tokens;
    *chunks = c > 0 && c < t ? (t + c - 1) / c : 1;
    return *chunks * ((double)t / *chunks + CHUNK_PACK_ROWS) / (t + CHUNK_PACK_ROWS);
}

/* GPipe over the ranks holding blocks: per round of m units (windows, or
 * chunks of windows), (m - 1) x the largest unit + the sum of the units. */
static double pipeline_seconds(const double *unit, int n_ranks, int windows, int in_flight)
{
    double sum = 0, largest = 0, total = 0;
    for (int r = 0; r < n_ranks; r++)
        sum += unit[r], largest = fmax(largest, unit[r]);
    for (int left = windows; left > 0; left -= in_flight) {
        int m = left < in_flight ? left : in_flight;
        total += (m - 1) * largest + sum;
    }
    return total;
}

/* balance.h's cost at avg_bits, between the whole bits around it. */
static double layer_cost(const raana_plan_layer *l, double bits, raana_encoder encoder)
{
    if (bits < 1)
        return raana_quantize_cost(l->d_in, l->d_out, bits, encoder);
    double lo = floor(bits), f = bits - lo;
    double c = raana_quantize_cost(l->d_in, l->d_out, lo, encoder);
    return f > 0 ? (1 - f) * c + f * raana_quantize_cost(l->d_in, l->d_out, lo + 1, encoder) : c;
}

static raana_status predict_quantize(const raana_plan *plan, const raana_config *cfg,
                                     raana_cost *cost, raana_error *err)
{
    raana_status st = RAANA_OK;
    int n = plan->n_layers;
    double *layer = malloc((size_t)(n > 0 ? n : 1) * sizeof *layer);
    double *load = calloc((size_t)plan->n_ranks, sizeof *load);
    int *rank_of = malloc((size_t)(n > 0 ? n : 1) * sizeof *rank_of);
    if (!layer || !load || !rank_of)
        RAANA_FAIL_GOTO(err, RAANA_ERR_NOMEM, "out of memory for the cost model");
    double per_second = cfg->cost_quantize_scale / cost->threads.quantize;
    /* LDLQ is BLAS work: its reference rate scaled as the calibration's */
    double ldlq_scale = 87.0 / cfg->cost_calibrate_gflops / cost->threads.blas;
    for (int i = 0; i < n; i++) {
        const raana_plan_layer *l = &plan->layers[i];
        int gram = cfg->ldlq && raana_plan_layer_has_gram(cfg, l);
        int team = raana_plan_lowrank_by_team(cfg, l, plan->n_ranks) ? plan->n_ranks : 1;
        double svd =
            raana_plan_layer_lowrank(cfg, l) > 0 ? raana_lowrank_cost(l->d_in, l->d_out) / team : 0;
        layer[i] =
            l->quantize
                ? per_second * layer_cost(l, cfg->avg_bits, cfg->encoder) +
                      (gram ? ldlq_scale * raana_ldlq_cost(l->d_in, l->d_out, cfg->avg_bits) : 0) +
                      svd
                : -1;
    }
    double split = 0; /* split layers: every rank a 1/P share (column_split.h) */
    for (int i = 0; i < n; i++)
        if (plan->layers[i].split && layer[i] > 0)
            split += layer[i] / plan->n_ranks, layer[i] = -1;
    RAANA_CHECK(raana_balance_lpt(layer, NULL, n, plan->n_ranks, rank_of, load, err));
    for (int r = 0; r < plan->n_ranks; r++) {
        load[r] += split;
        cost->ranks[r].quantize = load[r];
        cost->quantize = fmax(cost->quantize, load[r]);
    }
cleanup:
    free(layer);
    free(load);
    free(rank_of);
    return st;
}

static void predict_calibrate(const raana_plan *plan, const raana_model_config *model,
                              const raana_config *cfg, raana_cost *cost, double *unit)
{
    if (cfg->statistics[0]) /* statistics reused: no calibration */
        return;
    double rate = cfg->cost_calibrate_gflops * 1e9 * cost->threads.blas;
    int holders = 0, chunks;
    double factor = chunk_factor(plan, &chunks);
    for (int r = 0; r < plan->n_ranks; r++) {
        if (plan->ranks[r].n_blocks == 0)
            continue;
        double flops = window_flops(plan, model, r, plan->seq_len);
        const raana_plan_rank *pr = &plan->ranks[r]; /* LDLQ's grams: T d^2 per input */
        flops += (double)plan->seq_len *
                 (double)raana_estimate_gram_bytes(model, pr->first_block,
                                                   pr->first_block + pr->n_blocks, cfg) /
                 4;
        unit[holders++] = flops / rate * factor / chunks;
        cost->ranks[r].calibrate = cost->windows * flops / rate * factor;
        cost->calibrate_flops += cost->windows * flops;
    }
    int m = plan->windows_in_flight > 0 ? plan->windows_in_flight : 1;
    cost->calibrate = pipeline_seconds(unit, holders, cost->windows * chunks, m * chunks);
}

static void predict_load_write(const raana_plan *plan, const raana_config *cfg, raana_cost *cost)
{
    for (int r = 0; r < plan->n_ranks; r++) {
        double w = (double)plan->ranks[r].params;
        cost->ranks[r].load = 2 * w / (cfg->cost_read_gb_s * 1e9) + w * cfg->cost_load_ns * 1e-9;
        cost->load = fmax(cost->load, cost->ranks[r].load);
    }
    double bytes = 2.0 * (double)(plan->total_params - plan->quantized_params);
    for (int i = 0; i < plan->n_layers; i++) {
        const raana_plan_layer *l = &plan->layers[i];
        if (l->quantize)
            bytes += (double)l->d_in * l->d_out * cfg->avg_bits / 8 + 4.0 * l->d_out;
    }
    cost->container_bytes = bytes;
    cost->write = bytes / (cfg->cost_write_mb_s * 1e6);
}

raana_status raana_cost_predict(const raana_plan *plan, const raana_model_config *model,
                                const raana_config *cfg, const raana_cost_threads *threads,
                                raana_cost *cost, raana_error *err)
{
    raana_status st = RAANA_OK;
    *cost = (raana_cost){.n_ranks = plan->n_ranks, .windows = cfg->n_samples};
    cost->threads.quantize = threads->quantize > 0 ? threads->quantize : 1;
    cost->threads.blas = threads->blas > 0 ? threads->blas : 1;
    double *unit = malloc((size_t)(plan->n_ranks > 0 ? plan->n_ranks : 1) * sizeof *unit);
    cost->ranks = calloc((size_t)(plan->n_ranks > 0 ? plan->n_ranks : 1), sizeof *cost->ranks);
    if (!unit || !cost->ranks)
        RAANA_FAIL_GOTO(err, RAANA_ERR_NOMEM, "out of memory for the cost model");
    predict_load_write(plan, cfg, cost);
    predict_calibrate(plan, model, cfg, cost, unit);
    RAANA_CHECK(predict_quantize(plan, cfg, cost, err));
    cost->total = cost->load + cost->calibrate + cost->quantize + cost->write;
cleanup:
    free(unit);
    if (st != RAANA_OK)
        raana_cost_free(cost);
    return st;
}

void raana_cost_free(raana_cost *cost)
{
    free(cost->ranks);
    cost->ranks = NULL;
}

/* 1:02:03 or 2.5 s */
static void format_seconds(double s, char *out, size_t size)
{
    if (s < 60) {
        snprintf(out, size, "%.1f s", s);
        return;
    }
    long t = lround(s);
    snprintf(out, size, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
}

void raana_cost_print(FILE *out, const raana_cost *cost, const raana_config *cfg)
{
    char l[32], c[32], q[32], w[32], t[32];
    fprintf(out,
            "predicted time (docs/SCALING.md, \"Cost model\"; [cost] rates: read %g GB/s per "
            "rank, load %g ns/weight, calibrate %g GFLOP/s per thread x %d OpenBLAS thread%s, "
            "quantize scale %g with %d thread%s, write %g MB/s; %d calibration window%s, %.3g "
            "TFLOP in all)\n",
            cfg->cost_read_gb_s, cfg->cost_load_ns, cfg->cost_calibrate_gflops, cost->threads.blas,
            cost->threads.blas == 1 ? "" : "s", cfg->cost_quantize_scale, cost->threads.quantize,
            cost->threads.quantize == 1 ? "" : "s", cfg->cost_write_mb_s, cost->windows,
            cost->windows == 1 ? "" : "s", cost->calibrate_flops / 1e12);
    for (int r = 0; r < cost->n_ranks; r++) { /* not "  R ..." rows: those are the plan's */
        format_seconds(cost->ranks[r].load, l, sizeof l);
        format_seconds(cost->ranks[r].calibrate, c, sizeof c);
        format_seconds(cost->ranks[r].quantize, q, sizeof q);
        fprintf(out, "  rank %d: load %s, calibrate %s (its blocks' share), quantize %s\n", r, l, c,
                q);
    }
    format_seconds(cost->load, l, sizeof l);
    format_seconds(cost->calibrate, c, sizeof c);
    format_seconds(cost->quantize, q, sizeof q);
    format_seconds(cost->write, w, sizeof w);
    format_seconds(cost->total, t, sizeof t);
    fprintf(out,
            "predicted stages: load %s, calibrate %s (pipeline), quantize %s, write %s "
            "(%.1f MiB); job %s\n",
            l, c, q, w, cost->container_bytes / 1048576.0, t);
    fprintf(out,
            "predicted seconds (for scripts): load %.6g calibrate %.6g quantize %.6g write %.6g "
            "job %.6g container_bytes %.6g calibrate_flops %.6g\n",
            cost->load, cost->calibrate, cost->quantize, cost->write, cost->total,
            cost->container_bytes, cost->calibrate_flops);
}
