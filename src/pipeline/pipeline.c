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
#include "raana/container.h"
#include "raana/fault.h"
#include "raana/file.h"
#include "raana/fingerprint.h"
#include "raana/layer_norms.h"
#include "raana/memory_estimate.h"
#include "raana/outpaths.h"
#include "raana/quantize.h"
#include "raana/resume.h"
#include "raana/statistics.h"

/* ---- load ---------------------------------------------------------------------- */

/* The calibration text: the zero-shot sentence repeated enough times, or
 * the configured file. */
static raana_status calibration_text(const raana_config *c, int seq_len, char **text, size_t *len,
                                     raana_error *err)
{
    if (c->calib_source == RAANA_CALIB_TEXT) {
        raana_status st = raana_read_file(c->text_file, text, len, err);
        return st == RAANA_OK ? st : raana_error_restatus(err, RAANA_ERR_INPUT);
    }
    size_t one = strlen(raana_zeroshot_sentence), reps = (size_t)c->n_samples * seq_len / 8 + 1;
    *text = malloc(one * reps + 1);
    if (!*text)
        return raana_fail(err, RAANA_ERR_NOMEM, "out of memory for the calibration text");
    for (size_t r = 0; r < reps; r++)
        memcpy(*text + r * one, raana_zeroshot_sentence, one);
    (*text)[one * reps] = '\0';
    *len = one * reps;
    return RAANA_OK;
}

/* Every rank tokenizes: cheap, and the first and last stages both need the
 * tokens. */
