/* svd.c — truncated SVD of a double matrix on one rank (LAPACK dgesvd) or on
 * a BLACS grid (ScaLAPACK pdgesvd): distribution of the matrix from one rank
 * to the grid block-cyclically, and the gather of U diag(s) and V^T back
 * (see svd.h). */
#include "raana/svd.h"

#include <lapacke.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "raana/comm.h"

/* ScaLAPACK and BLACS have no C header on Debian (docs: PLATFORM notes). */
extern void Cblacs_get(int context, int what, int *val);
extern void Cblacs_gridinit(int *context, const char *order, int nprow, int npcol);
extern void Cblacs_gridinfo(int context, int *nprow, int *npcol, int *myrow, int *mycol);
extern void Cblacs_gridexit(int context);
extern int Csys2blacs_handle(MPI_Comm comm);
extern void Cfree_blacs_system_handle(int handle);
extern int numroc_(const int *n, const int *nb, const int *iproc, const int *isrcproc,
                   const int *nprocs);
extern void descinit_(int *desc, const int *m, const int *n, const int *mb, const int *nb,
                      const int *irsrc, const int *icsrc, const int *ictxt, const int *lld,
                      int *info);
extern void pdgesvd_(const char *jobu, const char *jobvt, const int *m, const int *n, double *a,
                     const int *ia, const int *ja, const int *desca, double *s, double *u,
                     const int *iu, const int *ju, const int *descu, double *vt, const int *ivt,
                     const int *jvt, const int *descvt, double *work, const int *lwork, int *info,
                     size_t jobu_len, size_t jobvt_len);

#define TAG_SHARE 0x5d1

static raana_status check_shape(int m, int n, int k, raana_error *err)
{
    if (m < 1 || n < 1 || k < 1 || k > (m < n ? m : n))
        return raana_fail(err, RAANA_ERR_INTERNAL, "SVD of a %d x %d matrix asked for %d values", m,
                          n, k);
    return RAANA_OK;
}

static raana_status check_finite(const double *a, size_t count, raana_error *err)
{
    for (size_t i = 0; i < count; i++)
        if (!isfinite(a[i]))
            return raana_fail(err, RAANA_ERR_NUMERIC, "SVD input has a non-finite value at %zu", i);
    return RAANA_OK;
}

/* us[:, j] = u[:, j] * s[j] for the first k columns (ldu = m). */
static void scale_columns(const double *u, const double *s, int m, int k, double *us)
{
    for (int j = 0; j < k; j++)
        for (int i = 0; i < m; i++)
            us[(size_t)j * m + i] = u[(size_t)j * m + i] * s[j];
}

/* The first k rows of vt_full (kmin x n, ld kmin) into vt (k x n, ld k). */
static void top_rows(const double *vt_full, int kmin, int n, int k, double *vt)
{
    for (int j = 0; j < n; j++)
        memcpy(vt + (size_t)j * k, vt_full + (size_t)j * kmin, (size_t)k * sizeof *vt);
}

raana_status raana_svd_local(const double *a, int m, int n, int k, double *s, double *us,
                             double *vt, raana_error *err)
{
    raana_status st = RAANA_OK;
    int kmin = m < n ? m : n;
    double *work = NULL, *u = NULL, *vtf = NULL, *sf = NULL, *superb = NULL;
    RAANA_CHECK(check_shape(m, n, k, err));
    RAANA_CHECK(check_finite(a, (size_t)m * n, err));
    work = malloc((size_t)m * n * sizeof *work);
    u = malloc((size_t)m * kmin * sizeof *u);
    vtf = malloc((size_t)kmin * n * sizeof *vtf);
    sf = malloc((size_t)kmin * sizeof *sf);
    superb = malloc((size_t)kmin * sizeof *superb);
    if (!work || !u || !vtf || !sf || !superb)
        RAANA_FAIL_GOTO(err, RAANA_ERR_NOMEM, "no memory for the SVD of a %d x %d matrix", m, n);
    memcpy(work, a, (size_t)m * n * sizeof *work);
    lapack_int info =
        LAPACKE_dgesvd(LAPACK_COL_MAJOR, 'S', 'S', m, n, work, m, sf, u, m, vtf, kmin, superb);
    if (info > 0)
        RAANA_FAIL_GOTO(err, RAANA_ERR_NUMERIC,
                        "LAPACK dgesvd did not converge on a %d x %d matrix (%d superdiagonals)", m,
                        n, (int)info);
    if (info < 0)
        RAANA_FAIL_GOTO(err, RAANA_ERR_INTERNAL, "LAPACK dgesvd: argument %d is invalid",
                        (int)-info);
    memcpy(s, sf, (size_t)k * sizeof *s);
    scale_columns(u, sf, m, k, us);
    top_rows(vtf, kmin, n, k, vt);
cleanup:
    free(work);
    free(u);
    free(vtf);
    free(sf);
    free(superb);
    return st;
}

