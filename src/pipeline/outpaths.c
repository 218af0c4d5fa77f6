/* outpaths.c — the lock, the partial file and the checks on the paths the
 * job writes next to OUTPUT (see outpaths.h). */
#define _GNU_SOURCE /* fallocate, FALLOC_FL_KEEP_SIZE */
#include "raana/outpaths.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "raana/file.h"
#include "raana/joblog.h"

#define MIB(b) ((double)(b) / (1024.0 * 1024.0))

/* ---- MPI-IO and path lengths ------------------------------------------------- */

void raana_mpiio_defaults(void)
{
    setenv("OMPI_MCA_sharedfp", "individual", 0);
    setenv("OMPI_MCA_fcoll", "individual", 0);
}

/* 1 when the user's OMPI_MCA_sharedfp can select the lockedfile component. */
static int lockedfile_forced(void)
{
    const char *v = getenv("OMPI_MCA_sharedfp");
    return v && v[0] != '^' && strstr(v, "lockedfile") != NULL;
}

static int same_file(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

/* OUTPUT.suffix must not be a link; OUTPUT.partial must be a regular file
 * if it exists. */
static raana_status check_not_link(const char *output_path, const char *suffix, int regular,
                                   raana_error *err)
{
    char path[RAANA_PATH_MAX + 32];
    struct stat sb;
    snprintf(path, sizeof path, "%s%s", output_path, suffix);
    if (lstat(path, &sb) != 0)
        return RAANA_OK;
    if (S_ISLNK(sb.st_mode))
        return raana_fail(err, RAANA_ERR_IO,
                          "%s is a symbolic link; raana writes and deletes files there and never "
                          "follows one: remove the link or choose another output path",
                          path);
    if (regular && !S_ISREG(sb.st_mode))
        return raana_fail(err, RAANA_ERR_IO, "%s exists and is not a regular file: remove it",
                          path);
    return RAANA_OK;
}

raana_status raana_output_paths_check(const char *output_path, raana_error *err)
{
    char dir[RAANA_PATH_MAX];
    raana_path_dirname(dir, sizeof dir, output_path);
    const char *slash = strrchr(output_path, '/');
    size_t name_len = strlen(slash ? slash + 1 : output_path);
    long name_max = pathconf(dir, _PC_NAME_MAX);
    if (name_max <= 0)
        name_max = 255;
    if (name_len + RAANA_OUTPUT_SUFFIX_MAX > (size_t)name_max)
        return raana_fail(err, RAANA_ERR_CONFIG,
                          "%s: the file name is %zu bytes; raana adds up to %d more "
                          "(.resume.removing) and this file system allows %ld: choose a shorter "
                          "name",
                          output_path, name_len, RAANA_OUTPUT_SUFFIX_MAX, name_max);
    if (lockedfile_forced() && strlen(output_path) > RAANA_LOCKEDFILE_PATH_MAX)
        return raana_fail(err, RAANA_ERR_CONFIG,
                          "%s: the path is %zu characters; Open MPI's sharedfp component "
                          "'lockedfile' (selected by OMPI_MCA_sharedfp=%s) overflows beyond %d: "
                          "unset OMPI_MCA_sharedfp or use a shorter path",
                          output_path, strlen(output_path), getenv("OMPI_MCA_sharedfp"),
                          RAANA_LOCKEDFILE_PATH_MAX);
    RAANA_CALL(check_not_link(output_path, ".partial", 1, err));
    return check_not_link(output_path, ".resume", 0, err);
}

/* ---- the lock ---------------------------------------------------------------- */

typedef struct {
    char host[256], job[64];
    long pid;
    int valid;
} lock_record;

static void own_record(lock_record *r)
{
    memset(r, 0, sizeof *r);
    if (gethostname(r->host, sizeof r->host - 1) != 0)
        snprintf(r->host, sizeof r->host, "unknown");
    const char *job = getenv("SLURM_JOB_ID");
    snprintf(r->job, sizeof r->job, "%s", job && *job ? job : "-");
    r->pid = (long)getpid();
    r->valid = 1;
}

static void read_record(int fd, lock_record *r)
{
    char text[512];
    memset(r, 0, sizeof *r);
    ssize_t n = pread(fd, text, sizeof text - 1, 0);
    text[n > 0 ? n : 0] = '\0';
    r->valid = sscanf(text, "host=%255s pid=%ld job=%63s", r->host, &r->pid, r->job) == 3;
}

static void describe(const lock_record *r, char *out, size_t size)
{
    if (!r->valid)
        snprintf(out, size, "a process that left no record");
    else if (strcmp(r->job, "-") == 0)
        snprintf(out, size, "pid %ld on host %s", r->pid, r->host);
    else
        snprintf(out, size, "pid %ld on host %s (Slurm job %s)", r->pid, r->host, r->job);
}

/* The recorded holder ran on this host and its pid is gone. */
static int holder_gone(const lock_record *r)
{
    lock_record me;
    own_record(&me);
    return r->valid && strcmp(r->host, me.host) == 0 && r->pid > 0 && kill((pid_t)r->pid, 0) != 0 &&
           errno == ESRCH;
}

static void write_record(int fd)
{
    lock_record me;
    char text[512];
    own_record(&me);
    int n = snprintf(text, sizeof text, "host=%s pid=%ld job=%s\n", me.host, me.pid, me.job);
    if (ftruncate(fd, 0) == 0 && pwrite(fd, text, (size_t)n, 0) == n)
        fsync(fd);
}

static raana_status open_lock_file(const char *path, int *fd, raana_error *err)
{
    struct stat sb;
    *fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, 0644);
    if (*fd < 0 && errno == ELOOP)
        return raana_fail(err, RAANA_ERR_IO,
                          "%s is a symbolic link; raana never follows one: remove it", path);
    if (*fd < 0)
        return raana_fail(err, RAANA_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    if (fstat(*fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(*fd);
        *fd = -1;
        return raana_fail(err, RAANA_ERR_IO, "%s exists and is not a regular file: remove it",
                          path);
    }
    return RAANA_OK;
}

/* 1 when fd is still the file at path (its previous holder did not delete
 * or replace it between our open and our flock). */
static int still_at(int fd, const char *path)
{
    struct stat a, b;
    return fstat(fd, &a) == 0 && lstat(path, &b) == 0 && same_file(&a, &b);
}

raana_status raana_output_lock_take(raana_output_lock *l, const char *output_path, FILE *note,
                                    raana_error *err)
{
    l->fd = -1;
    if (snprintf(l->path, sizeof l->path, "%s.lock", output_path) >= (int)sizeof l->path)
        return raana_fail(err, RAANA_ERR_CONFIG, "output path too long: %s", output_path);
    for (int attempt = 0; attempt < 8; attempt++) {
        int fd;
        lock_record held;
        char who[400];
        RAANA_CALL(open_lock_file(l->path, &fd, err));
        read_record(fd, &held);
        describe(&held, who, sizeof who);
        if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
            if (!still_at(fd, l->path)) {
                close(fd);
                continue;
            }
            if (held.valid && note)
                raana_log_line(note, "lock: taking over %s from %s, which is no longer running",
                               l->path, who);
        } else if (errno == EWOULDBLOCK && holder_gone(&held)) {
            if (note)
                raana_log_line(note,
                               "lock: %s names %s, which is gone, but another process holds it; "
                               "replacing the lock file",
                               l->path, who);
            if (still_at(fd, l->path))
                unlink(l->path);
            close(fd);
            continue;
        } else if (errno == EWOULDBLOCK) {
            close(fd);
            return raana_fail(err, RAANA_ERR_IO,
                              "%s: another job is writing this output: %s holds the lock; "
                              "wait for it to end or choose another output path",
                              l->path, who);
        } else if (errno == ENOLCK || errno == EOPNOTSUPP || errno == ENOSYS || errno == EINVAL) {
            if (note)
                raana_log_line(note,
                               "lock: %s: this file system has no flock (%s); nothing stops a "
                               "second job on this output",
                               l->path, strerror(errno));
        } else {
            int e = errno;
            close(fd);
            return raana_fail(err, RAANA_ERR_IO, "%s: cannot lock: %s", l->path, strerror(e));
        }
        write_record(fd);
        l->fd = fd;
        return RAANA_OK;
    }
    return raana_fail(err, RAANA_ERR_IO, "%s: cannot lock: it keeps being replaced", l->path);
}

void raana_output_lock_release(raana_output_lock *l)
{
    if (l->fd < 0)
        return;
    if (still_at(l->fd, l->path)) /* deleted while held: the next job starts afresh */
        unlink(l->path);
    close(l->fd);
    l->fd = -1;
}

/* ---- the partial file -------------------------------------------------------- */

static raana_status reserve_failed(const char *path, uint64_t bytes, const char *why,
                                   raana_error *err)
{
    return raana_fail(err, RAANA_ERR_IO,
                      "%s: cannot reserve %.1f MiB for the container (an upper bound): %s", path,
                      MIB(bytes), why);
}

raana_status raana_file_size_limit_check(const char *path, uint64_t bytes, raana_error *err)
{
    struct rlimit rl;
    char why[128];
    if (getrlimit(RLIMIT_FSIZE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY ||
        (uint64_t)rl.rlim_cur >= bytes)
        return RAANA_OK;
    snprintf(why, sizeof why, "larger than the file-size limit (ulimit -f) of %.1f MiB",
             MIB(rl.rlim_cur));
    return reserve_failed(path, bytes, why, err);
}

/* Where fallocate is not supported: at least compare with the free space. */
static raana_status check_free_space(int fd, const char *path, uint64_t bytes, raana_error *err)
{
    struct statvfs sv;
    char why[128];
    if (fstatvfs(fd, &sv) != 0 || (uint64_t)sv.f_bavail * sv.f_frsize >= bytes)
        return RAANA_OK;
    snprintf(why, sizeof why, "only %.1f MiB free (this file system cannot preallocate)",
             MIB((uint64_t)sv.f_bavail * sv.f_frsize));
    return reserve_failed(path, bytes, why, err);
}

/* fallocate failed with errno e: where it is not supported, the free space
 * decides; otherwise the reservation failed. */
static raana_status fallocate_failed(const raana_partial *p, uint64_t bytes, int e,
                                     raana_error *err)
{
    if (e == EOPNOTSUPP || e == ENOSYS)
        return check_free_space(p->fd, p->path, bytes, err);
    return reserve_failed(p->path, bytes,
                          e == EFBIG ? "larger than the file-size limit (ulimit -f)" : strerror(e),
                          err);
}

raana_status raana_partial_open(raana_partial *p, const char *output_path, uint64_t bytes,
                                raana_error *err)
{
    raana_status st = RAANA_OK;
    struct stat sb;
    p->fd = -1;
    snprintf(p->path, sizeof p->path, "%s.partial", output_path);
    RAANA_CHECK(check_not_link(output_path, ".partial", 1, err));
    if (lstat(p->path, &sb) == 0 && unlink(p->path) != 0) /* left by an interrupted job */
        RAANA_FAIL_GOTO(err, RAANA_ERR_IO, "%s: cannot remove: %s", p->path, strerror(errno));
    p->fd = open(p->path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (p->fd < 0)
        RAANA_FAIL_GOTO(err, RAANA_ERR_IO, "%s: cannot create: %s", p->path, strerror(errno));
    if (fallocate(p->fd, FALLOC_FL_KEEP_SIZE, 0, (off_t)bytes) != 0)
        RAANA_CHECK(fallocate_failed(p, bytes, errno, err));
cleanup:
    if (st != RAANA_OK)
        raana_partial_discard(p); /* removes only the file this call created */
    return st;
}

raana_status raana_partial_publish(raana_partial *p, const char *output_path, raana_error *err)
{
    struct stat sb;
    if (p->fd < 0 || !still_at(p->fd, p->path))
        return raana_fail(err, RAANA_ERR_IO,
                          "%s was replaced while the container was written; not publishing it",
                          p->path);
    if (fstat(p->fd, &sb) == 0)
        (void)!ftruncate(p->fd, sb.st_size); /* gives back the reserved blocks past the end */
    fsync(p->fd);
    if (rename(p->path, output_path) != 0)
        return raana_fail(err, RAANA_ERR_IO, "%s: cannot rename to %s: %s", p->path, output_path,
                          strerror(errno));
    close(p->fd);
    p->fd = -1;
    char dir[RAANA_PATH_MAX];
    raana_path_dirname(dir, sizeof dir, output_path);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) { /* the new name is durable */
        fsync(dfd);
        close(dfd);
    }
    return RAANA_OK;
}

void raana_partial_discard(raana_partial *p)
{
    if (p->fd < 0)
        return;
    if (still_at(p->fd, p->path))
        unlink(p->path);
    close(p->fd);
    p->fd = -1;
}
