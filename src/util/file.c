/* file.c — slurping files and resolving paths (see file.h). */
#include "raana/file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

raana_status raana_read_file(const char *path, char **data, size_t *len, raana_error *err)
{
    struct stat st;
    *data = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return raana_fail(err, RAANA_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return raana_fail(err, RAANA_ERR_IO, "%s: not a regular file", path);
    }
    size_t size = (size_t)st.st_size;
    char *buf = malloc(size + 1);
    if (!buf) {
        fclose(f);
        return raana_fail(err, RAANA_ERR_NOMEM, "%s: cannot allocate %zu bytes", path, size + 1);
    }
    size_t got = fread(buf, 1, size, f);
    int read_failed = ferror(f);
    fclose(f);
    if (read_failed || got != size) {
        free(buf);
        return raana_fail(err, RAANA_ERR_IO, "%s: read %zu of %zu bytes", path, got, size);
    }
    buf[size] = '\0';
    *data = buf;
    *len = size;
    return RAANA_OK;
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
