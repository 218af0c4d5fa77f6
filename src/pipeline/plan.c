/* plan.c — layer list, exclude patterns and the block-to-rank split (see
 * plan.h). No MPI here: the plan is computed identically on every rank. */
#include "raana/plan.h"

#include <fnmatch.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raana/memory_estimate.h"

int raana_plan_seq_len(const raana_model_config *model, const raana_config *cfg)
{
    if (cfg->seq_len > 0)
        return cfg->seq_len;
    return model->max_position_embeddings < 2048 ? model->max_position_embeddings : 2048;
}

static int excluded(const raana_config *cfg, const char *name)
{
    for (int i = 0; i < cfg->n_exclude; i++)
        if (fnmatch(cfg->exclude[i], name, 0) == 0)
            return 1;
    return 0;
}

/* Routers and Qwen2-MoE's shared-expert gate stay in full precision: a
 * quantized router would move tokens to other experts (docs/MOE.md). */
static int is_router(raana_linear_kind kind)
{
    return kind == RAANA_LINEAR_ROUTER || kind == RAANA_LINEAR_SHARED_GATE;
}

static raana_status build_layers(const raana_model_config *model, const raana_config *cfg,
                                 raana_plan *plan, raana_error *err)
{
    plan->n_layers = raana_model_linear_count(model);
    plan->layers = calloc((size_t)plan->n_layers, sizeof *plan->layers);
    if (!plan->layers)
        return raana_fail(err, RAANA_ERR_NOMEM, "out of memory for %d layers", plan->n_layers);
    raana_plan_layer *l = plan->layers;
    for (int b = 0; b < model->num_layers; b++)
        for (int k = 0; k < raana_block_linear_count(model, b); k++, l++) {
            raana_linear_info li;
            raana_block_linear(model, b, k, &li);
            l->block = b;
            l->kind = li.kind;
            l->slot = k;
            l->expert = li.expert;
            snprintf(l->name, sizeof l->name, "%s", li.name);
            l->d_in = li.d_in, l->d_out = li.d_out;
            l->quantize = !excluded(cfg, l->name) && !is_router(li.kind);
            if (l->quantize)
                plan->quantized_params += (uint64_t)l->d_in * (uint64_t)l->d_out;
        }
    if (plan->quantized_params == 0)
        return raana_fail(err, RAANA_ERR_CONFIG,
                          "%s: [quantize] exclude matches every linear layer; nothing to quantize",
                          cfg->source[0] ? cfg->source : "configuration");
    return RAANA_OK;
}

/* First block of rank r: the block boundary nearest to r/P of the decoder
 * parameters (ties to the lower boundary), in integers. When all blocks are
 * the same size that is the boundary nearest to r*L/P, and every rank gets
 * floor or ceil of L/P blocks; blocks of different sizes (dense layers of a
 * mixture of experts, mlp_only_layers) are weighed by their parameters. */
static int split_point(const raana_model_config *m, int n_ranks, int r)
{
    uint64_t total = 0, cum = 0, best_gap = UINT64_MAX;
    for (int b = 0; b < m->num_layers; b++)
        total += raana_block_params_at(m, b);
    int best = 0;
    for (int b = 0; b <= m->num_layers; b++) {
        uint64_t at = (uint64_t)n_ranks * cum, target = (uint64_t)r * total;
        uint64_t gap = at > target ? at - target : target - at;
        if (gap < best_gap)
            best_gap = gap, best = b;
        if (b < m->num_layers)
            cum += raana_block_params_at(m, b);
    }
    return best;
}

/* Everything resident at the rank's peak (memory_estimate.h): the process,
 * its f32 weights, and the larger of the calibration and quantize working
 * sets. */
static void estimate_peak(const raana_model_config *m, const raana_plan *plan, raana_plan_rank *r,
                          const raana_config *cfg)
{
    r->calibration_bytes = raana_estimate_calibration_bytes(
                               m, r, plan->seq_len, plan->windows_in_flight, plan->chunk_tokens) +
                           r->expert_rows_bytes;
    r->quantize_bytes =
        raana_estimate_quantize_bytes(plan, r->first_block, r->first_block + r->n_blocks, cfg);
    r->gram_bytes = raana_estimate_gram_bytes(m, r->first_block, r->first_block + r->n_blocks, cfg);
    r->peak_bytes =
        RAANA_PROCESS_BASE_BYTES + 4 * r->params + r->gram_bytes +
        (r->calibration_bytes > r->quantize_bytes ? r->calibration_bytes : r->quantize_bytes);
}