raana_status raana_job_load(MPI_Comm comm, const raana_config *cfg, raana_stage *s, int rank,
                            raana_error *err)
{
    char *text = NULL;
    size_t len;
    raana_status st = raana_tokenizer_load(&s->tok, cfg->model_path, err);
    if (st == RAANA_OK)
        st = calibration_text(cfg, s->plan.seq_len, &text, &len, err);
    if (st == RAANA_OK) {
        st = raana_windows_calib(s->tok, text, len, s->plan.seq_len, cfg->n_samples, &s->windows,
                                 err);
        if (st != RAANA_OK)
            raana_error_prefix(err, "%s",
                               cfg->calib_source == RAANA_CALIB_TEXT ? cfg->text_file
                                                                     : "zero-shot calibration text");
    }
    free(text);
    if (st == RAANA_OK) /* the whole peak, less the process it already is */
        st = raana_stage_check_memory(
            rank, s->plan.ranks[rank].peak_bytes - RAANA_PROCESS_BASE_BYTES, err);
    if (st == RAANA_OK)
        st = raana_stage_load(s, rank, err);
    if (st == RAANA_OK) /* AllocateBits' w_fro, while the weights are fresh */
        st = raana_stage_norms(s, cfg, err);
    return raana_comm_agree(comm, st, err);
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

raana_status raana_job_lock_output(MPI_Comm comm, const raana_config *cfg, raana_output_lock *lock,
                                   FILE *progress, raana_error *err)
{
    int rank;
    MPI_Comm_rank(comm, &rank);
    lock->fd = -1;
    raana_status st = rank == 0 ? check_output_dir(cfg, err) : RAANA_OK;
    if (st == RAANA_OK && rank == 0)
        st = raana_output_lock_take(lock, cfg->output_path, progress, err);
    if (st == RAANA_OK && rank == 0) {
        raana_fault_point("locked", rank);
        raana_resume_remove_leftover(cfg->output_path, progress);
    }
    return raana_comm_agree(comm, st, err);
}

void raana_job_unlock_output(raana_output_lock *lock)
{
    raana_output_lock_release(lock);
}

raana_status raana_job_check_output(MPI_Comm comm, const raana_config *cfg, raana_error *err)
{
    int rank;
    MPI_Comm_rank(comm, &rank);
    raana_status st = RAANA_OK;
    if (rank == 0) {
        struct stat sb;
        int exists = lstat(cfg->output_path, &sb) == 0; /* a link counts, even a dangling one */
        if (exists && !cfg->overwrite)
            st = raana_fail(err, RAANA_ERR_CONFIG,
                            "%s: output exists; remove it or set [output] overwrite = true "
                            "(--set output.overwrite=true)",
                            cfg->output_path);
        else if (exists && S_ISDIR(sb.st_mode))
            st = raana_fail(err, RAANA_ERR_IO, "%s: output is a directory", cfg->output_path);
        else
            st = check_output_dir(cfg, err);
        if (st == RAANA_OK)
            st = raana_output_paths_check(cfg->output_path, err);
    }
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

/* [calibration] statistics, else calibration.bin of an interrupted run,
 * else the forward/backward passes. */
static raana_status calibrate_or_resume(MPI_Comm comm, const raana_config *cfg, raana_stage *s,
                                        job_run *j, int rank, FILE *progress, raana_error *err)
{
    int n = s->plan.n_layers;
    j->calib_fp = raana_fingerprint_calibration(&j->fp, &s->windows);
    if (cfg->statistics[0]) {
        raana_status st = raana_statistics_reuse(comm, cfg, s, j->fp.checkpoint, j->calib_fp,
                                                 j->stats, &j->loss, err);
        if (st == RAANA_OK && progress)
            fprintf(progress, "calibrate: reused from %s\n", cfg->statistics);
        return st;
    }
    if (rank == 0)
        j->calibration_resumed =
            raana_resume_load_calibration(&j->resume, j->calib_fp, j->stats, n, &j->loss);
    MPI_Bcast(&j->calibration_resumed, 1, MPI_INT, 0, comm);
    if (j->calibration_resumed) {
        MPI_Bcast(j->stats, n * (int)(sizeof *j->stats / sizeof(double)), MPI_DOUBLE, 0, comm);
        MPI_Bcast(&j->loss, 1, MPI_DOUBLE, 0, comm);
        if (progress)
            fprintf(progress, "calibrate: resumed from %s/calibration.bin\n", j->resume.dir);
        return RAANA_OK;
    }
    raana_status st =
        raana_pipeline_calibrate(comm, &s->net, &s->plan, &s->windows, j->stats, &j->loss,
                                 progress, err);
    if (st == RAANA_OK && rank == 0)
        st = raana_resume_save_calibration(&j->resume, j->calib_fp, j->stats, n, j->loss, err);
    return raana_comm_agree(comm, st, err);
}

/* ---- report -------------------------------------------------------------------- */

static char *report_table(const raana_stage *s, const job_run *j)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return NULL;
    fprintf(f, "%-40s %13s %5s %12s %10s %9s\n", "layer", "shape", "bits", "coef", "rel.error",
            "eff.bits");
    for (int i = 0; i < s->plan.n_layers; i++) {
        const raana_plan_layer *l = &s->plan.layers[i];
        const raana_layer_summary *q = &j->quantized.summary[i];
        char shape[32];
        snprintf(shape, sizeof shape, "%dx%d", l->d_out, l->d_in);
        if (!l->quantize)
            fprintf(f, "%-40s %13s %5s %12s %10s %9s\n", l->name, shape, "-", "-", "-", "-");
        else
            fprintf(f, "%-40s %13s %5g %12.4e %10.6f %9.4f\n", l->name, shape, j->alloc.bits[i],
                    j->alloc.coef[i], q->rel_error, q->effective_bits);
    }
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
    fprintf(out, "), modelled error %.6g\n", r->cost);
    fprintf(out, "effective bits: %.4f per quantized weight, %.4f per model parameter "
                 "(everything stored)\n",
            c->bits.quantized, c->bits.model);
    fprintf(out, "layers: %d encoded, %d resumed\n", j->quantized.encoded, j->quantized.reused);
    fprintf(out, "time:");
    for (int k = 0; k < RAANA_STAGE_COUNT; k++)
        fprintf(out, " %s %.2f s%s", raana_stage_names[k], c->seconds[k],
                k + 1 < RAANA_STAGE_COUNT ? "," : "\n");
    fprintf(out, "wrote %s\n", cfg->output_path);
    fflush(out);
}

/* ---- write, verify, rename ----------------------------------------------------- */

/* The container goes to OUTPUT.partial, created by rank 0 with its size
 * bound reserved (outpaths.h): a full disk, a quota or a file-size limit is
 * found before writing, since parallel HDF5 cannot recover from a write
 * that fails half-way (h5file.h). Verified, it is renamed to OUTPUT. */
static raana_status write_container(MPI_Comm comm, const raana_config *cfg,
                                    raana_container_content *c, int rank, raana_error *err)
{
    raana_partial partial = {.fd = -1};
    uint64_t bound = raana_container_size_bound(c);
    snprintf(partial.path, sizeof partial.path, "%s.partial", cfg->output_path);
    raana_status st = raana_file_size_limit_check(partial.path, bound, err);
    st = raana_comm_agree(comm, st, err);
    if (st == RAANA_OK && rank == 0) {
        st = raana_partial_create(&partial, cfg->output_path, bound, err);
        if (st == RAANA_OK && c->progress)
            fprintf(c->progress, "write: %s (%llu bytes reserved)\n", partial.path,
                    (unsigned long long)bound);
    }
    st = raana_comm_agree(comm, st, err);
    if (st == RAANA_OK)
        st = raana_container_write(comm, partial.path, c, err);
    if (st == RAANA_OK)
        st = raana_container_verify(comm, partial.path, c, err);
    if (st == RAANA_OK && rank == 0)
        st = raana_partial_publish(&partial, cfg->output_path, err);
    st = raana_comm_agree(comm, st, err);
    raana_partial_discard(&partial); /* never leave a half-written file looking like output */
    return st;
}

/* ---- the job ------------------------------------------------------------------- */

static raana_status run_stages(MPI_Comm comm, const raana_config *cfg, raana_stage *s,
                               const raana_job_options *opt, job_run *j, int rank,
                               raana_error *err)
{
    FILE *progress = rank == 0 ? opt->progress : NULL;
    double t = MPI_Wtime();
    raana_status st = raana_job_load(comm, cfg, s, rank, err);
    if (st == RAANA_OK)
        st = raana_fingerprint_checkpoint(comm, s, rank, &j->fp, err);
    j->seconds[RAANA_STAGE_LOAD] = MPI_Wtime() - t, t = MPI_Wtime();
    if (st == RAANA_OK)
        st = calibrate_or_resume(comm, cfg, s, j, rank, progress, err);
    j->seconds[RAANA_STAGE_CALIBRATE] = MPI_Wtime() - t, t = MPI_Wtime();
    if (st == RAANA_OK)
        st = raana_stage_allocate(comm, s, cfg, j->stats, &j->alloc, err);
    j->seconds[RAANA_STAGE_ALLOCATE] = MPI_Wtime() - t, t = MPI_Wtime();
    if (st == RAANA_OK)
        st = raana_stage_quantize(comm, s, cfg, &j->alloc, &j->fp, &j->resume, &j->quantized,
                                  progress, err);
    j->seconds[RAANA_STAGE_QUANTIZE] = MPI_Wtime() - t;
    return st;
}

raana_status raana_job_quantize(MPI_Comm comm, const raana_config *cfg, raana_stage *s,
                                const raana_job_options *opt, raana_error *err)
{
    int rank;
    MPI_Comm_rank(comm, &rank);
    job_run *j = calloc(1, sizeof *j);
    raana_status st = j ? RAANA_OK : raana_fail(err, RAANA_ERR_NOMEM, "out of memory");
    if (j)
        j->stats = calloc((size_t)s->plan.n_layers, sizeof *j->stats);
    if (st == RAANA_OK && !j->stats)
        st = raana_fail(err, RAANA_ERR_NOMEM, "out of memory");
    if (st == RAANA_OK && rank == 0) /* rank 0 creates it; then the others open it */
        st = raana_resume_open(&j->resume, cfg->output_path, &s->plan, err);
    st = raana_comm_agree(comm, st, err);
    if (st == RAANA_OK && rank != 0)
        st = raana_resume_attach(&j->resume, cfg->output_path, err);
    st = raana_comm_agree(comm, st, err);
    if (st == RAANA_OK)
        st = run_stages(comm, cfg, s, opt, j, rank, err);
    raana_container_content c;
    memset(&c, 0, sizeof c);
    if (st == RAANA_OK) {
        c.cfg = cfg, c.stage = s, c.fingerprints = &j->fp, c.stats = j->stats;
        c.loss = j->loss, c.calibration_fingerprint = j->calib_fp;
        c.alloc = &j->alloc, c.quantized = &j->quantized;
        c.command_line = opt->command_line;
        c.progress = rank == 0 ? opt->progress : NULL;
        c.resumed_calibration = j->calibration_resumed;
        memcpy(c.seconds, j->seconds, sizeof c.seconds);
        c.seconds[RAANA_STAGE_PLAN] = opt->plan_seconds;
        raana_container_count_bits(&c);
        c.table = rank == 0 ? report_table(s, j) : NULL;
        st = write_container(comm, cfg, &c, rank, err);
    }
    if (j && st == RAANA_OK && rank == 0)
        raana_resume_remove(&j->resume, opt->progress);
    else if (j && rank == 0) /* after every rank agreed: no one writes there any more */
        raana_resume_discard_if_empty(&j->resume);
    if (st == RAANA_OK && rank == 0)
        print_summary(opt->report, cfg, s, j, &c);
    free((char *)c.table);
    if (j) {
        raana_resume_close(&j->resume);
        raana_quantized_free(&j->quantized);
        raana_allocation_free(&j->alloc);
        raana_fingerprints_free(&j->fp);
        free(j->stats);
        free(j);
    }
    return st;
}
