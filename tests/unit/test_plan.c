/* test_plan.c — the layer list and the block split: contiguous, covering,
 * balanced within one block, idle ranks, exclude patterns; checked on the
 * fixture's shapes and on Llama-2-70B's. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "raana/memory_estimate.h"
#include "raana/plan.h"
#include "tiny_model.h"

static void check_split(const raana_model_config *m, int n_ranks)
{
    raana_config cfg;
    raana_plan plan;
    raana_error err;
    raana_config_defaults(&cfg);
    CHECK_INT(raana_plan_create(m, &cfg, n_ranks, &plan, &err), RAANA_OK);
    int next = 0, lo = m->num_layers / n_ranks, hi = (m->num_layers + n_ranks - 1) / n_ranks;
    uint64_t params = 0, quantized = 0;
    int idle = 0;
    for (int r = 0; r < n_ranks; r++) {
        const raana_plan_rank *rk = &plan.ranks[r];
        if (rk->n_blocks)
            CHECK_INT(rk->first_block, next); /* contiguous, in rank order */
        next += rk->n_blocks;
        CHECK(rk->n_blocks == lo || rk->n_blocks == hi); /* balanced within one block */
        CHECK_INT(rk->owns_embedding, r == 0);
        CHECK_INT(rk->owns_head, r == n_ranks - 1);
        params += rk->params;
        quantized += rk->quantized_params;
        idle += rk->n_blocks == 0;
    }
    CHECK_INT(next, m->num_layers); /* every block owned once */
    CHECK_INT(params, plan.total_params);
    CHECK_INT(quantized, plan.quantized_params);
    CHECK_INT(idle, n_ranks > m->num_layers ? n_ranks - m->num_layers : 0);
    for (int b = 0; b < m->num_layers; b++) {
        int owner = raana_plan_block_owner(&plan, b);
        CHECK(owner >= 0 && b >= plan.ranks[owner].first_block);
    }
    raana_plan_free(&plan);
}

static void test_splits(void)
{
    raana_model_config tiny = tiny_llama_config(4, 192, 576, 6, 2, 2048);
    tiny.head_dim = 32;
    for (int p = 1; p <= 9; p++)
        check_split(&tiny, p);
    raana_model_config l70 = tiny_llama_config(80, 8192, 28672, 64, 8, 32000);
    for (int p = 1; p <= 17; p++)
        check_split(&l70, p);
    check_split(&l70, 80);
    check_split(&l70, 96);
}

static void test_layers_and_exclude(void)
{
    raana_model_config m = tiny_llama_config(80, 8192, 28672, 64, 8, 32000);
    raana_config cfg;
    raana_plan plan;
    raana_error err;
    raana_config_defaults(&cfg);
    CHECK_INT(raana_plan_create(&m, &cfg, 4, &plan, &err), RAANA_OK);
    CHECK_INT(plan.n_layers, 560);
    CHECK(strcmp(plan.layers[7 * 3 + 6].name, "model.layers.3.mlp.down_proj") == 0);
    CHECK_INT(plan.layers[1].d_out, 1024); /* k_proj: 8 kv heads * 128 */
    /* Llama-2-70B: 68.7e9 parameters, 64.4e9 of them in the linears of the blocks */
    CHECK_INT(plan.quantized_params,
              80ull * (2 * 8192ull * 8192 + 2 * 8192ull * 1024 + 3 * 8192ull * 28672));
    CHECK_INT(plan.total_params, 68976648192ull);
    raana_plan_free(&plan);

    CHECK_INT(raana_config_set(&cfg, "quantize.exclude=*.down_proj, model.layers.0.*", &err),
              RAANA_OK);
    CHECK_INT(raana_plan_create(&m, &cfg, 2, &plan, &err), RAANA_OK);
    int kept = 0;
    for (int i = 0; i < plan.n_layers; i++)
        kept += plan.layers[i].quantize;
    CHECK_INT(kept, 560 - 80 - 6);
    raana_plan_free(&plan);

    CHECK_INT(raana_config_set(&cfg, "quantize.exclude=model.*", &err), RAANA_OK);
    CHECK_INT(raana_plan_create(&m, &cfg, 2, &plan, &err), RAANA_ERR_CONFIG);
    CHECK_MSG(err, "exclude matches every linear layer");

    raana_config_defaults(&cfg);
    CHECK_INT(raana_plan_seq_len(&m, &cfg), 2048);
    cfg.seq_len = 256;
    CHECK_INT(raana_plan_seq_len(&m, &cfg), 256);
}

/* M, windows in flight: auto = 1 on one rank, else 2 per rank, never more
 * than n_samples; each more window adds one trace per block (and, on the
 * last rank, one head gradient) to the calibration estimate, in closed form. */
static void test_windows_in_flight(void)
{
    raana_model_config m = tiny_llama_config(4, 192, 576, 6, 2, 2048);
    raana_config cfg;
    raana_plan plan;
    raana_error err;
    raana_config_defaults(&cfg);
    cfg.n_samples = 8, cfg.seq_len = 256;
    CHECK_INT(raana_plan_windows_in_flight(&cfg, 1), 1);
    CHECK_INT(raana_plan_windows_in_flight(&cfg, 3), 6);
    CHECK_INT(raana_plan_windows_in_flight(&cfg, 5), 8);
    cfg.windows_in_flight = 3;
    CHECK_INT(raana_plan_windows_in_flight(&cfg, 4), 3);
    cfg.windows_in_flight = 20;
    CHECK_INT(raana_plan_windows_in_flight(&cfg, 1), 8);
    cfg.windows_in_flight = 0;
    CHECK_INT(raana_plan_create(&m, &cfg, 2, &plan, &err), RAANA_OK);
    CHECK_INT(plan.windows_in_flight, 4);
    CHECK_INT(plan.windows_auto, 1);
    uint64_t before[2], t = 256, per_block = t * (8 * 192 + 3 * 576 + 2 + 6);
    for (int r = 0; r < 2; r++)
        before[r] = plan.ranks[r].calibration_bytes;
    raana_plan_set_windows_in_flight(&plan, &m, &cfg, 1);
    for (int r = 0; r < 2; r++) {
        const raana_plan_rank *rk = &plan.ranks[r];
        uint64_t per_window =
            4 * ((uint64_t)rk->n_blocks * per_block + (rk->owns_head ? t * 192 : 0));
        CHECK(before[r] - rk->calibration_bytes == 3 * per_window);
        CHECK(rk->peak_bytes == RAANA_PROCESS_BASE_BYTES + 4 * rk->params +
                                    (rk->calibration_bytes > rk->quantize_bytes
                                         ? rk->calibration_bytes
                                         : rk->quantize_bytes));
    }
    raana_plan_free(&plan);
}

int main(void)
{
    test_splits();
    test_layers_and_exclude();
    test_windows_in_flight();
    return check_summary("test_plan");
}
