/* column_split.h — one layer encoded by every rank, each a piece of its
 * output columns (issue 11; docs/SCALING.md, "Layers split by output
 * columns"). The rank holding the weight finds the terms all columns
 * share (qlayer_encode.h) and sends every rank its piece of rows of
 * W[d_out][d_in] (piece k: raana_plan_split_piece); each rank encodes its
 * columns and measures their error; the codes and per-column sums come
 * back to the holder, which then holds the layer exactly as if it had
 * encoded it whole. Which layers: raana_plan_layer_split (plan.h). */
#ifndef RAANA_COLUMN_SPLIT_H
#define RAANA_COLUMN_SPLIT_H

#include <mpi.h>

#include "raana/error.h"
#include "raana/plan.h"
#include "raana/qlayer.h"

/* Collective over comm. holder: the rank holding weight[d_out][d_in]
 * (weight is read only there). On the holder, q receives the layer and
 * *rel its relative error ||What - W|| / ||W||; elsewhere q stays empty
 * (zeroed) and *rel 0. When any rank fails, every rank fails with the
 * lowest failing rank's message (comm.h). */
raana_status raana_column_split_encode(MPI_Comm comm, int holder, const float *weight,
                                       const raana_plan_layer *l, const raana_qlayer_params *p,
                                       raana_qlayer *q, double *rel, raana_error *err);

#endif
