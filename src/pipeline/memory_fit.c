/* memory_fit.c — each rank's estimated need against its memory limits, and
 * the smallest rank count that fits (see memory_fit.h). */
#include "raana/memory_fit.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "raana/comm.h"
#include "raana/memory.h"
#include "raana/memory_estimate.h"

#define MIB (1024.0 * 1024.0)

/* The plan for n ranks at the windows in flight the fit is judged at. */
static raana_status fit_plan(const raana_model_config *m, const raana_config *cfg, int n,
                             raana_plan *plan, raana_error *err)
{
    RAANA_CALL(raana_plan_create(m, cfg, n, plan, err));
    if (plan->windows_auto && plan->windows_in_flight > 1)
        raana_plan_set_windows_in_flight(plan, m, cfg, 1);
    return RAANA_OK;
}

static uint64_t rank_need(const raana_plan_rank *r)
{
    return r->peak_bytes - RAANA_PROCESS_BASE_BYTES;
}

/* The rank with the largest need. */
static int neediest_rank(const raana_plan *plan)
{
    int at = 0;
    for (int r = 1; r < plan->n_ranks; r++)
        if (rank_need(&plan->ranks[r]) > rank_need(&plan->ranks[at]))
            at = r;
    return at;
}

int raana_ranks_to_fit_max(const raana_model_config *model)
{
    return 2 * model->num_layers + 2;
}

raana_status raana_ranks_to_fit(const raana_model_config *model, const raana_config *cfg,
                                uint64_t room, int max_ranks, int *n_ranks, uint64_t *largest,
                                raana_error *err)
{
    *n_ranks = 0;
    *largest = UINT64_MAX;
    for (int n = 1; n <= max_ranks; n++) {
        raana_plan plan;
        RAANA_CALL(fit_plan(model, cfg, n, &plan, err));
        uint64_t need = rank_need(&plan.ranks[neediest_rank(&plan)]);
        raana_plan_free(&plan);
        if (need <= room) {
            *n_ranks = n, *largest = need;
            return RAANA_OK;
        }
        *largest = need < *largest ? need : *largest;
    }
    return RAANA_OK;
}

/* "blocks 2-3, lm_head" */
static void format_holdings(char *buf, size_t size, const raana_plan_rank *r)
{
    if (r->n_blocks > 1)
        snprintf(buf, size, "blocks %d-%d%s%s", r->first_block, r->first_block + r->n_blocks - 1,
                 r->owns_embedding ? ", embedding" : "", r->owns_head ? ", lm_head" : "");
    else if (r->n_blocks == 1)
        snprintf(buf, size, "block %d%s%s", r->first_block, r->owns_embedding ? ", embedding" : "",
                 r->owns_head ? ", lm_head" : "");
    else
        snprintf(buf, size, "no block%s%s", r->owns_embedding ? ", embedding" : "",
                 r->owns_head ? ", lm_head" : "");
}

/* What rank r's estimate is made of (docs/SCALING.md, "Memory of one rank"). */
static void format_estimate(char *buf, size_t size, const raana_plan *plan, int r)
{
    const raana_plan_rank *rk = &plan->ranks[r];
    char holds[96], grams[80] = "";
    format_holdings(holds, sizeof holds, rk);
    if (rk->gram_bytes)
        snprintf(grams, sizeof grams, ", plus %.1f MiB LDLQ grams", (double)rk->gram_bytes / MIB);
    snprintf(buf, size,
             "rank %d (%s) needs %.1f MiB beyond the process: est. peak %.1f MiB = %.1f MiB "
             "process + %.1f MiB f32 weights + the larger of %.1f MiB calibration activations "
             "(%d window%s in flight%s) and %.1f MiB quantize working set%s",
             r, holds, (double)rank_need(rk) / MIB, (double)rk->peak_bytes / MIB,
             (double)RAANA_PROCESS_BASE_BYTES / MIB, (double)(4 * rk->params) / MIB,
             (double)rk->calibration_bytes / MIB, plan->windows_in_flight,
             plan->windows_in_flight == 1 ? "" : "s",
             plan->windows_auto ? ", auto at its least" : "", (double)rk->quantize_bytes / MIB,
             grams);
}

