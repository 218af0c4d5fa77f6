/* resume.h — the work directory that lets a killed job resume: the
 * calibration statistics and every finished quantized layer, each in its
 * own file written atomically and stamped with a fingerprint of everything
 * it depends on. A file whose fingerprint does not match the current job
 * (another checkpoint, other settings, other calibration data) is ignored
 * and the work is redone, so resuming can never mix results.
 *
 * Layout (docs/FORMAT.md, "Resume directory"): OUTPUT.resume/MANIFEST,
 * OUTPUT.resume/calibration.bin and OUTPUT.resume/layers/NAME.bin. raana
 * deletes only what the manifest lists, and every file is created with
 * O_EXCL|O_NOFOLLOW relative to the directory's handle, so a link planted
 * there is never followed. The files are a private, machine-local
 * format (native byte order) with a magic, a version, the fingerprint and a
 * trailing XXH3-64 checksum of the content. No MPI. */
#ifndef RAANA_RESUME_H
#define RAANA_RESUME_H

#include <stdint.h>
#include <stdio.h>

#include "raana/calibrate.h"
#include "raana/error.h"
#include "raana/plan.h"
#include "raana/qlayer.h"

typedef struct {
    char dir[4200];        /* OUTPUT.resume */
    int dir_fd, layers_fd; /* the directory and layers/, opened without following links */
    int opened;
} raana_resume;

/* The files of the directory, as recorded in its manifest (one line each
 * after the header; the ".tmp" sibling of each is raana's too). */
#define RAANA_RESUME_MANIFEST "MANIFEST"
#define RAANA_RESUME_TRASH    ".removing" /* OUTPUT.resume.removing: being deleted */

/* Rank 0, before any other rank: creates dir = OUTPUT.resume (or adopts
 * the one an interrupted run left), never following a symbolic link, and
 * records in its manifest every file this job may create there
 * (calibration.bin and layers/NAME.bin for the plan's quantized layers),
 * before any is created. Refuses (RAANA_ERR_IO, naming them, touching
 * nothing) a link, a directory that holds anything the manifest does not
 * list, or one without a manifest that is not empty. */
raana_status raana_resume_open(raana_resume *r, const char *output_path, const raana_plan *plan,
                               raana_error *err);
/* The other ranks, after rank 0's open: opens the directory it prepared. */
raana_status raana_resume_attach(raana_resume *r, const char *output_path, raana_error *err);
/* Closes the directory handles; safe on a zeroed or closed r. */
void raana_resume_close(raana_resume *r);

/* Rank 0, once the container is in place: renames the directory to
 * OUTPUT.resume.removing, then deletes the files its manifest lists, the
 * manifest last, and the directory. SIGTERM, SIGINT, SIGHUP and SIGQUIT
 * wait until it is done: raana_resume_deferred_signal() then returns the
 * one that came (0 if none), for main() to raise once the lock is released.
 * After a SIGKILL the renamed directory is finished off by the next job on
 * this output (raana_resume_remove_leftover). A file raana did not create
 * stays, and is named on `note`. Closes r. */
void raana_resume_remove(raana_resume *r, FILE *note);
int raana_resume_deferred_signal(void);
/* Rank 0, when the job failed: removes the directory if it holds no
 * finished work (only the manifest), so a failure never leaves an empty
 * OUTPUT.resume/ behind. Closes r. */
void raana_resume_discard_if_empty(raana_resume *r);
/* Rank 0, holding the output lock: finishes the removal of an
 * OUTPUT.resume.removing an interrupted job left (listed files only), and
 * says so on `note`. Leaves alone what is not a directory raana made. */
void raana_resume_remove_leftover(const char *output_path, FILE *note);

/* The calibration result: loss and stats[n_layers]. load returns 1 when a
 * file with this fingerprint and layer count was found and read, 0 when
 * there is none or it belongs to something else; fails only on I/O errors
 * other than absence. */
raana_status raana_resume_save_calibration(const raana_resume *r, uint64_t fingerprint,
                                           const raana_layer_stats *stats, int n_layers,
                                           double loss, raana_error *err);
int raana_resume_load_calibration(const raana_resume *r, uint64_t fingerprint,
                                  raana_layer_stats *stats, int n_layers, double *loss);

/* One quantized layer and its relative reconstruction error. */
raana_status raana_resume_save_layer(const raana_resume *r, const char *name, uint64_t fingerprint,
                                     const raana_qlayer *q, double rel_error, raana_error *err);
/* 1 when the layer's file is there with this fingerprint in its header
 * (its content is not read or checked: a prediction, for the quantize
 * stage's schedule), else 0. */
int raana_resume_has_layer(const raana_resume *r, const char *name, uint64_t fingerprint);
/* 1 and *q filled (free with raana_qlayer_free) when found with this
 * fingerprint, else 0. */
int raana_resume_load_layer(const raana_resume *r, const char *name, uint64_t fingerprint,
                            raana_qlayer *q, double *rel_error);

#endif
