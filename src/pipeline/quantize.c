/* quantize.c — the quantize stage (see quantize.h). */
#include "raana/quantize.h"

#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "raana/balance.h"
#include "raana/column_split.h"
#include "raana/comm.h"
#include "raana/fault.h"
#include "raana/half_scaled.h"
#include "raana/huge_alloc.h"
#include "raana/joblog.h"
#include "raana/lowrank.h"
#include "raana/preempt.h"
#include "raana/qlayer_encode.h"
#include "raana/ranked.h"
#include "raana/rng.h"
#include "raana/svd.h"
#include "raana/wait.h"

int raana_quantize_threads(const raana_config *cfg)
{
    if (cfg->threads > 0)
        return cfg->threads;
    const char *env = getenv("OMP_NUM_THREADS");
    long n = env ? strtol(env, NULL, 10) : 0;
    return n > 0 && n <= 1024 ? (int)n : 1;
}

void raana_quantized_free(raana_quantized *q)
{
    for (int i = 0; q->layers && i < q->n_layers; i++)
        if (q->layers[i]) {
            raana_qlayer_free(q->layers[i]);
            free(q->layers[i]);
        }
    free(q->layers);
    free(q->summary);
    free(q->quantizer);
    memset(q, 0, sizeof *q);
}

/* ||What - W||_F / ||W||_F, summed column by column as a split layer
 * sums it (qlayer_encode.h). */
static raana_status relative_error(const raana_qlayer *q, const float *w, double *rel,
                                   raana_error *err)
{
    raana_status st = RAANA_OK;
    size_t d_in = (size_t)q->d_in, d_out = (size_t)q->d_out;
    float *what = raana_malloc_large(d_in * d_out * sizeof *what);
    double *diff = malloc(2 * d_out * sizeof *diff), *ref = diff + d_out;
    if (!what || !diff)
        RAANA_FAIL_GOTO(err, RAANA_ERR_NOMEM, "out of memory for a %dx%d layer", q->d_out, q->d_in);
    RAANA_CHECK(raana_qlayer_dequantize(q, what, err));
    for (size_t j = 0; j < d_out; j++)
        raana_qlayer_column_error(what + j * d_in, w + j * d_in, q->d_in, &diff[j], &ref[j]);
    *rel = raana_qlayer_relative_error(diff, ref, q->d_out);
cleanup:
    free(what);
    free(diff);
    return st;
}

/* A layer's low-rank compensation in progress: the weighted error M and
 * the input weights (lowrank.h), then the SVD's top triplets. One per
 * rank at a time; buffers grow to the largest layer. */
typedef struct {
    int layer, rank; /* plan index (-1: none pending), factor rank */
    uint64_t fingerprint;
    double *m, *sqrt_h, *s, *us, *vt;
    size_t m_cap, h_cap, s_cap, us_cap, vt_cap; /* elements allocated */
} lowrank_work;

static void lowrank_work_free(lowrank_work *lw)
{
    free(lw->m), free(lw->sqrt_h), free(lw->s), free(lw->us), free(lw->vt);
    memset(lw, 0, sizeof *lw);
    lw->layer = -1;
}

static int grow(double **p, size_t *cap, size_t n)
{
    if (n <= *cap)
        return 1;
    double *q = raana_malloc_large(n * sizeof *q);
    if (!q)
        return 0;
    free(*p);
    *p = q, *cap = n;
    return 1;
}

/* Room in lw for a d_out x d_in matrix and its rank-r SVD. */
static raana_status lowrank_grow(lowrank_work *lw, size_t d_in, size_t d_out, int r,
                                 raana_error *err)
{
    if (!grow(&lw->m, &lw->m_cap, d_in * d_out) || !grow(&lw->sqrt_h, &lw->h_cap, d_in) ||
        !grow(&lw->s, &lw->s_cap, (size_t)r) || !grow(&lw->us, &lw->us_cap, (size_t)r * d_in) ||
        !grow(&lw->vt, &lw->vt_cap, (size_t)r * d_out))
        return raana_fail(err, RAANA_ERR_NOMEM, "out of memory for rank-%d factors", r);
    lw->rank = r;
    return RAANA_OK;
}

/* M and sqrt h of q's error, with room for a rank-r SVD. */
static raana_status lowrank_prepare(lowrank_work *lw, const float *w, const float *gram,
                                    const raana_config *cfg, const raana_qlayer *q, int r,
                                    raana_error *err)
{
    RAANA_CALL(lowrank_grow(lw, (size_t)q->d_in, (size_t)q->d_out, r, err));
    return raana_lowrank_target(w, q, gram, cfg->lowrank_damp, lw->m, lw->sqrt_h, err);
}

/* The PCA trick: w's top r singular directions (LAPACK on this rank) as
 * 16-bit factors, the codes for w minus their product (rounded factors,
 * so the codes take exactly what the factors leave), and the layer's
 * error with both. */
static raana_status pca_encode(const float *w, const raana_plan_layer *l, int r,
                               const raana_qlayer_params *p, lowrank_work *lw, raana_qlayer *q,
                               double *rel, raana_error *err)
{
    raana_status st = RAANA_OK;
    size_t d_in = (size_t)l->d_in, d_out = (size_t)l->d_out, n = d_in * d_out;
    raana_qlayer held = {.d_in = l->d_in, .d_out = l->d_out}; /* the factors alone */
    float *rest = raana_malloc_large(n * sizeof *rest);
    float *ab = malloc(((size_t)r * (d_in + d_out)) * sizeof *ab);
    if (!rest || !ab)
        RAANA_FAIL_GOTO(err, RAANA_ERR_NOMEM, "out of memory for the PCA trick");
    RAANA_CHECK(lowrank_grow(lw, d_in, d_out, r, err));
    for (size_t i = 0; i < n; i++)
        lw->m[i] = w[i];
    for (size_t i = 0; i < d_in; i++)
        lw->sqrt_h[i] = 1; /* unweighted */
    RAANA_CHECK(raana_svd_local(lw->m, l->d_in, l->d_out, r, lw->s, lw->us, lw->vt, err));
    RAANA_CHECK(raana_lowrank_set_factors(&held, r, lw->s, lw->us, lw->vt, lw->sqrt_h, err));
    raana_lowrank_factors_f32(&held, ab, ab + (size_t)r * d_out);
    memcpy(rest, w, n * sizeof *rest);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, l->d_out, l->d_in, r, -1.0f, ab, r,
                ab + (size_t)r * d_out, l->d_in, 1.0f, rest, l->d_in);
    RAANA_CHECK(raana_qlayer_quantize(rest, l->d_in, l->d_out, p, l->name, q, err));
    q->lowrank_rank = r, q->lowrank_a = held.lowrank_a, q->lowrank_b = held.lowrank_b;
    held.lowrank_a = held.lowrank_b = NULL;
    RAANA_CHECK(relative_error(q, w, rel, err));
