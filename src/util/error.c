/* error.c — filling and decorating raana_error records (see error.h). */
#include "raana/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

raana_status raana_fail(raana_error *err, raana_status status, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->status = status;
        err->agreed = 0;
    }
    return status;
}

raana_status raana_error_prefix(raana_error *err, const char *fmt, ...)
{
    char prefix[RAANA_ERROR_MSG_MAX], old[RAANA_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    snprintf(err->msg, sizeof err->msg, "%s: %s", prefix, old);
    return err->status;
}

raana_status raana_fail_internal_at(raana_error *err, const char *file, int line, const char *fmt,
                                    ...)
{
    if (err) {
        char what[RAANA_ERROR_MSG_MAX];
        const char *base = strrchr(file, '/');
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(what, sizeof what, fmt, ap);
        va_end(ap);
        snprintf(err->msg, sizeof err->msg, "internal error at %s:%d: %s", base ? base + 1 : file,
                 line, what);
        err->status = RAANA_ERR_INTERNAL;
        err->agreed = 0;
    }
    return RAANA_ERR_INTERNAL;
}

void raana_error_clear(raana_error *err)
{
    err->status = RAANA_OK;
    err->agreed = 0;
    err->msg[0] = '\0';
}

raana_status raana_error_restatus(raana_error *err, raana_status status)
{
    err->status = status;
    return status;
}

const char *raana_status_name(raana_status status)
{
    switch (status) {
    case RAANA_OK: return "ok";
    case RAANA_ERR_USAGE: return "usage";
    case RAANA_ERR_CONFIG: return "config";
    case RAANA_ERR_INPUT: return "input";
    case RAANA_ERR_IO: return "io";
    case RAANA_ERR_NOMEM: return "memory";
    case RAANA_ERR_MPI: return "mpi";
    case RAANA_ERR_UNSUPPORTED: return "unsupported";
    case RAANA_ERR_NUMERIC: return "numeric";
    case RAANA_ERR_PREEMPTED: return "preempted";
    case RAANA_ERR_INTERNAL: return "internal";
    }
    return "unknown";
}
