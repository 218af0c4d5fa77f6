/* allocate.h — AllocateBits: each layer's bit width from a candidate set,
 * minimizing the modelled error sum_l c_l f(b_l) subject to
 * sum_l n_l b_l <= avg_bits * sum_l n_l, where n_l is the layer's number of
 * weights, c_l its sensitivity coefficient and f(b) = 2^-b for b >= 1,
 * 1 / (2 sqrt(b)) below one bit (DESIGN section 4), or a table of f per
 * candidate measured on the quantizer itself (error_table.h). The candidate
 * RAANA_BITS_KEEP (16) is not a code width: the layer keeps the checkpoint's
 * own BF16/F16 weight, which costs 16 bits per weight and no error, f = 0
 * (docs/DECISIONS.md, "Keeping a layer in 16 bits").
 *
 * Exact: a multiple-choice knapsack solved by dynamic programming over the
 * budget in integer units (4 b n_l, so 0.5 and 0.75 bits are integral,
 * divided by the gcd of every layer's possible cost), with one byte of
 * back-pointer per (layer, budget) cell: O(L R) time per candidate and
 * O(L R) memory. When L R exceeds a limit, a Lagrangian relaxation (binary
 * search on the price of a bit) followed by a greedy repair gives a feasible
 * allocation together with a lower bound on the optimum, so the reported
 * gap bounds how far it can be from optimal. Deterministic: every rank
 * computes the same answer. */
#ifndef RAANA_ALLOCATE_H
#define RAANA_ALLOCATE_H

#include <stddef.h>
#include <stdint.h>

#include "raana/error.h"

typedef struct {
    int n_layers;
    const uint64_t *size; /* n_l: weights per layer */
    const double *coef;   /* c_l >= 0 */
    int n_bits;
    const double *bits; /* candidates, ascending, from {0.5, 0.75, 1, ..., 8, 16} */
    double avg_bits;
    /* f(bits[k]) for every candidate (>= 0), or NULL for the paper's model
     * raana_alloc_error_model */
    const double *unit_error;
} raana_alloc_problem;

typedef enum { RAANA_ALLOC_EXACT_DP, RAANA_ALLOC_LAGRANGIAN } raana_alloc_method;

typedef struct {
    int *choice;        /* [n_layers]: index into bits */
    double cost;        /* sum_l c_l f(b_l) */
    double lower_bound; /* <= the optimum; equals cost for the exact DP */
    double achieved_avg_bits;
    raana_alloc_method method;
    uint64_t dp_cells; /* L x (scaled budget + 1) */
} raana_alloc_result;

/* The candidate that keeps a layer's 16-bit checkpoint weight unquantized. */
#define RAANA_BITS_KEEP 16.0

/* The paper's f(b) */
double raana_alloc_error_model(double bits);

/* Solves exactly when L x (scaled budget + 1) <= max_dp_cells, else with the
 * Lagrangian fallback. Fails (RAANA_ERR_CONFIG) if even the smallest
 * candidate exceeds the budget. */
raana_status raana_allocate_bits(const raana_alloc_problem *p, uint64_t max_dp_cells,
                                 raana_alloc_result *r, raana_error *err);
/* The fallback alone (for tests and benchmarks). */
raana_status raana_allocate_bits_lagrangian(const raana_alloc_problem *p, raana_alloc_result *r,
                                            raana_error *err);
void raana_alloc_result_free(raana_alloc_result *r);

#define RAANA_ALLOC_DEFAULT_MAX_CELLS ((uint64_t)1 << 30) /* 1 GiB of back-pointers */

#endif
