/* allocation.h — the "reduce + allocate" stage: every rank computes the
 * AllocateBits coefficient of its own quantized layers from the calibration
 * statistics and the norm of the weight after the tricks, one collective
 * gives every rank the whole table, and every rank solves the same
 * allocation (DESIGN sections 2 and 4). */
#ifndef RAANA_ALLOCATION_H
#define RAANA_ALLOCATION_H

#include <mpi.h>
#include <stdio.h>

#include "raana/allocate.h"
#include "raana/calibrate.h"
#include "raana/config.h"

typedef struct {
    int n_layers;              /* plan layers (quantized or not) */
    double *w_fro;             /* [n_layers] ||W after tricks||_F, 0 for excluded layers */
    double *coef;              /* [n_layers] c_l = grad_rms * x_rms * w_fro / sqrt(d_in) */
    double *bits;              /* [n_layers] allocated width (16: kept), 0 for excluded layers */
    raana_alloc_result result; /* over the quantized layers, in plan order */
    /* bits per quantized weight of the low-rank factors; the codes' budget
     * is avg_bits minus this */
    double factor_bits;
    /* [quantize] error_model = calibrated: f(b) per candidate (cfg->bits
     * order, error_table.h); NULL for the paper's model */
    double *unit_error;
} raana_allocation;

/* Collective. stats come from raana_pipeline_calibrate. A layer given the
 * candidate 16 (RAANA_BITS_KEEP) leaves the quantized layers of s->plan:
 * quantize = 0, kept_16bit = 1, so every later stage stores its checkpoint
 * tensor as it is, like an excluded layer's. */
raana_status raana_stage_allocate(MPI_Comm comm, raana_stage *s, const raana_config *cfg,
                                  const raana_layer_stats *stats, raana_allocation *a,
                                  raana_error *err);
void raana_allocation_free(raana_allocation *a);

/* One column of a layer table: its header, printf width, precision and
 * style ('e', 'f' or 'g'), and the value of plan layer i at
 * (const char *)value + i * stride. */
typedef struct {
    const char *header;
    int width, precision;
    char style;
    const double *value;
    size_t stride;
} raana_table_column;

/* The one layer table (the job's report, stored as /report/table, and
 * --allocate-only's): a header line, then per plan layer its name, its
 * shape d_out x d_in and the columns, "-" in every column for a layer not
 * quantized; every line starts with indent. */
void raana_layer_table_print(FILE *out, const char *indent, const raana_plan *plan,
                             const raana_table_column *cols, int n_cols);

/* The allocation and its layer table (bits, coefficient, statistics). */
void raana_allocation_print(FILE *out, const raana_plan *plan, const raana_config *cfg,
                            const raana_layer_stats *stats, const raana_allocation *a);

#endif