/* ---- block-cyclic distribution ---------------------------------------------- */

/* Global index of local index l on process p of np, block b, source 0. */
static long local_to_global(long l, int b, int p, int np)
{
    return (l / b) * (long)np * b + (long)p * b + l % b;
}

/* One rank's share of a global m x n matrix (ld m): rows of process row pr,
 * columns of process column pc, into loc (mloc x nloc, ld mloc); or back
 * when `to_global`. */
static void copy_share(double *global, int m, double *loc, int mloc, int nloc, int pr, int pc,
                       const raana_svd_grid *g, int to_global)
{
    for (int lj = 0; lj < nloc; lj++) {
        long j = local_to_global(lj, g->block, pc, g->npcol);
        for (int li = 0; li < mloc; li++) {
            long i = local_to_global(li, g->block, pr, g->nprow);
            double *gl = &global[(size_t)j * m + i], *lo = &loc[(size_t)lj * mloc + li];
            if (to_global)
                *gl = *lo;
            else
                *lo = *gl;
        }
    }
}

static int share_rows(int m, int pr, const raana_svd_grid *g)
{
    int zero = 0;
    return numroc_(&m, &g->block, &pr, &zero, &g->nprow);
}

static int share_cols(int n, int pc, const raana_svd_grid *g)
{
    int zero = 0;
    return numroc_(&n, &g->block, &pc, &zero, &g->npcol);
}

/* A distributed m x n matrix: this rank's share and its descriptor. */
typedef struct {
    int m, n, mloc, nloc, desc[9];
    double *loc;
} dist_matrix;

static raana_status dist_matrix_init(dist_matrix *d, int m, int n, int ctxt, int myrow, int mycol,
                                     const raana_svd_grid *g, raana_error *err)
{
    d->m = m;
    d->n = n;
    d->mloc = share_rows(m, myrow, g);
    d->nloc = share_cols(n, mycol, g);
    int lld = d->mloc > 1 ? d->mloc : 1, zero = 0, info = 0;
    descinit_(d->desc, &m, &n, &g->block, &g->block, &zero, &zero, &ctxt, &lld, &info);
    if (info != 0)
        return RAANA_INTERNAL(err, "descinit for %d x %d: argument %d", m, n, -info);
    size_t count = (size_t)d->mloc * d->nloc;
    d->loc = malloc((count ? count : 1) * sizeof *d->loc);
    if (!d->loc)
        return raana_fail(err, RAANA_ERR_NOMEM, "no memory for a %d x %d share of the SVD", d->mloc,
                          d->nloc);
    return RAANA_OK;
}

/* Grid coordinates of every rank of the team (coords[2q], coords[2q+1]). */
typedef struct {
    int *coords;
    int size, rank;
} team_map;

/* One share's message between root and rank `peer`: MPI_Send if send,
 * else MPI_Recv. */
static int share_message(MPI_Comm team, int send, double *buf, int count, int peer)
{
    return send ? MPI_Send(buf, count, MPI_DOUBLE, peer, TAG_SHARE, team)
                : MPI_Recv(buf, count, MPI_DOUBLE, peer, TAG_SHARE, team, MPI_STATUS_IGNORE);
}

/* Scatter (gather = 0): root sends every rank its share of `global` (m x n)
 * and the others receive theirs into d->loc. Gather (gather = 1), the
 * reverse: root assembles `global` from every rank's share. */
static raana_status move_matrix(MPI_Comm team, const team_map *t, const raana_svd_grid *g,
                                double *global, dist_matrix *d, int gather, raana_error *err)
{
    raana_status st = RAANA_OK;
    double *buf = NULL;
    if (t->rank != 0) {
        if (share_message(team, gather, d->loc, d->mloc * d->nloc, 0) != MPI_SUCCESS)
            RAANA_FAIL_GOTO(err, RAANA_ERR_MPI,
                            gather ? "sending a share of the SVD's result"
                                   : "receiving a share of the SVD's matrix");
        goto cleanup;
    }
    buf = malloc(((size_t)d->mloc * d->nloc + 1) * sizeof *buf);
    if (!buf)
        RAANA_FAIL_GOTO(err, RAANA_ERR_NOMEM,
                        gather ? "no memory to gather the SVD's result"
                               : "no memory to distribute the SVD's matrix");
    for (int q = 0; q < t->size; q++) {
        int pr = t->coords[2 * q], pc = t->coords[2 * q + 1];
        int mloc = share_rows(d->m, pr, g), nloc = share_cols(d->n, pc, g);
        double *share = q == 0 ? d->loc : buf;
        if (!gather)
            copy_share(global, d->m, share, mloc, nloc, pr, pc, g, 0);
        if (q != 0 && share_message(team, !gather, buf, mloc * nloc, q) != MPI_SUCCESS)
            RAANA_FAIL_GOTO(err, RAANA_ERR_MPI,
                            gather ? "receiving rank %d's share of the SVD"
                                   : "sending rank %d its share of the SVD",
                            q);
        if (gather)
            copy_share(global, d->m, share, mloc, nloc, pr, pc, g, 1);
    }
cleanup:
    free(buf);
    return st;
}

