/* layer_norms.c — this rank's w_fro, computed once its weights are loaded
 * (see layer_norms.h): each layer on the one rank holding its weights (its
 * block's owner, or an expert team member for the experts it holds). */
#include "raana/layer_norms.h"

#include <stdlib.h>

#include "raana/trick_norm.h"

raana_status raana_layer_norms(const raana_stage *s, const raana_config *cfg, double *w_fro,
                               raana_error *err)
{
    for (int i = 0; i < s->plan.n_layers; i++) {
        const raana_plan_layer *l = &s->plan.layers[i];
        const float *w = l->quantize ? raana_stage_layer_weight(s, i) : NULL;
        w_fro[i] = 0;
        if (!w) /* another rank holds it */
            continue;
        if (raana_trick_norm(w, l->d_in, l->d_out, cfg->tricks, cfg->norm_col_rate, &w_fro[i],
                             err) != RAANA_OK)
            return raana_error_prefix(err, "%s", l->name);
    }
    return RAANA_OK;
}

raana_status raana_stage_norms(raana_stage *s, const raana_config *cfg, raana_error *err)
{
    raana_status st = RAANA_OK;
    double *w_fro = calloc((size_t)s->plan.n_layers, sizeof *w_fro);
    if (!w_fro)
        RAANA_FAIL_GOTO(err, RAANA_ERR_NOMEM, "out of memory for %d layer norms", s->plan.n_layers);
    RAANA_CHECK(raana_layer_norms(s, cfg, w_fro, err));
    free(s->w_fro);
    s->w_fro = w_fro;
    w_fro = NULL;
cleanup:
    free(w_fro);
    return st;
}