/* With every layer split by output columns (plan.h), when that fits on
 * fewer ranks than n (0: none): "; with ... N ranks fit", else "". */
static raana_status format_split_advice(char *buf, size_t size, const raana_model_config *m,
                                        const raana_config *cfg, uint64_t room, int n,
                                        raana_error *err)
{
    raana_config split = *cfg;
    int n_split;
    uint64_t largest;
    buf[0] = 0;
    if (cfg->split_min_weights == 1)
        return RAANA_OK;
    split.split_min_weights = 1;
    RAANA_CALL(
        raana_ranks_to_fit(m, &split, room, raana_ranks_to_fit_max(m), &n_split, &largest, err));
    if (n_split > 0 && (n == 0 || n_split < n))
        snprintf(buf, size,
                 "; with [quantize] split_min_weights = 1 (every layer encoded by all ranks, a "
                 "piece of its columns each) %d rank%s fit, the largest need %.1f MiB",
                 n_split, n_split == 1 ? "" : "s", (double)largest / MIB);
    return RAANA_OK;
}

/* How many ranks would fit under room, as a clause. */
static raana_status format_ranks_needed(char *buf, size_t size, const raana_model_config *m,
                                        const raana_config *cfg, uint64_t room, raana_error *err)
{
    int n;
    uint64_t largest;
    int max = raana_ranks_to_fit_max(m);
    char split[224];
    RAANA_CALL(raana_ranks_to_fit(m, cfg, room, max, &n, &largest, err));
    RAANA_CALL(format_split_advice(split, sizeof split, m, cfg, room, n, err));
    if (n > 0)
        snprintf(buf, size,
                 "the job needs at least %d rank%s: then the largest need is %.1f MiB, within the "
                 "%.1f MiB of room (the limit less one OpenBLAS buffer; mpiexec -n %d raana-mpi "
                 "--dry-run shows the plan)%s",
                 n, n == 1 ? "" : "s", (double)largest / MIB, (double)room / MIB, n, split);
    else
        snprintf(buf, size,
                 "no number of ranks fits: at best (any count up to %d ranks) the largest need is "
                 "%.1f MiB, more than the %.1f MiB of room; raise the limit or lower "
                 "[calibration] seq_len or windows_in_flight%s",
                 max, (double)largest / MIB, (double)room / MIB, split);
    return RAANA_OK;
}