cleanup:
    free(held.lowrank_a), free(held.lowrank_b);
    free(rest), free(ab);
    return st;
}

/* The factors from the SVD in lw, and the layer's error again. */
static raana_status lowrank_finish(const lowrank_work *lw, const float *w, raana_qlayer *q,
                                   double *rel, raana_error *err)
{
    RAANA_CALL(raana_lowrank_set_factors(q, lw->rank, lw->s, lw->us, lw->vt, lw->sqrt_h, err));
    return relative_error(q, w, rel, err);
}

/* Encodes w and measures the error; with low-rank compensation on one rank
 * the factors too. Saves the layer for a resume unless a team's SVD is
 * still to come (*pending). */
static raana_status encode_and_save(const float *w, const float *gram, const raana_config *cfg,
                                    const raana_plan_layer *l, const raana_qlayer_params *p,
                                    uint64_t fingerprint, const raana_resume *resume,
                                    lowrank_work *lw, int n_ranks, raana_qlayer *q, double *rel,
                                    int *pending, raana_error *err)
{
    int r = raana_plan_layer_lowrank(cfg, l);
    *pending = 0;
    if (cfg->pca_rank > 0 && r > 0) {
        RAANA_CALL(pca_encode(w, l, r, p, lw, q, rel, err));
        if (resume)
            RAANA_CALL(raana_resume_save_layer(resume, l->name, fingerprint, q, *rel, err));
        return RAANA_OK;
    }
    RAANA_CALL(raana_qlayer_quantize(w, l->d_in, l->d_out, p, l->name, q, err));
    if (r == 0) {
        RAANA_CALL(relative_error(q, w, rel, err));
    } else { /* the error is measured once the factors are in */
        RAANA_CALL(lowrank_prepare(lw, w, gram, cfg, q, r, err));
        if (raana_plan_lowrank_by_team(cfg, l, n_ranks)) {
            lw->fingerprint = fingerprint, *pending = 1;
            return RAANA_OK;
        }
        RAANA_CALL(raana_svd_local(lw->m, l->d_in, l->d_out, r, lw->s, lw->us, lw->vt, err));
        RAANA_CALL(lowrank_finish(lw, w, q, rel, err));
    }
    if (resume)
        RAANA_CALL(raana_resume_save_layer(resume, l->name, fingerprint, q, *rel, err));
    return RAANA_OK;
}

/* The quantizer's parameters for layer l at bits (gram: its LDLQ gram or NULL). */
static raana_qlayer_params layer_params(const raana_config *cfg, const raana_plan_layer *l,
                                        double bits, const float *gram)
{
    return (raana_qlayer_params){bits,
                                 cfg->tricks,
                                 cfg->norm_col_rate,
                                 raana_rng_layer_key(cfg->seed, l->name),
                                 cfg->encoder,
                                 raana_quantize_threads(cfg),
                                 cfg->ldlq ? gram : NULL,
                                 cfg->ldlq_damp,
                                 cfg->side_bits};
}

/* One layer: from the resume directory when it holds this exact work,
 * else encoded now and saved there (or, *pending, once its team SVD is
 * done). */
static raana_status quantize_layer(const float *w, const float *gram, const raana_config *cfg,
                                   const raana_plan_layer *l, double bits, uint64_t fingerprint,
                                   const raana_resume *resume, lowrank_work *lw, int n_ranks,
                                   raana_qlayer *q, double *rel, int *reused, int *pending,
                                   raana_error *err)
{
    *pending = 0;
    *reused = resume && raana_resume_load_layer(resume, l->name, fingerprint, q, rel);
    if (*reused) {
        q->side_bits = cfg->side_bits == 16 ? 16 : 32; /* part of the fingerprint */
        return RAANA_OK;
    }
    raana_qlayer_params p = layer_params(cfg, l, bits, gram);
    if (encode_and_save(w, gram, cfg, l, &p, fingerprint, resume, lw, n_ranks, q, rel, pending,
                        err) != RAANA_OK)
        return raana_error_prefix(err, "%s", l->name);
    return RAANA_OK;
}

enum {
    F_REL,
    F_COS,
    F_EFF,
    F_CODE,
    F_KEPT,
    F_MA,
    F_MB,
    F_HELD,
    F_PACKED,
    F_EXP_RESCALE,
    F_EXP_MU,
    F_EXP_ROW_SCALE,
    N_FIELDS
};

/* The exponent of a 16-bit side vector (half_scaled.h); 0 when absent. */
static double side_exponent(const raana_qlayer *q, const float *v, int n)
{
    return q->side_bits == 16 && v ? raana_half_scaled_exponent(v, (size_t)n) : 0;
}

static void summarize(const raana_qlayer *q, double rel, double *row)
{
    row[F_REL] = rel, row[F_COS] = q->mean_cosine, row[F_EFF] = raana_qlayer_effective_bits(q);
    row[F_CODE] = q->code_bits, row[F_KEPT] = q->n_kept, row[F_MA] = q->m_a, row[F_MB] = q->m_b;
    row[F_HELD] = q->n_held, row[F_PACKED] = (double)q->packed_bytes;
    row[F_EXP_RESCALE] = side_exponent(q, q->rescale, q->d_out);
    row[F_EXP_MU] = side_exponent(q, q->mu, q->d_in);
    row[F_EXP_ROW_SCALE] = side_exponent(q, q->row_scale, q->d_in);
}

