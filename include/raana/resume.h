/* resume.h — the work directory that lets a killed job resume: the
 * calibration statistics and every finished quantized layer, each in its
 * own file written atomically and stamped with a fingerprint of everything
 * it depends on. A file whose fingerprint does not match the current job
 * (another checkpoint, other settings, other calibration data) is ignored
 * and the work is redone, so resuming can never mix results.
 *
 * Layout (docs/FORMAT.md, "Resume directory"): OUTPUT.resume/calibration.bin
 * and OUTPUT.resume/layers/NAME.bin. The files are a private, machine-local
 * format (native byte order) with a magic, a version, the fingerprint and a
 * trailing XXH3-64 checksum of the content. No MPI. */
#ifndef RAANA_RESUME_H
#define RAANA_RESUME_H

#include <stdint.h>

#include "raana/calibrate.h"
#include "raana/error.h"
#include "raana/qlayer.h"

typedef struct {
    char dir[4200];
} raana_resume;

/* dir = OUTPUT.resume; creates it and its layers/ subdirectory. */
raana_status raana_resume_open(raana_resume *r, const char *output_path, raana_error *err);
/* Removes the directory and its files (after the container is in place). */
void raana_resume_remove(const raana_resume *r);

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
/* 1 and *q filled (free with raana_qlayer_free) when found with this
 * fingerprint, else 0. */
int raana_resume_load_layer(const raana_resume *r, const char *name, uint64_t fingerprint,
                            raana_qlayer *q, double *rel_error);

#endif
