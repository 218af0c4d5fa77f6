/* test_cost_model.c — raana_cost_predict (src/pipeline/cost_model.c)
 * against closed forms computed here from the model's shape: load, write
 * and calibration FLOPs on one rank; the pipeline's calibrate time against
 * a simulation of the flow shop (every window through every stage, forward
 * then backward, each stage one window at a time) on 2..5 ranks with
 * uneven block splits; the quantize stage's total against balance.h's
 * costs (avg_bits between whole bits interpolated) and its largest rank
 * within LPT's bound; the calibration rate scales with the OpenBLAS
 * threads and the quantize time with the OpenMP threads; reused
 * statistics cost no calibration; LDLQ adds its grams to the calibration
 * FLOPs and its factor and feedback to the quantize stage. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "raana/balance.h"
#include "raana/cost_model.h"
#include "raana/memory_estimate.h"
#include "raana/plan.h"
#include "tiny_model.h"

/* 2 OpenMP threads quantize, 3 OpenBLAS threads calibrate, per rank */
static const raana_cost_threads threads = {2, 3};

static raana_config job(int windows, int seq_len, double avg_bits)
{
    raana_config cfg;
    raana_config_defaults(&cfg);
    cfg.n_samples = windows, cfg.seq_len = seq_len, cfg.avg_bits = avg_bits;
    cfg.cost_read_gb_s = 2, cfg.cost_load_ns = 3, cfg.cost_calibrate_gflops = 50;
    cfg.cost_quantize_scale = 0.7, cfg.cost_write_mb_s = 150, cfg.threads = 2;
    return cfg;
}

/* Linear weights of one block, from the shape. */
static double block_weights(const raana_model_config *m)
{
    double h = m->hidden_size, kv = (double)m->num_kv_heads * m->head_dim;
    double q = (double)m->num_heads * m->head_dim, in = m->intermediate_size;
    return h * q + 2 * h * kv + q * h + 3 * h * in;
}

/* Forward + backward FLOPs of one window through `blocks` blocks. */
static double flops(const raana_model_config *m, int blocks, int T, int head)
{
    double q = (double)m->num_heads * m->head_dim;
    return blocks * (4.0 * T * block_weights(m) + 6.0 * T * T * q) +
           (head ? 4.0 * T * (double)m->vocab_size * m->hidden_size : 0);
}