static void unpack_summary(const double *row, raana_layer_summary *out)
{
    out->rel_error = row[F_REL], out->mean_cosine = row[F_COS], out->effective_bits = row[F_EFF];
    out->code_bits = (int)row[F_CODE], out->n_kept = (int)row[F_KEPT];
    out->m_a = (int)row[F_MA], out->m_b = (int)row[F_MB], out->n_held = (int)row[F_HELD];
    out->packed_bytes = (uint64_t)row[F_PACKED];
    out->rescale_exp = (int)row[F_EXP_RESCALE], out->mu_exp = (int)row[F_EXP_MU];
    out->row_scale_exp = (int)row[F_EXP_ROW_SCALE];
}

/* The rounds of the stage: in round r every rank encodes (or reuses) its
 * r-th layer of the schedule below, then all ranks agree on failure, a
 * preemption signal and the work done over all ranks (for the progress
 * line). Each rank takes its layers costliest first, so the k-th layers
 * of the ranks cost about the same and little time is lost waiting;
 * every result depends only on the layer, never on who encoded it. */
enum { R_FAILED, R_SIGNALLED, R_LAYERS, R_WEIGHTS, R_ENCODED, R_COUNT };

typedef struct {
    const raana_plan_layer *layer; /* rank 0's layer of the last round, or NULL */
    double bits, rel;
    int reused;
    int split_ranks; /* > 0: a split layer, encoded by that many ranks */
} round_report;

static void report_round(FILE *out, const round_report *r, const double *all, const raana_plan *p,
                         double elapsed)
{
    char detail[200] = "(layers of other ranks)";
    int n_quantized = 0;
    for (int i = 0; i < p->n_layers; i++)
        n_quantized += p->layers[i].quantize;
    if (r->layer)
        snprintf(detail, sizeof detail, "%-40s %5g bits  rel.err %.4f%s", r->layer->name, r->bits,
                 r->rel,
                 r->reused            ? "  [resumed]"
                 : r->split_ranks > 0 ? "  [split]"
                                      : "");
    double left = (double)p->quantized_params - all[R_WEIGHTS];
    double eta = all[R_ENCODED] > 0 ? elapsed * left / all[R_ENCODED] : (left > 0 ? -1 : 0);
    raana_log_progress(out, "quantize", detail, all[R_LAYERS], n_quantized, "layers, all ranks",
                       elapsed, eta);
}

/* Every rank, after an agreed preemption: the finished layers' renames
 * made durable, and one message. */
static raana_status preempted(const raana_resume *resume, const double *all, const raana_plan *p,
                              int size, raana_error *err)
{
    int n_quantized = 0;
    for (int i = 0; i < p->n_layers; i++)
        n_quantized += p->layers[i].quantize;
    if (resume) {
        char layers[sizeof resume->dir + 16];
        snprintf(layers, sizeof layers, "%s/layers", resume->dir);
        raana_sync_dir(layers);
        raana_sync_dir(resume->dir);
    }
    raana_status st = raana_fail(err, RAANA_ERR_PREEMPTED,
                                 "preempted: SIGUSR1 or SIGTERM reached %.0f of %d rank%s; %.0f of "
                                 "%d layers are finished and kept in %s; run the same command "
                                 "again to resume",
                                 all[R_SIGNALLED], size, size == 1 ? "" : "s", all[R_LAYERS],
                                 n_quantized, resume ? resume->dir : "(no resume directory)");
    err->agreed = 1; /* the same message on every rank */
    return st;
}

/* ---- who encodes which layer (balance.h) ------------------------------------- */

/* The layers spread over the ranks by predicted cost. Every rank computes
 * it from rank 0's costs (broadcast, so that a rounding difference in the
 * allocation could never make two ranks disagree and deadlock). A layer
 * whose quantizer does not hold its weights travels from the holder in the
 * round the quantizer encodes it (TAG_WEIGHTS). cost, load and by_blocks
 * are one allocation, owned through cost. */
typedef struct {
    int n_ranks, rounds;
    int *owner;        /* [n]: the rank holding the layer's weights (its block's owner, or
                          an expert team member), -1 if not quantized */
    int *table;        /* [n_ranks][rounds]: the layer rank k encodes in round r, or -1 */
    double *cost;      /* [n]: predicted seconds (raana_quantize_cost), -1 if not quantized,
                          0 if the resume directory has it */
    double *load;      /* [n_ranks]: predicted seconds of the balanced assignment */
    double *by_blocks; /* [n_ranks]: the same if every rank encoded its own blocks' layers */
    int *split;        /* [n]: encoded by every rank before the rounds (column_split.h) */
    int n_split;
    double split_share; /* predicted seconds of the split layers per rank */
} schedule;

/* Layer weights sent to the rank that encodes them: one message per layer,
 * from the rank holding them (expert_teams.h), in the round that rank encodes it (the only
 * point-to-point messages of the stage; calibration's tags, the window
 * numbers, are all finished by then). */
enum { TAG_WEIGHTS = 0x5157, TAG_GRAM = 0x5158 };

static void schedule_free(schedule *sc)
{
    free(sc->owner);
    free(sc->table);
    free(sc->split);
    free(sc->cost); /* with load and by_blocks */
    memset(sc, 0, sizeof *sc);
}

/* table from quantizer (no MPI). The order of a rank's layers: the costliest
 * first (ties: plan order), so that the k-th layers of the ranks cost about
 * the same and the rounds' agreements wait little. */
static raana_status fill_table(schedule *sc, const int *quantizer, int n, raana_error *err)
{
    raana_status st = RAANA_OK;
    int *count = calloc((size_t)sc->n_ranks, sizeof *count);
    raana_ranked *mine = malloc((size_t)(n > 0 ? n : 1) * sizeof *mine);
    if (!count || !mine)
        RAANA_FAIL_GOTO(err, RAANA_ERR_NOMEM, "out of memory for the quantize schedule");
    for (int i = 0; i < n; i++)
        if (quantizer[i] >= 0 && !sc->split[i] && ++count[quantizer[i]] > sc->rounds)
            sc->rounds = count[quantizer[i]];
    sc->table =
        malloc((size_t)sc->n_ranks * (size_t)(sc->rounds > 0 ? sc->rounds : 1) * sizeof *sc->table);
    if (!sc->table)
        RAANA_FAIL_GOTO(err, RAANA_ERR_NOMEM, "out of memory for the quantize schedule");
    for (int k = 0; k < sc->n_ranks; k++) {
        int m = 0;
        for (int i = 0; i < n; i++)
            if (quantizer[i] == k && !sc->split[i])
                mine[m++] = (raana_ranked){sc->cost[i], i};
        raana_ranked_sort_desc(mine, (size_t)m);
        for (int r = 0; r < sc->rounds; r++)
            sc->table[(size_t)k * sc->rounds + r] = r < m ? mine[r].index : -1;
    }
cleanup:
    free(count);
    free(mine);
    return st;
}

