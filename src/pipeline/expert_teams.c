/* expert_teams.c — the team size of the sparse blocks' experts, whether
 * the job has the ranks and the memory for it, and its messages (see
 * expert_teams.h). No MPI: every rank computes the same answer from the
 * same plan and the agreed budget. */
#include "raana/expert_teams.h"

#include "raana/memory_estimate.h"

#define MIB (1024.0 * 1024.0)

uint64_t raana_expert_block_bytes(const raana_plan *plan, int block)
{
    uint64_t params = 0;
    for (int i = 0; i < plan->n_layers; i++) {
        const raana_plan_layer *l = &plan->layers[i];
        if (l->block == block && l->expert >= 0)
            params += (uint64_t)l->d_in * (uint64_t)l->d_out;
    }
    return 4 * params;
}

/* Experts e < n_experts with e % n == j. */
static int experts_of_member(int n_experts, int n, int j)
{
    return j < n_experts ? (n_experts - 1 - j) / n + 1 : 0;
}

/* What rank r needs beyond the process (as the job's memory check). */
static uint64_t rank_need(const raana_plan *plan, int r)
{
    uint64_t peak = plan->ranks[r].peak_bytes;
    return peak > RAANA_PROCESS_BASE_BYTES ? peak - RAANA_PROCESS_BASE_BYTES : 0;
}

/* Rank r's need when it owns its blocks with teams of n: it keeps the
 * experts e % n == 0 of each of its sparse blocks. */
static uint64_t owner_need(const raana_plan *plan, const raana_model_config *m, int r, int n)
{
    const raana_plan_rank *rk = &plan->ranks[r];
    uint64_t need = rank_need(plan, r), E = (uint64_t)m->moe_experts;
    uint64_t keep = (uint64_t)experts_of_member(m->moe_experts, n, 0);
    for (int b = rk->first_block; b < rk->first_block + rk->n_blocks; b++)
        need -= raana_expert_block_bytes(plan, b) / E * (E - keep);
    return need;
}

/* Member j's (1..n-1) experts of every sparse block in f32. */
static uint64_t member_weight_bytes(const raana_plan *plan, const raana_model_config *m, int n,
                                    int j)
{
    uint64_t E = (uint64_t)m->moe_experts, cnt = (uint64_t)experts_of_member(m->moe_experts, n, j);
    uint64_t bytes = 0;
    for (int b = 0; b < m->num_layers; b++)
        if (raana_block_is_sparse(m, b))
            bytes += raana_expert_block_bytes(plan, b) / E * cnt;
    return bytes;
}

/* Member j's routed rows (at most one per token and expert) for each of
 * `windows` windows: gate, up, product, input and output. */
static uint64_t member_rows_bytes(const raana_plan *plan, const raana_model_config *m, int n, int j,
                                  int windows)
{
    uint64_t cnt = (uint64_t)experts_of_member(m->moe_experts, n, j);
    uint64_t row = 3 * (uint64_t)m->moe_intermediate_size + 2 * (uint64_t)m->hidden_size;
    uint64_t bytes = 0;
    for (int b = 0; b < m->num_layers; b++)
        if (raana_block_is_sparse(m, b))
            bytes += 4 * (uint64_t)windows * (uint64_t)plan->seq_len * cnt * row;
    return bytes;
}

/* What member j (1..n-1) adds to the spare rank's own need: its experts and
 * their routed rows for every window in flight. */
static uint64_t member_share(const raana_plan *plan, const raana_model_config *m, int n, int j)
{
    return member_weight_bytes(plan, m, n, j) +
           member_rows_bytes(plan, m, n, j, plan->windows_in_flight);
}

/* The j-th rank (1-based) that owns no decoder block, or -1. */
static int spare_rank(const raana_plan *plan, int j)
{
    for (int r = 0; r < plan->n_ranks; r++)
        if (plan->ranks[r].n_blocks == 0 && --j == 0)
            return r;
    return -1;
}

/* Whether a team of n fits: every owner, and every member that exists
 * (missing members are the check's business). */
static int team_fits(const raana_plan *plan, const raana_model_config *m, int n, uint64_t budget)
{
    for (int r = 0; r < plan->n_ranks; r++)
        if (plan->ranks[r].n_blocks > 0 && owner_need(plan, m, r, n) > budget)
            return 0;
    for (int j = 1; j < n; j++) {
        int s = spare_rank(plan, j);
        if (s >= 0 && rank_need(plan, s) + member_share(plan, m, n, j) > budget)
            return 0;
    }
    return 1;
}

/* The sparse block with the most expert bytes on the rank that needs the
 * most memory, as the block to name. */
static void name_block(const raana_plan *plan, const raana_model_config *m, raana_expert_teams *t)
{
    for (int r = 0; r < plan->n_ranks; r++) {
        const raana_plan_rank *rk = &plan->ranks[r];
        for (int b = rk->first_block; b < rk->first_block + rk->n_blocks; b++) {
            uint64_t bytes = raana_expert_block_bytes(plan, b);
            if (!raana_block_is_sparse(m, b))
                continue;
            if (t->block < 0 || rank_need(plan, r) > t->rank_bytes ||
                (rank_need(plan, r) == t->rank_bytes && bytes > t->block_bytes))
                t->block = b, t->rank = r, t->block_bytes = bytes,
                t->rank_bytes = rank_need(plan, r);
        }
    }
}