static void build_ranks(const raana_model_config *m, raana_plan *plan, const raana_config *cfg)
{
    uint64_t embed = (uint64_t)m->vocab_size * (uint64_t)m->hidden_size;
    for (int r = 0; r < plan->n_ranks; r++) {
        raana_plan_rank *rk = &plan->ranks[r];
        int first = split_point(m, plan->n_ranks, r);
        int next = split_point(m, plan->n_ranks, r + 1);
        rk->first_block = first;
        rk->n_blocks = next - first;
        rk->owns_embedding = r == 0;
        rk->owns_head = r == plan->n_ranks - 1;
        for (int b = first; b < next; b++)
            rk->params += raana_block_params_at(m, b);
        if (rk->owns_embedding)
            rk->params += embed;
        if (rk->owns_head)
            rk->params += (uint64_t)m->hidden_size + (m->tie_word_embeddings ? 0 : embed);
        for (int i = 0; i < plan->n_layers; i++) {
            const raana_plan_layer *l = &plan->layers[i];
            if (l->quantize && l->block >= first && l->block < next)
                rk->quantized_params += (uint64_t)l->d_in * (uint64_t)l->d_out;
        }
        estimate_peak(m, plan, rk, cfg);
        /* raana-eval: weights and one window's forward, on top of what runs */
        rk->forward_peak_bytes = 4 * rk->params + raana_estimate_calibration_bytes(
                                                      m, rk, plan->seq_len, 1, plan->chunk_tokens);
    }
}

raana_status raana_plan_create(const raana_model_config *model, const raana_config *cfg,
                               int n_ranks, raana_plan *plan, raana_error *err)
{
    raana_status st = RAANA_OK;
    memset(plan, 0, sizeof *plan);
    if (n_ranks < 1)
        return RAANA_INTERNAL(err, "plan needs at least one rank");
    plan->n_ranks = n_ranks;
    plan->block_params = raana_block_params(model);
    plan->seq_len = raana_plan_seq_len(model, cfg);
    RAANA_CHECK(raana_model_check_window(model, plan->seq_len, "config.json", err));
    plan->chunk_tokens =
        cfg->chunk_tokens < plan->seq_len && model->moe_experts <= 0 ? cfg->chunk_tokens : 0;
    for (int b = 0; b < model->num_layers; b++)
        plan->total_params += raana_block_params_at(model, b);
    plan->total_params += (uint64_t)model->hidden_size + (uint64_t)model->vocab_size *
                                                             (uint64_t)model->hidden_size *
                                                             (model->tie_word_embeddings ? 1u : 2u);
    RAANA_CHECK(build_layers(model, cfg, plan, err));
    for (int i = 0; i < plan->n_layers; i++)
        plan->layers[i].split = raana_plan_layer_split(cfg, plan, &plan->layers[i]);
    plan->windows_auto = cfg->windows_in_flight == 0;
    plan->windows_in_flight = raana_plan_windows_in_flight(cfg, n_ranks);
    plan->ranks = calloc((size_t)n_ranks, sizeof *plan->ranks);
    if (!plan->ranks)
        RAANA_FAIL_GOTO(err, RAANA_ERR_NOMEM, "out of memory for %d ranks", n_ranks);
    build_ranks(model, plan, cfg);
cleanup:
    if (st != RAANA_OK)
        raana_plan_free(plan);
    return st;
}

void raana_plan_free(raana_plan *plan)
{
    free(plan->layers);
    free(plan->ranks);
    plan->layers = NULL;
    plan->ranks = NULL;
}

int raana_plan_windows_in_flight(const raana_config *cfg, int n_ranks)
{
    int m = cfg->windows_in_flight ? cfg->windows_in_flight : n_ranks > 1 ? 2 * n_ranks : 1;
    return m < cfg->n_samples ? m : cfg->n_samples;
}

void raana_plan_set_windows_in_flight(raana_plan *plan, const raana_model_config *model,
                                      const raana_config *cfg, int windows_in_flight)
{
    plan->windows_in_flight = windows_in_flight;
    for (int r = 0; r < plan->n_ranks; r++)
        estimate_peak(model, plan, &plan->ranks[r], cfg);
}

int raana_config_wants_grams(const raana_config *cfg)
{
    return cfg->ldlq || cfg->lowrank_rank > 0;
}

int raana_plan_layer_has_gram(const raana_config *cfg, const raana_plan_layer *l)
{
    return raana_config_wants_grams(cfg) && l->expert == RAANA_EXPERT_NONE &&
           l->kind <= RAANA_LINEAR_DOWN;
}

