/* outpaths.h — the files the job writes next to OUTPUT, made so that a
 * symbolic link or a second job can never make raana write or delete a
 * file it did not create (docs/FORMAT.md, "Files next to the output"):
 *  - OUTPUT.lock: an exclusive flock that rank 0 holds for the whole job,
 *    the file holding "host=H pid=P job=J" of its holder;
 *  - OUTPUT.partial: the container being written, created with
 *    O_EXCL|O_NOFOLLOW and the container's size bound reserved in it, then
 *    renamed to OUTPUT (which replaces a link there, never its target);
 *  - OUTPUT.resume/ is resume.h's.
 * Also the MPI-IO settings the job needs before MPI_Init. No MPI calls:
 * rank 0 calls these and the callers agree on the result. */
#ifndef RAANA_OUTPATHS_H
#define RAANA_OUTPATHS_H

#include <stdint.h>
#include <stdio.h>

#include "raana/config.h"
#include "raana/error.h"

/* The longest suffix raana appends to OUTPUT's name: ".resume.removing". */
#define RAANA_OUTPUT_SUFFIX_MAX 16
/* With Open MPI's sharedfp/lockedfile component, longer paths overflow a
 * fixed buffer inside MPI_File_open (docs/DECISIONS.md). */
#define RAANA_LOCKEDFILE_PATH_MAX 220

/* Before MPI_Init, unless the user chose them: selects Open MPI's
 * "individual" shared-file-pointer component (OMPI_MCA_sharedfp=individual;
 * raana never uses the shared file pointer, and the default "lockedfile"
 * component overflows a buffer on paths of about 238 characters) and its
 * "individual" collective-write component (OMPI_MCA_fcoll=individual: every
 * layer's data comes from one rank, so aggregating it on other ranks only
 * adds rounds of communication; docs/DECISIONS.md). */
void raana_mpiio_defaults(void);

/* Fails (RAANA_ERR_CONFIG) when OUTPUT's name plus raana's suffixes does
 * not fit the directory's name limit, or the path is too long for a
 * sharedfp component the user forced; (RAANA_ERR_IO) when OUTPUT.partial or
 * OUTPUT.resume is a symbolic link or OUTPUT.partial is not a regular file. */
raana_status raana_output_paths_check(const char *output_path, raana_error *err);

typedef struct {
    int fd; /* -1: not held */
    char path[RAANA_PATH_MAX + 8];
} raana_output_lock;

/* Takes OUTPUT.lock (never through a link) and writes this process's
 * record into it. Another live holder: RAANA_ERR_IO naming it. A lock left
 * by a dead job is taken over, said on `note`: free in flock's eyes, or
 * held by a process that is not the recorded one while the recorded pid is
 * gone from this host. On a file system without flock the job goes on
 * unprotected, said on `note`. */
raana_status raana_output_lock_take(raana_output_lock *l, const char *output_path, FILE *note,
                                    raana_error *err);
/* Deletes the lock file (if still ours) and releases the lock. Safe on an
 * unheld lock. */
void raana_output_lock_release(raana_output_lock *l);

/* Every rank, before writing: fails (RAANA_ERR_IO) when this process's
 * file-size limit (ulimit -f) is below `bytes`. */
raana_status raana_file_size_limit_check(const char *path, uint64_t bytes, raana_error *err);

typedef struct {
    int fd; /* -1: none */
    char path[RAANA_PATH_MAX + 16];
} raana_partial;

/* Creates OUTPUT.partial afresh (a regular file left by an interrupted job
 * is deleted first; a link or anything else is refused) and reserves
 * `bytes` in it with fallocate(FALLOC_FL_KEEP_SIZE): the size stays 0, so
 * H5Fcreate does not truncate it and the blocks are held while the
 * container is written. Where the file system cannot preallocate, its free
 * space is compared with `bytes` instead. */
raana_status raana_partial_open(raana_partial *p, const char *output_path, uint64_t bytes,
                                raana_error *err);
/* The written and verified partial becomes OUTPUT: checks it is still the
 * file created above, gives back the reserved blocks past its end, syncs,
 * renames and syncs the directory. */
raana_status raana_partial_publish(raana_partial *p, const char *output_path, raana_error *err);
/* Deletes OUTPUT.partial if it is still ours; safe when there is none. */
void raana_partial_discard(raana_partial *p);

#endif
