/* quantize.c — the quantize stage (see quantize.h). */
#include "raana/quantize.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "raana/comm.h"
#include "raana/fault.h"
#include "raana/joblog.h"
#include "raana/preempt.h"
#include "raana/rng.h"

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
    memset(q, 0, sizeof *q);
}

/* ||What - W||_F / ||W||_F. */
static raana_status relative_error(const raana_qlayer *q, const float *w, double *rel,
                                   raana_error *err)
{
    raana_status st = RAANA_OK;
    size_t n = (size_t)q->d_in * (size_t)q->d_out;
    double diff = 0, ref = 0;
    float *what = malloc(n * sizeof *what);
    if (!what)
        RAANA_FAIL_GOTO(err, RAANA_ERR_NOMEM, "out of memory for a %dx%d layer", q->d_out, q->d_in);
    RAANA_CHECK(raana_qlayer_dequantize(q, what, err));
    for (size_t i = 0; i < n; i++) {
        double d = (double)what[i] - w[i];
        diff += d * d, ref += (double)w[i] * w[i];
    }
    *rel = ref > 0 ? sqrt(diff / ref) : sqrt(diff);
cleanup:
    free(what);
    return st;
}

/* Encodes w, measures the error and saves the layer for a resume. */
static raana_status encode_and_save(const float *w, const raana_plan_layer *l,
                                    const raana_qlayer_params *p, uint64_t fingerprint,
                                    const raana_resume *resume, raana_qlayer *q, double *rel,
                                    raana_error *err)
{
    RAANA_CALL(raana_qlayer_quantize(w, l->d_in, l->d_out, p, l->name, q, err));
    RAANA_CALL(relative_error(q, w, rel, err));
    if (resume)
        RAANA_CALL(raana_resume_save_layer(resume, l->name, fingerprint, q, *rel, err));
    return RAANA_OK;
}

/* One layer: from the resume directory when it holds this exact work,
 * else encoded now and saved there. */
static raana_status quantize_layer(const raana_stage *s, const raana_config *cfg,
                                   const raana_plan_layer *l, double bits, uint64_t fingerprint,
                                   const raana_resume *resume, raana_qlayer *q, double *rel,
                                   int *reused, raana_error *err)
{
    const float *w = raana_llama_linear_weight(&s->net, l->block, l->slot);
    *reused = resume && raana_resume_load_layer(resume, l->name, fingerprint, q, rel);
    if (*reused)
        return RAANA_OK;
    raana_qlayer_params p = {bits,
                             cfg->tricks,
                             cfg->norm_col_rate,
                             raana_rng_layer_key(cfg->seed, l->name),
                             cfg->encoder,
                             raana_quantize_threads(cfg)};
    if (encode_and_save(w, l, &p, fingerprint, resume, q, rel, err) != RAANA_OK)
        return raana_error_prefix(err, "%s", l->name);
    return RAANA_OK;
}

enum { F_REL, F_COS, F_EFF, F_CODE, F_KEPT, F_MA, F_MB, F_HELD, F_PACKED, N_FIELDS };

static void summarize(const raana_qlayer *q, double rel, double *row)
{
    row[F_REL] = rel, row[F_COS] = q->mean_cosine, row[F_EFF] = raana_qlayer_effective_bits(q);
    row[F_CODE] = q->code_bits, row[F_KEPT] = q->n_kept, row[F_MA] = q->m_a, row[F_MB] = q->m_b;
    row[F_HELD] = q->n_held, row[F_PACKED] = (double)q->packed_bytes;
}

static void unpack_summary(const double *row, raana_layer_summary *out)
{
    out->rel_error = row[F_REL], out->mean_cosine = row[F_COS], out->effective_bits = row[F_EFF];
    out->code_bits = (int)row[F_CODE], out->n_kept = (int)row[F_KEPT];
    out->m_a = (int)row[F_MA], out->m_b = (int)row[F_MB], out->n_held = (int)row[F_HELD];
    out->packed_bytes = (uint64_t)row[F_PACKED];
}

/* The rounds of the stage: in round r every rank encodes (or reuses) its
 * r-th layer, then all ranks agree on failure, a preemption signal and the
 * work done over all ranks (for the progress line). The k-th layers of
 * the ranks are of the same kind, so little time is lost waiting; the
 * order of the work on each rank, and so every result, is unchanged. */
