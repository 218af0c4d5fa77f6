/* column_split.c — one layer encoded by every rank in pieces of output
 * columns: the terms shared, the pieces sent, encoded and measured, the
 * codes and sums gathered on the holder (see column_split.h). */
#include "raana/column_split.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "raana/comm.h"
#include "raana/half_scaled.h"
#include "raana/huge_alloc.h"
#include "raana/qlayer_encode.h"
#include "raana/wait.h"

/* Point-to-point messages of a split layer (the quantize stage's others,
 * quantize.c, are all finished while split layers are encoded). */
enum { TAG_PIECE = 0x5160, TAG_PIECE_CODES = 0x5161 };

/* One rank's part of a split layer. */
typedef struct {
    int rank, size, holder, c0, n; /* its columns [c0, c0 + n) */
    int *counts, *displs;          /* [size]: every rank's n and c0 */
    float *received;               /* [n][d_in]: its piece's weights (not on the holder) */
    float *w;                      /* [n][d_in]: tricked and rotated */
    uint8_t *packed;               /* [n][packed_bytes] (the holder's go into q->packed) */
    float *rescale;                /* [d_out]: every column's, as encoded */
    float *stored;                 /* [d_out]: the same as stored (side_bits 16: rounded) */
    double *sums;                  /* [3 n]: its cosines, error sums, weight sums */
    double *all_sums;              /* [3 d_out]: every rank's sums block by block (holder) */
} piece_work;

static void piece_work_free(piece_work *pw)
{
    free(pw->counts), free(pw->displs), free(pw->received), free(pw->w), free(pw->packed);
    free(pw->rescale), free(pw->stored), free(pw->sums), free(pw->all_sums);
    memset(pw, 0, sizeof *pw);
}

/* The holder's terms on every rank: the held-out columns' indices, mu and
 * the row scales (the others' q is laid out, so mu and row_scale exist). */
static raana_status share_terms(MPI_Comm comm, const piece_work *pw, raana_qlayer *q,
                                raana_error *err)
{
    raana_status st = RAANA_OK;
    MPI_Bcast(&q->n_held, 1, MPI_INT, pw->holder, comm);
    if (pw->rank != pw->holder && q->n_held > 0 &&
        !(q->held_cols = malloc((size_t)q->n_held * sizeof *q->held_cols)))
        st = raana_fail(err, RAANA_ERR_NOMEM, "out of memory for %d held-out columns", q->n_held);
    RAANA_CALL(raana_comm_agree(comm, st, err));
    if (q->mu)
        MPI_Bcast(q->mu, q->d_in, MPI_FLOAT, pw->holder, comm);
    if (q->row_scale)
        MPI_Bcast(q->row_scale, q->d_in, MPI_FLOAT, pw->holder, comm);
    if (q->n_held > 0)
        MPI_Bcast(q->held_cols, q->n_held, MPI_INT32_T, pw->holder, comm);
    return RAANA_OK;
}

/* Every rank's piece, and this rank's buffers (the holder's codes go
 * straight into q->packed, allocated here for every column). */
static raana_status piece_work_alloc(piece_work *pw, raana_qlayer *q, raana_error *err)
{
    size_t d_in = (size_t)q->d_in, d_out = (size_t)q->d_out, n;
    pw->counts = malloc((size_t)pw->size * sizeof *pw->counts);
    pw->displs = malloc((size_t)pw->size * sizeof *pw->displs);
    if (!pw->counts || !pw->displs)
        return raana_fail(err, RAANA_ERR_NOMEM, "out of memory for %d pieces", pw->size);
    for (int k = 0; k < pw->size; k++)
        raana_plan_split_piece(q->d_out, pw->size, k, &pw->displs[k], &pw->counts[k]);
    pw->c0 = pw->displs[pw->rank], pw->n = pw->counts[pw->rank], n = (size_t)pw->n;
    pw->w = raana_malloc_large((n > 0 ? n : 1) * d_in * sizeof *pw->w);
    pw->rescale = malloc(d_out * sizeof *pw->rescale);
    pw->stored = malloc(d_out * sizeof *pw->stored);
    pw->sums = malloc((3 * n + 1) * sizeof *pw->sums);
    int ok = pw->w && pw->rescale && pw->stored && pw->sums;
    if (pw->rank == pw->holder) {
        q->packed = raana_calloc_large(d_out, q->packed_bytes);
        q->rescale = malloc(d_out * sizeof *q->rescale);
        pw->all_sums = malloc(3 * d_out * sizeof *pw->all_sums);
        ok = ok && q->packed && q->rescale && pw->all_sums;
    } else {
        pw->received = raana_malloc_large((n > 0 ? n : 1) * d_in * sizeof *pw->received);
        pw->packed = malloc((n > 0 ? n : 1) * q->packed_bytes);
        ok = ok && pw->received && pw->packed;
    }
    if (!ok)
        return raana_fail(err, RAANA_ERR_NOMEM, "out of memory for a piece of %zu columns of %zu",
                          n, d_out);
    return RAANA_OK;
}

