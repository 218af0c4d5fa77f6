/* raana_mpi.c — main() of raana-mpi: command line, MPI start-up, and the
 * stages in order. Every rank runs this; rank 0 talks to the user, and any
 * rank's failure reaches rank 0 through raana_comm_agree and becomes one
 * line on stderr and the exit code (README "Exit codes"). */
#include <mpi.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "raana/allocation.h"
#include "raana/blas_info.h"
#include "raana/calibrate.h"
#include "raana/comm.h"
#include "raana/config.h"
#include "raana/cost_model.h"
#include "raana/error.h"
#include "raana/file.h"
#include "raana/fingerprint.h"
#include "raana/h5file.h"
#include "raana/joblog.h"
#include "raana/memory.h"
#include "raana/memory_fit.h"
#include "raana/memory_report.h"
#include "raana/model.h"
#include "raana/outpaths.h"
#include "raana/pipeline.h"
#include "raana/plan.h"
#include "raana/preempt.h"
#include "raana/quantize.h"
#include "raana/resume.h"
#include "raana/statistics.h"

#include "cli.h"

#define MAX_OVERRIDES 64

typedef struct {
    const char *config_path;
    const char *overrides[MAX_OVERRIDES];
    int n_overrides;
    int dry_run, print_config, calibrate_only, allocate_only;
    int done;                /* --help or --version answered */
    char command_line[2048]; /* stored in the container's provenance */
} cli_args;

enum { OPT_DRY_RUN, OPT_SET, OPT_PRINT_CONFIG, OPT_CALIBRATE_ONLY, OPT_ALLOCATE_ONLY };

static raana_status on_option(void *ctx, int option, const char *value, raana_error *err)
{
    cli_args *a = ctx;
    switch (option) {
    case OPT_DRY_RUN: a->dry_run = 1; break;
    case OPT_PRINT_CONFIG: a->print_config = 1; break;
    case OPT_CALIBRATE_ONLY: a->calibrate_only = 1; break;
    case OPT_ALLOCATE_ONLY: a->allocate_only = 1; break;
    case OPT_SET:
        if (a->n_overrides == MAX_OVERRIDES)
            return raana_fail(err, RAANA_ERR_USAGE, "more than %d --set options", MAX_OVERRIDES);
        a->overrides[a->n_overrides++] = value;
        break;
    default: return RAANA_INTERNAL(err, "option %d not handled", option);
    }
    return RAANA_OK;
}

/* The command line as typed, for the container's provenance (before
 * getopt_long permutes argv). */
static void record_command_line(int argc, char **argv, cli_args *a)
{
    for (int i = 0, used = 0; i < argc && used < (int)sizeof a->command_line; i++)
        used += snprintf(a->command_line + used, sizeof a->command_line - (size_t)used, "%s%s",
                         i ? " " : "", argv[i]);
}

/* The one operand, CONFIG.ini. */
static raana_status take_config(void *ctx, char **operand, int n_operands, raana_error *err)
{
    (void)n_operands, (void)err;
    ((cli_args *)ctx)->config_path = operand[0];
    return RAANA_OK;
}

static const raana_cli_spec cli = {
    .tool = "raana-mpi",
    .operands = "CONFIG.ini",
    .description =
        "Quantize a Hugging Face LLaMA-family checkpoint with RaanA (RaBitQ-H codes,\n"
        "AllocateBits mixed precision) as an MPI job; see config/raana.ini for every key.\n"
        "\n"
        "  srun --mpi=pmix raana-mpi CONFIG.ini     on a Slurm cluster\n"
        "  mpirun -n P raana-mpi CONFIG.ini         with Open MPI\n"
        "  raana-mpi CONFIG.ini                     one process\n",
    .options =
        {
            [OPT_DRY_RUN] = {"dry-run", 0, NULL,
                             "print the plan (layers, rank split, memory) and exit;\n"
                             "reads config.json and tensor headers, no weights"},
            [OPT_SET] = {"set", 0, "SECTION.KEY=VAL",
                         "override a config key (repeatable), e.g.\n--set quantize.avg_bits=2.5"},
            [OPT_PRINT_CONFIG] = {"print-config", 0, NULL,
                                  "print the effective configuration and exit"},
            [OPT_CALIBRATE_ONLY] = {"calibrate-only", 0, NULL,
                                    "run calibration and write the per-layer statistics to\n"
                                    "OUTPUT.calibration.json (docs/CALIBRATION.md); later\n"
                                    "jobs reuse them: --set calibration.statistics=FILE"},
            [OPT_ALLOCATE_ONLY] = {"allocate-only", 0, NULL,
                                   "calibration, then AllocateBits: prints the allocation\n"
                                   "and writes OUTPUT.allocation.json"},
        },
    .epilog =
        "Exit codes: 0 ok, 2 usage, 3 config.ini, 4 checkpoint input, 5 file I/O,\n"
        "            6 out of memory, 7 MPI/launch, 8 unsupported, 9 NaN/Inf, 70 internal,\n"
        "            75 preempted by SIGUSR1/SIGTERM (run the same command again to resume)\n",
    .on_option = on_option,
    .finish = take_config};

