/* test_allocate.c — AllocateBits: the exact DP equals exhaustive search on
 * random instances with up to 6 layers for every candidate subset of
 * {0.5, 0.75, 1..8, 16} (16: the layer kept as stored, no error); the
 * Lagrangian fallback is feasible and its reported
 * lower bound brackets the optimum; on a Llama-2-70B-shaped instance (560
 * layers, true shapes) exact DP and fallback agree within the fallback's
 * gap; bad budgets are refused. (Their speed is measured in bench/.) */
#include <stdlib.h>

#include "check.h"
#include "raana/allocate.h"
#include "raana/rng.h"

static const double all_bits[11] = {0.5, 0.75, 1, 2, 3, 4, 5, 6, 7, 8, 16};

/* min over all K^L choices within the budget (quarter-bit units) */
static double brute_force(const raana_alloc_problem *p)
{
    int L = p->n_layers, K = p->n_bits, idx[6] = {0};
    uint64_t n = 0;
    for (int l = 0; l < L; l++)
        n += p->size[l];
    long double budget = 4.0L * p->avg_bits * n * (1 + 1e-12L);
    double best = INFINITY;
    for (;;) {
        long double used = 0;
        double cost = 0;
        for (int l = 0; l < L; l++) {
            used += 4.0L * p->bits[idx[l]] * p->size[l];
            cost += p->coef[l] * raana_alloc_error_model(p->bits[idx[l]]);
        }
        if (used <= budget && cost < best)
            best = cost;
        int l = 0;
        while (l < L && idx[l] == K - 1)
            idx[l++] = 0;
        if (l == L)
            return best;
        idx[l]++;
    }
}

static void test_exhaustive(void)
{
    int instances = 0, exact = 0, lag_ok = 0;
    for (unsigned mask = 1; mask < 2048; mask++) {
        double bits[11];
        int K = 0;
        for (int i = 0; i < 11; i++)
            if (mask & (1u << i))
                bits[K++] = all_bits[i];
        int L = 1;
        while (L < 6 && pow(K, L + 1) <= 60000)
            L++;
        uint64_t size[6];
        double coef[6];
        for (int l = 0; l < L; l++) {
            size[l] = 64 * (1 + raana_rng_u64(mask, 1, (uint64_t)l) % 50);
            coef[l] = exp(8 * raana_rng_uniform(mask, 2, (uint64_t)l) - 4);
        }
        double avg = bits[0] + (bits[K - 1] - bits[0]) * raana_rng_uniform(mask, 3, 0);
        raana_alloc_problem p = {L, size, coef, K, bits, avg, NULL};
        raana_alloc_result r, g;
        raana_error err;
        double want = brute_force(&p);
        instances++;
        if (raana_allocate_bits(&p, RAANA_ALLOC_DEFAULT_MAX_CELLS, &r, &err) == RAANA_OK) {
            exact += r.method == RAANA_ALLOC_EXACT_DP && fabs(r.cost - want) <= 1e-12 * want &&
                     r.achieved_avg_bits <= avg * (1 + 1e-12);
            raana_alloc_result_free(&r);
        }
        if (raana_allocate_bits_lagrangian(&p, &g, &err) == RAANA_OK) {
            lag_ok += g.cost >= want * (1 - 1e-12) && g.lower_bound <= want * (1 + 1e-12) &&
                      g.achieved_avg_bits <= avg * (1 + 1e-12);
            raana_alloc_result_free(&g);
        }
    }
    CHECK_INT(instances, 2047);
    CHECK_INT(exact, instances);
    CHECK_INT(lag_ok, instances);
}

