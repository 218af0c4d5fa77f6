/* model/config_json.c — typed keys of config.json (see config_json.h). */
#include "config_json.h"

#include <math.h>
#include <string.h>

const cJSON *raana_config_member(const cJSON *obj, const char *key)
{
    const cJSON *found = NULL;
    if (!cJSON_IsObject(obj))
        return NULL;
    for (const cJSON *it = obj->child; it; it = it->next)
        if (it->string && strcmp(it->string, key) == 0)
            found = it;
    return found;
}

raana_status raana_config_int(const raana_config_json *c, const cJSON *obj, const char *key,
                              int required, int dflt, int min, int max, int *out)
{
    const cJSON *it = raana_config_member(obj, key);
    if (!it || cJSON_IsNull(it)) {
        if (required && c->required_for)
            return raana_fail(c->err, RAANA_ERR_INPUT, "%s: missing required key '%s' for %s",
                              c->label, key, c->required_for);
        if (required)
            return raana_fail(c->err, RAANA_ERR_INPUT, "%s: missing required key '%s'", c->label,
                              key);
        *out = dflt;
        return RAANA_OK;
    }
    if (!cJSON_IsNumber(it) || it->valuedouble != floor(it->valuedouble) || it->valuedouble < min ||
        it->valuedouble > max)
        return raana_fail(c->err, RAANA_ERR_INPUT, "%s: key '%s' must be an integer in [%d, %d]",
                          c->label, key, min, max);
    *out = (int)it->valuedouble;
    return RAANA_OK;
}

raana_status raana_config_bool(const raana_config_json *c, const cJSON *obj, const char *key,
                               int dflt, int *out)
{
    const cJSON *it = raana_config_member(obj, key);
    if (!it || cJSON_IsNull(it)) {
        *out = dflt;
        return RAANA_OK;
    }
    if (!cJSON_IsBool(it))
        return raana_fail(c->err, RAANA_ERR_INPUT, "%s: key '%s' must be true or false", c->label,
                          key);
    *out = cJSON_IsTrue(it);
    return RAANA_OK;
}