enum { R_FAILED, R_SIGNALLED, R_LAYERS, R_WEIGHTS, R_ENCODED, R_COUNT };

typedef struct {
    const raana_plan_layer *layer; /* rank 0's layer of the last round, or NULL */
    double bits, rel;
    int reused;
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
                 r->rel, r->reused ? "  [resumed]" : "");
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

raana_status raana_stage_quantize(MPI_Comm comm, const raana_stage *s, const raana_config *cfg,
                                  const raana_allocation *alloc, const raana_fingerprints *fp,
                                  const raana_resume *resume, raana_quantized *q, FILE *progress,
                                  raana_error *err)
{
    int n = s->plan.n_layers, first = s->net.first_block, last = first + s->net.n_blocks, rank,
        size;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    memset(q, 0, sizeof *q);
    q->n_layers = n;
    q->layers = calloc((size_t)n, sizeof *q->layers);
    q->summary = calloc((size_t)n, sizeof *q->summary);
    double *mine = calloc((size_t)n * N_FIELDS, sizeof *mine);
    double *all = calloc((size_t)n * N_FIELDS, sizeof *all);
    int *order = calloc((size_t)n + 1, sizeof *order), n_mine = 0, rounds = 0;
    raana_status st = q->layers && q->summary && mine && all && order
                          ? RAANA_OK
                          : raana_fail(err, RAANA_ERR_NOMEM, "out of memory");
    for (int i = 0; order && i < n; i++)
        if (s->plan.layers[i].quantize && s->plan.layers[i].block >= first &&
            s->plan.layers[i].block < last)
            order[n_mine++] = i;
    MPI_Allreduce(&n_mine, &rounds, 1, MPI_INT, MPI_MAX, comm);
    int counts[2] = {0, 0}; /* reused, encoded */
    double work[R_COUNT] = {0}, total[R_COUNT], t0 = MPI_Wtime();
    round_report last_round = {NULL, 0, 0, 0};
    for (int round = 0;; round++) { /* the agreement that ends round - 1 comes first */
        work[R_FAILED] = st != RAANA_OK;
        work[R_SIGNALLED] = raana_preempt_signal() != 0;
        MPI_Allreduce(work, total, R_COUNT, MPI_DOUBLE, MPI_SUM, comm);
        if (total[R_FAILED] > 0)
            break;
        if (total[R_SIGNALLED] > 0) {
            st = preempted(resume, total, &s->plan, size, err);
            break;
        }
        if (round > 0 && progress)
            report_round(progress, &last_round, total, &s->plan, MPI_Wtime() - t0);
        if (round == rounds)
            break;
        last_round.layer = NULL;
        if (round >= n_mine)
            continue;
        int i = order[round];
        const raana_plan_layer *l = &s->plan.layers[i];
        double rel = 0;
        int reused = 0;
        uint64_t fpl = raana_fingerprint_layer(fp, &s->model, l->name, cfg, alloc->bits[i]);
        q->layers[i] = calloc(1, sizeof *q->layers[i]);
        st = q->layers[i] ? quantize_layer(s, cfg, l, alloc->bits[i], fpl, resume, q->layers[i],
                                           &rel, &reused, err)
                          : raana_fail(err, RAANA_ERR_NOMEM, "out of memory");
        if (st != RAANA_OK)
            continue;
        raana_fault_point("quantize", rank);
        counts[!reused]++;
        summarize(q->layers[i], rel, mine + (size_t)i * N_FIELDS);
        double weights = (double)l->d_in * l->d_out;
        work[R_LAYERS] += 1, work[R_WEIGHTS] += weights, work[R_ENCODED] += reused ? 0 : weights;
        last_round = (round_report){l, alloc->bits[i], rel, reused};
    }
    RAANA_CHECK(raana_comm_agree(comm, st, err));
    /* each layer's row comes from one rank; others add zeros */
    int totals[2];
    MPI_Allreduce(mine, all, n * N_FIELDS, MPI_DOUBLE, MPI_SUM, comm);
    MPI_Allreduce(counts, totals, 2, MPI_INT, MPI_SUM, comm);
    q->reused = totals[0], q->encoded = totals[1];
    for (int i = 0; i < n; i++)
        unpack_summary(all + (size_t)i * N_FIELDS, &q->summary[i]);
cleanup:
    free(order);
    free(mine);
    free(all);
    if (st != RAANA_OK)
        raana_quantized_free(q);
    return st;
}