/* The holder sends every other rank its piece of rows (in flight into
 * reqs while the holder encodes its own); the others receive theirs. *src:
 * this rank's piece. */
static raana_status send_pieces(MPI_Comm comm, const piece_work *pw, const raana_qlayer *q,
                                const float *weight, MPI_Request *reqs, const float **src,
                                raana_error *err)
{
    size_t d_in = (size_t)q->d_in;
    if (pw->rank == pw->holder) {
        for (int k = 0; k < pw->size; k++)
            reqs[k] = MPI_REQUEST_NULL;
        for (int k = 0; k < pw->size; k++)
            if (k != pw->holder)
                MPI_Isend(weight + (size_t)pw->displs[k] * d_in, pw->counts[k] * q->d_in, MPI_FLOAT,
                          k, TAG_PIECE, comm, &reqs[k]);
        *src = weight + (size_t)pw->c0 * d_in;
        return RAANA_OK;
    }
    *src = pw->received;
    if (raana_recv_idle(pw->received, pw->n * q->d_in, MPI_FLOAT, pw->holder, TAG_PIECE, comm,
                        MPI_STATUS_IGNORE) != MPI_SUCCESS)
        return raana_fail(err, RAANA_ERR_MPI, "receiving columns %d..%d from rank %d failed",
                          pw->c0, pw->c0 + pw->n - 1, pw->holder);
    return RAANA_OK;
}

/* This rank's columns: codes, rescales, cosines (sums[0, n)). */
static raana_status encode_piece(const piece_work *pw, const raana_qlayer *q,
                                 const raana_qlayer_params *p, const float *src, raana_error *err)
{
    uint8_t *packed =
        pw->rank == pw->holder ? q->packed + (size_t)pw->c0 * q->packed_bytes : pw->packed;
    return raana_qlayer_encode_piece(q, src, pw->c0, pw->n, p->encoder, p->threads, pw->w, packed,
                                     pw->rescale + pw->c0, pw->sums, err);
}

/* Every column's rescale on every rank, and their stored values (one
 * 16-bit exponent for the whole vector, as the whole layer rounds it). */
static void share_rescales(MPI_Comm comm, const piece_work *pw, const raana_qlayer *q)
{
    MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, pw->rescale, pw->counts, pw->displs,
                   MPI_FLOAT, comm);
    memcpy(pw->stored, pw->rescale, (size_t)q->d_out * sizeof *pw->stored);
    if (q->side_bits == 16)
        raana_half_scaled_round(pw->stored, (size_t)q->d_out);
}

/* This rank's columns decoded from their stored codes, against the
 * original weights: error and weight sums (sums[n, 3 n)). */
static raana_status measure_piece(const piece_work *pw, const raana_qlayer *q, const float *src,
                                  raana_error *err)
{
    int d_in = q->d_in, n = pw->n;
    const uint8_t *packed =
        pw->rank == pw->holder ? q->packed + (size_t)pw->c0 * q->packed_bytes : pw->packed;
    uint8_t *codes = malloc((size_t)q->n_kept);
    float *vals = malloc((size_t)q->n_kept * sizeof *vals),
          *col = malloc((size_t)d_in * sizeof *col);
    raana_status st = RAANA_OK;
    if (!codes || !vals || !col)
        RAANA_FAIL_GOTO(err, RAANA_ERR_NOMEM, "out of memory measuring %d columns", n);
    for (int j = 0; j < n; j++) {
        const float *orig = src + (size_t)j * d_in;
        if (raana_qlayer_is_held(q, pw->c0 + j)) { /* stored exactly */
            raana_qlayer_column_error(orig, orig, d_in, &pw->sums[n + j], &pw->sums[2 * n + j]);
            continue;
        }
        raana_qlayer_decode_column(q, packed + (size_t)j * q->packed_bytes, pw->stored[pw->c0 + j],
                                   codes, vals, col);
        raana_qlayer_column_error(col, orig, d_in, &pw->sums[n + j], &pw->sums[2 * n + j]);
    }
cleanup:
    free(codes), free(vals), free(col);
    return st;
}

/* The others' codes and every rank's sums on the holder. */
static raana_status gather_pieces(MPI_Comm comm, piece_work *pw, raana_qlayer *q, raana_error *err)
{
    int bad = 0, *counts3 = malloc((size_t)pw->size * sizeof *counts3),
        *displs3 = malloc((size_t)pw->size * sizeof *displs3);
    RAANA_CALL(raana_comm_agree(
        comm, counts3 && displs3 ? RAANA_OK : raana_fail(err, RAANA_ERR_NOMEM, "out of memory"),
        err));
    for (int k = 0; k < pw->size; k++)
        counts3[k] = 3 * pw->counts[k], displs3[k] = 3 * pw->displs[k];
    if (pw->rank != pw->holder) {
        MPI_Request req;
        MPI_Isend(pw->packed, (int)((size_t)pw->n * q->packed_bytes), MPI_BYTE, pw->holder,
                  TAG_PIECE_CODES, comm, &req);
        bad = raana_wait_idle(&req, MPI_STATUS_IGNORE) != MPI_SUCCESS;
    } else {
        for (int k = 0; k < pw->size && !bad; k++)
            bad = k != pw->holder &&
                  raana_recv_idle(q->packed + (size_t)pw->displs[k] * q->packed_bytes,
                                  (int)((size_t)pw->counts[k] * q->packed_bytes), MPI_BYTE, k,
                                  TAG_PIECE_CODES, comm, MPI_STATUS_IGNORE) != MPI_SUCCESS;
    }
    MPI_Gatherv(pw->sums, 3 * pw->n, MPI_DOUBLE, pw->all_sums, counts3, displs3, MPI_DOUBLE,
                pw->holder, comm);
    free(counts3), free(displs3);
    return raana_comm_agree(
        comm,
        bad ? raana_fail(err, RAANA_ERR_MPI, "gathering a split layer's codes failed") : RAANA_OK,
        err);
}

