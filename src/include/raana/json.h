/* json.h — JSON numbers that read back as exactly the double written.
 *
 * cJSON's own printing (1.7.15) tries "%1.15g" and keeps it when it reads
 * back within one epsilon of the value, so 0.1 + 0.2 prints as 0.3 and a
 * statistic or a perplexity written and read again is a different double.
 * raana_json_number prints the shortest of %.15g, %.16g, %.17g that strtod
 * turns back into the same bits (17 significant digits always suffice for
 * IEEE binary64), as a cJSON raw item; NaN and infinities become null.
 * Every JSON raana writes goes through cJSON and these two functions. */
#ifndef RAANA_JSON_H
#define RAANA_JSON_H

#include <cjson/cJSON.h>

/* A new item (NULL when out of memory), to add with cJSON_AddItemTo*. */
cJSON *raana_json_number(double v);

/* obj[key] = raana_json_number(v). */
void raana_json_add_number(cJSON *obj, const char *key, double v);

#endif