/* pdgesvd on the distributed a: u (m x kmin), vt (kmin x n), s (kmin, on
 * every grid rank). */
static raana_status run_pdgesvd(dist_matrix *a, dist_matrix *u, dist_matrix *vt, double *s,
                                raana_error *err)
{
    raana_status st = RAANA_OK;
    double query = 0, *work = NULL;
    int one = 1, lwork = -1, info = 0;
    pdgesvd_("V", "V", &a->m, &a->n, a->loc, &one, &one, a->desc, s, u->loc, &one, &one, u->desc,
             vt->loc, &one, &one, vt->desc, &query, &lwork, &info, 1, 1);
    if (info != 0)
        RAANA_FAIL_GOTO(err, RAANA_ERR_INTERNAL, "pdgesvd workspace query: info %d", info);
    lwork = (int)query + 1;
    work = malloc((size_t)lwork * sizeof *work);
    if (!work)
        RAANA_FAIL_GOTO(err, RAANA_ERR_NOMEM, "no memory for pdgesvd's %d-double workspace", lwork);
    pdgesvd_("V", "V", &a->m, &a->n, a->loc, &one, &one, a->desc, s, u->loc, &one, &one, u->desc,
             vt->loc, &one, &one, vt->desc, work, &lwork, &info, 1, 1);
    if (info > 0)
        RAANA_FAIL_GOTO(err, RAANA_ERR_NUMERIC,
                        "ScaLAPACK pdgesvd did not converge on a %d x %d matrix (info %d)", a->m,
                        a->n, info);
    if (info < 0)
        RAANA_FAIL_GOTO(err, RAANA_ERR_INTERNAL, "ScaLAPACK pdgesvd: argument %d is invalid",
                        -info);
cleanup:
    free(work);
    return st;
}

/* Everything one grid rank holds. */
typedef struct {
    int sys, ctxt, myrow, mycol;
    team_map map;
    dist_matrix a, u, vt;
    double *s, *u_full, *vt_full;
} svd_team;

static void svd_team_free(svd_team *t)
{
    free(t->map.coords);
    free(t->a.loc);
    free(t->u.loc);
    free(t->vt.loc);
    free(t->s);
    free(t->u_full);
    free(t->vt_full);
    if (t->ctxt >= 0)
        Cblacs_gridexit(t->ctxt);
    if (t->sys >= 0)
        Cfree_blacs_system_handle(t->sys);
}

/* Local allocations of one grid rank (root also holds the full U and V^T). */
static raana_status svd_team_alloc(svd_team *t, const raana_svd_grid *g, int m, int n,
                                   raana_error *err)
{
    int kmin = m < n ? m : n;
    RAANA_CALL(dist_matrix_init(&t->a, m, n, t->ctxt, t->myrow, t->mycol, g, err));
    RAANA_CALL(dist_matrix_init(&t->u, m, kmin, t->ctxt, t->myrow, t->mycol, g, err));
    RAANA_CALL(dist_matrix_init(&t->vt, kmin, n, t->ctxt, t->myrow, t->mycol, g, err));
    if ((size_t)t->a.mloc * t->a.nloc > INT_MAX || (size_t)t->u.mloc * t->u.nloc > INT_MAX ||
        (size_t)t->vt.mloc * t->vt.nloc > INT_MAX)
        return raana_fail(err, RAANA_ERR_UNSUPPORTED,
                          "a %d x %d matrix on a %d x %d grid: shares exceed 2^31 values", m, n,
                          g->nprow, g->npcol);
    t->s = malloc((size_t)kmin * sizeof *t->s);
    if (!t->s)
        return raana_fail(err, RAANA_ERR_NOMEM, "no memory for %d singular values", kmin);
    if (t->map.rank == 0) {
        t->u_full = malloc((size_t)m * kmin * sizeof *t->u_full);
        t->vt_full = malloc((size_t)kmin * n * sizeof *t->vt_full);
        if (!t->u_full || !t->vt_full)
            return raana_fail(err, RAANA_ERR_NOMEM, "no memory to gather a %d x %d SVD", m, n);
    }
    return RAANA_OK;
}

