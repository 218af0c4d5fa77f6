/* resume.c — the resume work directory (see resume.h): its manifest and
 * guarded creation and removal, and serializing the calibration statistics
 * and quantized layers into checksummed files. */
#include "raana/resume.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "raana/bytebuf.h"
#include "raana/fault.h"
#include "raana/joblog.h"

#define CALIB_MAGIC   "RAANACAL"
#define LAYER_MAGIC   "RAANAQLY"
#define RESUME_FORMAT 2u

/* ---- a bounded reader (the buffer: bytebuf.h) ----------------------------- */

typedef struct {
    const uint8_t *p;
    size_t left;
    int failed;
} byte_reader;

static void read_bytes(byte_reader *r, void *out, size_t n)
{
    if (r->failed || n > r->left) {
        r->failed = 1;
        if (out && n)
            memset(out, 0, n);
        return;
    }
    memcpy(out, r->p, n);
    r->p += n, r->left -= n;
}

#define PUT(b, v)  raana_bytebuf_put((b), &(v), sizeof(v))
#define TAKE(r, v) read_bytes((r), &(v), sizeof(v))

/* ---- files relative to a directory handle, never through a link ------------ */

/* Reads all of file `name` in directory dfd into a malloc'd buffer. 0 or
 * an errno value (ELOOP for a link, EINVAL for a non-regular file). */
static int read_at(int dfd, const char *name, char **data, size_t *len)
{
    struct stat sb;
    *data = NULL, *len = 0;
    int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return errno;
    int e = fstat(fd, &sb) != 0 ? errno : !S_ISREG(sb.st_mode) ? EINVAL : 0;
    char *buf = e ? NULL : malloc((size_t)sb.st_size + 1);
    if (!e && !buf)
        e = ENOMEM;
    size_t got = 0;
    while (!e && got < (size_t)sb.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)sb.st_size - got);
        if (n <= 0)
            e = n < 0 ? errno : EIO;
        else
            got += (size_t)n;
    }
    close(fd);
    if (e) {
        free(buf);
        return e;
    }
    buf[got] = '\0';
    *data = buf, *len = got;
    return 0;
}

/* Writes len bytes as file `name` in dfd atomically: into NAME.tmp, created
 * with O_EXCL|O_NOFOLLOW (a stale one from a killed run is unlinked, which
 * removes a link, never its target), synced, then renamed over NAME. Errors
 * name `shown`, the path the user sees. */
static raana_status write_at(int dfd, const char *name, const char *shown, const void *data,
                             size_t len, raana_error *err)
{
    char tmp[NAME_MAX + 8];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", name) >= (int)sizeof tmp)
        return raana_fail(err, RAANA_ERR_IO, "%s: file name too long", shown);
    int flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
    int fd = openat(dfd, tmp, flags, 0644);
    if (fd < 0 && errno == EEXIST && unlinkat(dfd, tmp, 0) == 0)
        fd = openat(dfd, tmp, flags, 0644);
    if (fd < 0)
        return raana_fail(err, RAANA_ERR_IO, "%s.tmp: cannot create: %s", shown, strerror(errno));
    const char *p = data;
    size_t done = 0;
    int e = 0;
    while (!e && done < len) {
        ssize_t n = write(fd, p + done, len - done);
        if (n < 0)
            e = errno;
        else
            done += (size_t)n;
    }
    if (!e && fsync(fd) != 0)
        e = errno;
    if (close(fd) != 0 && !e)
        e = errno;
    if (!e && renameat(dfd, tmp, dfd, name) != 0)
        e = errno;
    if (!e)
        return RAANA_OK;
    unlinkat(dfd, tmp, 0);
    return raana_fail(err, RAANA_ERR_IO, "%s: cannot write: %s", shown, strerror(e));
}