/* Whether layer l's weights or LDLQ gram exceed one MPI message (INT_MAX
 * floats): then it stays with its owner. */
static int too_large_to_move(const raana_config *cfg, const raana_plan_layer *l)
{
    uint64_t d_in = (uint64_t)l->d_in;
    return d_in * (uint64_t)l->d_out > INT_MAX ||
           (raana_plan_layer_has_gram(cfg, l) && d_in * d_in > INT_MAX);
}

/* Layers too large for one MPI message stay with their owner, and so do
 * layers the resume directory has (predicted at no cost: the owner reads
 * them back, and no weights travel); split layers (plan.h) are encoded by
 * every rank before the rounds and stay with their owner; every other
 * layer may move. */
static raana_status build_schedule(const raana_stage *s, const raana_config *cfg, int n_ranks,
                                   const int *resumed, schedule *sc, int *quantizer,
                                   raana_error *err)
{
    raana_status st = RAANA_OK;
    const raana_plan *plan = &s->plan;
    int n = plan->n_layers;
    int *pinned = malloc((size_t)(n > 0 ? n : 1) * sizeof *pinned);
    double *whole = malloc((size_t)(n > 0 ? n : 1) * sizeof *whole); /* costs for LPT */
    sc->owner = malloc((size_t)(n > 0 ? n : 1) * sizeof *sc->owner);
    sc->split = calloc((size_t)(n > 0 ? n : 1), sizeof *sc->split);
    if (!pinned || !whole || !sc->owner || !sc->split)
        RAANA_FAIL_GOTO(err, RAANA_ERR_NOMEM, "out of memory for the quantize schedule");
    sc->n_ranks = n_ranks;
    for (int i = 0; i < n; i++) {
        const raana_plan_layer *l = &plan->layers[i];
        sc->owner[i] = l->quantize ? raana_expert_teams_holder(&s->teams, plan, i) : -1;
        sc->split[i] = l->quantize && l->split && !resumed[i];
        pinned[i] = too_large_to_move(cfg, l) || resumed[i] ? sc->owner[i] : -1;
        whole[i] = sc->split[i] ? -1 : sc->cost[i];
        sc->n_split += sc->split[i];
        sc->split_share += sc->split[i] ? sc->cost[i] / n_ranks : 0;
        if (sc->owner[i] >= 0 && !sc->split[i])
            sc->by_blocks[sc->owner[i]] += sc->cost[i];
    }
    RAANA_CHECK(raana_balance_lpt(whole, pinned, n, n_ranks, quantizer, sc->load, err));
    for (int k = 0; k < n_ranks; k++)
        sc->load[k] += sc->split_share, sc->by_blocks[k] += sc->split_share;
    for (int i = 0; i < n; i++)
        quantizer[i] = sc->split[i] ? sc->owner[i] : quantizer[i];
    RAANA_CHECK(fill_table(sc, quantizer, n, err));
cleanup:
    free(pinned);
    free(whole);
    return st;
}

/* Rank 0: which layers the resume directory already has, with the
 * fingerprint of this job's work (a prediction: a layer whose file turns
 * out unreadable is encoded by its owner). */
static void find_resumed(const raana_stage *s, const raana_config *cfg,
                         const raana_allocation *alloc, const raana_fingerprints *fp,
                         const raana_resume *resume, int *resumed)
{
    for (int i = 0; i < s->plan.n_layers; i++) {
        const raana_plan_layer *l = &s->plan.layers[i];
        resumed[i] = 0;
        if (resume && l->quantize)
            resumed[i] = raana_resume_has_layer(
                resume, l->name,
                raana_fingerprint_layer(fp, &s->model, l->name, cfg, alloc->bits[i]));
    }
}

/* Collective: rank 0's predicted costs, then the same schedule everywhere. */
static raana_status plan_rounds(MPI_Comm comm, const raana_stage *s, const raana_config *cfg,
                                const raana_allocation *alloc, const raana_fingerprints *fp,
                                const raana_resume *resume, schedule *sc, int *quantizer,
                                raana_error *err)
{
    raana_status st = RAANA_OK;
    const raana_plan *plan = &s->plan;
    int n = plan->n_layers, size, rank;
    MPI_Comm_size(comm, &size);
    MPI_Comm_rank(comm, &rank);
    int *resumed = malloc((size_t)(n > 0 ? n : 1) * sizeof *resumed);
    sc->cost = calloc((size_t)n + 2 * (size_t)size, sizeof *sc->cost);
    RAANA_CHECK(raana_comm_agree(
        comm,
        sc->cost && resumed ? RAANA_OK
                            : raana_fail(err, RAANA_ERR_NOMEM, "out of memory for %d costs", n),
        err));
    sc->load = sc->cost + n;
    sc->by_blocks = sc->load + size;
    if (rank == 0)
        find_resumed(s, cfg, alloc, fp, resume, resumed);
    MPI_Bcast(resumed, n, MPI_INT, 0, comm);
    for (int i = 0; i < n; i++) {
        const raana_plan_layer *l = &plan->layers[i];
        sc->cost[i] = !l->quantize ? -1
                      : resumed[i]
                          ? 0
                          : raana_quantize_cost(l->d_in, l->d_out, alloc->bits[i], cfg->encoder) +
                                (cfg->ldlq && raana_plan_layer_has_gram(cfg, l)
                                     ? raana_ldlq_cost(l->d_in, l->d_out, alloc->bits[i])
                                     : 0) +
                                (raana_plan_layer_lowrank(cfg, l) > 0 &&
                                         !raana_plan_lowrank_by_team(cfg, l, size)
                                     ? raana_lowrank_cost(l->d_in, l->d_out)
                                     : 0);
    }
    MPI_Bcast(sc->cost, n, MPI_DOUBLE, 0, comm);
    RAANA_CHECK(
        raana_comm_agree(comm, build_schedule(s, cfg, size, resumed, sc, quantizer, err), err));
cleanup:
    free(resumed);
    return st;
}