/* The grid ranks' part of raana_svd_scalapack. */
static raana_status svd_on_team(MPI_Comm team, raana_svd_grid g, const double *a, int m, int n,
                                int k, double *s, double *us, double *vt, raana_error *err)
{
    raana_status st = RAANA_OK;
    int kmin = m < n ? m : n;
    svd_team t = {.sys = -1, .ctxt = -1};
    MPI_Comm_rank(team, &t.map.rank);
    MPI_Comm_size(team, &t.map.size);
    t.sys = Csys2blacs_handle(team);
    t.ctxt = t.sys;
    Cblacs_gridinit(&t.ctxt, "Row", g.nprow, g.npcol);
    int nprow, npcol;
    Cblacs_gridinfo(t.ctxt, &nprow, &npcol, &t.myrow, &t.mycol);
    raana_status local = RAANA_OK;
    if (nprow != g.nprow || npcol != g.npcol || t.myrow < 0)
        local = RAANA_INTERNAL(err, "BLACS made a %d x %d grid, not %d x %d", nprow, npcol, g.nprow,
                               g.npcol);
    t.map.coords = malloc(2 * (size_t)t.map.size * sizeof *t.map.coords);
    if (local == RAANA_OK && !t.map.coords)
        local = raana_fail(err, RAANA_ERR_NOMEM, "no memory for the SVD team's map");
    if (local == RAANA_OK)
        local = svd_team_alloc(&t, &g, m, n, err);
    if (local == RAANA_OK && t.map.rank == 0)
        local = check_finite(a, (size_t)m * n, err);
    RAANA_CHECK(raana_comm_agree(team, local, err));
    int mine[2] = {t.myrow, t.mycol};
    MPI_Allgather(mine, 2, MPI_INT, t.map.coords, 2, MPI_INT, team);
    RAANA_CHECK(
        raana_comm_agree(team, move_matrix(team, &t.map, &g, (double *)a, &t.a, 0, err), err));
    RAANA_CHECK(raana_comm_agree(team, run_pdgesvd(&t.a, &t.u, &t.vt, t.s, err), err));
    local = move_matrix(team, &t.map, &g, t.u_full, &t.u, 1, err);
    if (local == RAANA_OK)
        local = move_matrix(team, &t.map, &g, t.vt_full, &t.vt, 1, err);
    RAANA_CHECK(raana_comm_agree(team, local, err));
    if (t.map.rank == 0) {
        memcpy(s, t.s, (size_t)k * sizeof *s);
        scale_columns(t.u_full, t.s, m, k, us);
        top_rows(t.vt_full, kmin, n, k, vt);
    }
cleanup:
    svd_team_free(&t);
    return st;
}

raana_status raana_svd_scalapack(MPI_Comm comm, raana_svd_grid grid, const double *a, int m, int n,
                                 int k, double *s, double *us, double *vt, raana_error *err)
{
    raana_status st = RAANA_OK;
    MPI_Comm team = MPI_COMM_NULL;
    int rank, size;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    RAANA_CALL(check_shape(m, n, k, err));
    if (grid.nprow < 1 || grid.npcol < 1 || grid.block < 1 || grid.nprow * grid.npcol > size)
        return RAANA_INTERNAL(err, "a %d x %d SVD grid (block %d) on %d ranks", grid.nprow,
                              grid.npcol, grid.block, size);
    int in_grid = rank < grid.nprow * grid.npcol;
    if (MPI_Comm_split(comm, in_grid ? 0 : MPI_UNDEFINED, rank, &team) != MPI_SUCCESS)
        return raana_fail(err, RAANA_ERR_MPI, "forming the SVD team of %d ranks",
                          grid.nprow * grid.npcol);
    if (!in_grid)
        return RAANA_OK;
    RAANA_CHECK(svd_on_team(team, grid, a, m, n, k, s, us, vt, err));
cleanup:
    MPI_Comm_free(&team);
    return st;
}

raana_svd_grid raana_svd_choose_grid(int m, int n, int ranks, long long min_elems, int block)
{
    raana_svd_grid best = {1, 1, block};
    if (ranks <= 1 || (long long)m * n < min_elems)
        return best;
    for (int pr = 1; pr <= ranks; pr++)
        for (int pc = 1; pr * pc <= ranks; pc++) {
            if ((long long)pr * block > m || (long long)pc * block > n)
                continue;
            int used = pr * pc, best_used = best.nprow * best.npcol;
            int skew = abs(pr - pc), best_skew = abs(best.nprow - best.npcol);
            if (used > best_used || (used == best_used && skew < best_skew))
                best = (raana_svd_grid){pr, pc, block};
        }
    return best;
}