/* Appends the checksum and writes atomically. */
static raana_status buf_commit(raana_bytebuf *b, int dfd, const char *name, const char *shown,
                               raana_error *err)
{
    uint64_t sum = XXH3_64bits(b->data, b->len);
    PUT(b, sum);
    raana_status st = b->failed ? raana_fail(err, RAANA_ERR_NOMEM, "%s: out of memory", shown)
                                : write_at(dfd, name, shown, b->data, b->len, err);
    free(b->data);
    return st;
}

/* Reads file `name` of dfd and checks magic, version, fingerprint and
 * checksum; on success the reader covers the payload after the fingerprint
 * (free *data afterwards), else 0 and nothing to free. */
static int open_checked(int dfd, const char *name, const char *magic, uint64_t fingerprint,
                        char **data, byte_reader *r)
{
    size_t len;
    if (dfd < 0 || read_at(dfd, name, data, &len) != 0)
        return 0;
    uint64_t sum = 0, fp = 0;
    uint32_t version = 0;
    int ok = len >= 8 + 4 + 8 + 8 && memcmp(*data, magic, 8) == 0;
    if (ok) {
        memcpy(&sum, *data + len - 8, 8);
        memcpy(&version, *data + 8, 4);
        memcpy(&fp, *data + 12, 8);
        ok = sum == XXH3_64bits(*data, len - 8) && version == RESUME_FORMAT && fp == fingerprint;
    }
    if (!ok) {
        free(*data);
        *data = NULL;
        return 0;
    }
    r->p = (const uint8_t *)*data + 20;
    r->left = len - 28;
    r->failed = 0;
    return 1;
}

static void put_header(raana_bytebuf *b, const char *magic, uint64_t fingerprint)
{
    uint32_t version = RESUME_FORMAT;
    raana_bytebuf_put(b, magic, 8);
    PUT(b, version);
    PUT(b, fingerprint);
}

/* ---- the manifest ------------------------------------------------------------ */

#define MANIFEST_HEADER "raana-resume-manifest 1"
#define MANIFEST_TMP    RAANA_RESUME_MANIFEST ".tmp"

/* Relative paths: "calibration.bin", "layers/NAME.bin". */
typedef struct {
    char **names;
    int n, cap, failed;
} name_list;

static int list_has(const name_list *l, const char *name)
{
    for (int i = 0; i < l->n; i++)
        if (strcmp(l->names[i], name) == 0)
            return 1;
    return 0;
}

static void list_add(name_list *l, const char *name)
{
    if (l->failed || list_has(l, name))
        return;
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 64;
        char **names = realloc(l->names, (size_t)cap * sizeof *names);
        if (!names) {
            l->failed = 1;
            return;
        }
        l->names = names, l->cap = cap;
    }
    if ((l->names[l->n] = strdup(name)) == NULL)
        l->failed = 1;
    else
        l->n++;
}

static void list_free(name_list *l)
{
    for (int i = 0; i < l->n; i++)
        free(l->names[i]);
    free(l->names);
    memset(l, 0, sizeof *l);
}

/* The manifest of directory dfd into l: 0, ENOENT when there is none,
 * EBADMSG when it is not a raana manifest, or another errno. */
static int manifest_read(int dfd, name_list *l)
{
    char *data, *save = NULL;
    size_t len;
    int e = read_at(dfd, RAANA_RESUME_MANIFEST, &data, &len);
    if (e)
        return e;
    char *line = strtok_r(data, "\n", &save);
    e = line && strcmp(line, MANIFEST_HEADER) == 0 ? 0 : EBADMSG;
    while (!e && (line = strtok_r(NULL, "\n", &save)) != NULL)
        list_add(l, line);
    free(data);
    return e ? e : l->failed ? ENOMEM : 0;
}

