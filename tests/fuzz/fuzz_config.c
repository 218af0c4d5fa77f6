/* fuzz_config.c — libFuzzer target: arbitrary bytes as config.ini text,
 * then the cross-key checks and the canonical writer on whatever parsed. */
#include <stdint.h>
#include <stdio.h>

#include "raana/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    raana_config cfg;
    raana_error err;
    raana_config_defaults(&cfg);
    if (raana_config_parse(&cfg, (const char *)data, size, "fuzz.ini", "/base", &err) == RAANA_OK) {
        (void)raana_config_validate(&cfg, &err);
        FILE *null = fopen("/dev/null", "w");
        if (null) {
            raana_config_write(null, &cfg);
            fclose(null);
        }
    }
    return 0;
}
