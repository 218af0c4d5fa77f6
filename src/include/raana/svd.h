/* svd.h — singular value decomposition of a double matrix: on one rank with
 * LAPACK (dgesvd), or by a team of ranks with ScaLAPACK (pdgesvd on a BLACS
 * process grid, the matrix distributed block-cyclically). Used for low-rank
 * compensation of quantization error (docs/DECISIONS.md, "Distributed SVD").
 *
 * Matrices are column-major with leading dimension = their row count. The
 * result is the thin SVD truncated to the top k singular triplets, returned
 * as s (k values, descending), US = U[:, :k] diag(s) (m x k) and
 * Vt = V[:, :k]^T (k x n), so that A ~ US Vt.
 *
 * pdgesvd, not pdsyevd on the Gram matrix A^T A: the Gram matrix squares the
 * condition number, so singular values below ~1e-8 of the largest lose all
 * their digits, and the error spectra this is used for decay slowly. */
#ifndef RAANA_SVD_H
#define RAANA_SVD_H

#include <mpi.h>

#include "raana/error.h"

/* A BLACS process grid: nprow x npcol ranks, square blocks of `block`. */
typedef struct {
    int nprow, npcol, block;
} raana_svd_grid;

/* One rank, LAPACK. a (m x n) is not modified. 1 <= k <= min(m, n). */
raana_status raana_svd_local(const double *a, int m, int n, int k, double *s, double *us,
                             double *vt, raana_error *err);

/* Collective over comm. The first nprow * npcol ranks of comm form the grid
 * (comm must have at least that many); the others return at once with
 * RAANA_OK. a is read on comm's rank 0 only, and s, us, vt are written there
 * only (other ranks may pass NULL). A failure on any grid rank is returned
 * on every grid rank (raana_comm_agree). */
raana_status raana_svd_scalapack(MPI_Comm comm, raana_svd_grid grid, const double *a, int m, int n,
                                 int k, double *s, double *us, double *vt, raana_error *err);

/* The grid for an m x n matrix on `ranks` ranks: 1 x 1 (meaning: use
 * raana_svd_local) when m * n < min_elems or ranks == 1; otherwise the most
 * square pr x pc <= ranks with pr * block <= m and pc * block <= n, so no
 * rank gets an empty share. */
raana_svd_grid raana_svd_choose_grid(int m, int n, int ranks, long long min_elems, int block);

#endif