/* Round `round`, rank `rank`: sends the layers of its blocks that others
 * encode now (requests into reqs, *n_reqs of them). */
static void send_weights(MPI_Comm comm, const raana_stage *s, const raana_config *cfg,
                         const schedule *sc, int round, int rank, MPI_Request *reqs, int *n_reqs)
{
    *n_reqs = 0;
    for (int k = 0; k < sc->n_ranks; k++) {
        int i = sc->table[(size_t)k * sc->rounds + round];
        if (k == rank || i < 0 || sc->owner[i] != rank)
            continue;
        const raana_plan_layer *l = &s->plan.layers[i];
        MPI_Isend(raana_stage_layer_weight(s, i), l->d_in * l->d_out, MPI_FLOAT, k, TAG_WEIGHTS,
                  comm, &reqs[(*n_reqs)++]);
        if (raana_plan_layer_has_gram(cfg, l)) /* the owner holds it: raana_stage_alloc_grams */
            MPI_Isend(raana_stage_layer_gram(s, i), l->d_in * l->d_in, MPI_FLOAT, k, TAG_GRAM, comm,
                      &reqs[(*n_reqs)++]);
    }
}

/* This rank's layer of the round: its own block's weights (and gram), or
 * received from the owner into buf (and gram_buf). *gram stays NULL
 * without LDLQ. */
static raana_status layer_weights(MPI_Comm comm, const raana_stage *s, const raana_config *cfg,
                                  const schedule *sc, int i, int rank, float *buf, float *gram_buf,
                                  const float **w, const float **gram, raana_error *err)
{
    const raana_plan_layer *l = &s->plan.layers[i];
    int with_gram = raana_plan_layer_has_gram(cfg, l);
    *gram = NULL;
    if (sc->owner[i] == rank) {
        *w = raana_stage_layer_weight(s, i);
        *gram = with_gram ? raana_stage_layer_gram(s, i) : NULL;
        if (!*w || (with_gram && !*gram))
            return RAANA_INTERNAL(err, "%s: rank %d should hold its weights and gram", l->name,
                                  rank);
        return RAANA_OK;
    }
    if (raana_recv_idle(buf, l->d_in * l->d_out, MPI_FLOAT, sc->owner[i], TAG_WEIGHTS, comm,
                        MPI_STATUS_IGNORE) != MPI_SUCCESS ||
        (with_gram && raana_recv_idle(gram_buf, l->d_in * l->d_in, MPI_FLOAT, sc->owner[i],
                                      TAG_GRAM, comm, MPI_STATUS_IGNORE) != MPI_SUCCESS))
        return raana_fail(err, RAANA_ERR_MPI, "%s: receiving the weights from rank %d failed",
                          l->name, sc->owner[i]);
    *w = buf;
    *gram = with_gram ? gram_buf : NULL;
    return RAANA_OK;
}

/* The receive buffers: the largest layer (and LDLQ gram) this rank
 * encodes but does not own (one at a time). */
static raana_status receive_buffer(const raana_plan *plan, const raana_config *cfg,
                                   const schedule *sc, int rank, float **buf, float **gram_buf,
                                   raana_error *err)
{
    size_t largest = 0, largest_gram = 0;
    *buf = *gram_buf = NULL;
    for (int r = 0; r < sc->rounds; r++) {
        int i = sc->table[(size_t)rank * sc->rounds + r];
        if (i >= 0 && sc->owner[i] != rank) {
            const raana_plan_layer *l = &plan->layers[i];
            size_t size = (size_t)l->d_in * (size_t)l->d_out, gram = (size_t)l->d_in * l->d_in;
            largest = size > largest ? size : largest;
            if (raana_plan_layer_has_gram(cfg, l) && gram > largest_gram)
                largest_gram = gram;
        }
    }
    if (largest)
        *buf = raana_malloc_large(largest * sizeof **buf);
    if (largest_gram)
        *gram_buf = raana_malloc_large(largest_gram * sizeof **gram_buf);
    if ((largest && !*buf) || (largest_gram && !*gram_buf))
        return raana_fail(err, RAANA_ERR_NOMEM,
                          "out of memory for a %zu-weight receive buffer (gram %zu)", largest,
                          largest_gram);
    return RAANA_OK;
}

/* Predicted seconds of the stage when every round waits for its costliest
 * layer: this schedule, or (by_blocks) every rank encoding its own blocks'
 * layers in plan order. -1 when out of memory. */
static double lockstep_seconds(const schedule *sc, int n, int by_blocks)
{
    double total = sc->split_share; /* the split layers, every rank at once */
    if (!by_blocks) {
        for (int r = 0; r < sc->rounds; r++) {
            double worst = 0;
            for (int k = 0; k < sc->n_ranks; k++) {
                int i = sc->table[(size_t)k * sc->rounds + r];
                worst = i >= 0 ? fmax(worst, sc->cost[i]) : worst;
            }
            total += worst;
        }
        return total;
    }
    int *next = calloc((size_t)sc->n_ranks, sizeof *next); /* per rank: where to look on */
    if (!next)
        return -1;
    for (int busy = 1; busy;) {
        double worst = 0;
        busy = 0;
        for (int k = 0; k < sc->n_ranks; k++) {
            while (next[k] < n && (sc->owner[next[k]] != k || sc->split[next[k]]))
                next[k]++;
            if (next[k] < n)
                worst = fmax(worst, sc->cost[next[k]++]), busy = 1;
        }
        total += worst;
    }
    free(next);
    return total;
}

/* Rank 0: each rank's time encoding and its share of the predicted cost,
 * balanced and as its own blocks alone would give it, then the spread. */