static raana_status manifest_write(const raana_resume *r, const name_list *l, raana_error *err)
{
    char shown[4400];
    raana_bytebuf b = {0};
    snprintf(shown, sizeof shown, "%s/%s", r->dir, RAANA_RESUME_MANIFEST);
    raana_bytebuf_put(&b, MANIFEST_HEADER "\n", strlen(MANIFEST_HEADER) + 1);
    for (int i = 0; i < l->n; i++) {
        raana_bytebuf_put(&b, l->names[i], strlen(l->names[i]));
        raana_bytebuf_put(&b, "\n", 1);
    }
    raana_status st = b.failed
                          ? raana_fail(err, RAANA_ERR_NOMEM, "%s: out of memory", shown)
                          : write_at(r->dir_fd, RAANA_RESUME_MANIFEST, shown, b.data, b.len, err);
    free(b.data);
    return st;
}

/* The files this job may create: calibration.bin and one per quantized
 * layer. A name that cannot be a plain file name is refused. */
static raana_status plan_files(const raana_plan *plan, name_list *l, raana_error *err)
{
    char rel[NAME_MAX + 16];
    list_add(l, "calibration.bin");
    for (int i = 0; i < plan->n_layers; i++) {
        const char *name = plan->layers[i].name;
        if (!plan->layers[i].quantize)
            continue;
        int plain = name[0] != '\0' && strcmp(name, ".") != 0 && strcmp(name, "..") != 0 &&
                    strlen(name) + 8 <= NAME_MAX;
        for (const char *c = name; plain && *c; c++)
            plain = *c != '/' && (unsigned char)*c >= 0x20 && *c != 0x7f;
        if (!plain)
            return raana_fail(err, RAANA_ERR_INPUT,
                              "layer name '%s' cannot be a file name in the resume directory",
                              name);
        snprintf(rel, sizeof rel, "layers/%s.bin", name);
        list_add(l, rel);
    }
    return l->failed ? raana_fail(err, RAANA_ERR_NOMEM, "out of memory for the manifest")
                     : RAANA_OK;
}

/* 1 when entry `name` of subdirectory `sub` ("" or "layers/") is listed,
 * or is the ".tmp" of a listed file. */
static int is_listed(const name_list *l, const char *sub, const char *name)
{
    char rel[2 * NAME_MAX + 16];
    snprintf(rel, sizeof rel, "%s%s", sub, name);
    if (list_has(l, rel))
        return 1;
    size_t n = strlen(rel);
    if (n <= 4 || strcmp(rel + n - 4, ".tmp") != 0)
        return 0;
    rel[n - 4] = '\0';
    return list_has(l, rel);
}

/* ---- scanning the directory -------------------------------------------------- */

typedef struct {
    int count;
    char names[3][NAME_MAX + 16]; /* the first three */
} foreign_list;

/* Calls visit(dfd, sub, name, arg) for each entry of directory dfd. */
static void each_entry(int dfd, const char *sub,
                       void (*visit)(int, const char *, const char *, void *), void *arg)
{
    int fd = dfd >= 0 ? dup(dfd) : -1;
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0)
            close(fd);
        return;
    }
    rewinddir(d); /* the duplicate shares the handle's position */
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            visit(dfd, sub, e->d_name, arg);
    closedir(d);
}

typedef struct {
    const name_list *listed;
    foreign_list *foreign;
} scan_state;

/* Raana's entries: the manifest (and its .tmp), layers/ as a real
 * directory, and the listed files as regular files. */
static void check_entry(int dfd, const char *sub, const char *name, void *arg)
{
    scan_state *s = arg;
    struct stat sb;
    int top = sub[0] == '\0', known = 0;
    if (fstatat(dfd, name, &sb, AT_SYMLINK_NOFOLLOW) != 0)
        return; /* gone meanwhile */
    if (top && strcmp(name, "layers") == 0)
        known = S_ISDIR(sb.st_mode);
    else if (top && (strcmp(name, RAANA_RESUME_MANIFEST) == 0 || strcmp(name, MANIFEST_TMP) == 0))
        known = S_ISREG(sb.st_mode);
    else
        known = S_ISREG(sb.st_mode) && is_listed(s->listed, sub, name);
    if (known)
        return;
    if (s->foreign->count < 3)
        snprintf(s->foreign->names[s->foreign->count], sizeof s->foreign->names[0], "%s%s%s", sub,
                 name, S_ISLNK(sb.st_mode) ? " (a symbolic link)" : "");
    s->foreign->count++;
}

