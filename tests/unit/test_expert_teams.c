/* test_expert_teams.c — the team size of a sparse block's experts
 * (expert_teams.h) on tests/data/mixtral-tiny-random (2 blocks of 4
 * experts, hidden 128, expert width 256, top-2): expert bytes in closed
 * form, forced sizes against the spare ranks (P - 2 for P >= 2), and auto
 * sizes for budgets placed just around each team's closed-form need, who
 * holds which layer and the estimates with a team. */
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "raana/expert_teams.h"
#include "raana/memory_estimate.h"

#define EXPERT_BYTES ((uint64_t)4 * 4 * 3 * 128 * 256) /* f32, E x (gate, up, down) */
#define ONE_EXPERT   (EXPERT_BYTES / 4)

static raana_model model;
static raana_config cfg;

static void make_plan(int n_ranks, raana_plan *plan)
{
    raana_error err;
    raana_config_defaults(&cfg);
    cfg.seq_len = 96, cfg.n_samples = 1;
    CHECK_INT(raana_plan_create(&model.config, &cfg, n_ranks, plan, &err), RAANA_OK);
}

/* The plan index of block b's expert e projection k (gate, up, down), or
 * of its slot k when e < 0. */
static int layer_of(const raana_plan *plan, int b, int e, int k)
{
    for (int i = 0; i < plan->n_layers; i++) {
        const raana_plan_layer *l = &plan->layers[i];
        if (l->block == b && (e < 0 ? l->slot == k : l->expert == e && (int)l->kind == k))
            return i;
    }
    return -1;
}

static uint64_t need(const raana_plan *plan, int r)
{
    return plan->ranks[r].peak_bytes - RAANA_PROCESS_BASE_BYTES;
}

static void test_forced(void)
{
    for (int p = 1; p <= 4; p++) {
        raana_plan plan;
        make_plan(p, &plan);
        int spare = p > 2 ? p - 2 : 0;
        for (int b = 0; b < 2; b++)
            CHECK(raana_expert_block_bytes(&plan, b) == EXPERT_BYTES);
        for (int n = 1; n <= 5; n++) {
            raana_expert_teams t;
            raana_error err;
            memset(&err, 0, sizeof err);
            raana_expert_teams_plan(&plan, &model.config, n, UINT64_MAX, &t);
            CHECK_INT(t.size, n);
            CHECK_INT(t.spare, spare);
            CHECK_INT(t.ranks_needed, n - 1 > spare ? p + n - 1 - spare : p);
            CHECK(t.block_bytes == EXPERT_BYTES);
            raana_status st = raana_expert_teams_check(&t, &plan, &model.config, &err);
            if (n == 1)
                CHECK_INT(st, RAANA_OK);
            else if (n > 4) {
                CHECK_INT(st, RAANA_ERR_CONFIG);
                CHECK_MSG(err, "expert_ranks = 5", "only 4 experts");
            } else if (n - 1 > spare) {
                char want[64];
                snprintf(want, sizeof want, "run with at least %d ranks", p + n - 1 - spare);
                CHECK_INT(st, RAANA_ERR_CONFIG);
                CHECK_MSG(err, "[calibration] expert_ranks", "1.50 MiB f32", want);
            } else /* the team computes them (expert_team.h) */
                CHECK_INT(st, RAANA_OK);
        }
        raana_plan_free(&plan);
    }
}

static int auto_size(const raana_plan *plan, uint64_t budget, raana_status want)
{
    raana_expert_teams t;
    raana_error err;
    memset(&err, 0, sizeof err);
    raana_expert_teams_plan(plan, &model.config, 0, budget, &t);
    CHECK_INT(t.forced, 0);
    CHECK_INT(raana_expert_teams_check(&t, plan, &model.config, &err), want);
    if (want == RAANA_ERR_NOMEM)
        CHECK_MSG(err, "do not fit the memory budget", "run with at least");
    return t.size;
}

/* One rank owns both blocks: a team of n leaves it ceil(4 / n) experts of
 * each, and there is no spare rank. */
static void test_auto_one_rank(void)
{
    raana_plan plan;
    make_plan(1, &plan);
    uint64_t all = need(&plan, 0);
    CHECK_INT(auto_size(&plan, UINT64_MAX, RAANA_OK), 1);
    CHECK_INT(auto_size(&plan, all, RAANA_OK), 1);
    CHECK_INT(auto_size(&plan, all - 1, RAANA_ERR_NOMEM), 2);                  /* keeps 2 of 4 */
    CHECK_INT(auto_size(&plan, all - 4 * ONE_EXPERT, RAANA_ERR_NOMEM), 2);     /* exactly */
    CHECK_INT(auto_size(&plan, all - 4 * ONE_EXPERT - 1, RAANA_ERR_NOMEM), 4); /* 3 keeps 2 too */
    CHECK_INT(auto_size(&plan, all - 6 * ONE_EXPERT, RAANA_ERR_NOMEM), 4);
    /* even one expert per rank does not fit: not the experts' doing */
    CHECK_INT(auto_size(&plan, all - 6 * ONE_EXPERT - 1, RAANA_OK), 1);
    raana_plan_free(&plan);
}

