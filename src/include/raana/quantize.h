/* quantize.h — the "quantize" stage: the ranks encode the layers with
 * RaBitQ-H at their allocated widths (OpenMP threads inside a layer),
 * spread over all ranks by predicted cost (balance.h; a layer of another
 * rank's block arrives from that rank, one at a time),
 * reusing layers a killed run already finished (resume.h), and one
 * reduction gives every rank the per-layer summary the container and the
 * report need. The ranks go in rounds of one layer each, agreeing after
 * every round on failure, on a preemption signal (preempt.h: then every
 * rank returns RAANA_ERR_PREEMPTED with the finished layers kept) and on
 * the layers done over all ranks (rank 0's progress line). */
#ifndef RAANA_QUANTIZE_H
#define RAANA_QUANTIZE_H

#include <mpi.h>
#include <stdint.h>
#include <stdio.h>

#include "raana/allocation.h"
#include "raana/fingerprint.h"
#include "raana/qlayer.h"
#include "raana/resume.h"

typedef struct {
    double rel_error;      /* ||What - W||_F / ||W||_F */
    double mean_cosine;    /* of the rotated columns and their codes */
    double effective_bits; /* stored bits per weight, raana_qlayer_effective_bits */
    int code_bits, n_kept, m_a, m_b, n_held;
    uint64_t packed_bytes; /* per column */
    /* [quantize] side_bits = 16: the exponents of the stored rescale, mu and
     * row_scale (half_scaled.h); 0 otherwise */
    int rescale_exp, mu_exp, row_scale_exp;
} raana_layer_summary;

typedef struct {
    int n_layers;
    raana_qlayer **layers;        /* [n_layers]: this rank's quantized layers, NULL elsewhere */
    raana_layer_summary *summary; /* [n_layers]: identical on every rank; zero if not quantized,
                                   * error 0 and 16 bits if kept in 16 bits */
    int reused, encoded;          /* layers taken from the resume directory / encoded now */
    int *quantizer; /* [n_layers]: the rank that encoded layer i (-1: not quantized), identical
                     * on every rank; that rank holds layers[i] and writes it */
} raana_quantized;

/* Threads per rank: cfg->threads, else OMP_NUM_THREADS, else 1. */
int raana_quantize_threads(const raana_config *cfg);

/* Collective. resume may be NULL (nothing saved or reused). */
raana_status raana_stage_quantize(MPI_Comm comm, const raana_stage *s, const raana_config *cfg,
                                  const raana_allocation *alloc, const raana_fingerprints *fp,
                                  const raana_resume *resume, raana_quantized *q, FILE *progress,
                                  raana_error *err);
void raana_quantized_free(raana_quantized *q);

#endif
