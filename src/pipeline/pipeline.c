/* pipeline.c — the stages in order, with resume and the final report (see
 * pipeline.h). */
#include "raana/pipeline.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "raana/allocation.h"
#include "raana/comm.h"
#include "raana/container_size.h"
#include "raana/container_verify.h"
#include "raana/container_write.h"
#include "raana/fault.h"
#include "raana/file.h"
#include "raana/fingerprint.h"
#include "raana/joblog.h"
#include "raana/layer_norms.h"
#include "raana/memory_fit.h"
#include "raana/outpaths.h"
#include "raana/quantize.h"
#include "raana/resume.h"
#include "raana/statistics.h"

/* ---- load ---------------------------------------------------------------------- */

static raana_status tokenize_local(const raana_config *cfg, raana_stage *s, raana_error *err)
{
    RAANA_CALL(raana_tokenizer_create(&s->tok, cfg->model_path, err));
    return raana_calib_windows(cfg, s->tok, s->plan.seq_len, &s->windows, err);
}

static raana_status load_local(const raana_config *cfg, raana_stage *s, int rank, raana_error *err)
{
    /* the whole peak, less the process it already is; when it does not
     * fit, the message says how many ranks would */
    RAANA_CALL(raana_stage_check_fit(s, cfg, rank, err));
    RAANA_CALL(raana_stage_load(s, rank, err));
    /* AllocateBits' w_fro, while the weights are fresh */
    return raana_stage_norms(s, cfg, err);
}

/* Every rank tokenizes: cheap, and the first and last stages both need the
 * tokens. */
raana_status raana_job_load(MPI_Comm comm, const raana_config *cfg, raana_stage *s, int rank,
                            raana_error *err)
{
    RAANA_CALL(raana_comm_agree(comm, tokenize_local(cfg, s, err), err));
    raana_stage_fit_windows(comm, s, cfg, rank); /* auto M: before the memory check */
    RAANA_CALL(raana_stage_plan_experts(comm, s, cfg, err));
    return raana_comm_agree(comm, load_local(cfg, s, rank, err), err);
}

/* ---- output checks ------------------------------------------------------------- */

/* Rank 0: the output's directory exists and can be written. */
static raana_status check_output_dir(const raana_config *cfg, raana_error *err)
{
    char dir[RAANA_PATH_MAX];
    struct stat sb;
    raana_path_dirname(dir, sizeof dir, cfg->output_path);
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return raana_fail(err, RAANA_ERR_IO, "%s: output directory does not exist", dir);
    if (access(dir, W_OK | X_OK) != 0)
        return raana_fail(err, RAANA_ERR_IO, "%s: output directory is not writable: %s", dir,
                          strerror(errno));
    return RAANA_OK;
}

/* Rank 0: checks the directory, takes the lock, removes what an
 * interrupted removal left. */
static raana_status lock_output_local(const raana_config *cfg, raana_output_lock *lock,
                                      FILE *progress, raana_error *err)
{
    RAANA_CALL(check_output_dir(cfg, err));
    RAANA_CALL(raana_output_lock_take(lock, cfg->output_path, progress, err));
    raana_fault_point("locked", 0);
    raana_resume_remove_leftover(cfg->output_path, progress);
    return RAANA_OK;
}

raana_status raana_job_lock_output(MPI_Comm comm, const raana_config *cfg, raana_output_lock *lock,
                                   FILE *progress, raana_error *err)
{
    int rank;
    MPI_Comm_rank(comm, &rank);
    lock->fd = -1;
    raana_status st = rank == 0 ? lock_output_local(cfg, lock, progress, err) : RAANA_OK;
    return raana_comm_agree(comm, st, err);
}

void raana_job_unlock_output(raana_output_lock *lock)
{
    raana_output_lock_release(lock);
}

/* Rank 0: the output may be (over)written, and its .partial and .resume
 * neighbours are not links. */
static raana_status check_output_local(const raana_config *cfg, raana_error *err)
{
    struct stat sb;
    int exists = lstat(cfg->output_path, &sb) == 0; /* a link counts, even a dangling one */
    if (exists && !cfg->overwrite)
        return raana_fail(err, RAANA_ERR_CONFIG,
                          "%s: output exists; remove it or set [output] overwrite = true "
                          "(--set output.overwrite=true)",
                          cfg->output_path);
    if (exists && S_ISDIR(sb.st_mode))
        return raana_fail(err, RAANA_ERR_IO, "%s: output is a directory", cfg->output_path);
    RAANA_CALL(check_output_dir(cfg, err));
    return raana_output_paths_check(cfg->output_path, err);
}

