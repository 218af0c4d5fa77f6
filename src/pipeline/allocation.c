/* allocation.c — coefficients, their reduction, AllocateBits on every rank
 * (see allocation.h). */
#include "raana/allocation.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "raana/comm.h"
#include "raana/error_table.h"
#include "raana/layer_norms.h"

void raana_allocation_free(raana_allocation *a)
{
    free(a->w_fro);
    free(a->coef);
    free(a->bits);
    free(a->unit_error);
    raana_alloc_result_free(&a->result);
    memset(a, 0, sizeof *a);
}

/* ||W after tricks|| of this rank's quantized layers into w_fro (zeros
 * elsewhere): computed at load (layer_norms.h), else now. */
static raana_status local_norms(const raana_stage *s, const raana_config *cfg, double *w_fro,
                                raana_error *err)
{
    if (!s->w_fro)
        return raana_layer_norms(s, cfg, w_fro, err);
    memcpy(w_fro, s->w_fro, (size_t)s->plan.n_layers * sizeof *w_fro);
    return RAANA_OK;
}

/* The inputs of AllocateBits must be finite: a NaN or an overflow names the
 * layer's weight tensor and the statistic, and, because the usual cause is
 * a weight so large that the float32 forward pass overflows, the weight
 * with the largest norm. */
static raana_status check_statistics(const raana_plan *plan, const raana_layer_stats *stats,
                                     const double *w_fro, const double *coef, raana_error *err)
{
    int largest = -1;
    for (int i = 0; i < plan->n_layers; i++)
        if (plan->layers[i].quantize && (largest < 0 || !(w_fro[i] <= w_fro[largest])))
            largest = i;
    for (int i = 0; i < plan->n_layers; i++) {
        const raana_plan_layer *l = &plan->layers[i];
        const char *what = NULL;
        double value = 0;
        if (!l->quantize)
            continue;
        if (!isfinite(w_fro[i]))
            what = "weight norm w_fro", value = w_fro[i];
        else if (!isfinite(stats[i].x_rms))
            what = "calibration statistic x_rms (input activations)", value = stats[i].x_rms;
        else if (!isfinite(stats[i].grad_rms))
            what = "calibration statistic grad_rms (output gradients)", value = stats[i].grad_rms;
        else if (!isfinite(coef[i]))
            what = "sensitivity coefficient grad_rms * x_rms * w_fro / sqrt(d_in)", value = coef[i];
        if (what)
            return raana_fail(err, RAANA_ERR_NUMERIC,
                              "%s.weight: %s is %g, so AllocateBits cannot weigh this layer; "
                              "the largest weight norm is %g (%s.weight), and weights near "
                              "float32's limit overflow the forward pass",
                              l->name, what, value, w_fro[largest], plan->layers[largest].name);
    }
    return RAANA_OK;
}

/* The allocation problem over the quantized layers: their sizes and
 * sensitivity coefficients (grad_rms * x_rms * w_fro / sqrt(d_in)). */
static int describe_problem(const raana_stage *s, const raana_layer_stats *stats,
                            raana_allocation *a, uint64_t *size, double *coef)
{
    int nq = 0;
    for (int i = 0; i < s->plan.n_layers; i++) {
        const raana_plan_layer *l = &s->plan.layers[i];
        if (!l->quantize)
            continue;
        a->coef[i] = stats[i].grad_rms * stats[i].x_rms * a->w_fro[i] / sqrt(l->d_in);
        size[nq] = (uint64_t)l->d_in * (uint64_t)l->d_out;
        coef[nq++] = a->coef[i];
    }
    return nq;
}

/* Layers allocated 16 bits keep their checkpoint weight: they leave the
 * quantized layers, as the same decision on every rank. */
static void keep_16bit_layers(raana_plan *plan, const double *bits)
{
    for (int i = 0; i < plan->n_layers; i++)
        if (plan->layers[i].quantize && bits[i] == RAANA_BITS_KEEP)
            plan->layers[i].quantize = 0, plan->layers[i].kept_16bit = 1;
}

/* The bits per quantized weight the low-rank factors take (16 per entry,
 * r (d_in + d_out) entries per layer): avg_bits counts them, so the codes
 * get what is left, which must reach the lowest candidate. */
static raana_status code_budget(const raana_plan *plan, const raana_config *cfg,
                                double *factor_bits, raana_error *err)
{
    double weights = 0, factors = 0;
    for (int i = 0; i < plan->n_layers; i++) {
        const raana_plan_layer *l = &plan->layers[i];
        if (!l->quantize)
            continue;
        weights += (double)l->d_in * l->d_out;
        factors += 16.0 * raana_plan_layer_lowrank(cfg, l) * ((double)l->d_in + l->d_out);
    }
    *factor_bits = weights > 0 ? factors / weights : 0;
    if (cfg->avg_bits - *factor_bits < cfg->bits[0])
        return raana_fail(err, RAANA_ERR_CONFIG,
                          "[quantize] %s = %d takes %.4g bits per quantized weight of "
                          "avg_bits = %g, which leaves %.4g for the codes, below the lowest "
                          "candidate %g: lower %s or raise avg_bits",
                          cfg->pca_rank > 0 ? "pca_rank" : "lowrank_rank",
                          cfg->pca_rank > 0 ? cfg->pca_rank : cfg->lowrank_rank, *factor_bits,
                          cfg->avg_bits, cfg->avg_bits - *factor_bits, cfg->bits[0],
                          cfg->pca_rank > 0 ? "pca_rank" : "lowrank_rank");
    return RAANA_OK;
}

