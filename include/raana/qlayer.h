/* qlayer.h — one linear layer quantized with RaBitQ-H: the tricks, the
 * rotation, the per-column codes (packed), dequantization and the
 * quantized product. No MPI; columns are encoded in parallel with OpenMP
 * and the result does not depend on the thread count.
 *
 * Conventions: the weight is given as Hugging Face stores it, [d_out][d_in]
 * row-major, so row j is column j of W in Y = X W (length d_in). The layer
 * computes Y[t][j] = sum_i X[t][i] What[j][i] with
 *
 *   What[j] = held[j]  (the original column, exactly)    if j is held out
 *           = mu + s .* R^T(r_j * (c_j - (2^B - 1)/2) .* g)  otherwise
 *
 * plus, with low-rank compensation, row j of A B for every j (lowrank.h),
 *
 * where R is the piecewise randomized Hadamard rotation of dimension d_in
 * (key from (seed, layer name)), s the norm_row scales (1 if off), mu the
 * centralize means (0 if off), r_j the column's rescale, c_j its codes.
 * For B >= 1 every rotated coordinate is coded and g = 1. Below one bit
 * (B in (0, 1)) only m = round(B d_in) rotated coordinates are coded with
 * one bit, chosen so the inner-product estimate stays unbiased for every
 * d_in: with k the largest power of two <= d_in, region A = [0, d_in - k)
 * (mixed by the first Hadamard block only) keeps its first m_a coordinates
 * and region B = [d_in - k, d_in) (mixed by the second) its first m_b,
 * m_a ~ m (d_in - k) / d_in, and g scales the kept coordinates by
 * (d_in - k) / m_a and k / m_b (0 elsewhere). Each region's coordinates are
 * exchangeable under the random signs, so each scaled partial sum is an
 * unbiased estimate of that region's share of <x, w>. */
#ifndef RAANA_QLAYER_H
#define RAANA_QLAYER_H

#include <stddef.h>
#include <stdint.h>

#include "raana/error.h"
#include "raana/hadamard.h"
#include "raana/tricks.h"

typedef struct {
    int d_in, d_out;
    double bits;   /* 0.5, 0.75, 1 .. 8 */
    int code_bits; /* bits per stored code: 1 below one bit, else bits */
    unsigned tricks;
    uint64_t key; /* rotation key: raana_rng_layer_key(seed, name) */
    raana_rotation rot;
    int n_kept;       /* coded coordinates per column: d_in, or m_a + m_b */
    int m_a, m_b;     /* below one bit: kept coordinates of regions A and B */
    float *mu;        /* [d_in] or NULL */
    float *row_scale; /* [d_in] or NULL */
    int n_held;
    int32_t *held_cols;  /* [n_held], ascending */
    float *held_values;  /* [n_held][d_in], the original columns */
    size_t packed_bytes; /* per column */
    uint8_t *packed;     /* [d_out][packed_bytes] */
    float *rescale;      /* [d_out] (0 for held-out columns) */
    double mean_cosine;  /* mean over coded columns of cos(w_rot, decoded) */
    /* low-rank compensation (lowrank.h): What += A B, IEEE half bits;
     * rank 0 and NULL when off */
    int lowrank_rank;
    uint16_t *lowrank_a; /* [d_out][lowrank_rank] */
    uint16_t *lowrank_b; /* [lowrank_rank][d_in] */
    /* stored width of rescale, mu and row_scale: 32 (float32) or 16 (half
     * times a power of two per vector, half_scaled.h; the values in memory
     * are then exactly the stored ones) */
    int side_bits;
} raana_qlayer;

typedef struct {
    double bits;
    unsigned tricks;
    double norm_col_rate;
    uint64_t key;
    raana_encoder encoder;
    int threads; /* >= 1 */
    /* LDLQ (data-aware codes, B >= 1): the layer input's second moments,
     * [d_in][d_in] upper triangle, sum over calibration tokens of x x^T,
     * and the damping (> 0); NULL: RaBitQ-H's per-column optimum alone. */
    const float *gram;
    double ldlq_damp;
    /* 16: round rescale, mu and row_scale to 16-bit storage (mu and the
     * row scales before the codes are chosen); 32 or 0: float32 */
    int side_bits;
} raana_qlayer_params;

/* Quantizes weight[d_out][d_in]. Fails on NaN/Inf (naming `name`) or
 * allocation failure. */
raana_status raana_qlayer_quantize(const float *weight, int d_in, int d_out,
                                   const raana_qlayer_params *params, const char *name,
                                   raana_qlayer *q, raana_error *err);
void raana_qlayer_free(raana_qlayer *q);

/* ||W||_F of the matrix that gets quantized: weight after the tricks
 * (centralized, rows normalized, held-out columns zeroed), as AllocateBits'
 * coefficient needs it (DESIGN section 4). */
raana_status raana_qlayer_trick_norm(const float *weight, int d_in, int d_out, unsigned tricks,
                                     double norm_col_rate, double *norm, raana_error *err);

/* What[d_out][d_in] (see above). */
raana_status raana_qlayer_dequantize(const raana_qlayer *q, float *what, raana_error *err);

/* Y[n][d_out] = X[n][d_in] What^T, computed from the codes (What is never
 * formed): rotate X's rows once, then per block of columns one sgemm with
 * the unpacked codes, minus (2^B - 1)/2 times the rotated rows' sums,
 * times the rescales, plus the trick terms. */
raana_status raana_qlayer_matmul(const raana_qlayer *q, const float *x, int n, float *y,
                                 raana_error *err);

/* Below one bit: the coordinates regions A and B keep (m_a, m_b) for
 * dimension d_in, k = raana_pow2_floor(d_in) and bits in (0, 1); readers
 * check stored layers against it. */
void raana_qlayer_sub_bit_layout(int d_in, int k, double bits, int *m_a, int *m_b);

/* The kept-coordinate scale g_i for rotated coordinate i (0 if not kept). */
float raana_qlayer_coord_scale(const raana_qlayer *q, int i);

/* Stored bits per weight, everything counted: codes, rescales (side_bits
 * per column), trick terms (mu and row scales, side_bits each; held-out
 * columns and indices, 32 bits each), the two rotation sign vectors (one bit per entry, padded
 * to whole bytes) and low-rank factors (16 bits per entry), as the
 * container stores them. */
double raana_qlayer_effective_bits(const raana_qlayer *q);

#endif