static void report_balance(FILE *out, const schedule *sc, int n, const double *busy,
                           const int *layers)
{
    double total = 0, max_load = 0, max_blocks = 0, max_busy = 0, sum_busy = 0;
    for (int k = 0; k < sc->n_ranks; k++) {
        total += sc->load[k], sum_busy += busy[k];
        max_load = fmax(max_load, sc->load[k]), max_blocks = fmax(max_blocks, sc->by_blocks[k]);
        max_busy = fmax(max_busy, busy[k]);
    }
    for (int k = 0; k < sc->n_ranks; k++)
        raana_log_line(out,
                       "quantize: rank %d encoded %d layers in %.2f s; predicted share %.1f%% "
                       "(its own blocks alone: %.1f%%)",
                       k, layers[k], busy[k], total > 0 ? 100 * sc->load[k] / total : 0,
                       total > 0 ? 100 * sc->by_blocks[k] / total : 0);
    double mean = total / sc->n_ranks, mean_busy = sum_busy / sc->n_ranks;
    raana_log_line(out,
                   "quantize: balance max/mean: predicted %.2f by cost (%.2f by blocks), "
                   "measured %.2f",
                   mean > 0 ? max_load / mean : 1, mean > 0 ? max_blocks / mean : 1,
                   mean_busy > 0 ? max_busy / mean_busy : 1);
    double by_cost = lockstep_seconds(sc, n, 0), by_blocks = lockstep_seconds(sc, n, 1);
    if (mean > 0 && by_blocks >= 0)
        raana_log_line(out,
                       "quantize: rounds in step (each waits for its costliest layer): predicted "
                       "stage time %.2f x the mean load by cost (%.2f by blocks)",
                       by_cost / mean, by_blocks / mean);
}

/* What one rank's rounds share. */
typedef struct {
    MPI_Comm comm;
    const raana_stage *s;
    const raana_config *cfg;
    const raana_allocation *alloc;
    const raana_fingerprints *fp;
    const raana_resume *resume;
    schedule sc;
    int rank;
    float *buf;        /* received weights, one layer at a time */
    float *gram_buf;   /* received LDLQ gram, the same */
    MPI_Request *reqs; /* [n_ranks]: this round's sends */
    double *mine;      /* [n][N_FIELDS]: summaries of this rank's layers */
    int counts[2];     /* reused, encoded */
    double work[R_COUNT];
    double busy; /* seconds receiving and encoding */
    int n_done;  /* layers this rank finished */
    round_report last_round;
    double t_start;         /* the stage's start, for the progress lines' ETA */
    lowrank_work lw;        /* this rank's compensation; lw.layer: its team SVD to come */
    const float *pending_w; /* that layer's weights (valid until the round's sends end) */
    int *flags;             /* [n_ranks]: which ranks have a team SVD this round */
} stage_run;

/* The end of layer i on this rank: its summary and the round's counts. */
static void layer_done(stage_run *r, int i, raana_quantized *q, double rel, int reused)
{
    const raana_plan_layer *l = &r->s->plan.layers[i];
    r->counts[!reused]++, r->n_done++;
    summarize(q->layers[i], rel, r->mine + (size_t)i * N_FIELDS);
    double weights = (double)l->d_in * l->d_out;
    r->work[R_LAYERS] += 1, r->work[R_WEIGHTS] += weights;
    r->work[R_ENCODED] += reused ? 0 : weights;
    r->last_round = (round_report){l, r->alloc->bits[i], rel, reused, 0};
}

/* Layer i on this rank: its weights (received if another rank owns it),
 * then from the resume directory or encoded; with a team SVD to come it
 * is finished by team_svds. */
static raana_status encode_one(stage_run *r, int i, raana_quantized *q, int size, raana_error *err)
{
    const raana_plan_layer *l = &r->s->plan.layers[i];
    const float *w = NULL, *gram = NULL;
    double rel = 0, t0 = MPI_Wtime();
    int reused = 0, pending = 0;
    RAANA_CALL(layer_weights(r->comm, r->s, r->cfg, &r->sc, i, r->rank, r->buf, r->gram_buf, &w,
                             &gram, err));
    uint64_t fpl = raana_fingerprint_layer(r->fp, &r->s->model, l->name, r->cfg, r->alloc->bits[i]);
    q->layers[i] = calloc(1, sizeof *q->layers[i]);
    if (!q->layers[i])
        return raana_fail(err, RAANA_ERR_NOMEM, "%s: out of memory", l->name);
    RAANA_CALL(quantize_layer(w, gram, r->cfg, l, r->alloc->bits[i], fpl, r->resume, &r->lw, size,
                              q->layers[i], &rel, &reused, &pending, err));
    r->busy += MPI_Wtime() - t0;
    if (pending) {
        r->lw.layer = i, r->pending_w = w;
        return RAANA_OK;
    }
    raana_fault_point("quantize", r->rank);
    layer_done(r, i, q, rel, reused);
    return RAANA_OK;
}

/* This rank's pending layer after the team's SVD: factors, error, save. */
static raana_status finish_pending(stage_run *r, raana_quantized *q, raana_error *err)
{
    int i = r->lw.layer;
    const raana_plan_layer *l = &r->s->plan.layers[i];
    double rel = 0;
    if (lowrank_finish(&r->lw, r->pending_w, q->layers[i], &rel, err) != RAANA_OK ||
        (r->resume && raana_resume_save_layer(r->resume, l->name, r->lw.fingerprint, q->layers[i],
                                              rel, err) != RAANA_OK))
        return raana_error_prefix(err, "%s", l->name);
    raana_fault_point("quantize", r->rank);
    layer_done(r, i, q, rel, 0);
    return RAANA_OK;
}

/* Collective, after every rank's layer of the round: each pending SVD in
 * rank order, by a team of all ranks with the layer's quantizer as root
 * (svd.h; the grid from lowrank_team_min_weights). st is this rank's
 * status so far; a rank that failed still takes part. */