/* Appends to the message in err. */
static void append_message(raana_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void append_message(raana_error *err, const char *fmt, ...)
{
    size_t len = strlen(err->msg);
    va_list ap;
    va_start(ap, fmt);
    if (len < sizeof err->msg)
        vsnprintf(err->msg + len, sizeof err->msg - len, fmt, ap);
    va_end(ap);
}

raana_status raana_stage_check_fit(const raana_stage *s, const raana_config *cfg, int rank,
                                   raana_error *err)
{
    raana_memory_state mem;
    raana_memory_read(&mem);
    if (raana_memory_check(&mem, rank_need(&s->plan.ranks[rank]), rank, err) == RAANA_OK)
        return RAANA_OK;
    const char *limit;
    uint64_t room = raana_memory_room(&mem, &limit);
    char what[512], needed[560];
    raana_error scratch;
    format_estimate(what, sizeof what, &s->plan, rank);
    if (format_ranks_needed(needed, sizeof needed, &s->model.config, cfg, room, &scratch) ==
        RAANA_OK)
        append_message(err, "; %s; %s", what, needed);
    err->agreed = 1; /* the message names the rank */
    return err->status;
}

/* ---- --dry-run -------------------------------------------------------------------- */

typedef struct {
    uint64_t room;   /* raana_memory_room; UINT64_MAX when unlimited */
    char limit[600]; /* the limit that sets it, "" when unlimited */
} rank_room;

static void read_room(rank_room *r)
{
    raana_memory_state mem;
    const char *limit;
    raana_memory_read(&mem);
    memset(r, 0, sizeof *r);
    r->room = raana_memory_room(&mem, &limit);
    if (strcmp(limit, "the memory cgroup") == 0)
        snprintf(r->limit, sizeof r->limit, "%s (%s)", limit, mem.cgroup_path);
    else
        snprintf(r->limit, sizeof r->limit, "%s", limit);
}

/* The rank with the least room. */
static int tightest_rank(const rank_room *rooms, int n)
{
    int at = 0;
    for (int r = 1; r < n; r++)
        if (rooms[r].room < rooms[at].room)
            at = r;
    return at;
}

/* Rank 0's lines (memory_fit.h). */
static raana_status print_fit(FILE *out, const raana_stage *s, const raana_config *cfg,
                              const rank_room *rooms, raana_error *err)
{
    raana_status st = RAANA_OK;
    raana_plan plan;
    memset(&plan, 0, sizeof plan);
    int n = s->plan.n_ranks, tight = tightest_rank(rooms, n), misfits = 0;
    if (rooms[tight].room == UINT64_MAX) {
        fprintf(out, "memory limits: none found (ulimit -v, ulimit -d, memory cgroup)\n");
        return RAANA_OK;
    }
    RAANA_CHECK(fit_plan(&s->model.config, cfg, n, &plan, err));
    raana_expert_teams_apply(&s->teams, &plan, &s->model.config, cfg); /* a team's holdings */
    for (int r = 0; r < n; r++) {
        char what[512];
        if (rank_need(&plan.ranks[r]) <= rooms[r].room)
            continue;
        misfits++;
        format_estimate(what, sizeof what, &plan, r);
        fprintf(out,
                "memory: does not fit: %s, but %s leaves rank %d %.1f MiB (after one %.0f MiB "
                "OpenBLAS buffer)\n",
                what, rooms[r].limit, r, (double)rooms[r].room / MIB,
                (double)RAANA_OPENBLAS_BUFFER_BYTES / MIB);
    }
    if (misfits == 0) {
        int at = neediest_rank(&plan);
        fprintf(out,
                "memory limits: every rank fits; the largest need is %.1f MiB (rank %d), the "
                "least room %.1f MiB (rank %d, %s)\n",
                (double)rank_need(&plan.ranks[at]) / MIB, at, (double)rooms[tight].room / MIB,
                tight, rooms[tight].limit);
    } else {
        char needed[560];
        RAANA_CHECK(format_ranks_needed(needed, sizeof needed, &s->model.config, cfg,
                                        rooms[tight].room, err));
        fprintf(out, "memory: %d of %d rank%s do%s not fit; with the least room (rank %d's), %s\n",
                misfits, n, n == 1 ? "" : "s", misfits == 1 ? "es" : "", tight, needed);
    }
cleanup:
    raana_plan_free(&plan);
    return st;
}

raana_status raana_plan_print_fit(MPI_Comm comm, const raana_stage *s, const raana_config *cfg,
                                  FILE *out, raana_error *err)
{
    raana_status st = RAANA_OK;
    int rank, size;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    rank_room mine;
    read_room(&mine);
    rank_room *all = rank == 0 ? calloc((size_t)size, sizeof *all) : NULL;
    RAANA_CHECK(raana_comm_agree(
        comm,
        rank != 0 || all ? RAANA_OK
                         : raana_fail(err, RAANA_ERR_NOMEM, "out of memory for %d ranks", size),
        err));
    MPI_Gather(&mine, (int)sizeof mine, MPI_BYTE, all, (int)sizeof mine, MPI_BYTE, 0, comm);
    RAANA_CHECK(raana_comm_agree(
        comm, rank == 0 && out ? print_fit(out, s, cfg, all, err) : RAANA_OK, err));
cleanup:
    free(all);
    return st;
}