static void count_entry(int dfd, const char *sub, const char *name, void *arg)
{
    (void)dfd, (void)sub;
    if (strcmp(name, RAANA_RESUME_MANIFEST) != 0 && strcmp(name, MANIFEST_TMP) != 0 &&
        strcmp(name, "layers") != 0)
        ++*(int *)arg;
}

/* ---- the directory ----------------------------------------------------------- */

static void resume_reset(raana_resume *r)
{
    r->dir_fd = r->layers_fd = -1;
    r->opened = 0;
}

void raana_resume_close(raana_resume *r)
{
    if (!r->opened)
        return;
    if (r->layers_fd >= 0)
        close(r->layers_fd);
    if (r->dir_fd >= 0)
        close(r->dir_fd);
    resume_reset(r);
}

/* Opens directory `path` (relative to at) without following a link. */
static raana_status open_dir_nofollow(int at, const char *path, const char *shown, int *fd,
                                      raana_error *err)
{
    struct stat sb;
    *fd = openat(at, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (*fd >= 0)
        return RAANA_OK;
    int e = errno;
    if (fstatat(at, path, &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(sb.st_mode))
        return raana_fail(err, RAANA_ERR_IO,
                          "%s is a symbolic link; raana creates and deletes files there and never "
                          "follows one: remove the link or choose another output path",
                          shown);
    if (e == ENOTDIR)
        return raana_fail(err, RAANA_ERR_IO, "%s: a file of that name exists", shown);
    return raana_fail(err, RAANA_ERR_IO, "%s: cannot open directory: %s", shown, strerror(e));
}

static raana_status set_dir(raana_resume *r, const char *output_path, raana_error *err)
{
    resume_reset(r);
    if (snprintf(r->dir, sizeof r->dir, "%s.resume", output_path) >= (int)sizeof r->dir)
        return raana_fail(err, RAANA_ERR_CONFIG, "output path too long: %s", output_path);
    return RAANA_OK;
}

/* The entries of the directory and of layers/ that raana did not create
 * (check_entry). */
static void scan_foreign(const raana_resume *r, scan_state *s)
{
    each_entry(r->dir_fd, "", check_entry, s);
    int lfd = openat(r->dir_fd, "layers", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    each_entry(lfd, "layers/", check_entry, s);
    if (lfd >= 0)
        close(lfd);
}

/* An existing directory: it must hold only what its manifest lists (or be
 * empty without one). The listed files join `files`. */
static raana_status adopt(const raana_resume *r, name_list *files, raana_error *err)
{
    raana_status st = RAANA_OK;
    name_list old = {0};
    foreign_list f = {0};
    scan_state s = {&old, &f};
    int e = manifest_read(r->dir_fd, &old);
    if (e != 0 && e != ENOENT)
        RAANA_FAIL_GOTO(err, RAANA_ERR_IO,
                        "%s/%s: not a raana manifest (%s); raana leaves the directory alone: move "
                        "it away or choose another output path",
                        r->dir, RAANA_RESUME_MANIFEST,
                        e == EBADMSG ? "wrong first line" : strerror(e));
    scan_foreign(r, &s);
    if (f.count > 0)
        RAANA_FAIL_GOTO(err, RAANA_ERR_IO,
                        "%s holds %d file%s raana did not create%s: %s%s%s%s%s; raana leaves "
                        "them alone and stops: move them out or choose another output path",
                        r->dir, f.count, f.count == 1 ? "" : "s",
                        e == ENOENT ? " (it has no " RAANA_RESUME_MANIFEST ")" : "", f.names[0],
                        f.count > 1 ? ", " : "", f.count > 1 ? f.names[1] : "",
                        f.count > 2 ? ", " : "", f.count > 2 ? f.names[2] : "");
    for (int i = 0; i < old.n; i++)
        list_add(files, old.names[i]);
cleanup:
    list_free(&old);
    return st;
}

/* layers/ of the open directory (created first when `create`). */
static raana_status open_layers(raana_resume *r, int create, raana_error *err)
{
    char layers[4300];
    snprintf(layers, sizeof layers, "%s/layers", r->dir);
    if (create && mkdirat(r->dir_fd, "layers", 0777) != 0 && errno != EEXIST)
        return raana_fail(err, RAANA_ERR_IO, "%s: cannot create directory: %s", layers,
                          strerror(errno));
    return open_dir_nofollow(r->dir_fd, "layers", layers, &r->layers_fd, err);
}

/* Removes layers/, the manifest and the directory, when they are empty. */
static void remove_if_empty(const raana_resume *r)
{
    unlinkat(r->dir_fd, "layers", AT_REMOVEDIR);
    unlinkat(r->dir_fd, MANIFEST_TMP, 0);
    unlinkat(r->dir_fd, RAANA_RESUME_MANIFEST, 0);
    rmdir(r->dir);
}

raana_status raana_resume_open(raana_resume *r, const char *output_path, const raana_plan *plan,
                               raana_error *err)
{
    raana_status st = RAANA_OK;
    name_list files = {0};
    int created = 0;
    RAANA_CHECK(set_dir(r, output_path, err));
    RAANA_CHECK(plan_files(plan, &files, err));
    if (mkdir(r->dir, 0777) == 0)
        created = 1;
    else if (errno != EEXIST)
        RAANA_FAIL_GOTO(err, RAANA_ERR_IO, "%s: cannot create directory: %s", r->dir,
                        strerror(errno));
    RAANA_CHECK(open_dir_nofollow(AT_FDCWD, r->dir, r->dir, &r->dir_fd, err));
    if (!created)
        RAANA_CHECK(adopt(r, &files, err));
    RAANA_CHECK(manifest_write(r, &files, err)); /* every name is recorded before any file */
    RAANA_CHECK(open_layers(r, 1, err));
cleanup:
    list_free(&files);
    r->opened = 1;
    if (st != RAANA_OK && created) /* take back what this call made */
        remove_if_empty(r);
    if (st != RAANA_OK)
        raana_resume_close(r);
    return st;
}

raana_status raana_resume_attach(raana_resume *r, const char *output_path, raana_error *err)
{
    raana_status st = RAANA_OK;
    RAANA_CHECK(set_dir(r, output_path, err));
    RAANA_CHECK(open_dir_nofollow(AT_FDCWD, r->dir, r->dir, &r->dir_fd, err));
    RAANA_CHECK(open_layers(r, 0, err));
cleanup:
    r->opened = 1;
    if (st != RAANA_OK)
        raana_resume_close(r);
    return st;
}

/* ---- removing it ------------------------------------------------------------- */

/* Deletes the listed files of directory dfd (layers/ ones through lfd) and
 * their temporaries; unlinkat removes a link, never its target. */
static void delete_listed(int dfd, int lfd, const name_list *l)
{
    char tmp[NAME_MAX + 16];
    for (int i = 0; i < l->n; i++) {
        const char *name = l->names[i];
        int at = dfd;
        if (strncmp(name, "layers/", 7) == 0)
            at = lfd, name += 7;
        if (at < 0 || strchr(name, '/') || strlen(name) > NAME_MAX)
            continue;
        snprintf(tmp, sizeof tmp, "%s.tmp", name);
        unlinkat(at, tmp, 0);
        if (unlinkat(at, name, 0) == 0)
            raana_fault_point("remove", 0);
    }
}

/* Deletes what dfd's manifest lists, then the manifest, layers/ and the
 * directory `path` when they are empty. 1 when the directory is gone. */
static int delete_resume_dir(int dfd, const char *path)
{
    name_list l = {0};
    manifest_read(dfd, &l);
    int lfd = openat(dfd, "layers", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    delete_listed(dfd, lfd, &l);
    if (lfd >= 0)
        close(lfd);
    list_free(&l);
    unlinkat(dfd, "layers", AT_REMOVEDIR);
    unlinkat(dfd, MANIFEST_TMP, 0);
    unlinkat(dfd, RAANA_RESUME_MANIFEST, 0); /* last: a killed removal can be finished */
    return rmdir(path) == 0 || errno == ENOENT;
}

static volatile sig_atomic_t deferred_signal;

static void defer_signal(int sig)
{
    deferred_signal = sig;
}

static const int deferred_signals[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT};
#define N_DEFERRED ((int)(sizeof deferred_signals / sizeof deferred_signals[0]))

void raana_resume_remove(raana_resume *r, FILE *note)
{
    if (!r->opened)
        return;
    struct sigaction defer, old[N_DEFERRED];
    memset(&defer, 0, sizeof defer);
    defer.sa_handler = defer_signal;
    sigemptyset(&defer.sa_mask);
    deferred_signal = 0;
    for (int i = 0; i < N_DEFERRED; i++) /* dispositions are per process: every thread */
        sigaction(deferred_signals[i], &defer, &old[i]);
    char trash[4300];
    snprintf(trash, sizeof trash, "%s%s", r->dir, RAANA_RESUME_TRASH);
    const char *path = rename(r->dir, trash) == 0 ? trash : r->dir;
    close(r->layers_fd);
    r->layers_fd = -1;
    if (!delete_resume_dir(r->dir_fd, path) && note)
        raana_log_line(note, "resume: left %s in place: it holds files raana did not create", path);
    raana_resume_close(r);
    for (int i = 0; i < N_DEFERRED; i++)
        sigaction(deferred_signals[i], &old[i], NULL);
}

int raana_resume_deferred_signal(void)
{
    return (int)deferred_signal;
}

void raana_resume_discard_if_empty(raana_resume *r)
{
    if (!r->opened)
        return;
    int n = 0;
    each_entry(r->dir_fd, "", count_entry, &n);
    each_entry(r->layers_fd, "layers/", count_entry, &n);
    if (n == 0)
        remove_if_empty(r);
    raana_resume_close(r);
}

void raana_resume_remove_leftover(const char *output_path, FILE *note)
{
    char trash[4300];
    struct stat sb;
    snprintf(trash, sizeof trash, "%s.resume%s", output_path, RAANA_RESUME_TRASH);
    if (lstat(trash, &sb) != 0)
        return;
    int dfd = open(trash, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int gone = dfd >= 0 && delete_resume_dir(dfd, trash);
    if (dfd >= 0)
        close(dfd);
    if (note)
        raana_log_line(note,
                       gone ? "resume: removed %s, left by an interrupted job"
                            : "resume: left %s alone: it holds files raana did not create",
                       trash);
}

/* ---- calibration ------------------------------------------------------------- */

#define CALIBRATION_FILE "calibration.bin"

raana_status raana_resume_save_calibration(const raana_resume *r, uint64_t fingerprint,
                                           const raana_layer_stats *stats, int n_layers,
                                           double loss, raana_error *err)
{
    char path[4400];
    raana_bytebuf b = {0};
    snprintf(path, sizeof path, "%s/%s", r->dir, CALIBRATION_FILE);
    if (!r->opened)
        return RAANA_INTERNAL(err, "%s: the resume directory is not open", path);
    put_header(&b, CALIB_MAGIC, fingerprint);
    int32_t n = n_layers;
    PUT(&b, n);
    PUT(&b, loss);
    raana_bytebuf_put(&b, stats, (size_t)n_layers * sizeof *stats);
    return buf_commit(&b, r->dir_fd, CALIBRATION_FILE, path, err);
}

int raana_resume_load_calibration(const raana_resume *r, uint64_t fingerprint,
                                  raana_layer_stats *stats, int n_layers, double *loss)
{
    char *data = NULL;
    byte_reader rd;
    int ok = r->opened &&
             open_checked(r->dir_fd, CALIBRATION_FILE, CALIB_MAGIC, fingerprint, &data, &rd);
    int32_t n = -1;
    if (ok) {
        TAKE(&rd, n);
        TAKE(&rd, *loss);
        ok = n == n_layers && rd.left == (size_t)n_layers * sizeof *stats;
    }
    if (ok)
        read_bytes(&rd, stats, (size_t)n_layers * sizeof *stats);
    free(data);
    return ok && !rd.failed;
}

/* ---- layers ------------------------------------------------------------------ */

/* NAME.bin in layers/, and the path shown in messages. */
static void layer_file(const raana_resume *r, const char *name, char *file, size_t file_size,
                       char *shown, size_t shown_size)
{
    snprintf(file, file_size, "%s.bin", name);
    if (shown)
        snprintf(shown, shown_size, "%s/layers/%s", r->dir, file);
}

raana_status raana_resume_save_layer(const raana_resume *r, const char *name, uint64_t fingerprint,
                                     const raana_qlayer *q, double rel_error, raana_error *err)
{
    char file[NAME_MAX + 16], path[4400];
    raana_bytebuf b = {0};
    layer_file(r, name, file, sizeof file, path, sizeof path);
    if (!r->opened || strchr(name, '/'))
        return RAANA_INTERNAL(err, "%s: not a file of the resume directory", path);
    put_header(&b, LAYER_MAGIC, fingerprint);
    int32_t ints[8] = {q->d_in,   q->d_out, q->code_bits, (int32_t)q->tricks,
                       q->n_kept, q->m_a,   q->m_b,       q->n_held};
    uint64_t packed_bytes = q->packed_bytes;
    uint8_t has_mu = q->mu != NULL, has_rs = q->row_scale != NULL;
    raana_bytebuf_put(&b, ints, sizeof ints);
    PUT(&b, q->bits);
    PUT(&b, q->key);
    PUT(&b, packed_bytes);
    PUT(&b, q->mean_cosine);
    PUT(&b, rel_error);
    PUT(&b, has_mu);
    PUT(&b, has_rs);
    size_t d_in = (size_t)q->d_in, d_out = (size_t)q->d_out, held = (size_t)q->n_held;
    raana_bytebuf_reserve(&b, (has_mu + has_rs) * d_in * sizeof(float) +
                                  held * (sizeof *q->held_cols + d_in * sizeof *q->held_values) +
                                  d_out * (q->packed_bytes + sizeof *q->rescale));
    if (has_mu)
        raana_bytebuf_put(&b, q->mu, d_in * sizeof *q->mu);
    if (has_rs)
        raana_bytebuf_put(&b, q->row_scale, d_in * sizeof *q->row_scale);
    raana_bytebuf_put(&b, q->held_cols, held * sizeof *q->held_cols);
    raana_bytebuf_put(&b, q->held_values, held * d_in * sizeof *q->held_values);
    raana_bytebuf_put(&b, q->packed, d_out * q->packed_bytes);
    raana_bytebuf_put(&b, q->rescale, d_out * sizeof *q->rescale);
    int32_t rank = q->lowrank_rank;
    PUT(&b, rank);
    if (rank > 0) {
        raana_bytebuf_put(&b, q->lowrank_a, d_out * (size_t)rank * sizeof *q->lowrank_a);
        raana_bytebuf_put(&b, q->lowrank_b, (size_t)rank * d_in * sizeof *q->lowrank_b);
    }
    return buf_commit(&b, r->layers_fd, file, path, err);
}

/* malloc(n) and read n bytes; NULL for n == 0. */
static void *take_array(byte_reader *rd, size_t n)
{
    if (n == 0 || rd->failed || n > rd->left) {
        rd->failed |= n > rd->left;
        return NULL;
    }
    void *p = malloc(n);
    if (!p)
        rd->failed = 1;
    else
        read_bytes(rd, p, n);
    return p;
}

int raana_resume_has_layer(const raana_resume *r, const char *name, uint64_t fingerprint)
{
    char file[NAME_MAX + 16], head[8 + 4 + 8] = {0};
    layer_file(r, name, file, sizeof file, NULL, 0);
    if (!r->opened || strchr(name, '/'))
        return 0;
    int fd = openat(r->layers_fd, file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return 0;
    ssize_t got = read(fd, head, sizeof head);
    close(fd);
    uint32_t version;
    uint64_t fp;
    memcpy(&version, head + 8, 4);
    memcpy(&fp, head + 12, 8);
    return got == (ssize_t)sizeof head && memcmp(head, LAYER_MAGIC, 8) == 0 &&
           version == RESUME_FORMAT && fp == fingerprint;
}

int raana_resume_load_layer(const raana_resume *r, const char *name, uint64_t fingerprint,
                            raana_qlayer *q, double *rel_error)
{
    char file[NAME_MAX + 16], *data = NULL;
    byte_reader rd;
    memset(q, 0, sizeof *q);
    layer_file(r, name, file, sizeof file, NULL, 0);
    if (!r->opened || strchr(name, '/') ||
        !open_checked(r->layers_fd, file, LAYER_MAGIC, fingerprint, &data, &rd))
        return 0;
    int32_t ints[8];
    uint64_t packed_bytes;
    uint8_t has_mu, has_rs;
    read_bytes(&rd, ints, sizeof ints);
    TAKE(&rd, q->bits);
    TAKE(&rd, q->key);
    TAKE(&rd, packed_bytes);
    TAKE(&rd, q->mean_cosine);
    TAKE(&rd, *rel_error);
    TAKE(&rd, has_mu);
    TAKE(&rd, has_rs);
    q->d_in = ints[0], q->d_out = ints[1], q->code_bits = ints[2], q->tricks = (unsigned)ints[3];
    q->n_kept = ints[4], q->m_a = ints[5], q->m_b = ints[6], q->n_held = ints[7];
    q->packed_bytes = (size_t)packed_bytes;
    int sane = !rd.failed && q->d_in > 0 && q->d_out > 0 && q->n_held >= 0 &&
               q->n_held <= q->d_out && q->packed_bytes <= (size_t)q->d_in;
    size_t d_in = (size_t)q->d_in, d_out = (size_t)q->d_out, held = (size_t)q->n_held;
    if (sane) {
        if (has_mu)
            q->mu = take_array(&rd, d_in * sizeof *q->mu);
        if (has_rs)
            q->row_scale = take_array(&rd, d_in * sizeof *q->row_scale);
        q->held_cols = take_array(&rd, held * sizeof *q->held_cols);
        q->held_values = take_array(&rd, held * d_in * sizeof *q->held_values);
        q->packed = take_array(&rd, d_out * q->packed_bytes);
        q->rescale = take_array(&rd, d_out * sizeof *q->rescale);
        int32_t rank = -1;
        TAKE(&rd, rank);
        sane = !rd.failed && rank >= 0 && rank <= q->d_in && rank <= q->d_out;
        if (sane && rank > 0) {
            q->lowrank_rank = rank;
            q->lowrank_a = take_array(&rd, d_out * (size_t)rank * sizeof *q->lowrank_a);
            q->lowrank_b = take_array(&rd, (size_t)rank * d_in * sizeof *q->lowrank_b);
        }
    }
    raana_error ignored;
    int ok = sane && !rd.failed && rd.left == 0 &&
             raana_rotation_create(&q->rot, q->d_in, q->key, &ignored) == RAANA_OK;
    free(data);
    if (!ok)
        raana_qlayer_free(q);
    return ok;
}