static raana_status team_svds(stage_run *r, int round, raana_quantized *q, int size,
                              raana_status st, raana_error *err)
{
    int flag = st == RAANA_OK && r->lw.layer >= 0, *flags = r->flags;
    MPI_Allgather(&flag, 1, MPI_INT, flags, 1, MPI_INT, r->comm);
    for (int k = 0; k < size; k++) {
        if (!flags[k])
            continue;
        const raana_plan_layer *l =
            &r->s->plan.layers[r->sc.table[(size_t)k * r->sc.rounds + round]];
        MPI_Comm team;
        raana_error team_err = {0};
        MPI_Comm_split(r->comm, 0, (r->rank - k + size) % size, &team);
        raana_svd_grid g =
            raana_svd_choose_grid(l->d_in, l->d_out, size, r->cfg->lowrank_team_min_weights, 64);
        int mine = k == r->rank;
        raana_status svd = raana_svd_scalapack(
            team, g, mine ? r->lw.m : NULL, l->d_in, l->d_out, raana_plan_layer_lowrank(r->cfg, l),
            mine ? r->lw.s : NULL, mine ? r->lw.us : NULL, mine ? r->lw.vt : NULL, &team_err);
        MPI_Comm_free(&team);
        if (svd != RAANA_OK && st == RAANA_OK)
            st = svd, *err = team_err, raana_error_prefix(err, "%s", l->name);
        if (mine && st == RAANA_OK)
            st = finish_pending(r, q, err);
    }
    r->lw.layer = -1;
    return st;
}

/* Round `round` on this rank: the sends of its blocks' layers that others
 * encode now, its own layer, the team SVDs of the round, then the sends
 * completed (the weights stay in place meanwhile, so nothing is copied). */
static raana_status run_round(stage_run *r, int round, raana_quantized *q, int size,
                              raana_error *err)
{
    int n_reqs = 0;
    send_weights(r->comm, r->s, r->cfg, &r->sc, round, r->rank, r->reqs, &n_reqs);
    int i = r->sc.table[(size_t)r->rank * r->sc.rounds + round];
    r->last_round.layer = NULL;
    raana_status st = i >= 0 ? encode_one(r, i, q, size, err) : RAANA_OK;
    if (r->cfg->lowrank_rank > 0)
        st = team_svds(r, round, q, size, st, err);
    for (int k = 0; k < n_reqs; k++)
        raana_wait_idle(&r->reqs[k], MPI_STATUS_IGNORE);
    return st;
}

/* Collective, before each round or split layer: every rank's failure,
 * preemption signal and work so far summed into total; 1 when the stage
 * stops (a rank failed, or a signal: *st becomes the preemption). */
static int agree_step(stage_run *r, raana_status *st, double *total, int size, raana_error *err)
{
    r->work[R_FAILED] = *st != RAANA_OK;
    r->work[R_SIGNALLED] = raana_preempt_signal() != 0;
    MPI_Allreduce(r->work, total, R_COUNT, MPI_DOUBLE, MPI_SUM, r->comm);
    if (total[R_FAILED] > 0)
        return 1;
    if (total[R_SIGNALLED] > 0) {
        *st = preempted(r->resume, total, &r->s->plan, size, err);
        return 1;
    }
    return 0;
}

/* Collective: the rounds until done, failed or preempted. */
static raana_status run_rounds(stage_run *r, raana_quantized *q, FILE *progress, int size,
                               raana_error *err)
{
    raana_status st =
        receive_buffer(&r->s->plan, r->cfg, &r->sc, r->rank, &r->buf, &r->gram_buf, err);
    double total[R_COUNT];
    for (int round = 0;; round++) { /* the agreement that ends round - 1 comes first */
        if (agree_step(r, &st, total, size, err))
            break;
        if (round > 0 && progress)
            report_round(progress, &r->last_round, total, &r->s->plan, MPI_Wtime() - r->t_start);
        if (round == r->sc.rounds)
            break;
        st = run_round(r, round, q, size, err);
    }
    return raana_comm_agree(r->comm, st, err);
}

/* Split layer i, every rank a piece of its columns (column_split.h); the
 * layer then sits on its owner as if it had encoded it whole, saved for
 * a resume there. Every rank reports it (rank 0 prints it). */
static raana_status encode_split(stage_run *r, int i, raana_quantized *q, int size,
                                 raana_error *err)
{
    const raana_plan_layer *l = &r->s->plan.layers[i];
    int holder = r->sc.owner[i], mine = holder == r->rank;
    double rel = 0, t0 = MPI_Wtime();
    const float *w = mine ? raana_stage_layer_weight(r->s, i) : NULL;
    raana_qlayer_params p = layer_params(r->cfg, l, r->alloc->bits[i], NULL);
    raana_qlayer layer;
    RAANA_CALL(raana_column_split_encode(r->comm, holder, w, l, &p, &layer, &rel, err));
    r->busy += MPI_Wtime() - t0;
    MPI_Bcast(&rel, 1, MPI_DOUBLE, holder, r->comm); /* for rank 0's progress line */
    r->last_round = (round_report){l, r->alloc->bits[i], rel, 0, size};
    if (!mine)
        return RAANA_OK;
    if (!(q->layers[i] = malloc(sizeof *q->layers[i]))) { /* the next agreement fails */
        raana_qlayer_free(&layer);
        return raana_fail(err, RAANA_ERR_NOMEM, "%s: out of memory", l->name);
    }
    *q->layers[i] = layer;
    if (r->resume) {
        uint64_t fpl =
            raana_fingerprint_layer(r->fp, &r->s->model, l->name, r->cfg, r->alloc->bits[i]);
        if (raana_resume_save_layer(r->resume, l->name, fpl, q->layers[i], rel, err) != RAANA_OK)
            return raana_error_prefix(err, "%s", l->name);
    }
    raana_fault_point("quantize", r->rank);
    layer_done(r, i, q, rel, 0);
    r->last_round.split_ranks = size;
    return RAANA_OK;
}

/* Collective: the split layers in plan order, each by every rank, with the
 * rounds' agreement (failure, preemption, progress) before each one. */
static raana_status run_split_layers(stage_run *r, raana_quantized *q, FILE *progress, int size,
                                     raana_error *err)
{
    raana_status st = RAANA_OK;
    double total[R_COUNT];
    if (r->sc.n_split == 0)
        return RAANA_OK;
    for (int i = 0, done = 0;; i++) {
        while (i < q->n_layers && !r->sc.split[i])
            i++;
        if (agree_step(r, &st, total, size, err))
            break;
        if (done++ > 0 && progress)
            report_round(progress, &r->last_round, total, &r->s->plan, MPI_Wtime() - r->t_start);
        if (i >= q->n_layers)
            break;
        st = encode_split(r, i, q, size, err);
    }
    return raana_comm_agree(r->comm, st, err);
}