/* The holder's layer: rescales as encoded, then the finish the whole
 * layer gets (mean cosine in column order, 16-bit rounding); the relative
 * error from the column sums in column order. */
static raana_status finish_layer(const piece_work *pw, raana_qlayer *q, double *rel,
                                 raana_error *err)
{
    raana_status st = RAANA_OK;
    int d_out = q->d_out;
    double *cosine = malloc((size_t)d_out * 3 * sizeof *cosine);
    if (!cosine)
        return raana_fail(err, RAANA_ERR_NOMEM, "out of memory finishing a split layer");
    double *diff = cosine + d_out, *ref = diff + d_out;
    for (int k = 0; k < pw->size; k++) { /* rank k's block: n cosines, n diffs, n refs */
        const double *blk = pw->all_sums + 3 * (size_t)pw->displs[k];
        int c0 = pw->displs[k], n = pw->counts[k];
        memcpy(cosine + c0, blk, (size_t)n * sizeof *blk);
        memcpy(diff + c0, blk + n, (size_t)n * sizeof *blk);
        memcpy(ref + c0, blk + 2 * n, (size_t)n * sizeof *blk);
    }
    memcpy(q->rescale, pw->rescale, (size_t)d_out * sizeof *q->rescale);
    raana_qlayer_finish_codes(q, cosine);
    *rel = raana_qlayer_relative_error(diff, ref, d_out);
    free(cosine);
    return st;
}

/* The terms: found on the holder from the whole weight, then shared. */
static raana_status find_terms(MPI_Comm comm, const piece_work *pw, const float *weight,
                               const raana_plan_layer *l, const raana_qlayer_params *p,
                               raana_qlayer *q, raana_error *err)
{
    raana_status st = raana_qlayer_layout(l->d_in, l->d_out, p, q, err);
    if (st == RAANA_OK && pw->rank == pw->holder)
        st = raana_qlayer_find_terms(q, weight, p->norm_col_rate, l->name, err);
    RAANA_CALL(raana_comm_agree(comm, st, err));
    return share_terms(comm, pw, q, err);
}

raana_status raana_column_split_encode(MPI_Comm comm, int holder, const float *weight,
                                       const raana_plan_layer *l, const raana_qlayer_params *p,
                                       raana_qlayer *q, double *rel, raana_error *err)
{
    raana_status st = RAANA_OK;
    piece_work pw = {.holder = holder};
    const float *src = NULL;
    MPI_Comm_rank(comm, &pw.rank);
    MPI_Comm_size(comm, &pw.size);
    MPI_Request *reqs = malloc((size_t)pw.size * sizeof *reqs);
    *rel = 0;
    memset(q, 0, sizeof *q);
    RAANA_CHECK(raana_comm_agree(
        comm, reqs ? RAANA_OK : raana_fail(err, RAANA_ERR_NOMEM, "out of memory"), err));
    RAANA_CHECK(find_terms(comm, &pw, weight, l, p, q, err));
    RAANA_CHECK(raana_comm_agree(comm, piece_work_alloc(&pw, q, err), err));
    st = send_pieces(comm, &pw, q, weight, reqs, &src, err);
    if (st == RAANA_OK)
        st = encode_piece(&pw, q, p, src, err);
    for (int k = 0; pw.rank == holder && k < pw.size; k++)
        raana_wait_idle(&reqs[k], MPI_STATUS_IGNORE);
    RAANA_CHECK(raana_comm_agree(comm, st, err));
    share_rescales(comm, &pw, q);
    RAANA_CHECK(raana_comm_agree(comm, measure_piece(&pw, q, src, err), err));
    RAANA_CHECK(gather_pieces(comm, &pw, q, err));
    if (pw.rank == holder)
        st = finish_layer(&pw, q, rel, err);
    RAANA_CHECK(raana_comm_agree(comm, st, err));
cleanup:
    if (st != RAANA_OK && err)
        raana_error_prefix(err, "%s", l->name);
    if (st != RAANA_OK || pw.rank != holder)
        raana_qlayer_free(q);
    piece_work_free(&pw);
    free(reqs);
    return st;
}