int raana_config_has_factors(const raana_config *cfg)
{
    return cfg->lowrank_rank > 0 || cfg->pca_rank > 0;
}

int raana_plan_layer_lowrank(const raana_config *cfg, const raana_plan_layer *l)
{
    int k = l->d_in < l->d_out ? l->d_in : l->d_out;
    int r = cfg->pca_rank > 0 ? cfg->pca_rank : cfg->lowrank_rank;
    /* the PCA trick needs no calibration inputs: every quantized layer */
    if (r <= 0 || (cfg->pca_rank <= 0 && !raana_plan_layer_has_gram(cfg, l)))
        return 0;
    return r < k ? r : k;
}

int raana_plan_layer_split(const raana_config *cfg, const raana_plan *plan,
                           const raana_plan_layer *l)
{
    uint64_t weights = (uint64_t)l->d_in * (uint64_t)l->d_out, p = (uint64_t)plan->n_ranks;
    uint64_t piece = ((uint64_t)l->d_out + p - 1) / p * (uint64_t)l->d_in;
    if (!l->quantize || (cfg->ldlq && raana_plan_layer_has_gram(cfg, l)) ||
        raana_plan_layer_lowrank(cfg, l) > 0 || piece > INT_MAX)
        return 0;
    if (cfg->split_min_weights > 0)
        return weights >= (uint64_t)cfg->split_min_weights;
    return p > 1 && (weights * p > plan->quantized_params || weights > INT_MAX);
}

void raana_plan_split_piece(int d_out, int n_ranks, int k, int *c0, int *n)
{
    int64_t a = (int64_t)d_out * k / n_ranks, b = (int64_t)d_out * (k + 1) / n_ranks;
    *c0 = (int)a, *n = (int)(b - a);
}

int raana_plan_lowrank_by_team(const raana_config *cfg, const raana_plan_layer *l, int n_ranks)
{
    return cfg->pca_rank <= 0 && n_ranks > 1 &&
           (double)l->d_in * l->d_out >= cfg->lowrank_team_min_weights;
}

int raana_plan_block_owner(const raana_plan *plan, int block)
{
    for (int r = 0; r < plan->n_ranks; r++)
        if (block >= plan->ranks[r].first_block &&
            block < plan->ranks[r].first_block + plan->ranks[r].n_blocks)
            return r;
    return -1;
}

static void format_bytes(uint64_t bytes, char *buf, size_t size)
{
    const char *unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)bytes;
    int u = 0;
    while (v >= 1024 && u < 4)
        v /= 1024, u++;
    snprintf(buf, size, u ? "%.1f %s" : "%.0f %s", v, unit[u]);
}

/* What the largest rank's estimate is made of (docs/SCALING.md). */
static void print_memory_model(FILE *out, const raana_plan *plan)
{
    const raana_plan_rank *top = &plan->ranks[0];
    for (int r = 1; r < plan->n_ranks; r++)
        if (plan->ranks[r].peak_bytes > top->peak_bytes)
            top = &plan->ranks[r];
    char base[32], weights[32], calib[32], quant[32];
    format_bytes(RAANA_PROCESS_BASE_BYTES, base, sizeof base);
    format_bytes(4 * top->params, weights, sizeof weights);
    format_bytes(top->calibration_bytes, calib, sizeof calib);
    format_bytes(top->quantize_bytes, quant, sizeof quant);
    fprintf(out,
            "est. peak mem of rank %d = %s process + %s f32 weights + the larger of %s "
            "calibration activations (%d window%s in flight%s) and %s quantize working set "
            "(docs/SCALING.md)\n",
            (int)(top - plan->ranks), base, weights, calib, plan->windows_in_flight,
            plan->windows_in_flight == 1 ? "" : "s",
            plan->windows_auto ? ", auto: lowered at run time if the memory limits need it" : "",
            quant);
    if (top->gram_bytes) {
        char grams[32];
        format_bytes(top->gram_bytes, grams, sizeof grams);
        fprintf(out, "  + %s LDLQ grams ([quantize] ldlq), held from calibration to quantize\n",
                grams);
    }
}

