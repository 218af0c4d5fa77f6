/* allocation.c — coefficients, their reduction, AllocateBits on every rank
 * (see allocation.h). */
#include "raana/allocation.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "raana/comm.h"
#include "raana/qlayer.h"

void raana_allocation_free(raana_allocation *a)
{
    free(a->w_fro);
    free(a->coef);
    free(a->bits);
    raana_alloc_result_free(&a->result);
    memset(a, 0, sizeof *a);
}

/* ||W after tricks|| of this rank's quantized layers into w_fro (zeros
 * elsewhere). */
static raana_status local_norms(const raana_stage *s, const raana_config *cfg, double *w_fro,
                                raana_error *err)
{
    raana_status st = RAANA_OK;
    for (int i = 0; i < s->plan.n_layers && st == RAANA_OK; i++) {
        const raana_plan_layer *l = &s->plan.layers[i];
        if (!l->quantize || l->block < s->net.first_block ||
            l->block >= s->net.first_block + s->net.n_blocks)
            continue;
        const float *w = s->net.blocks[l->block - s->net.first_block].w[l->kind];
        st = raana_qlayer_trick_norm(w, l->d_in, l->d_out, cfg->tricks, cfg->norm_col_rate,
                                     &w_fro[i], err);
        if (st != RAANA_OK)
            raana_error_prefix(err, "%s", l->name);
    }
    return st;
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
