/* error.h — raana's status codes and the error record that every fallible
 * function fills.
 *
 * Convention (after zstd's error_private.h and SQLite's sqlite3_errmsg):
 * a fallible function returns a raana_status; on failure it has written one
 * human-readable sentence into the caller's raana_error naming the culprit
 * (file, tensor, key, rank). Nothing below main() prints; main() turns the
 * record into one line on stderr and exits with the status value, so the
 * numeric values are the documented exit codes (README "Exit codes"). */
#ifndef RAANA_ERROR_H
#define RAANA_ERROR_H

#include <stddef.h>

typedef enum {
    RAANA_OK = 0,
    RAANA_ERR_USAGE = 2,       /* command line */
    RAANA_ERR_CONFIG = 3,      /* config.ini: unknown key, bad value, ... */
    RAANA_ERR_INPUT = 4,       /* checkpoint: config.json, safetensors, tokenizer */
    RAANA_ERR_IO = 5,          /* file system: open, read, write, mmap, rename */
    RAANA_ERR_NOMEM = 6,       /* allocation failed */
    RAANA_ERR_MPI = 7,         /* launch environment, communication, a rank died */
    RAANA_ERR_UNSUPPORTED = 8, /* valid input this version cannot handle */
    RAANA_ERR_NUMERIC = 9,     /* NaN/Inf in weights or results */
    RAANA_ERR_PREEMPTED = 75,  /* SIGUSR1/SIGTERM: stopped, resume by running again */
    RAANA_ERR_INTERNAL = 70    /* a bug: an invariant did not hold */
} raana_status;

#define RAANA_ERROR_MSG_MAX 1024

typedef struct {
    raana_status status;
    int agreed; /* set by raana_comm_agree: msg already names the failing rank */
    char msg[RAANA_ERROR_MSG_MAX];
} raana_error;

/* Records status and a printf-style message in err (if err is not NULL) and
 * returns status, so callers can write `return raana_fail(err, ...);`. */
raana_status raana_fail(raana_error *err, raana_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prepends "prefix: " to the message already in err (adds context on the way
 * up, e.g. the file name). Returns err->status. */
raana_status raana_error_prefix(raana_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

void raana_error_clear(raana_error *err);

/* Keeps the message, changes the status (e.g. an I/O failure reading
 * config.ini is reported as a config error). Returns the new status. */
raana_status raana_error_restatus(raana_error *err, raana_status status);

/* Short stable name of a status ("config", "input", ...). */
const char *raana_status_name(raana_status status);

/* Like raana_fail with RAANA_ERR_INTERNAL, but the message starts with the
 * source location "file:line: " so that a bug report points at the broken
 * invariant. Use through RAANA_INTERNAL(err, fmt, ...). */
raana_status raana_fail_internal_at(raana_error *err, const char *file, int line, const char *fmt,
                                    ...) __attribute__((format(printf, 4, 5)));

/* ---- The one error idiom (after PETSc's PetscCall and zstd's FORWARD_IF_ERROR).
 *
 * A function that holds no resources propagates with RAANA_CALL:
 *
 *     RAANA_CALL(raana_read_header(f, &h, err));
 *
 * A function that acquires resources declares `raana_status st = RAANA_OK;`,
 * uses RAANA_CHECK / RAANA_FAIL_GOTO, and releases everything at one
 * `cleanup:` label, as HDF5's examples do:
 *
 *     raana_status st = RAANA_OK;
 *     float *buf = NULL;
 *     RAANA_CHECK(raana_alloc_floats(&buf, n, "the buffer", err));
 *     if (n == 0)
 *         RAANA_FAIL_GOTO(err, RAANA_ERR_INPUT, "%s: empty", path);
 *     ...
 * cleanup:
 *     free(buf);
 *     return st;
 *
 * Internal errors (a bug: an invariant did not hold) are raised with
 * RAANA_INTERNAL(err, fmt, ...), which records file:line. */
#define RAANA_CALL(expr)                                                                           \
    do {                                                                                           \
        raana_status raana_call_st_ = (expr);                                                      \
        if (raana_call_st_ != RAANA_OK)                                                            \
            return raana_call_st_;                                                                 \
    } while (0)

#define RAANA_CHECK(expr)                                                                          \
    do {                                                                                           \
        st = (expr);                                                                               \
        if (st != RAANA_OK)                                                                        \
            goto cleanup;                                                                          \
    } while (0)

#define RAANA_FAIL_GOTO(err, status, ...)                                                          \
    do {                                                                                           \
        st = raana_fail((err), (status), __VA_ARGS__);                                             \
        goto cleanup;                                                                              \
    } while (0)

#define RAANA_INTERNAL(err, ...) raana_fail_internal_at((err), __FILE__, __LINE__, __VA_ARGS__)

#endif