raana_status raana_job_check_output(MPI_Comm comm, const raana_config *cfg, raana_error *err)
{
    int rank;
    MPI_Comm_rank(comm, &rank);
    raana_status st = rank == 0 ? check_output_local(cfg, err) : RAANA_OK;
    return raana_comm_agree(comm, st, err);
}

/* ---- calibrate (or resume it) -------------------------------------------------- */

typedef struct {
    raana_fingerprints fp;
    uint64_t calib_fp;
    raana_layer_stats *stats;
    double loss;
    int calibration_resumed;
    raana_allocation alloc;
    raana_quantized quantized;
    raana_resume resume;
    double seconds[RAANA_STAGE_COUNT];
} job_run;

/* The forward/backward passes; rank 0 saves the result for a resume. */
static raana_status calibrate_and_save(MPI_Comm comm, raana_stage *s, job_run *j, int rank,
                                       FILE *progress, raana_error *err)
{
    RAANA_CALL(raana_pipeline_calibrate(comm, &s->net, &s->plan, &s->windows, s->team, s->grams,
                                        j->stats, &j->loss, progress, err));
    if (rank == 0)
        RAANA_CALL(raana_resume_save_calibration(&j->resume, j->calib_fp, j->stats,
                                                 s->plan.n_layers, j->loss, err));
    return RAANA_OK;
}

/* [calibration] statistics, else calibration.bin of an interrupted run,
 * else the forward/backward passes. */
static raana_status calibrate_or_resume(MPI_Comm comm, const raana_config *cfg, raana_stage *s,
                                        job_run *j, int rank, FILE *progress, raana_error *err)
{
    int n = s->plan.n_layers;
    j->calib_fp = raana_fingerprint_calibration(&j->fp, &s->windows, s->plan.chunk_tokens);
    j->fp.calibration = j->calib_fp;
    if (cfg->statistics[0]) {
        RAANA_CALL(raana_statistics_reuse(comm, cfg, s, j->fp.checkpoint, j->calib_fp, j->stats,
                                          &j->loss, err));
        if (progress)
            raana_log_line(progress, "calibrate: reused from %s", cfg->statistics);
        return RAANA_OK;
    }
    if (rank == 0)
        j->calibration_resumed =
            raana_resume_load_calibration(&j->resume, j->calib_fp, j->stats, n, &j->loss);
    if (j->calibration_resumed && raana_config_wants_grams(cfg)) {
        /* calibrating again gives the same statistics, bit for bit, and the grams */
        j->calibration_resumed = 0;
        if (progress)
            raana_log_line(progress,
                           "calibrate: %s/calibration.bin not reused: [quantize] ldlq and "
                           "lowrank_rank need the layer inputs' grams, which it does not hold",
                           j->resume.dir);
    }
    MPI_Bcast(&j->calibration_resumed, 1, MPI_INT, 0, comm);
    if (j->calibration_resumed) {
        MPI_Bcast(j->stats, n * (int)(sizeof *j->stats / sizeof(double)), MPI_DOUBLE, 0, comm);
        MPI_Bcast(&j->loss, 1, MPI_DOUBLE, 0, comm);
        if (progress)
            raana_log_line(progress, "calibrate: resumed from %s/calibration.bin", j->resume.dir);
        return RAANA_OK;
    }
    return raana_comm_agree(comm, calibrate_and_save(comm, s, j, rank, progress, err), err);
}

/* ---- report -------------------------------------------------------------------- */

static char *report_table(const raana_stage *s, const job_run *j)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return NULL;
    const raana_layer_summary *q = j->quantized.summary;
    const raana_table_column cols[] = {{"bits", 5, 6, 'g', j->alloc.bits, sizeof *j->alloc.bits},
                                       {"coef", 12, 4, 'e', j->alloc.coef, sizeof *j->alloc.coef},
                                       {"rel.error", 10, 6, 'f', &q[0].rel_error, sizeof *q},
                                       {"eff.bits", 9, 4, 'f', &q[0].effective_bits, sizeof *q}};
    raana_layer_table_print(f, "", &s->plan, cols, (int)(sizeof cols / sizeof cols[0]));
    fclose(f);
    return text;
}