raana_status raana_stage_allocate(MPI_Comm comm, raana_stage *s, const raana_config *cfg,
                                  const raana_layer_stats *stats, raana_allocation *a,
                                  raana_error *err)
{
    raana_status st = RAANA_OK;
    int n = s->plan.n_layers;
    memset(a, 0, sizeof *a);
    a->n_layers = n;
    double *local = calloc((size_t)n, sizeof *local);
    a->w_fro = calloc((size_t)n, sizeof *a->w_fro);
    a->coef = calloc((size_t)n, sizeof *a->coef);
    a->bits = calloc((size_t)n, sizeof *a->bits);
    uint64_t *size = calloc((size_t)n, sizeof *size);
    double *coef = calloc((size_t)n, sizeof *coef);
    RAANA_CHECK(raana_comm_agree(comm,
                                 local && a->w_fro && a->coef && a->bits && size && coef
                                     ? local_norms(s, cfg, local, err)
                                     : raana_fail(err, RAANA_ERR_NOMEM, "out of memory"),
                                 err));
    /* each layer's norm comes from exactly one rank */
    MPI_Allreduce(local, a->w_fro, n, MPI_DOUBLE, MPI_SUM, comm);
    int nq = describe_problem(s, stats, a, size, coef);
    RAANA_CHECK(check_statistics(&s->plan, stats, a->w_fro, a->coef, err));
    RAANA_CHECK(code_budget(&s->plan, cfg, &a->factor_bits, err));
    if (cfg->error_model == RAANA_ERROR_MODEL_CALIBRATED) {
        a->unit_error = malloc((size_t)cfg->n_bits * sizeof *a->unit_error);
        if (!a->unit_error)
            RAANA_FAIL_GOTO(err, RAANA_ERR_NOMEM, "out of memory");
        RAANA_CHECK(
            raana_error_table_measure(cfg->bits, cfg->n_bits, cfg->encoder, a->unit_error, err));
    }
    raana_alloc_problem p = {
        nq, size, coef, cfg->n_bits, cfg->bits, cfg->avg_bits - a->factor_bits, a->unit_error};
    RAANA_CHECK(raana_allocate_bits(&p, RAANA_ALLOC_DEFAULT_MAX_CELLS, &a->result, err));
    for (int i = 0, q = 0; i < n; i++)
        if (s->plan.layers[i].quantize)
            a->bits[i] = cfg->bits[a->result.choice[q++]];
    keep_16bit_layers(&s->plan, a->bits);
cleanup:
    free(local), free(size), free(coef);
    if (st != RAANA_OK)
        raana_allocation_free(a);
    return st;
}

static void print_cell(FILE *out, const raana_table_column *c, int layer)
{
    double v = *(const double *)((const char *)c->value + (size_t)layer * c->stride);
    switch (c->style) {
    case 'e': fprintf(out, " %*.*e", c->width, c->precision, v); break;
    case 'f': fprintf(out, " %*.*f", c->width, c->precision, v); break;
    default: fprintf(out, " %*.*g", c->width, c->precision, v); break;
    }
}

void raana_layer_table_print(FILE *out, const char *indent, const raana_plan *plan,
                             const raana_table_column *cols, int n_cols)
{
    fprintf(out, "%s%-40s %13s", indent, "layer", "shape");
    for (int k = 0; k < n_cols; k++)
        fprintf(out, " %*s", cols[k].width, cols[k].header);
    fputc('\n', out);
    for (int i = 0; i < plan->n_layers; i++) {
        const raana_plan_layer *l = &plan->layers[i];
        char shape[32];
        snprintf(shape, sizeof shape, "%dx%d", l->d_out, l->d_in);
        fprintf(out, "%s%-40s %13s", indent, l->name, shape);
        for (int k = 0; k < n_cols; k++) {
            if (l->quantize || l->kept_16bit)
                print_cell(out, &cols[k], i);
            else
                fprintf(out, " %*s", cols[k].width, "-");
        }
        fputc('\n', out);
    }
}

void raana_allocation_print(FILE *out, const raana_plan *plan, const raana_config *cfg,
                            const raana_layer_stats *stats, const raana_allocation *a)
{
    if (a->factor_bits > 0)
        fprintf(out, "allocation: low-rank factors take %.4f bits per weight of the target\n",
                a->factor_bits);
    fprintf(out, "allocation: target %g bits, achieved %.4f, modelled error %.6g (%s",
            cfg->avg_bits - a->factor_bits, a->result.achieved_avg_bits, a->result.cost,
            a->result.method == RAANA_ALLOC_EXACT_DP ? "exact DP" : "Lagrangian");
    if (a->result.method != RAANA_ALLOC_EXACT_DP)
        fprintf(out, ", optimality gap <= %.2e",
                (a->result.cost - a->result.lower_bound) / a->result.cost);
    if (a->unit_error)
        fprintf(out, ", calibrated error model");
    fprintf(out, ")\n");
    const raana_table_column cols[] = {{"bits", 5, 6, 'g', a->bits, sizeof *a->bits},
                                       {"coef", 12, 4, 'e', a->coef, sizeof *a->coef},
                                       {"grad_rms", 12, 4, 'e', &stats[0].grad_rms, sizeof *stats},
                                       {"x_rms", 10, 4, 'g', &stats[0].x_rms, sizeof *stats},
                                       {"w_fro", 10, 4, 'g', a->w_fro, sizeof *a->w_fro}};
    raana_layer_table_print(out, "  ", plan, cols, (int)(sizeof cols / sizeof cols[0]));
}
