/* file.c — slurping files and resolving paths (see file.h). */
#include "raana/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *file_kind(mode_t mode)
{
    if (S_ISDIR(mode))
        return "a directory";
    if (S_ISFIFO(mode))
        return "a FIFO (named pipe)";
    if (S_ISCHR(mode))
        return "a character device";
    if (S_ISBLK(mode))
        return "a block device";
    if (S_ISSOCK(mode))
        return "a socket";
    return "not a regular file";
}

raana_status raana_open_regular(const char *path, int *fd_out, size_t *size, raana_error *err)
{
    raana_status st = RAANA_OK;
    struct stat sb;
    *fd_out = -1;
    /* O_NONBLOCK: opening a FIFO for reading must not wait for a writer;
     * O_NOCTTY: a terminal must not become ours. Symbolic links are
     * followed (Hugging Face caches link every file to a blob). */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0)
        RAANA_FAIL_GOTO(err, RAANA_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (fstat(fd, &sb) != 0)
        RAANA_FAIL_GOTO(err, RAANA_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
    if (!S_ISREG(sb.st_mode))
        RAANA_FAIL_GOTO(err, RAANA_ERR_INPUT, "%s: is %s, not a regular file; refusing to read it",
                        path, file_kind(sb.st_mode));
    int flags = fcntl(fd, F_GETFL);
    if (flags >= 0)
        (void)fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    *fd_out = fd;
    *size = (size_t)sb.st_size;
    fd = -1; /* the caller's now */
cleanup:
    if (fd >= 0)
        close(fd);
    return st;
}

raana_status raana_read_file(const char *path, char **data, size_t *len, raana_error *err)
{
    raana_status st = RAANA_OK;
    size_t size;
    int fd = -1;
    FILE *f = NULL;
    char *buf = NULL;
    *data = NULL;
    *len = 0;
    RAANA_CALL(raana_open_regular(path, &fd, &size, err));
    f = fdopen(fd, "rb");
    if (!f)
        RAANA_FAIL_GOTO(err, RAANA_ERR_NOMEM, "%s: cannot open a stream: %s", path,
                        strerror(errno));
    buf = malloc(size + 1);
    if (!buf)
        RAANA_FAIL_GOTO(err, RAANA_ERR_NOMEM, "%s: cannot allocate %zu bytes", path, size + 1);
    size_t got = fread(buf, 1, size, f);
    if (ferror(f) || got != size)
        RAANA_FAIL_GOTO(err, RAANA_ERR_IO, "%s: read %zu of %zu bytes", path, got, size);
    buf[size] = '\0';
    *data = buf;
    *len = size;
    buf = NULL; /* the caller's now */
cleanup:
    free(buf);
    if (f)
        fclose(f); /* closes fd */
    else if (fd >= 0)
        close(fd);
    return st;
}

raana_status raana_path_resolve(char *out, size_t out_size, const char *base, const char *path,
                                raana_error *err)
{
    int n;
    if (path[0] == '/' || base == NULL || base[0] == '\0')
        n = snprintf(out, out_size, "%s", path);
    else
        n = snprintf(out, out_size, "%s/%s", base, path);
    if (n < 0 || (size_t)n >= out_size)
        return raana_fail(err, RAANA_ERR_CONFIG, "path too long: %s", path);
    return RAANA_OK;
}

void raana_path_dirname(char *out, size_t out_size, const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash) {
        snprintf(out, out_size, ".");
        return;
    }
    size_t n = (size_t)(slash - path);
    if (n == 0)
        n = 1; /* "/file" -> "/" */
    snprintf(out, out_size, "%.*s", (int)n, path);
}

raana_status raana_write_file_atomic(const char *path, const void *data, size_t len,
                                     raana_error *err)
{
    char tmp[4200];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return raana_fail(err, RAANA_ERR_IO, "path too long: %s", path);
    FILE *f = fopen(tmp, "wb");
    if (!f)
        return raana_fail(err, RAANA_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    errno = 0;
    int ok = fwrite(data, 1, len, f) == len && fflush(f) == 0 && fsync(fileno(f)) == 0;
    int saved = errno;
    ok = fclose(f) == 0 && ok;
    if (ok && rename(tmp, path) == 0)
        return RAANA_OK;
    saved = saved ? saved : errno;
    unlink(tmp);
    return raana_fail(err, RAANA_ERR_IO, "%s: cannot write: %s", path, strerror(saved));
}

raana_status raana_make_dir(const char *path, raana_error *err)
{
    struct stat st;
    if (mkdir(path, 0777) == 0 || (errno == EEXIST && stat(path, &st) == 0 && S_ISDIR(st.st_mode)))
        return RAANA_OK;
    return raana_fail(err, RAANA_ERR_IO, "%s: cannot create directory: %s", path,
                      errno == EEXIST ? "a file of that name exists" : strerror(errno));
}