static void print_summary(FILE *out, const raana_config *cfg, const raana_stage *s,
                          const job_run *j, const raana_container_content *c)
{
    const raana_alloc_result *r = &j->alloc.result;
    fprintf(out, "%s", c->table ? c->table : "");
    if (cfg->statistics[0])
        fprintf(out, "calibration: reused from %s (%d windows of %d tokens, loss %.6f)\n",
                cfg->statistics, s->windows.n, s->windows.len, j->loss);
    else
        fprintf(out, "calibration: %d windows of %d tokens, loss %.6f%s\n", s->windows.n,
                s->windows.len, j->loss, j->calibration_resumed ? " (resumed)" : "");
    fprintf(out, "allocation: target %g bits, achieved %.4f (%s", cfg->avg_bits,
            r->achieved_avg_bits, r->method == RAANA_ALLOC_EXACT_DP ? "exact DP" : "Lagrangian");
    if (r->method != RAANA_ALLOC_EXACT_DP)
        fprintf(out, ", optimality gap <= %.2e", (r->cost - r->lower_bound) / r->cost);
    if (cfg->error_model == RAANA_ERROR_MODEL_CALIBRATED)
        fprintf(out, ", calibrated error model");
    fprintf(out, "), modelled error %.6g\n", r->cost);
    fprintf(out,
            "effective bits: %.4f per quantized weight, %.4f per model parameter "
            "(everything stored)\n",
            c->bits.quantized, c->bits.model);
    int kept = 0;
    for (int i = 0; i < s->plan.n_layers; i++)
        kept += s->plan.layers[i].kept_16bit;
    fprintf(out, "layers: %d encoded, %d resumed", j->quantized.encoded, j->quantized.reused);
    if (kept)
        fprintf(out, ", %d kept in 16 bits (the checkpoint's weights)", kept);
    fputc('\n', out);
    fprintf(out, "time:");
    for (int k = 0; k < RAANA_STAGE_COUNT; k++)
        fprintf(out, " %s %.2f s%s", raana_stage_names[k], c->seconds[k],
                k + 1 < RAANA_STAGE_COUNT ? "," : "\n");
    fprintf(out, "wrote %s\n", cfg->output_path);
    fflush(out);
}

/* ---- write, verify, rename ----------------------------------------------------- */

/* Rank 0: OUTPUT.partial with the size bound reserved. */
static raana_status create_partial(raana_partial *partial, const raana_config *cfg, uint64_t bound,
                                   FILE *progress, raana_error *err)
{
    RAANA_CALL(raana_partial_open(partial, cfg->output_path, bound, err));
    if (progress)
        raana_log_line(progress, "write: %s (%llu bytes reserved)", partial->path,
                       (unsigned long long)bound);
    return RAANA_OK;
}

static raana_status write_verify_publish(MPI_Comm comm, const raana_config *cfg,
                                         raana_container_content *c, raana_partial *partial,
                                         int rank, raana_error *err)
{
    RAANA_CALL(raana_container_write(comm, partial->path, c, err));
    RAANA_CALL(raana_container_verify(comm, partial->path, c, err));
    return rank == 0 ? raana_partial_publish(partial, cfg->output_path, err) : RAANA_OK;
}

/* The container goes to OUTPUT.partial, created by rank 0 with its size
 * bound reserved (outpaths.h): a full disk, a quota or a file-size limit is
 * found before writing, since parallel HDF5 cannot recover from a write
 * that fails half-way (h5file.h). Verified, it is renamed to OUTPUT. */
static raana_status write_container(MPI_Comm comm, const raana_config *cfg,
                                    raana_container_content *c, int rank, raana_error *err)
{
    raana_status st = RAANA_OK;
    raana_partial partial = {.fd = -1};
    uint64_t bound = raana_container_size_bound(c);
    snprintf(partial.path, sizeof partial.path, "%s.partial", cfg->output_path);
    RAANA_CHECK(raana_comm_agree(comm, raana_file_size_limit_check(partial.path, bound, err), err));
    RAANA_CHECK(raana_comm_agree(
        comm, rank == 0 ? create_partial(&partial, cfg, bound, c->progress, err) : RAANA_OK, err));
    RAANA_CHECK(
        raana_comm_agree(comm, write_verify_publish(comm, cfg, c, &partial, rank, err), err));
cleanup:
    raana_partial_discard(&partial); /* never leave a half-written file looking like output */
    return st;
}

/* ---- the job ------------------------------------------------------------------- */

