/* test_expert_teams.c — the team size of a sparse block's experts
 * (expert_teams.h) on tests/data/mixtral-tiny-random (2 blocks of 4
 * experts, hidden 128, expert width 256, top-2): expert bytes in closed
 * form, forced sizes against the spare ranks (P - 2 for P >= 2), and auto
 * sizes for budgets placed just around each team's closed-form need. */
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "raana/expert_teams.h"
#include "raana/memory_estimate.h"

#define EXPERT_BYTES ((uint64_t)4 * 4 * 3 * 128 * 256) /* f32, E x (gate, up, down) */
#define ONE_EXPERT   (EXPERT_BYTES / 4)

static raana_model model;

static void make_plan(int n_ranks, raana_plan *plan)
{
    raana_config cfg;
    raana_error err;
    raana_config_defaults(&cfg);
    cfg.seq_len = 96, cfg.n_samples = 1;
    CHECK_INT(raana_plan_create(&model.config, &cfg, n_ranks, plan, &err), RAANA_OK);
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
    CHECK_INT(auto_size(&plan, two, RAANA_ERR_UNSUPPORTED), 2); /* the owner holds them all */
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
    raana_model_close(&model);
    return check_summary("test_expert_teams");
}