/* P = 4: ranks 1 and 3 own a block each, 0 and 2 none. Member 1 of a team
 * of 2 holds experts 1 and 3 of both blocks and their routed rows (at most
 * 96 per expert, one window): gate, up, product (3 x 256) and in/out (2 x
 * 128) floats each. */
static void test_auto_four_ranks(void)
{
    raana_plan plan;
    make_plan(4, &plan);
    CHECK_INT(plan.ranks[0].n_blocks, 0);
    CHECK_INT(plan.ranks[2].n_blocks, 0);
    uint64_t owner = need(&plan, 1) > need(&plan, 3) ? need(&plan, 1) : need(&plan, 3);
    uint64_t member = need(&plan, 0) + 2 * (2 * ONE_EXPERT + 4 * 96 * 2 * (3 * 256 + 2 * 128));
    CHECK_INT(auto_size(&plan, owner, RAANA_OK), 1);
    uint64_t two = member > owner - 1 ? member : owner - 1;
    CHECK(owner - 2 * ONE_EXPERT <= two);
    CHECK_INT(auto_size(&plan, two, RAANA_OK), 2);
    raana_plan_free(&plan);
}

/* P = 4, a team of 2: experts 1 and 3 of both blocks live on rank 0 (the
 * first rank without a block), the others and the attention on the
 * owners; the estimates move those experts' bytes from the owners (exactly:
 * their working sets do not change) to rank 0, with its routed rows. */
static void test_apply_four_ranks(void)
{
    raana_plan plan;
    raana_expert_teams t;
    make_plan(4, &plan);
    raana_expert_teams_plan(&plan, &model.config, 2, UINT64_MAX, &t);
    CHECK_INT(t.size, 2);
    uint64_t params[4], needs[4];
    for (int r = 0; r < 4; r++)
        params[r] = plan.ranks[r].params, needs[r] = need(&plan, r);
    int gate = RAANA_LINEAR_GATE, down = RAANA_LINEAR_DOWN;
    CHECK_INT(raana_expert_teams_holder(&t, &plan, layer_of(&plan, 0, 1, gate)), 0);
    CHECK_INT(raana_expert_teams_holder(&t, &plan, layer_of(&plan, 1, 3, down)), 0);
    CHECK_INT(raana_expert_teams_holder(&t, &plan, layer_of(&plan, 0, 2, gate)), 1);
    CHECK_INT(raana_expert_teams_holder(&t, &plan, layer_of(&plan, 1, 0, down)), 3);
    CHECK_INT(raana_expert_teams_holder(&t, &plan, layer_of(&plan, 1, -1, 0)), 3); /* q_proj */
    raana_expert_teams_apply(&t, &plan, &model.config, &cfg);
    uint64_t rows = 2 * 2 * 4 * 96 * (3 * 256 + 2 * 128); /* 2 blocks x 2 experts, 1 window */
    CHECK(plan.ranks[1].params == params[1] - 2 * ONE_EXPERT / 4);
    CHECK(plan.ranks[3].params == params[3] - 2 * ONE_EXPERT / 4);
    CHECK(need(&plan, 1) == needs[1] - 2 * ONE_EXPERT);
    CHECK(need(&plan, 3) == needs[3] - 2 * ONE_EXPERT);
    CHECK(plan.ranks[0].params == params[0] + 4 * ONE_EXPERT / 4);
    CHECK(plan.ranks[0].expert_rows_bytes == rows);
    CHECK(need(&plan, 0) > needs[0] + 4 * ONE_EXPERT);
    CHECK(need(&plan, 0) <= needs[0] + 4 * ONE_EXPERT + rows);
    CHECK(plan.ranks[2].params == params[2] && need(&plan, 2) == needs[2]);
    raana_plan_free(&plan);
}

int main(void)
{
    raana_error err;
    CHECK_INT(raana_model_open(&model, RAANA_SOURCE_DIR "/tests/data/mixtral-tiny-random", &err),
              RAANA_OK);
    test_forced();
    test_auto_one_rank();
    test_auto_four_ranks();
    test_apply_four_ranks();
    raana_model_close(&model);
    return check_summary("test_expert_teams");
}