void raana_plan_print(FILE *out, const raana_plan *plan, const raana_model_config *m)
{
    fprintf(out,
            "model: %s, %d blocks, hidden %d, intermediate %d, heads %d (kv %d, dim %d), "
            "vocab %d\n",
            m->model_type, m->num_layers, m->hidden_size, m->intermediate_size, m->num_heads,
            m->num_kv_heads, m->head_dim, m->vocab_size);
    fprintf(out, "parameters: %llu total, %llu per block, %llu to quantize in %d linear layers\n",
            (unsigned long long)plan->total_params, (unsigned long long)plan->block_params,
            (unsigned long long)plan->quantized_params, plan->n_layers);
    fprintf(out, "kept in original precision: embed_tokens, norms, %s%s\n",
            m->moe_experts > 0 ? "routers, " : "",
            m->tie_word_embeddings ? "lm_head (tied to embed_tokens)" : "lm_head");
    fprintf(out, "calibration window: %d tokens\n", plan->seq_len);
    fprintf(out, "layers:\n  %-40s %7s %7s %10s  %s\n", "name", "d_in", "d_out", "params",
            "quantize");
    for (int i = 0; i < plan->n_layers; i++) {
        const raana_plan_layer *l = &plan->layers[i];
        fprintf(out, "  %-40s %7d %7d %10llu  %s\n", l->name, l->d_in, l->d_out,
                (unsigned long long)l->d_in * (unsigned long long)l->d_out,
                l->quantize ? (l->split ? "yes (split by columns over all ranks)" : "yes")
                : l->kind == RAANA_LINEAR_ROUTER || l->kind == RAANA_LINEAR_SHARED_GATE
                    ? "no (router)"
                    : "no (excluded)");
    }
    fprintf(out, "ranks: %d\n  %4s  %-9s %12s %12s %14s  %s\n", plan->n_ranks, "rank", "blocks",
            "params", "quantized", "est. peak mem", "also owns");
    for (int r = 0; r < plan->n_ranks; r++) {
        const raana_plan_rank *rk = &plan->ranks[r];
        char blocks[32], mem[32], extra[64];
        if (rk->n_blocks == 0)
            snprintf(blocks, sizeof blocks, "-");
        else
            snprintf(blocks, sizeof blocks, "%d-%d", rk->first_block,
                     rk->first_block + rk->n_blocks - 1);
        format_bytes(rk->peak_bytes, mem, sizeof mem);
        snprintf(extra, sizeof extra, "%s%s%s", rk->owns_embedding ? "embedding" : "",
                 rk->owns_embedding && rk->owns_head ? ", " : "",
                 rk->owns_head ? "final norm, lm_head" : "");
        fprintf(out, "  %4d  %-9s %12llu %12llu %14s  %s\n", r, blocks,
                (unsigned long long)rk->params, (unsigned long long)rk->quantized_params, mem,
                extra);
    }
    print_memory_model(out, plan);
}

/* The ranks holding n_blocks == 0 (want_blocks 0) or > 0 (1), as " 1 4". */
static int list_ranks(char *buf, size_t size, const raana_plan *plan, int want_blocks)
{
    int n = 0;
    size_t len = 0;
    buf[0] = 0;
    for (int r = 0; r < plan->n_ranks; r++)
        if ((plan->ranks[r].n_blocks > 0) == want_blocks) {
            n++;
            if (len < size)
                len += (size_t)snprintf(buf + len, size - len, " %d", r);
        }
    return n;
}

void raana_plan_print_idle(FILE *out, const raana_plan *plan, const raana_model_config *m,
                           const raana_config *cfg)
{
    char idle[256], stages[256];
    int n_idle = list_ranks(idle, sizeof idle, plan, 0);
    int n_stages = list_ranks(stages, sizeof stages, plan, 1);
    if (n_idle)
        fprintf(out,
                "idle ranks (no decoder block):%s — %d ranks for %d blocks: they wait through "
                "load and calibrate and work only in the quantize stage (layers are spread by "
                "cost over every rank); more than %d ranks pay off only when quantizing "
                "dominates\n",
                idle, plan->n_ranks, m->num_layers, m->num_layers);
    if (cfg->statistics[0] || cfg->n_samples >= n_stages)
        return;
    char busy[64] = "one stage works at a time (the stages cannot overlap)";
    if (cfg->n_samples > 1)
        snprintf(busy, sizeof busy, "at most %d of the %d stages work at a time", cfg->n_samples,
                 n_stages);
    fprintf(out,
            "idle ranks (calibration):%s hold %d pipeline stages but get at most %d calibration "
            "window%s: %s, the others wait; [calibration] n_samples >= %d keeps every stage "
            "busy (the quantize stage uses every rank either way)\n",
            stages, n_stages, cfg->n_samples, cfg->n_samples == 1 ? "" : "s", busy, n_stages);
}
