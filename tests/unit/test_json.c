/* test_json.c — raana_json_number (src/util/json.c): every finite double
 * printed through cJSON reads back (strtod, and cJSON's own parser) as the
 * same bits, for 200000 random bit patterns and the hard cases (0.1 + 0.2,
 * subnormals, DBL_MAX, -0); the text is the shortest of 15, 16, 17 digits
 * (checked against known shortest forms); NaN and infinities print null. */
#include <float.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "raana/json.h"

static uint64_t bits_of(double v)
{
    uint64_t b;
    memcpy(&b, &v, sizeof b);
    return b;
}

/* v printed as a one-element JSON array "[TEXT]", TEXT into out. */
static void print_number(double v, char *out, size_t size)
{
    cJSON *a = cJSON_CreateArray();
    cJSON_AddItemToArray(a, raana_json_number(v));
    char *s = cJSON_PrintUnformatted(a);
    size_t n = s ? strlen(s) : 0;
    snprintf(out, size, "%.*s", n >= 2 ? (int)n - 2 : 0, s ? s + 1 : "");
    free(s);
    cJSON_Delete(a);
}

/* v survives the round trip through text, by strtod and by cJSON_Parse. */
static int round_trips(double v)
{
    char text[64], doc[80];
    print_number(v, text, sizeof text);
    double back = strtod(text, NULL);
    snprintf(doc, sizeof doc, "[%s]", text);
    cJSON *parsed = cJSON_Parse(doc);
    const cJSON *item = cJSON_GetArrayItem(parsed, 0);
    int same = bits_of(back) == bits_of(v) && cJSON_IsNumber(item) &&
               bits_of(item->valuedouble) == bits_of(v);
    cJSON_Delete(parsed);
    if (!same)
        fprintf(stderr, "round trip failed: %a printed as %s\n", v, text);
    return same;
}

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void check_random_bits(void)
{
    uint64_t state = 14, failures = 0, tested = 0;
    while (tested < 200000) {
        uint64_t b = splitmix64(&state);
        double v;
        memcpy(&v, &b, sizeof v);
        if (!isfinite(v))
            continue;
        tested++;
        failures += !round_trips(v);
    }
    CHECK_INT(failures, 0);
}

static void check_hard_cases(void)
{
    const double cases[] = {0.1 + 0.2,
                            1.0 / 3.0,
                            2.0 / 3.0,
                            0.0,
                            -0.0,
                            1.0,
                            -1.0,
                            DBL_MAX,
                            -DBL_MAX,
                            DBL_MIN,
                            DBL_TRUE_MIN,
                            5e-324,
                            1e300,
                            123456789012345678.0,
                            2.5,
                            31.921812345678901,
                            nextafter(1.0, 2.0),
                            nextafter(1.0, 0.0),
                            4503599627370497.0};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        CHECK(round_trips(cases[i]));
}

static void check_text(double v, const char *want)
{
    char text[64];
    print_number(v, text, sizeof text);
    if (strcmp(text, want) != 0)
        fprintf(stderr, "%a: printed %s, expected %s\n", v, text, want);
    CHECK(strcmp(text, want) == 0);
}

int main(void)
{
    check_random_bits();
    check_hard_cases();
    /* shortest forms: Python's repr gives the same for these */
    check_text(0.1, "0.1");
    check_text(0.1 + 0.2, "0.30000000000000004");
    check_text(1.0 / 3.0, "0.3333333333333333");
    check_text(2.5, "2.5");
    check_text(3.0, "3");
    check_text(-0.0, "-0");
    check_text(1e300, "1e+300");
    check_text(nextafter(1.0, 2.0), "1.0000000000000002");
    check_text(NAN, "null");
    check_text(INFINITY, "null");
    check_text(-INFINITY, "null");
    return check_summary("test_json");
}
