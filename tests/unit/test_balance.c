/* test_balance.c — the quantize stage's balance (balance.h): the LPT
 * assignment against brute force on small instances (a valid partition,
 * loads that add up, a makespan within 4/3 - 1/(3P) of the optimum, the
 * same answer twice), LPT's textbook worst case, ties, pinned items, and
 * the cost model's shape (linear in d_out, growing with the bits for the
 * exact encoder, flat for the fast one). */
#include <stdint.h>
#include <stdlib.h>

#include "check.h"
#include "raana/balance.h"

/* The optimal makespan over all P^n assignments. */
static double brute_force(const double *cost, int n, int p)
{
    int64_t total = 1;
    for (int i = 0; i < n; i++)
        total *= p;
    double best = 1e300;
    for (int64_t code = 0; code < total; code++) {
        double load[8] = {0};
        int64_t c = code;
        for (int i = 0; i < n; i++, c /= p)
            load[c % p] += cost[i];
        double max = 0;
        for (int r = 0; r < p; r++)
            max = load[r] > max ? load[r] : max;
        best = max < best ? max : best;
    }
    return best;
}

static uint64_t next_random(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return *s >> 33;
}

static void random_instances(void)
{
    uint64_t seed = 42;
    for (int trial = 0; trial < 300; trial++) {
        int n = 1 + (int)(next_random(&seed) % 8), p = 1 + (int)(next_random(&seed) % 4);
        double cost[8], load[4], again_load[4];
        int rank_of[8], again[8];
        for (int i = 0; i < n; i++) /* small integers: many ties, as layers of one kind give */
            cost[i] = (double)(1 + next_random(&seed) % 6);
        raana_error err;
        CHECK_INT(raana_balance_lpt(cost, NULL, n, p, rank_of, load, &err), RAANA_OK);
        double sum[4] = {0}, max = 0;
        int valid = 1;
        for (int i = 0; i < n; i++) {
            valid &= rank_of[i] >= 0 && rank_of[i] < p;
            if (rank_of[i] >= 0 && rank_of[i] < p)
                sum[rank_of[i]] += cost[i];
        }
        CHECK(valid);
        for (int r = 0; r < p; r++) {
            CHECK_NEAR(load[r], sum[r], 1e-12);
            max = sum[r] > max ? sum[r] : max;
        }
        double opt = brute_force(cost, n, p);
        CHECK(max <= (4.0 / 3.0 - 1.0 / (3.0 * p)) * opt + 1e-9);
        CHECK(max >= opt - 1e-9);
        CHECK_INT(raana_balance_lpt(cost, NULL, n, p, again, again_load, &err), RAANA_OK);
        CHECK(memcmp(rank_of, again, (size_t)n * sizeof *again) == 0);
    }
}

/* Graham's example: 2 machines, jobs 3 3 2 2 2. LPT puts 3|3, 2|2, then 2
 * on rank 0: makespan 7, where 3+3 | 2+2+2 gives 6 (= 7/6 of it, the
 * bound 4/3 - 1/6 = 7/6 met with equality). */
static void textbook_case(void)
{
    double cost[5] = {2, 3, 2, 3, 2}, load[2];
    int rank_of[5];
    raana_error err;
    CHECK_INT(raana_balance_lpt(cost, NULL, 5, 2, rank_of, load, &err), RAANA_OK);
    CHECK_INT(rank_of[1], 0); /* the first 3 (lower index) onto rank 0 */
    CHECK_INT(rank_of[3], 1);
    CHECK_INT(rank_of[0], 0); /* the 2s by index: 0 -> rank 0 (tie 3:3), 2 -> rank 1, 4 -> 0 */
    CHECK_INT(rank_of[2], 1);
    CHECK_INT(rank_of[4], 0);
    CHECK_NEAR(load[0], 7, 0);
    CHECK_NEAR(load[1], 5, 0);
    CHECK_NEAR(brute_force(cost, 5, 2), 6, 0);
}

static void ties_pins_and_skips(void)
{
    double cost[7] = {1, 1, 1, 1, -1, 5, 1}, load[3];
    int pinned[7] = {-1, -1, -1, -1, -1, 2, -1}, rank_of[7];
    raana_error err;
    CHECK_INT(raana_balance_lpt(cost, pinned, 7, 3, rank_of, load, &err), RAANA_OK);
    CHECK_INT(rank_of[5], 2);  /* pinned, counted first */
    CHECK_INT(rank_of[4], -1); /* not a layer to quantize */
    CHECK_INT(rank_of[0], 0);  /* equal costs: lowest index onto the lowest least-loaded rank */
    CHECK_INT(rank_of[1], 1);
    CHECK_INT(rank_of[2], 0);
    CHECK_INT(rank_of[3], 1);
    CHECK_INT(rank_of[6], 0);
    CHECK_NEAR(load[0], 3, 0);
    CHECK_NEAR(load[1], 2, 0);
    CHECK_NEAR(load[2], 5, 0);
    pinned[5] = 3; /* outside the ranks: a bug in the caller */
    CHECK_INT(raana_balance_lpt(cost, pinned, 7, 3, rank_of, load, &err), RAANA_ERR_INTERNAL);
    CHECK_INT(raana_balance_lpt(cost, NULL, 7, 0, rank_of, load, &err), RAANA_ERR_INTERNAL);
    CHECK_INT(raana_balance_lpt(cost, NULL, 0, 2, rank_of, load, &err), RAANA_OK);
    CHECK_NEAR(load[0] + load[1], 0, 0);
}

static void cost_model(void)
{
    const raana_encoder ex = RAANA_ENCODER_EXACT, fa = RAANA_ENCODER_FAST;
    double c4 = raana_quantize_cost(4096, 4096, 4, ex);
    CHECK(c4 > 0);
    CHECK_NEAR(raana_quantize_cost(4096, 8192, 4, ex), 2 * c4, 1e-12); /* columns independent */
    for (int b = 1; b < 8; b++) {
        CHECK(raana_quantize_cost(4096, 4096, b + 1, ex) > raana_quantize_cost(4096, 4096, b, ex));
        CHECK(raana_quantize_cost(4096, 4096, b + 1, fa) >= raana_quantize_cost(4096, 4096, b, fa));
    }
    CHECK_NEAR(raana_quantize_cost(4096, 4096, 1, ex), raana_quantize_cost(4096, 4096, 1, fa), 0);
    CHECK_NEAR(raana_quantize_cost(4096, 4096, 8, fa), raana_quantize_cost(4096, 4096, 2, fa),
               1e-12);
    CHECK(raana_quantize_cost(4096, 4096, 8, ex) > 5 * raana_quantize_cost(4096, 4096, 4, ex));
    CHECK(raana_quantize_cost(4096, 4096, 0.5, ex) <= raana_quantize_cost(4096, 4096, 1, ex));
    CHECK_NEAR(raana_quantize_cost(4096, 4096, 0, ex), 0, 0);
}

int main(void)
{
    random_instances();
    textbook_case();
    ties_pins_and_skips();
    cost_model();
    return check_summary("test_balance");
}
