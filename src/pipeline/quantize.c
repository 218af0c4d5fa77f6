/* quantize.c — the quantize stage (see quantize.h). */
#include "raana/quantize.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "raana/comm.h"
#include "raana/fault.h"
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
    size_t n = (size_t)q->d_in * (size_t)q->d_out;
    float *what = malloc(n * sizeof *what);
    if (!what)
        return raana_fail(err, RAANA_ERR_NOMEM, "out of memory for a %dx%d layer", q->d_out,
                          q->d_in);
    raana_status st = raana_qlayer_dequantize(q, what, err);
    double diff = 0, ref = 0;
    for (size_t i = 0; st == RAANA_OK && i < n; i++) {
        double d = (double)what[i] - w[i];
        diff += d * d, ref += (double)w[i] * w[i];
    }
    free(what);
    *rel = ref > 0 ? sqrt(diff / ref) : sqrt(diff);
    return st;
}

/* One layer: from the resume directory when it holds this exact work,
 * else encoded now and saved there. */
static raana_status quantize_layer(const raana_stage *s, const raana_config *cfg,
                                   const raana_plan_layer *l, double bits, uint64_t fingerprint,
                                   const raana_resume *resume, raana_qlayer *q, double *rel,
                                   int *reused, raana_error *err)
{
    const float *w = s->net.blocks[l->block - s->net.first_block].w[l->kind];
    *reused = resume && raana_resume_load_layer(resume, l->name, fingerprint, q, rel);
    if (*reused)
        return RAANA_OK;
    raana_qlayer_params p = {bits,
                             cfg->tricks,
                             cfg->norm_col_rate,
                             raana_rng_layer_key(cfg->seed, l->name),
                             cfg->encoder,
                             raana_quantize_threads(cfg)};
    raana_status st = raana_qlayer_quantize(w, l->d_in, l->d_out, &p, l->name, q, err);
    if (st == RAANA_OK)
        st = relative_error(q, w, rel, err);
    if (st == RAANA_OK && resume)
        st = raana_resume_save_layer(resume, l->name, fingerprint, q, *rel, err);
    if (st != RAANA_OK)
        raana_error_prefix(err, "%s", l->name);
    return st;
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

static void report_progress(FILE *out, const raana_plan_layer *l, double bits, double rel,
                            int reused, double done, double total, double t0)
{
    double elapsed = MPI_Wtime() - t0, eta = done > 0 ? elapsed * (total - done) / done : 0;
    fprintf(out, "quantize: %-40s %5g bits  rel.err %.4f%s  (rank 0: %3.0f%%, ETA %.0f s)\n",
            l->name, bits, rel, reused ? "  [resumed]" : "", 100.0 * done / total, eta);
    fflush(out);
}

raana_status raana_stage_quantize(MPI_Comm comm, const raana_stage *s, const raana_config *cfg,
                                  const raana_allocation *alloc, const raana_fingerprints *fp,
                                  const raana_resume *resume, raana_quantized *q, FILE *progress,
                                  raana_error *err)
{
    int n = s->plan.n_layers, first = s->net.first_block, last = first + s->net.n_blocks, rank;
    MPI_Comm_rank(comm, &rank);
    memset(q, 0, sizeof *q);
    q->n_layers = n;
    q->layers = calloc((size_t)n, sizeof *q->layers);
    q->summary = calloc((size_t)n, sizeof *q->summary);
    double *mine = calloc((size_t)n * N_FIELDS, sizeof *mine);
    double *all = calloc((size_t)n * N_FIELDS, sizeof *all);
    raana_status st = q->layers && q->summary && mine && all
                          ? RAANA_OK
                          : raana_fail(err, RAANA_ERR_NOMEM, "out of memory");
    double total = 0, done = 0, t0 = MPI_Wtime();
    for (int i = 0; i < n; i++)
        if (s->plan.layers[i].quantize && s->plan.layers[i].block >= first &&
            s->plan.layers[i].block < last)
            total += (double)s->plan.layers[i].d_in * s->plan.layers[i].d_out;
    int counts[2] = {0, 0}; /* reused, encoded */
    for (int i = 0; i < n && st == RAANA_OK; i++) {
        const raana_plan_layer *l = &s->plan.layers[i];
        if (!l->quantize || l->block < first || l->block >= last)
            continue;
        double rel = 0;
        int reused = 0;
        uint64_t fpl = raana_fingerprint_layer(fp, &s->model, l->name, cfg, alloc->bits[i]);
        q->layers[i] = calloc(1, sizeof *q->layers[i]);
        st = q->layers[i] ? quantize_layer(s, cfg, l, alloc->bits[i], fpl, resume, q->layers[i],
                                           &rel, &reused, err)
                          : raana_fail(err, RAANA_ERR_NOMEM, "out of memory");
        if (st != RAANA_OK)
            break;
        raana_fault_point("quantize", rank);
        counts[!reused]++;
        summarize(q->layers[i], rel, mine + (size_t)i * N_FIELDS);
        done += (double)l->d_in * l->d_out;
        if (progress)
            report_progress(progress, l, alloc->bits[i], rel, reused, done, total, t0);
    }
    st = raana_comm_agree(comm, st, err);
    if (st == RAANA_OK) { /* each layer's row comes from one rank; others add zeros */
        int totals[2];
        MPI_Allreduce(mine, all, n * N_FIELDS, MPI_DOUBLE, MPI_SUM, comm);
        MPI_Allreduce(counts, totals, 2, MPI_INT, MPI_SUM, comm);
        q->reused = totals[0], q->encoded = totals[1];
        for (int i = 0; i < n; i++)
            unpack_summary(all + (size_t)i * N_FIELDS, &q->summary[i]);
    }
    free(mine);
    free(all);
    if (st != RAANA_OK)
        raana_quantized_free(q);
    return st;
}