static raana_status parse_args(int argc, char **argv, cli_args *a)
{
    memset(a, 0, sizeof *a);
    record_command_line(argc, argv, a);
    return raana_cli_parse(&cli, argc, argv, a, &a->done);
}

static raana_status load_config(const cli_args *a, raana_config *cfg, raana_error *err)
{
    RAANA_CALL(raana_config_load(cfg, a->config_path, err));
    for (int i = 0; i < a->n_overrides; i++)
        RAANA_CALL(raana_config_set(cfg, a->overrides[i], err));
    return raana_config_validate(cfg, err);
}

typedef struct {
    raana_config cfg;
    raana_stage stage;
} job_state;

/* Stage "plan": config, checkpoint headers, the plan. Agreed collectively. */
static raana_status plan_local(const cli_args *a, job_state *job, int size, raana_error *err)
{
    RAANA_CALL(load_config(a, &job->cfg, err));
    if (a->print_config)
        return RAANA_OK;
    return raana_stage_open(&job->stage, job->cfg.model_path, &job->cfg, size, err);
}

static raana_status stage_plan(const cli_args *a, job_state *job, int size, raana_error *err)
{
    return raana_comm_agree(MPI_COMM_WORLD, plan_local(a, job, size, err), err);
}

static void print_dry_run(const job_state *job)
{
    const raana_config *c = &job->cfg;
    char tricks[64];
    raana_tricks_format(c->tricks, tricks, sizeof tricks);
    printf("raana-mpi %s: dry run (plan only; no weights are read)\n", RAANA_VERSION);
    printf("config: %s\n", c->source);
    const raana_model *m = &job->stage.model;
    printf("checkpoint: %s (%d file%s)\n", m->tensor_source, m->n_files,
           m->n_files == 1 ? "" : "s");
    printf("quantize: avg_bits %g over candidates", c->avg_bits);
    for (int i = 0; i < c->n_bits; i++)
        printf("%s%g", i ? ", " : " ", c->bits[i]);
    printf("; tricks %s; encoder %s; seed %llu\n", tricks, raana_encoder_name(c->encoder),
           (unsigned long long)c->seed);
    printf("output: %s (zstd level %d)\n", c->output_path, c->zstd_level);
    raana_plan_print(stdout, &job->stage.plan, &job->stage.model.config);
    raana_plan_print_idle(stdout, &job->stage.plan, &job->stage.model.config, c);
    raana_expert_teams_print(stdout, &job->stage.teams, &job->stage.plan, &job->stage.model.config);
    raana_cost cost;
    raana_error err;
    raana_blas_info blas;
    raana_blas_info_read(&blas);
    raana_cost_threads threads = {raana_quantize_threads(c), blas.threads};
    if (raana_cost_predict(&job->stage.plan, &job->stage.model.config, c, &threads, &cost, &err) ==
        RAANA_OK)
        raana_cost_print(stdout, &cost, c);
    else
        printf("predicted time: not available (%s)\n", err.msg);
    raana_cost_free(&cost);
    fflush(stdout);
}

/* Stages load and calibrate (or reuse [calibration] statistics): stats,
 * the loss and the fingerprints on every rank. */