static void test_one_rank(void)
{
    raana_model_config m = tiny_llama_config(4, 256, 688, 8, 2, 1000);
    raana_config cfg = job(3, 128, 2.5);
    raana_plan plan;
    raana_cost cost;
    raana_error err;
    CHECK_INT(raana_plan_create(&m, &cfg, 1, &plan, &err), RAANA_OK);
    CHECK_INT(raana_cost_predict(&plan, &m, &cfg, &threads, &cost, &err), RAANA_OK);
    double params = (double)plan.ranks[0].params;
    CHECK_NEAR(cost.load, params * (2 / 2e9 + 3e-9), 1e-12);
    double f = flops(&m, 4, 128, 1);
    CHECK_NEAR(cost.calibrate, 3 * f / (50e9 * 3), 1e-12);
    CHECK_NEAR(cost.calibrate_flops, 3 * f, 1e-9);
    double q = 0, bytes = 2.0 * (double)(plan.total_params - plan.quantized_params);
    for (int i = 0; i < plan.n_layers; i++) {
        const raana_plan_layer *l = &plan.layers[i];
        double c2 = raana_quantize_cost(l->d_in, l->d_out, 2, cfg.encoder);
        double c3 = raana_quantize_cost(l->d_in, l->d_out, 3, cfg.encoder);
        q += 0.7 / 2 * (c2 + c3) / 2;
        bytes += (double)l->d_in * l->d_out * 2.5 / 8 + 4.0 * l->d_out;
    }
    CHECK_NEAR(cost.quantize, q, 1e-12);
    CHECK_NEAR(cost.container_bytes, bytes, 1e-12);
    CHECK_NEAR(cost.write, bytes / 150e6, 1e-12);
    CHECK_NEAR(cost.total, cost.load + cost.calibrate + cost.quantize + cost.write, 1e-12);
    raana_cost_free(&cost);
    /* LDLQ: every input's gram (T d^2 flops per window) and each layer's
     * factor and feedback at the reference rate scaled as the calibration's */
    double h = m.hidden_size, ctx = (double)m.num_heads * m.head_dim, in = m.intermediate_size;
    cfg.ldlq = 1;
    CHECK_INT(raana_cost_predict(&plan, &m, &cfg, &threads, &cost, &err), RAANA_OK);
    CHECK_NEAR(cost.calibrate_flops, 3 * (f + 4 * 128 * (2 * h * h + ctx * ctx + in * in)), 1e-9);
    double ldlq = 0;
    for (int i = 0; i < plan.n_layers; i++)
        ldlq += raana_ldlq_cost(plan.layers[i].d_in, plan.layers[i].d_out, 2.5) * 87 / 50 / 3;
    CHECK(ldlq > 0);
    CHECK_NEAR(cost.quantize, q + ldlq, 1e-12);
    raana_cost_free(&cost);
    raana_plan with;
    CHECK_INT(raana_plan_create(&m, &cfg, 1, &with, &err), RAANA_OK);
    CHECK_INT(with.ranks[0].gram_bytes, 4 * 4 * (2 * h * h + ctx * ctx + in * in));
    CHECK(with.ranks[0].peak_bytes >= plan.ranks[0].peak_bytes + with.ranks[0].gram_bytes);
    CHECK_INT(plan.ranks[0].gram_bytes, 0);
    raana_plan_free(&with);
    cfg.ldlq = 0;
    strcpy(cfg.statistics, "reused.calibration.json");
    CHECK_INT(raana_cost_predict(&plan, &m, &cfg, &threads, &cost, &err), RAANA_OK);
    CHECK(cost.calibrate == 0 && cost.quantize > 0);
    raana_cost_free(&cost);
    raana_plan_free(&plan);
}

/* With ldlq, a layer whose gram exceeds one MPI message (down_proj with
 * d_in = 46342: 46342^2 > INT_MAX floats) never moves, so no rank keeps a
 * receive buffer for its gram; each keeps LDLQ's working set for the
 * largest layer it may encode and the largest gram it may receive. */
static void test_ldlq_memory(void)
{
    raana_model_config m = tiny_llama_config(2, 64, 46342, 4, 4, 100);
    raana_config cfg = job(1, 16, 3);
    raana_plan off, on;
    raana_error err;
    CHECK_INT(raana_plan_create(&m, &cfg, 2, &off, &err), RAANA_OK);
    cfg.ldlq = 1;
    CHECK_INT(raana_plan_create(&m, &cfg, 2, &on, &err), RAANA_OK);
    uint64_t d = 46342, h = 64;
    for (int r = 0; r < 2; r++)
        CHECK_INT(on.ranks[r].quantize_bytes - off.ranks[r].quantize_bytes,
                  8 * d * d + 5 * d * h + 4 * h * h);
    CHECK_INT(on.ranks[0].gram_bytes, 4 * (3 * h * h + d * d));
    raana_plan_free(&off);
    raana_plan_free(&on);
}

/* The flow shop: window w leaves stage s at done[s] after starting when
 * both it left stage s - 1 and stage s finished window w - 1; forwards in
 * stage order, then backwards in reverse, per round of m windows. */