static void test_llama2_70b(void)
{
    const int L = 560;
    uint64_t size[560];
    double coef[560];
    const uint64_t shapes[7] = {8192ull * 8192,  8192ull * 1024,  8192ull * 1024, 8192ull * 8192,
                                8192ull * 28672, 8192ull * 28672, 28672ull * 8192};
    for (int l = 0; l < L; l++) {
        size[l] = shapes[l % 7];
        coef[l] = exp(6 * raana_rng_uniform(70, 0, (uint64_t)l) - 3);
    }
    const double sets[2][10] = {{1, 2, 3, 4, 5, 6, 7, 8}, {0.5, 0.75, 1, 2, 3, 4, 5, 6, 7, 8}};
    const int n_sets[2] = {8, 10};
    for (int s = 0; s < 2; s++)
        for (double avg = 1.1; avg < 4.2; avg += 1.0) {
            raana_alloc_problem p = {L, size, coef, n_sets[s], sets[s], avg, NULL};
            raana_alloc_result dp, lag;
            raana_error err;
            CHECK_INT(raana_allocate_bits(&p, RAANA_ALLOC_DEFAULT_MAX_CELLS, &dp, &err), RAANA_OK);
            CHECK_INT(raana_allocate_bits_lagrangian(&p, &lag, &err), RAANA_OK);
            CHECK_INT(dp.method, RAANA_ALLOC_EXACT_DP);
            CHECK(dp.cost <= lag.cost * (1 + 1e-12));
            CHECK(lag.lower_bound <= dp.cost * (1 + 1e-12)); /* the gap brackets the optimum */
            CHECK(dp.achieved_avg_bits <= avg + 1e-9 && lag.achieved_avg_bits <= avg + 1e-9);
            printf("  70B, %d candidates, avg %.1f: DP %.6g (%llu cells), Lagrangian %.6g, bound "
                   "%.6g (gap %.2e)\n",
                   n_sets[s], avg, dp.cost, (unsigned long long)dp.dp_cells, lag.cost,
                   lag.lower_bound, (lag.cost - lag.lower_bound) / lag.cost);
            /* with a tiny cell limit the solver falls back, and says so */
            raana_alloc_result fb;
            CHECK_INT(raana_allocate_bits(&p, 1000, &fb, &err), RAANA_OK);
            CHECK_INT(fb.method, RAANA_ALLOC_LAGRANGIAN);
            CHECK_NEAR(fb.cost, lag.cost, 0);
            raana_alloc_result_free(&dp);
            raana_alloc_result_free(&lag);
            raana_alloc_result_free(&fb);
        }
}

static void test_bad_budgets(void)
{
    uint64_t size[2] = {100, 200};
    double coef[2] = {1, 2}, bits[3] = {2, 3, 4};
    raana_alloc_problem p = {2, size, coef, 3, bits, 1.5, NULL};
    raana_alloc_result r;
    raana_error err;
    CHECK_INT(raana_allocate_bits(&p, RAANA_ALLOC_DEFAULT_MAX_CELLS, &r, &err), RAANA_ERR_CONFIG);
    CHECK_MSG(err, "avg_bits = 1.5 is outside the candidate bits [2, 4]");
    p.avg_bits = 4.5;
    CHECK_INT(raana_allocate_bits(&p, RAANA_ALLOC_DEFAULT_MAX_CELLS, &r, &err), RAANA_ERR_CONFIG);
    p.avg_bits = 3, p.n_bits = 0;
    CHECK_INT(raana_allocate_bits(&p, RAANA_ALLOC_DEFAULT_MAX_CELLS, &r, &err), RAANA_ERR_CONFIG);
    CHECK_MSG(err, "candidate list is empty");
    /* at exactly the largest width every layer gets it */
    p.n_bits = 3, p.avg_bits = 4;
    CHECK_INT(raana_allocate_bits(&p, RAANA_ALLOC_DEFAULT_MAX_CELLS, &r, &err), RAANA_OK);
    CHECK(r.choice[0] == 2 && r.choice[1] == 2);
    raana_alloc_result_free(&r);
    /* the model: 2^-b from one bit, 1 / (2 sqrt(b)) below */
    CHECK_NEAR(raana_alloc_error_model(3), 0.125, 1e-15);
    CHECK_NEAR(raana_alloc_error_model(0.5), 0.5 / sqrt(0.5), 1e-15);
    CHECK_NEAR(raana_alloc_error_model(1), 0.5, 1e-15);
    CHECK(raana_alloc_error_model(RAANA_BITS_KEEP) == 0); /* the stored weight itself */
    /* 9..15 bits are no code width; 16 is */
    double odd[2] = {8, 12}, keep[2] = {8, 16};
    p.bits = odd, p.n_bits = 2, p.avg_bits = 8;
    CHECK_INT(raana_allocate_bits(&p, RAANA_ALLOC_DEFAULT_MAX_CELLS, &r, &err), RAANA_ERR_CONFIG);
    CHECK_MSG(err, "or 16 (kept as stored)");
    /* budget for one layer of 100 weights at 16: the more sensitive per weight */
    p.bits = keep, p.avg_bits = (100 * 16 + 200 * 8) / 300.0;
    CHECK_INT(raana_allocate_bits(&p, RAANA_ALLOC_DEFAULT_MAX_CELLS, &r, &err), RAANA_OK);
    CHECK(r.choice[0] == 1 && r.choice[1] == 0);
    CHECK_NEAR(r.cost, 2 * exp2(-8), 1e-15);
    raana_alloc_result_free(&r);
}

int main(void)
{
    test_exhaustive();
    test_llama2_70b();
    test_bad_budgets();
    return check_summary("test_allocate");
}