/* A layer AllocateBits kept in 16 bits is its checkpoint weight: no error,
 * cosine 1, 16 stored bits per weight (allocate.h, RAANA_BITS_KEEP). */
static void describe_kept_layers(const raana_plan *plan, raana_layer_summary *summary)
{
    for (int i = 0; i < plan->n_layers; i++)
        if (plan->layers[i].kept_16bit)
            summary[i].rel_error = 0, summary[i].mean_cosine = 1,
            summary[i].effective_bits = RAANA_BITS_KEEP;
}

/* Collective, after the rounds: every rank's summaries and counts on
 * every rank; rank 0 logs the balance. */
static raana_status gather_results(stage_run *r, raana_quantized *q, FILE *progress, int size,
                                   raana_error *err)
{
    raana_status st = RAANA_OK;
    int n = q->n_layers, totals[2];
    double *all = calloc((size_t)n * N_FIELDS + (size_t)size, sizeof *all);
    int *layers = calloc((size_t)size, sizeof *layers);
    st = all && layers ? RAANA_OK : raana_fail(err, RAANA_ERR_NOMEM, "out of memory");
    RAANA_CHECK(raana_comm_agree(r->comm, st, err));
    /* each layer's row comes from one rank; others add zeros */
    MPI_Allreduce(r->mine, all, n * N_FIELDS, MPI_DOUBLE, MPI_SUM, r->comm);
    MPI_Allreduce(r->counts, totals, 2, MPI_INT, MPI_SUM, r->comm);
    MPI_Gather(&r->busy, 1, MPI_DOUBLE, all + (size_t)n * N_FIELDS, 1, MPI_DOUBLE, 0, r->comm);
    MPI_Gather(&r->n_done, 1, MPI_INT, layers, 1, MPI_INT, 0, r->comm);
    q->reused = totals[0], q->encoded = totals[1];
    for (int i = 0; i < n; i++)
        unpack_summary(all + (size_t)i * N_FIELDS, &q->summary[i]);
    describe_kept_layers(&r->s->plan, q->summary);
    if (progress)
        report_balance(progress, &r->sc, n, all + (size_t)n * N_FIELDS, layers);
cleanup:
    free(all);
    free(layers);
    return st;
}

/* Rank 0's log line on the compensation: how many layers get factors and
 * who computes their SVDs. */
static void report_lowrank(FILE *out, const raana_plan *plan, const raana_config *cfg, int size)
{
    int layers = 0, team = 0;
    for (int i = 0; i < plan->n_layers; i++) {
        const raana_plan_layer *l = &plan->layers[i];
        if (l->quantize && raana_plan_layer_lowrank(cfg, l) > 0) {
            layers++;
            team += raana_plan_lowrank_by_team(cfg, l, size);
        }
    }
    if (cfg->pca_rank > 0)
        raana_log_line(out,
                       "quantize: the PCA trick holds out the top %d singular directions of %d "
                       "layers (LAPACK on the rank that quantizes each)",
                       cfg->pca_rank, layers);
    else
        raana_log_line(out,
                       "quantize: low-rank factors of rank %d on %d layers; %d SVDs by a team "
                       "of %d ranks (ScaLAPACK), %d on one rank (LAPACK)",
                       cfg->lowrank_rank, layers, team, size, layers - team);
}

raana_status raana_stage_quantize(MPI_Comm comm, const raana_stage *s, const raana_config *cfg,
                                  const raana_allocation *alloc, const raana_fingerprints *fp,
                                  const raana_resume *resume, raana_quantized *q, FILE *progress,
                                  raana_error *err)
{
    raana_status st = RAANA_OK;
    int n = s->plan.n_layers, size;
    stage_run r = {.comm = comm,
                   .s = s,
                   .cfg = cfg,
                   .alloc = alloc,
                   .fp = fp,
                   .resume = resume,
                   .t_start = MPI_Wtime()};
    r.lw.layer = -1;
    MPI_Comm_rank(comm, &r.rank);
    MPI_Comm_size(comm, &size);
    memset(q, 0, sizeof *q);
    q->n_layers = n;
    q->layers = calloc((size_t)n, sizeof *q->layers);
    q->summary = calloc((size_t)n, sizeof *q->summary);
    q->quantizer = calloc((size_t)n, sizeof *q->quantizer);
    r.mine = calloc((size_t)n * N_FIELDS, sizeof *r.mine);
    r.reqs = calloc(2 * (size_t)size, sizeof *r.reqs); /* weights and gram per rank */
    r.flags = calloc((size_t)size, sizeof *r.flags);
    st = q->layers && q->summary && q->quantizer && r.mine && r.reqs && r.flags
             ? RAANA_OK
             : raana_fail(err, RAANA_ERR_NOMEM, "out of memory");
    RAANA_CHECK(raana_comm_agree(comm, st, err));
    if (progress && raana_config_has_factors(cfg))
        report_lowrank(progress, &s->plan, cfg, size);
    RAANA_CHECK(plan_rounds(comm, s, cfg, alloc, fp, resume, &r.sc, q->quantizer, err));
    if (progress && r.sc.n_split > 0)
        raana_log_line(progress,
                       "quantize: %d layer%s split by output columns over %d rank%s, a piece "
                       "each (docs/SCALING.md)",
                       r.sc.n_split, r.sc.n_split == 1 ? "" : "s", size, size == 1 ? "" : "s");
    RAANA_CHECK(run_split_layers(&r, q, progress, size, err));
    RAANA_CHECK(run_rounds(&r, q, progress, size, err));
    RAANA_CHECK(gather_results(&r, q, progress, size, err));
cleanup:
    schedule_free(&r.sc);
    lowrank_work_free(&r.lw);
    free(r.flags);
    free(r.buf);
    free(r.gram_buf);
    free(r.reqs);
    free(r.mine);
    if (st != RAANA_OK)
        raana_quantized_free(q);
    return st;
}
