/* model/moe_config.h — private to src/io/model: the config.json keys of
 * mixtures of experts and sliding windows (moe_config.c). */
#ifndef RAANA_MOE_CONFIG_H
#define RAANA_MOE_CONFIG_H

#include <cjson/cJSON.h>

#include "raana/model.h"

/* Expert count, top-k, widths, renormalization, sparse-layer rule, shared
 * expert and the aux-loss keys; every key that changes the math is honoured
 * or refused by name (docs/MOE.md). Dense architectures: nothing to do. */
raana_status raana_model_config_parse_moe(const cJSON *root, const char *label,
                                          raana_model_config *cfg, raana_error *err);

/* sliding_window (and qwen's use_sliding_window) into cfg->sliding_window. */
raana_status raana_model_config_parse_window(const cJSON *root, const char *label,
                                             raana_model_config *cfg, raana_error *err);

#endif
