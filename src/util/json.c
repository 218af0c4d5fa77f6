/* json.c — exact JSON numbers for cJSON output (see json.h). */
#include "raana/json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

cJSON *raana_json_number(double v)
{
    if (!isfinite(v))
        return cJSON_CreateNull();
    char text[32];
    for (int digits = 15; digits <= 17; digits++) {
        snprintf(text, sizeof text, "%.*g", digits, v);
        if (strtod(text, NULL) == v)
            break;
    }
    return cJSON_CreateRaw(text);
}

void raana_json_add_number(cJSON *obj, const char *key, double v)
{
    cJSON_AddItemToObject(obj, key, raana_json_number(v));
}
