/* allocation.c — coefficients, their reduction, AllocateBits on every rank
 * (see allocation.h). */
#include "raana/allocation.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "raana/comm.h"
#include "raana/layer_norms.h"

void raana_allocation_free(raana_allocation *a)
{
    free(a->w_fro);
    free(a->coef);
    free(a->bits);
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

raana_status raana_stage_allocate(MPI_Comm comm, const raana_stage *s, const raana_config *cfg,
                                  const raana_layer_stats *stats, raana_allocation *a,
                                  raana_error *err)
{
    int n = s->plan.n_layers, nq = 0;
    memset(a, 0, sizeof *a);
    a->n_layers = n;
    double *local = calloc((size_t)n, sizeof *local);
    a->w_fro = calloc((size_t)n, sizeof *a->w_fro);
    a->coef = calloc((size_t)n, sizeof *a->coef);
    a->bits = calloc((size_t)n, sizeof *a->bits);
    uint64_t *size = calloc((size_t)n, sizeof *size);
    double *coef = calloc((size_t)n, sizeof *coef);
    raana_status st = local && a->w_fro && a->coef && a->bits && size && coef
                          ? local_norms(s, cfg, local, err)
                          : raana_fail(err, RAANA_ERR_NOMEM, "out of memory");
    st = raana_comm_agree(comm, st, err);
    if (st == RAANA_OK) { /* each layer's norm comes from exactly one rank */
        MPI_Allreduce(local, a->w_fro, n, MPI_DOUBLE, MPI_SUM, comm);
        for (int i = 0; i < n; i++) {
            const raana_plan_layer *l = &s->plan.layers[i];
            if (!l->quantize)
                continue;
            a->coef[i] = stats[i].grad_rms * stats[i].x_rms * a->w_fro[i] / sqrt(l->d_in);
            size[nq] = (uint64_t)l->d_in * (uint64_t)l->d_out;
            coef[nq++] = a->coef[i];
        }
        st = check_statistics(&s->plan, stats, a->w_fro, a->coef, err);
    }
    if (st == RAANA_OK) {
        raana_alloc_problem p = {nq, size, coef, cfg->n_bits, cfg->bits, cfg->avg_bits};
        st = raana_allocate_bits(&p, RAANA_ALLOC_DEFAULT_MAX_CELLS, &a->result, err);
    }
    for (int i = 0, q = 0; st == RAANA_OK && i < n; i++)
        if (s->plan.layers[i].quantize)
            a->bits[i] = cfg->bits[a->result.choice[q++]];
    free(local), free(size), free(coef);
    if (st != RAANA_OK)
        raana_allocation_free(a);
    return st;
}

void raana_allocation_print(FILE *out, const raana_plan *plan, const raana_config *cfg,
                            const raana_layer_stats *stats, const raana_allocation *a)
{
    fprintf(out, "allocation: target %g bits, achieved %.4f, modelled error %.6g (%s",
            cfg->avg_bits, a->result.achieved_avg_bits, a->result.cost,
            a->result.method == RAANA_ALLOC_EXACT_DP ? "exact DP" : "Lagrangian");
    if (a->result.method != RAANA_ALLOC_EXACT_DP)
        fprintf(out, ", optimality gap <= %.2e",
                (a->result.cost - a->result.lower_bound) / a->result.cost);
    fprintf(out, ")\n  %-40s %13s %5s %12s %12s %10s %10s\n", "layer", "shape", "bits", "coef",
            "grad_rms", "x_rms", "w_fro");
    for (int i = 0; i < plan->n_layers; i++) {
        const raana_plan_layer *l = &plan->layers[i];
        char shape[32];
        snprintf(shape, sizeof shape, "%dx%d", l->d_out, l->d_in);
        if (!l->quantize)
            fprintf(out, "  %-40s %13s %5s\n", l->name, shape, "-");
        else
            fprintf(out, "  %-40s %13s %5g %12.4e %12.4e %10.4g %10.4g\n", l->name, shape,
                    a->bits[i], a->coef[i], stats[i].grad_rms, stats[i].x_rms, a->w_fro[i]);
    }
}
