/* file.c — slurping files and resolving paths (see file.h). */
#include "raana/file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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
