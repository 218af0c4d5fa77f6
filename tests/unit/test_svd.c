/* test_svd.c — src/pipeline/svd.c under mpiexec (run with 4 ranks): on 1x1,
 * 2x1, 1x2 and 2x2 BLACS grids, ScaLAPACK's singular values equal LAPACK's
 * within 1e-10 relative and equal the ones the matrix was built with (an
 * independent reference: A = Q1 diag(sigma) Q2^T with Householder Q's),
 * U S V^T rebuilds A within 1e-12 (relative Frobenius), and a truncated SVD
 * leaves exactly the Eckart-Young residual. Shapes are non-square and not a
 * multiple of the block size. */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "raana/svd.h"

/* x <- (I - 2 v v^T / v^T v) x for every column of the d x c matrix x. */
static void reflect(double *x, int d, int c, const double *v)
{
    double vv = 0;
    for (int i = 0; i < d; i++)
        vv += v[i] * v[i];
    for (int j = 0; j < c; j++) {
        double dot = 0;
        for (int i = 0; i < d; i++)
            dot += v[i] * x[(size_t)j * d + i];
        for (int i = 0; i < d; i++)
            x[(size_t)j * d + i] -= 2 * dot / vv * v[i];
    }
}

/* An orthonormal d x c matrix: the first c columns of a product of three
 * random Householder reflections. */
static void orthonormal(double *q, int d, int c, unsigned *seed)
{
    memset(q, 0, (size_t)d * c * sizeof *q);
    for (int j = 0; j < c; j++)
        q[(size_t)j * d + j] = 1;
    double *v = malloc((size_t)d * sizeof *v);
    for (int r = 0; r < 3; r++) {
        for (int i = 0; i < d; i++)
            v[i] = (double)rand_r(seed) / RAND_MAX - 0.5;
        reflect(q, d, c, v);
    }
    free(v);
}

/* A (m x n) = Q1 diag(sigma) Q2^T, sigma descending from 10 with ratio 0.8. */
static void build(double *a, double *sigma, int m, int n, unsigned seed)
{
    int k = m < n ? m : n;
    double *q1 = malloc((size_t)m * k * sizeof *q1), *q2 = malloc((size_t)n * k * sizeof *q2);
    orthonormal(q1, m, k, &seed);
    orthonormal(q2, n, k, &seed);
    for (int l = 0; l < k; l++)
        sigma[l] = 10 * pow(0.8, l);
    for (int j = 0; j < n; j++)
        for (int i = 0; i < m; i++) {
            double x = 0;
            for (int l = 0; l < k; l++)
                x += q1[(size_t)l * m + i] * sigma[l] * q2[(size_t)l * n + j];
            a[(size_t)j * m + i] = x;
        }
    free(q1);
    free(q2);
}

/* ||A - US Vt||_F / ||A||_F, and the same with the residual's norm compared
 * to `expected` (absolute) */
static double residual(const double *a, const double *us, const double *vt, int m, int n, int k)
{
    double num = 0, den = 0;
    for (int j = 0; j < n; j++)
        for (int i = 0; i < m; i++) {
            double x = 0;
            for (int l = 0; l < k; l++)
                x += us[(size_t)l * m + i] * vt[(size_t)j * k + l];
            double d = a[(size_t)j * m + i] - x;
            num += d * d;
            den += a[(size_t)j * m + i] * a[(size_t)j * m + i];
        }
    return sqrt(num / den);
}

static double max_rel_diff(const double *x, const double *y, int k)
{
    double worst = 0;
    for (int l = 0; l < k; l++) {
        double d = fabs(x[l] - y[l]) / fabs(y[l]);
        if (d > worst)
            worst = d;
    }
    return worst;
}

