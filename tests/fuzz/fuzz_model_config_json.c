/* fuzz_model_config_json.c — libFuzzer target: arbitrary bytes as
 * config.json text (raana_model_config_parse), then, when it parses, the
 * shapes and the list of required tensors that the rest of raana computes
 * from it (mixtures of experts' slots included), so that an accepted
 * config can never overflow them. Any crash,
 * leak or sanitizer report (UBSan's signed overflow included) is a bug. */
#include <stdint.h>
#include <stdlib.h>

#include "raana/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    raana_model_config cfg;
    raana_error err;
    if (raana_model_config_parse((const char *)data, size, "fuzz.json", &cfg, &err) != RAANA_OK)
        return 0;
    for (int k = 0; k < RAANA_LINEAR_COUNT; k++) {
        int d_in, d_out;
        raana_linear_shape(&cfg, (raana_linear_kind)k, &d_in, &d_out);
        if (d_in <= 0 || d_out <= 0)
            abort(); /* an accepted config must give positive shapes */
    }
    (void)raana_block_params(&cfg);
    for (int b = 0; b < cfg.num_layers && b < 4; b++) /* dense or sparse blocks' layers */
        for (int s = 0; s < raana_block_linear_count(&cfg, b) && s < 64; s++) {
            raana_linear_info li;
            raana_block_linear(&cfg, b, s, &li);
            if (li.d_in <= 0 || li.d_out <= 0)
                abort();
        }
    if (raana_model_linear_count(&cfg) <= 64 * 7) { /* two entries per linear, four norms */
        size_t n;
        free(raana_model_required_tensors(&cfg, &n));
    }
    return 0;
}
