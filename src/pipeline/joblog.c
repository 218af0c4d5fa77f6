/* joblog.c — the log header, the shared progress format and the closing
 * line (see joblog.h). */
#define _GNU_SOURCE /* sched_getaffinity, CPU_ISSET */
#include "raana/joblog.h"

#include <cblas.h>
#include <dirent.h>
#include <sched.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "raana/blas_info.h"
#include "raana/quantize.h"

/* ---- format ------------------------------------------------------------------- */

void raana_log_utc(char *buf, size_t size)
{
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void raana_log_duration(char *buf, size_t size, double seconds)
{
    if (seconds < 0) {
        snprintf(buf, size, "?");
        return;
    }
    long s = (long)(seconds + 0.5);
    snprintf(buf, size, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
}

double raana_log_eta(double done, double total, double elapsed)
{
    if (done <= 0)
        return -1;
    return done >= total ? 0 : elapsed * (total - done) / done;
}

void raana_log_progress(FILE *out, const char *what, const char *detail, double done, double total,
                        const char *unit, double elapsed, double eta)
{
    if (!out)
        return;
    char utc[32], el[32], left[32];
    raana_log_utc(utc, sizeof utc);
    raana_log_duration(el, sizeof el, elapsed);
    raana_log_duration(left, sizeof left, eta);
    fprintf(out, "%s %s: %s%s[%.0f/%.0f %s, %.0f%%, elapsed %s, ETA %s]\n", utc, what, detail,
            detail[0] ? " " : "", done, total, unit, total > 0 ? 100.0 * done / total : 100.0, el,
            left);
    fflush(out);
}

void raana_log_line(FILE *out, const char *fmt, ...)
{
    if (!out)
        return;
    char utc[32];
    raana_log_utc(utc, sizeof utc);
    fprintf(out, "%s ", utc);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(out, fmt, ap);
    va_end(ap);
    fputc('\n', out);
    fflush(out);
}

void raana_joblog_footer(FILE *out, raana_status st, double seconds)
{
    char wall[32];
    raana_log_duration(wall, sizeof wall, seconds);
    if (st == RAANA_OK)
        raana_log_line(out, "finished: ok (exit 0), wall time %s", wall);
    else if (st == RAANA_ERR_PREEMPTED)
        raana_log_line(out,
                       "finished: preempted (exit %d), wall time %s; run the same command again "
                       "to resume",
                       (int)st, wall);
    else
        raana_log_line(out, "finished: %s error (exit %d), wall time %s", raana_status_name(st),
                       (int)st, wall);
}

/* ---- this process -------------------------------------------------------------- */

void raana_log_cpu_list(char *buf, size_t size)
{
    cpu_set_t set;
    size_t used = 0;
    buf[0] = '\0';
    if (sched_getaffinity(0, sizeof set, &set) != 0) {
        snprintf(buf, size, "?");
        return;
    }
    for (int c = 0; c < CPU_SETSIZE && used < size; c++) {
        if (!CPU_ISSET(c, &set))
            continue;
        int end = c;
        while (end + 1 < CPU_SETSIZE && CPU_ISSET(end + 1, &set))
            end++;
        used += (size_t)snprintf(buf + used, size - used, end > c ? "%s%d-%d" : "%s%d",
                                 used ? "," : "", c, end);
        c = end;
    }
}

/* ---- the header ---------------------------------------------------------------- */

typedef struct {
    char host[64];
    char cpus[192];
    int pid, omp_threads, blas_threads;
} rank_info;

static void this_rank(const raana_config *cfg, rank_info *r)
{
    memset(r, 0, sizeof *r);
    gethostname(r->host, sizeof r->host - 1);
    raana_log_cpu_list(r->cpus, sizeof r->cpus);
    r->pid = (int)getpid();
    r->omp_threads = raana_quantize_threads(cfg);
    r->blas_threads = openblas_get_num_threads();
}

static void print_hosts(FILE *out, const rank_info *all, int n)
{
    fprintf(out, "hosts:");
    for (int i = 0; i < n; i++) {
        int first = 1, count = 0;
        for (int j = 0; j < n; j++)
            if (strcmp(all[j].host, all[i].host) == 0) {
                first &= j >= i;
                count++;
            }
        if (first)
            fprintf(out, " %s (%d rank%s)", all[i].host, count, count == 1 ? "" : "s");
    }
    fputc('\n', out);
}

static void print_ranks(FILE *out, const rank_info *all, int n)
{
    fprintf(out, "ranks: %d, threads per rank: %d (OpenMP, quantize), %d (OpenBLAS, calibration)\n",
            n, all[0].omp_threads, all[0].blas_threads);
    for (int i = 0; i < n; i++)
        fprintf(out, "binding: rank %d on %s (pid %d): cpus %s, %d OpenMP + %d OpenBLAS threads\n",
                i, all[i].host, all[i].pid, all[i].cpus, all[i].omp_threads, all[i].blas_threads);
    const char *job = getenv("SLURM_JOB_ID");
    if (job) {
        const char *restarts = getenv("SLURM_RESTART_COUNT"), *cpt = getenv("SLURM_CPUS_PER_TASK");
        const char *array = getenv("SLURM_ARRAY_JOB_ID"), *task = getenv("SLURM_ARRAY_TASK_ID");
        fprintf(out, "slurm: job %s", job);
        if (array && task)
            fprintf(out, " (array %s_%s)", array, task);
        fprintf(out, ", restart %s, cpus-per-task %s, nodes %s\n", restarts ? restarts : "0",
                cpt ? cpt : "unset",
                getenv("SLURM_JOB_NODELIST") ? getenv("SLURM_JOB_NODELIST") : "?");
    }
}

static void print_blas(FILE *out)
{
    raana_blas_info b;
    raana_blas_info_read(&b);
    raana_blas_print_info(out, &b);
    raana_blas_print_warning(out, "blas: ", &b);
    raana_blas_print_note(out, "blas: ", &b);
}

static void print_model(FILE *out, const raana_config *cfg, const raana_stage *s)
{
    const raana_model_config *m = &s->model.config;
    const raana_plan *p = &s->plan;
    int quantized = 0;
    for (int i = 0; i < p->n_layers; i++)
        quantized += p->layers[i].quantize;
    fprintf(out,
            "model: %s (%s, %llu parameters, %d blocks, hidden %d); %d of %d linear layers "
            "quantized (%llu weights)\n",
            cfg->model_path, m->model_type, (unsigned long long)p->total_params, m->num_layers,
            m->hidden_size, quantized, p->n_layers, (unsigned long long)p->quantized_params);
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    if (mem) {
        raana_config_write(mem, cfg);
        fclose(mem);
    }
    fprintf(out, "config: %s, digest %016llx of the effective config (--print-config)\n",
            cfg->source[0] ? cfg->source : "(none)",
            text ? (unsigned long long)XXH3_64bits(text, len) : 0ULL);
    free(text);
}

static void print_memory(FILE *out, const raana_plan *p)
{
    uint64_t peak = 0, sum = 0;
    int at = 0;
    for (int r = 0; r < p->n_ranks; r++) {
        sum += p->ranks[r].peak_bytes;
        if (p->ranks[r].peak_bytes > peak)
            peak = p->ranks[r].peak_bytes, at = r;
    }
    const double mib = 1024.0 * 1024.0;
    fprintf(out, "memory: planned peak %.1f MiB per rank (largest: rank %d), %.1f MiB in all",
            (double)peak / mib, at, (double)sum / mib);
    const char *per_cpu = getenv("SLURM_MEM_PER_CPU"), *cpt = getenv("SLURM_CPUS_PER_TASK");
    if (per_cpu && cpt) {
        double limit = strtod(per_cpu, NULL) * strtod(cpt, NULL);
        fprintf(out, "; Slurm allows %.0f MiB per rank%s", limit,
                limit * mib < (double)peak ? " (TOO LITTLE: raise --mem-per-cpu)" : "");
    }
    fputc('\n', out);
}

/* What a run interrupted earlier left in OUTPUT.resume. */
static void print_resume(FILE *out, const raana_config *cfg)
{
    char dir[RAANA_PATH_MAX + 32], path[RAANA_PATH_MAX + 64];
    struct stat sb;
    snprintf(dir, sizeof dir, "%s.resume", cfg->output_path);
    if (stat(dir, &sb) != 0)
        return;
    snprintf(path, sizeof path, "%s/calibration.bin", dir);
    int calibration = stat(path, &sb) == 0, layers = 0;
    snprintf(path, sizeof path, "%s/layers", dir);
    DIR *d = opendir(path);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        layers += n > 4 && strcmp(e->d_name + n - 4, ".bin") == 0;
    }
    if (d)
        closedir(d);
    fprintf(out,
            "resume: %s holds %s%d finished layer%s from an interrupted run; work whose "
            "fingerprint matches this job is reused\n",
            dir, calibration ? "the calibration and " : "", layers, layers == 1 ? "" : "s");
}

void raana_joblog_header(MPI_Comm comm, const raana_config *cfg, const raana_stage *s, int quantize,
                         FILE *out)
{
    int rank, size;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    rank_info mine, *all = rank == 0 ? calloc((size_t)size, sizeof *all) : NULL;
    this_rank(cfg, &mine);
    int ok = rank != 0 || all != NULL; /* rank 0's buffer; agreed so no rank waits alone */
    MPI_Bcast(&ok, 1, MPI_INT, 0, comm);
    if (ok)
        MPI_Gather(&mine, (int)sizeof mine, MPI_BYTE, all, (int)sizeof mine, MPI_BYTE, 0, comm);
    if (rank != 0 || !ok || !out) {
        free(all);
        return;
    }
    char utc[32];
    raana_log_utc(utc, sizeof utc);
    fprintf(out, "==== raana-mpi %s, started %s ====\n", RAANA_VERSION, utc);
    print_hosts(out, all, size);
    print_ranks(out, all, size);
    print_blas(out);
    print_model(out, cfg, s);
    print_memory(out, &s->plan);
    if (quantize)
        print_resume(out, cfg);
    fflush(out);
    free(all);
}