static raana_status calibrate(job_state *job, int rank, raana_statistics_output *o,
                              raana_layer_stats *stats, raana_fingerprints *fp, raana_error *err)
{
    const raana_config *cfg = &job->cfg;
    raana_stage *s = &job->stage;
    RAANA_CALL(raana_job_load(MPI_COMM_WORLD, cfg, s, rank, err));
    RAANA_CALL(raana_fingerprint_checkpoint(MPI_COMM_WORLD, s, rank, fp, err));
    o->checkpoint_fp = fp->checkpoint;
    o->calibration_fp = raana_fingerprint_calibration(fp, &s->windows, s->plan.chunk_tokens);
    if (cfg->statistics[0])
        return raana_statistics_reuse(MPI_COMM_WORLD, cfg, s, o->checkpoint_fp, o->calibration_fp,
                                      stats, &o->loss, err);
    return raana_pipeline_calibrate(MPI_COMM_WORLD, &s->net, &s->plan, &s->windows, s->team, NULL,
                                    stats, &o->loss, rank == 0 ? stderr : NULL, err);
}

/* --calibrate-only, and with `allocate` also the reduce + allocate stage
 * (--allocate-only): the statistics (and the allocation) as JSON. */
static raana_status calibrate_and_report(job_state *job, int rank, int allocate, raana_error *err)
{
    raana_layer_stats *stats = calloc((size_t)job->stage.plan.n_layers, sizeof *stats);
    raana_allocation alloc;
    raana_fingerprints fp;
    memset(&alloc, 0, sizeof alloc);
    memset(&fp, 0, sizeof fp);
    raana_statistics_output o = {
        &job->cfg, &job->stage.plan, &job->stage.windows, 0, 0, stats, 0, allocate ? &alloc : NULL};
    raana_status st = RAANA_OK;
    char path[RAANA_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s.%s.json", job->cfg.output_path,
             allocate ? "allocation" : "calibration");
    RAANA_CHECK(raana_comm_agree(
        MPI_COMM_WORLD, stats ? RAANA_OK : raana_fail(err, RAANA_ERR_NOMEM, "out of memory"), err));
    RAANA_CHECK(calibrate(job, rank, &o, stats, &fp, err));
    if (allocate)
        RAANA_CHECK(
            raana_stage_allocate(MPI_COMM_WORLD, &job->stage, &job->cfg, stats, &alloc, err));
    RAANA_CHECK(raana_comm_agree(
        MPI_COMM_WORLD, rank == 0 ? raana_statistics_write_json(path, &o, err) : RAANA_OK, err));
    if (rank == 0) {
        if (job->cfg.statistics[0])
            printf("calibration: reused from %s (%d windows of %d tokens, loss %.6f)\n",
                   job->cfg.statistics, job->stage.windows.n, job->stage.windows.len, o.loss);
        else
            printf("calibration: %d windows of %d tokens, loss %.6f\n", job->stage.windows.n,
                   job->stage.windows.len, o.loss);
        if (allocate)
            raana_allocation_print(stdout, &job->stage.plan, &job->cfg, stats, &alloc);
        printf("wrote %s\n", path);
    }
cleanup:
    raana_allocation_free(&alloc);
    raana_fingerprints_free(&fp);
    free(stats);
    return st;
}

/* The job proper: take the output's lock, check the output, quantize. */
static raana_status quantize_locked(const cli_args *a, job_state *job, double t_start,
                                    raana_error *err)
{
    raana_status st = RAANA_OK;
    raana_output_lock lock;
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    RAANA_CHECK(
        raana_job_lock_output(MPI_COMM_WORLD, &job->cfg, &lock, rank == 0 ? stderr : NULL, err));
    RAANA_CHECK(raana_job_check_output(MPI_COMM_WORLD, &job->cfg, err));
    raana_job_options opt = {a->command_line, stdout, stderr, MPI_Wtime() - t_start};
    RAANA_CHECK(raana_job_quantize(MPI_COMM_WORLD, &job->cfg, &job->stage, &opt, err));
cleanup:
    raana_job_unlock_output(&lock);
    return st;
}