static double simulate(const double *unit, int stages, int windows, int m)
{
    double t = 0, done[16];
    for (int left = windows; left > 0; left -= m) {
        int n = left < m ? left : m;
        for (int pass = 0; pass < 2; pass++) {
            for (int s = 0; s < stages; s++)
                done[s] = t;
            for (int w = 0; w < n; w++) {
                double ready = t;
                for (int k = 0; k < stages; k++) {
                    int s = pass == 0 ? k : stages - 1 - k;
                    double share = pass == 0 ? 1.0 / 3 : 2.0 / 3; /* backward costs twice */
                    double start = fmax(ready, done[s]);
                    done[s] = ready = start + share * unit[s];
                }
            }
            for (int s = 0; s < stages; s++)
                t = fmax(t, done[s]);
        }
    }
    return t;
}

/* chunk > 0: windows of 64 tokens in chunks of that many rows, each chunk a
 * pipeline unit costing (rows + 17) / (64 + 17) of a window's time. */
static void test_pipeline(int layers, int n_ranks, int windows, int in_flight, int chunk)
{
    raana_model_config m = tiny_llama_config(layers, 128, 344, 4, 4, 500);
    raana_config cfg = job(windows, 64, 3);
    cfg.windows_in_flight = in_flight;
    cfg.chunk_tokens = chunk;
    int chunks = chunk > 0 ? (64 + chunk - 1) / chunk : 1;
    double share = (64.0 / chunks + 17) / (64 + 17);
    raana_plan plan;
    raana_cost cost;
    raana_error err;
    CHECK_INT(raana_plan_create(&m, &cfg, n_ranks, &plan, &err), RAANA_OK);
    CHECK_INT(raana_cost_predict(&plan, &m, &cfg, &threads, &cost, &err), RAANA_OK);
    double unit[16];
    int stages = 0;
    for (int r = 0; r < n_ranks; r++)
        if (plan.ranks[r].n_blocks > 0)
            unit[stages++] = flops(&m, plan.ranks[r].n_blocks, 64, plan.ranks[r].owns_head) /
                             (50e9 * 3) * (chunk > 0 ? share : 1);
    double expected = simulate(unit, stages, windows * chunks, plan.windows_in_flight * chunks);
    if (fabs(cost.calibrate - expected) > 1e-9 * expected)
        printf("  %d blocks on %d ranks, %d windows, %d in flight, %d chunks: %.9f s, simulated "
               "%.9f s\n",
               layers, n_ranks, windows, plan.windows_in_flight, chunks, cost.calibrate, expected);
    CHECK_NEAR(cost.calibrate, expected, 1e-9);
    /* the quantize stage: every layer on some rank; LPT within its bound */
    double sum = 0, largest = 0, layer_max = 0;
    for (int r = 0; r < n_ranks; r++)
        sum += cost.ranks[r].quantize, largest = fmax(largest, cost.ranks[r].quantize);
    for (int i = 0; i < plan.n_layers; i++)
        layer_max = fmax(layer_max, 0.7 / 2 *
                                        raana_quantize_cost(plan.layers[i].d_in,
                                                            plan.layers[i].d_out, 3, cfg.encoder));
    CHECK_NEAR(largest, cost.quantize, 1e-12);
    CHECK(largest >= sum / n_ranks - 1e-12 && largest <= sum / n_ranks + layer_max + 1e-12);
    raana_cost_free(&cost);
    raana_plan_free(&plan);
}

int main(void)
{
    test_one_rank();
    test_ldlq_memory();
    /* blocks, ranks, windows, in flight, chunk rows (24: ragged chunks of 64 tokens) */
    int cases[][5] = {{4, 2, 4, 4, 0},  {5, 2, 4, 4, 0}, {5, 3, 7, 2, 0}, {7, 4, 9, 3, 0},
                      {3, 5, 4, 4, 0},  {6, 3, 1, 1, 0}, {8, 4, 8, 0, 0}, {4, 2, 4, 4, 16},
                      {8, 4, 2, 2, 24}, {6, 3, 1, 1, 32}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        test_pipeline(cases[i][0], cases[i][1], cases[i][2], cases[i][3], cases[i][4]);
    return check_summary("test_cost_model");
}
