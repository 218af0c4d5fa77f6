/* layer_norms.h — ||W after the tricks||_F of this rank's quantized layers,
 * AllocateBits' w_fro, computed in the load stage right after the weights
 * are converted (issue 11: it was a separate pass of the allocate stage
 * over every weight, with a copy of each layer) with the copy-free
 * raana_trick_norm. */
#ifndef RAANA_LAYER_NORMS_H
#define RAANA_LAYER_NORMS_H

#include "raana/calibrate.h"
#include "raana/config.h"
#include "raana/error.h"

/* w_fro[i] for each quantized layer i of the plan whose weights this rank
 * holds (raana_stage_layer_weight), 0 elsewhere (w_fro has plan.n_layers
 * entries). Errors name the layer. */
raana_status raana_layer_norms(const raana_stage *s, const raana_config *cfg, double *w_fro,
                               raana_error *err);

/* Fills s->w_fro (allocated here, freed by raana_stage_free); after
 * raana_stage_load. */
raana_status raana_stage_norms(raana_stage *s, const raana_config *cfg, raana_error *err);

#endif