static raana_status run_stages(MPI_Comm comm, const raana_config *cfg, raana_stage *s,
                               const raana_job_options *opt, job_run *j, int rank, raana_error *err)
{
    FILE *progress = rank == 0 ? opt->progress : NULL;
    double t = MPI_Wtime();
    RAANA_CALL(raana_job_load(comm, cfg, s, rank, err));
    if (raana_config_wants_grams(cfg))
        RAANA_CALL(raana_comm_agree(comm, raana_stage_alloc_grams(s, err), err));
    RAANA_CALL(raana_fingerprint_checkpoint(comm, s, rank, &j->fp, err));
    j->seconds[RAANA_STAGE_LOAD] = MPI_Wtime() - t, t = MPI_Wtime();
    RAANA_CALL(calibrate_or_resume(comm, cfg, s, j, rank, progress, err));
    j->seconds[RAANA_STAGE_CALIBRATE] = MPI_Wtime() - t, t = MPI_Wtime();
    RAANA_CALL(raana_stage_allocate(comm, s, cfg, j->stats, &j->alloc, err));
    j->seconds[RAANA_STAGE_ALLOCATE] = MPI_Wtime() - t, t = MPI_Wtime();
    RAANA_CALL(raana_stage_quantize(comm, s, cfg, &j->alloc, &j->fp, &j->resume, &j->quantized,
                                    progress, err));
    j->seconds[RAANA_STAGE_QUANTIZE] = MPI_Wtime() - t;
    return RAANA_OK;
}

/* NULL when out of memory. */
static job_run *job_run_create(int n_layers)
{
    job_run *j = calloc(1, sizeof *j);
    if (j)
        j->stats = calloc((size_t)n_layers, sizeof *j->stats);
    if (j && !j->stats) {
        free(j);
        return NULL;
    }
    return j;
}

static void job_run_free(job_run *j)
{
    if (!j)
        return;
    raana_resume_close(&j->resume);
    raana_quantized_free(&j->quantized);
    raana_allocation_free(&j->alloc);
    raana_fingerprints_free(&j->fp);
    free(j->stats);
    free(j);
}

/* Rank 0 creates the resume directory; then the others open it. */
static raana_status open_resume(MPI_Comm comm, const raana_config *cfg, const raana_plan *plan,
                                raana_resume *r, int rank, raana_error *err)
{
    RAANA_CALL(raana_comm_agree(
        comm, rank == 0 ? raana_resume_open(r, cfg->output_path, plan, err) : RAANA_OK, err));
    return raana_comm_agree(
        comm, rank != 0 ? raana_resume_attach(r, cfg->output_path, err) : RAANA_OK, err);
}

static void describe_content(raana_container_content *c, const raana_config *cfg, raana_stage *s,
                             const raana_job_options *opt, job_run *j, int rank)
{
    memset(c, 0, sizeof *c);
    c->cfg = cfg, c->stage = s, c->fingerprints = &j->fp, c->stats = j->stats;
    c->loss = j->loss, c->calibration_fingerprint = j->calib_fp;
    c->alloc = &j->alloc, c->quantized = &j->quantized;
    c->command_line = opt->command_line;
    c->progress = rank == 0 ? opt->progress : NULL;
    c->resumed_calibration = j->calibration_resumed;
    memcpy(c->seconds, j->seconds, sizeof c->seconds);
    c->seconds[RAANA_STAGE_PLAN] = opt->plan_seconds;
    raana_container_count_bits(c);
}

raana_status raana_job_quantize(MPI_Comm comm, const raana_config *cfg, raana_stage *s,
                                const raana_job_options *opt, raana_error *err)
{
    raana_status st = RAANA_OK;
    raana_container_content c;
    int rank;
    memset(&c, 0, sizeof c);
    MPI_Comm_rank(comm, &rank);
    job_run *j = job_run_create(s->plan.n_layers);
    RAANA_CHECK(raana_comm_agree(
        comm, j ? RAANA_OK : raana_fail(err, RAANA_ERR_NOMEM, "out of memory"), err));
    RAANA_CHECK(open_resume(comm, cfg, &s->plan, &j->resume, rank, err));
    RAANA_CHECK(run_stages(comm, cfg, s, opt, j, rank, err));
    describe_content(&c, cfg, s, opt, j, rank);
    c.table = rank == 0 ? report_table(s, j) : NULL;
    RAANA_CHECK(write_container(comm, cfg, &c, rank, err));
    if (rank == 0) {
        raana_resume_remove(&j->resume, opt->progress);
        print_summary(opt->report, cfg, s, j, &c);
    }
cleanup:
    /* after every rank agreed: no one writes there any more */
    if (st != RAANA_OK && j && rank == 0)
        raana_resume_discard_if_empty(&j->resume);
    free((char *)c.table);
    job_run_free(j);
    return st;
}