void raana_expert_teams_plan(const raana_plan *plan, const raana_model_config *m, int expert_ranks,
                             uint64_t budget, raana_expert_teams *t)
{
    *t = (raana_expert_teams){1, expert_ranks > 0, 0, plan->n_ranks, -1, -1, 0, 0, budget};
    for (int r = 0; r < plan->n_ranks; r++)
        t->spare += plan->ranks[r].n_blocks == 0;
    if (m->moe_experts <= 0)
        return;
    name_block(plan, m, t);
    if (t->block < 0)
        return;
    if (t->forced)
        t->size = expert_ranks;
    else /* the smallest team that fits; none (1) when no team would help */
        for (int n = 1; n <= m->moe_experts; n++)
            if (team_fits(plan, m, n, budget)) {
                t->size = n;
                break;
            }
    if (t->size - 1 > t->spare)
        t->ranks_needed = plan->n_ranks + t->size - 1 - t->spare;
}

raana_status raana_expert_teams_check(const raana_expert_teams *t, const raana_plan *plan,
                                      const raana_model_config *m, raana_error *err)
{
    if (t->size <= 1)
        return RAANA_OK;
    double block_mib = (double)t->block_bytes / MIB;
    if (t->forced && t->size > m->moe_experts)
        return raana_fail(err, RAANA_ERR_CONFIG,
                          "[calibration] expert_ranks = %d: block %d has only %d experts to "
                          "spread; use at most %d or auto",
                          t->size, t->block, m->moe_experts, m->moe_experts);
    if (t->forced && t->ranks_needed > plan->n_ranks)
        return raana_fail(err, RAANA_ERR_CONFIG,
                          "[calibration] expert_ranks = %d: block %d's experts (%.2f MiB f32) "
                          "need a team of %d ranks, its owner rank %d and %d more rank%s that own "
                          "no decoder block, but %d of the %d ranks own none: run with at least "
                          "%d ranks or lower expert_ranks",
                          t->size, t->block, block_mib, t->size, t->rank, t->size - 1,
                          t->size == 2 ? "" : "s", t->spare, plan->n_ranks, t->ranks_needed);
    if (t->ranks_needed > plan->n_ranks)
        return raana_fail(err, RAANA_ERR_NOMEM,
                          "block %d's experts (%.2f MiB f32) do not fit the memory budget of "
                          "its owner rank %d (%.1f MiB free, it needs %.1f MiB): they need a "
                          "team of %d ranks, rank %d and %d more rank%s that own no decoder "
                          "block, but %d of the %d ranks own none: run with at least %d ranks or "
                          "raise the memory limit",
                          t->block, block_mib, t->rank, (double)t->budget / MIB,
                          (double)t->rank_bytes / MIB, t->size, t->rank, t->size - 1,
                          t->size == 2 ? "" : "s", t->spare, plan->n_ranks, t->ranks_needed);
    return RAANA_OK; /* the team holds and computes the experts (expert_team.h) */
}

int raana_expert_teams_holder(const raana_expert_teams *t, const raana_plan *plan, int layer)
{
    const raana_plan_layer *l = &plan->layers[layer];
    if (t->size > 1 && l->expert >= 0 && l->expert % t->size != 0)
        return spare_rank(plan, l->expert % t->size);
    return raana_plan_block_owner(plan, l->block);
}

void raana_expert_teams_apply(const raana_expert_teams *t, raana_plan *plan,
                              const raana_model_config *m, const raana_config *cfg)
{
    if (t->size <= 1)
        return;
    int n = t->size;
    uint64_t E = (uint64_t)m->moe_experts;
    uint64_t handed = E - (uint64_t)experts_of_member(m->moe_experts, n, 0);
    for (int r = 0; r < plan->n_ranks; r++) {
        raana_plan_rank *rk = &plan->ranks[r];
        for (int b = rk->first_block; b < rk->first_block + rk->n_blocks; b++) {
            uint64_t bytes = raana_expert_block_bytes(plan, b) / E * handed;
            rk->params -= bytes / 4;
            rk->forward_peak_bytes -= bytes;
        }
    }
    for (int j = 1; j < n && spare_rank(plan, j) >= 0; j++) { /* the check made sure */
        raana_plan_rank *rk = &plan->ranks[spare_rank(plan, j)];
        uint64_t bytes = member_weight_bytes(plan, m, n, j);
        rk->params += bytes / 4;
        rk->expert_rows_bytes = member_rows_bytes(plan, m, n, j, plan->windows_in_flight);
        rk->forward_peak_bytes += bytes + member_rows_bytes(plan, m, n, j, 1);
    }
    raana_plan_set_windows_in_flight(plan, m, cfg, plan->windows_in_flight); /* the peaks */
}

void raana_expert_teams_print(FILE *out, const raana_expert_teams *t, const raana_plan *plan,
                              const raana_model_config *m)
{
    if (m->moe_experts <= 0 || t->block < 0)
        return;
    char budget[64] = "no memory limit";
    if (t->budget != UINT64_MAX)
        snprintf(budget, sizeof budget, "%.1f MiB free per rank", (double)t->budget / MIB);
    fprintf(out,
            "expert teams: %d rank%s per sparse block (%s; %s); largest: block %d's experts "
            "%.1f MiB f32 on rank %d (needs %.1f MiB without a team); %d of %d ranks own no "
            "decoder block%s\n",
            t->size, t->size == 1 ? "" : "s", t->forced ? "[calibration] expert_ranks" : "auto",
            budget, t->block, (double)t->block_bytes / MIB, t->rank, (double)t->rank_bytes / MIB,
            t->spare, plan->n_ranks,
            t->size > 1 ? " (the team holds its experts' weights; the rank table counts them)"
                        : "");
}