static void one_case(int rank, int m, int n, raana_svd_grid g)
{
    int kmin = m < n ? m : n, k_top = kmin / 3;
    double *a = malloc((size_t)m * n * sizeof *a), *sigma = malloc((size_t)kmin * sizeof *sigma);
    double *s_ref = malloc((size_t)kmin * sizeof *s_ref), *s = malloc((size_t)kmin * sizeof *s);
    double *us = malloc((size_t)m * kmin * sizeof *us), *vt = malloc((size_t)kmin * n * sizeof *vt);
    double *us_ref = malloc((size_t)m * kmin * sizeof *us_ref);
    double *vt_ref = malloc((size_t)kmin * n * sizeof *vt_ref);
    raana_error err = {0};
    build(a, sigma, m, n, 12345u + (unsigned)(m * 7 + n));
    raana_status st = raana_svd_scalapack(MPI_COMM_WORLD, g, a, m, n, kmin, s, us, vt, &err);
    CHECK_INT(st, RAANA_OK);
    if (st != RAANA_OK)
        fprintf(stderr, "rank %d: %s\n", rank, err.msg);
    if (rank == 0 && st == RAANA_OK) {
        CHECK_INT(raana_svd_local(a, m, n, kmin, s_ref, us_ref, vt_ref, &err), RAANA_OK);
        double d_lapack = max_rel_diff(s, s_ref, kmin), d_built = max_rel_diff(s, sigma, kmin);
        double rec = residual(a, us, vt, m, n, kmin),
               rec_ref = residual(a, us_ref, vt_ref, m, n, kmin);
        printf("%d x %d on %d x %d (block %d): |s - lapack| %.1e, |s - built| %.1e, "
               "rebuild %.1e (lapack %.1e)\n",
               m, n, g.nprow, g.npcol, g.block, d_lapack, d_built, rec, rec_ref);
        CHECK(d_lapack <= 1e-10);
        CHECK(d_built <= 1e-10);
        CHECK(rec <= 1e-12);
        CHECK(rec_ref <= 1e-12);
    }
    /* truncated to k_top: the residual is the tail of sigma (Eckart-Young) */
    st = raana_svd_scalapack(MPI_COMM_WORLD, g, a, m, n, k_top, s, us, vt, &err);
    CHECK_INT(st, RAANA_OK);
    if (rank == 0 && st == RAANA_OK) {
        double tail = 0, all = 0;
        for (int l = 0; l < kmin; l++) {
            all += sigma[l] * sigma[l];
            if (l >= k_top)
                tail += sigma[l] * sigma[l];
        }
        CHECK_NEAR(residual(a, us, vt, m, n, k_top), sqrt(tail / all), 1e-10);
        CHECK(max_rel_diff(s, sigma, k_top) <= 1e-10);
    }
    free(a);
    free(sigma);
    free(s_ref);
    free(s);
    free(us);
    free(vt);
    free(us_ref);
    free(vt_ref);
}

static void bad_input(int rank)
{
    int m = 9, n = 7;
    double a[63] = {0}, s[7], us[63], vt[49];
    for (int i = 0; i < 63; i++)
        a[i] = i % 5;
    a[17] = NAN;
    raana_error err = {0};
    raana_svd_grid g = {2, 2, 2};
    raana_status st = raana_svd_scalapack(MPI_COMM_WORLD, g, a, m, n, 7, s, us, vt, &err);
    CHECK_INT(st, RAANA_ERR_NUMERIC); /* on every grid rank: agreed */
    CHECK_MSG(err, "non-finite", "17");
    if (rank == 0) {
        CHECK_INT(raana_svd_local(a, m, n, 7, s, us, vt, &err), RAANA_ERR_NUMERIC);
        CHECK_INT(raana_svd_local(a, m, n, 8, s, us, vt, &err), RAANA_ERR_INTERNAL);
    }
}

static void choose_grid(void)
{
    raana_svd_grid g = raana_svd_choose_grid(4096, 11008, 4, 1 << 20, 64);
    CHECK_INT(g.nprow, 2);
    CHECK_INT(g.npcol, 2);
    g = raana_svd_choose_grid(4096, 11008, 1, 1 << 20, 64);
    CHECK_INT(g.nprow * g.npcol, 1);
    g = raana_svd_choose_grid(100, 100, 4, 1 << 20, 64); /* small: one rank */
    CHECK_INT(g.nprow * g.npcol, 1);
    g = raana_svd_choose_grid(100, 4096, 4, 1000, 64); /* 2 row blocks at most */
    CHECK(g.nprow == 1 && g.npcol == 4);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (size < 4) {
        fprintf(stderr, "test_svd: run with 4 ranks (got %d)\n", size);
        MPI_Finalize();
        return 2;
    }
    raana_svd_grid grids[] = {{1, 1, 8}, {2, 1, 8}, {1, 2, 8}, {2, 2, 8},
                              {2, 2, 5}, {3, 1, 8}, {1, 3, 8}};
    for (size_t i = 0; i < sizeof grids / sizeof grids[0]; i++) {
        one_case(rank, 77, 45, grids[i]);
        one_case(rank, 45, 77, grids[i]);
    }
    bad_input(rank);
    if (rank == 0)
        choose_grid();
    int failed = check_failed, any;
    MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    int rc = check_summary(rank == 0 ? "test_svd" : "test_svd (other rank)");
    MPI_Finalize();
    return any ? 1 : rc;
}