/* What the command line asked for, once the plan stands. */
static raana_status run_mode(const cli_args *a, job_state *job, int rank, double t_start,
                             raana_error *err)
{
    if (a->print_config) {
        if (rank == 0)
            raana_config_write(stdout, &job->cfg);
        return RAANA_OK;
    }
    if (a->dry_run) { /* the plan, then why the job could not run it (expert teams) */
        raana_status st = raana_stage_plan_experts(MPI_COMM_WORLD, &job->stage, &job->cfg, err);
        if (rank == 0)
            print_dry_run(job);
        if (st != RAANA_OK) /* agreed: every rank returns here */
            return st;
        return raana_plan_print_fit(MPI_COMM_WORLD, &job->stage, &job->cfg,
                                    rank == 0 ? stdout : NULL, err);
    }
    if (a->calibrate_only || a->allocate_only)
        return calibrate_and_report(job, rank, a->allocate_only, err);
    return quantize_locked(a, job, t_start, err);
}

/* The launch checks and the plan, agreed by every rank. */
static raana_status prepare(const cli_args *a, const raana_launch_env *env, job_state *job,
                            int size, raana_error *err)
{
    raana_status st = job ? raana_launch_check(env, size, err)
                          : raana_fail(err, RAANA_ERR_NOMEM, "out of memory");
    RAANA_CALL(raana_comm_agree(MPI_COMM_WORLD, st, err));
    return stage_plan(a, job, size, err);
}

static int run(const cli_args *a, const raana_launch_env *env)
{
    int rank, size;
    raana_error err;
    raana_error_clear(&err);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    double t_start = MPI_Wtime();
    job_state *job = calloc(1, sizeof *job);
    raana_status st = prepare(a, env, job, size, &err);
    int logged = st == RAANA_OK && !a->print_config && !a->dry_run;
    if (logged) /* the log header; collective */
        raana_joblog_header(MPI_COMM_WORLD, &job->cfg, &job->stage,
                            !a->calibrate_only && !a->allocate_only, rank == 0 ? stderr : NULL);
    if (st == RAANA_OK)
        st = run_mode(a, job, rank, t_start, &err);
    if (st != RAANA_OK && rank == 0)
        raana_cli_report(cli.tool, &err);
    if (logged) /* collective: each rank's measured peak against the plan */
        raana_memory_report(MPI_COMM_WORLD, &job->stage.plan, rank == 0 ? stderr : NULL);
    if (logged && rank == 0)
        raana_joblog_footer(stderr, st, MPI_Wtime() - t_start);
    if (job) {
        raana_stage_free(&job->stage);
        free(job);
    }
    if (raana_resume_deferred_signal()) { /* it came while OUTPUT.resume was removed */
        fflush(stdout);
        fflush(stderr);
        signal(raana_resume_deferred_signal(), SIG_DFL); /* not the preemption handler */
        raise(raana_resume_deferred_signal());
    }
    return (int)st;
}

int main(int argc, char **argv)
{
    cli_args args;
    raana_error err;
    raana_launch_env env;
    raana_status st = parse_args(argc, argv, &args);
    if (st != RAANA_OK || args.done)
        return (int)st;
    /* a file-size limit must become a write error we can report, not a kill */
    signal(SIGXFSZ, SIG_IGN);
    raana_mpiio_defaults();  /* before MPI_Init reads the MCA parameters */
    raana_preempt_install(); /* Slurm's warning signal; see preempt.h */
    raana_launch_env_read(&env);
    if ((st = raana_launch_check_before_init(&env, &err)) != RAANA_OK) {
        if (raana_cli_launcher_rank() == 0)
            raana_cli_report(cli.tool, &err);
        return (int)st;
    }
    /* OpenBLAS spins forever when it cannot get its buffer: refuse first,
     * and leave with _exit, as its exit handler would join a spinning
     * thread */
    char who[32];
    snprintf(who, sizeof who, "rank %d", raana_cli_launcher_rank());
    if ((st = raana_memory_check_startup(who, &err)) != RAANA_OK) {
        raana_cli_report(cli.tool, &err);
        fflush(stderr);
        _exit((int)st);
    }
    MPI_Init(&argc, &argv);
    int code = run(&args, &env);
    if (raana_h5_library_unusable()) { /* see h5file.h: every rank agreed on the error */
        fflush(stdout);
        fflush(stderr);
        _exit(code);
    }
    MPI_Finalize();
    return code;
}
