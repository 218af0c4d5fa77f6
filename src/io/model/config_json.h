/* model/config_json.h — private to src/io/model: reading typed keys of a
 * model's config.json (config_json.c), shared by the dense keys (config.c)
 * and the mixture-of-experts and sliding-window keys (moe_config.c). A key
 * given twice yields its last value, as Python's json (and so Hugging Face)
 * reads it; a key present but null counts as missing. */
#ifndef RAANA_CONFIG_JSON_H
#define RAANA_CONFIG_JSON_H

#include <cjson/cJSON.h>

#include "raana/error.h"

typedef struct {
    const cJSON *root;
    const char *label; /* the file, for messages */
    raana_error *err;
    const char *required_for; /* "a mixture of experts": ends a missing-key message, or NULL */
} raana_config_json;

/* The value of key in obj (NULL if obj is not an object or has no key). */
const cJSON *raana_config_member(const cJSON *obj, const char *key);

/* An integer key in min..max; missing: dflt, or an error if required. */
raana_status raana_config_int(const raana_config_json *c, const cJSON *obj, const char *key,
                              int required, int dflt, int min, int max, int *out);

/* A boolean key; missing: dflt. */
raana_status raana_config_bool(const raana_config_json *c, const cJSON *obj, const char *key,
                               int dflt, int *out);

#endif
