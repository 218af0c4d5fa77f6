/* allocate.c — AllocateBits: exact DP with byte back-pointers, and the
 * Lagrangian fallback with its lower bound (see allocate.h). */
#include "raana/allocate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

double raana_alloc_error_model(double bits)
{
    if (bits == RAANA_BITS_KEEP)
        return 0; /* the checkpoint's own 16-bit weight, stored as it is */
    return bits >= 1 ? exp2(-bits) : 0.5 / sqrt(bits);
}

/* f(b_k): the problem's measured table, else the paper's model. */
static double unit_error(const raana_alloc_problem *p, int k)
{
    return p->unit_error ? p->unit_error[k] : raana_alloc_error_model(p->bits[k]);
}

static uint64_t gcd64(uint64_t a, uint64_t b)
{
    while (b) {
        uint64_t t = a % b;
        a = b, b = t;
    }
    return a;
}

void raana_alloc_result_free(raana_alloc_result *r)
{
    free(r->choice);
    r->choice = NULL;
}

static raana_status check_problem(const raana_alloc_problem *p, raana_error *err)
{
    if (p->n_bits < 1 || p->n_bits > 255)
        return raana_fail(err, RAANA_ERR_CONFIG, "AllocateBits: the candidate list is empty");
    for (int k = 0; k < p->n_bits; k++) {
        double q = p->bits[k] * 4;
        int width_ok = (q == floor(q) && q >= 1 && q <= 32) || p->bits[k] == RAANA_BITS_KEEP;
        if (!width_ok || (k && p->bits[k] <= p->bits[k - 1]))
            return raana_fail(err, RAANA_ERR_CONFIG,
                              "AllocateBits: candidate bits must be ascending multiples of 1/4 "
                              "in (0, 8], or 16 (kept as stored)");
    }
    if (p->avg_bits < p->bits[0] || p->avg_bits > p->bits[p->n_bits - 1])
        return raana_fail(err, RAANA_ERR_CONFIG,
                          "AllocateBits: avg_bits = %g is outside the candidate bits [%g, %g]",
                          p->avg_bits, p->bits[0], p->bits[p->n_bits - 1]);
    for (int k = 0; p->unit_error && k < p->n_bits; k++)
        if (!(p->unit_error[k] >= 0) || !isfinite(p->unit_error[k]))
            return raana_fail(err, RAANA_ERR_NUMERIC,
                              "AllocateBits: the error of candidate %g bits is %g", p->bits[k],
                              p->unit_error[k]);
    for (int l = 0; l < p->n_layers; l++)
        if (p->size[l] == 0 || !(p->coef[l] >= 0) || !isfinite(p->coef[l]))
            return raana_fail(err, RAANA_ERR_NUMERIC,
                              "AllocateBits: layer %d has size %llu and coefficient %g", l,
                              (unsigned long long)p->size[l], p->coef[l]);
    return RAANA_OK;
}

static uint64_t total_size(const raana_alloc_problem *p)
{
    uint64_t n = 0;
    for (int l = 0; l < p->n_layers; l++)
        n += p->size[l];
    return n;
}

/* The budget in quarter-bit units: floor(4 avg_bits N), with a relative
 * 1e-12 allowance so that decimal avg_bits like 2.1 do not lose a unit to
 * rounding. */
static uint64_t budget_units(const raana_alloc_problem *p)
{
    long double b = 4.0L * (long double)p->avg_bits * (long double)total_size(p);
    return (uint64_t)floorl(b * (1 + 1e-12L));
}

static void finish(const raana_alloc_problem *p, raana_alloc_result *r)
{
    double cost = 0, bits = 0;
    for (int l = 0; l < p->n_layers; l++) {
        double b = p->bits[r->choice[l]];
        cost += p->coef[l] * unit_error(p, r->choice[l]);
        bits += b * (double)p->size[l];
    }
    r->cost = cost;
    r->achieved_avg_bits = p->n_layers ? bits / (double)total_size(p) : 0;
}

/* ---- exact dynamic programming ------------------------------------------------- */

typedef struct {
    uint64_t g, r_max; /* unit of the scaled budget, the scaled budget */
    uint64_t *extra;   /* [L][K]: (cost of candidate k - cost of candidate 0) / g */
} scaled_problem;

/* Costs above each layer's cheapest candidate, divided by their gcd: the DP
 * then runs over the budget left once every layer has its smallest width. */
static int scale(const raana_alloc_problem *p, scaled_problem *s)
{
    int L = p->n_layers, K = p->n_bits;
    uint64_t budget = budget_units(p), base = 0, g = 0, most = 0;
    s->extra = malloc((size_t)(L ? L : 1) * K * sizeof *s->extra);
    if (!s->extra)
        return -1;
    for (int l = 0; l < L; l++) {
        uint64_t q0 = (uint64_t)(p->bits[0] * 4);
        base += q0 * p->size[l];
        for (int k = 0; k < K; k++) {
            uint64_t e = ((uint64_t)(p->bits[k] * 4) - q0) * p->size[l];
            s->extra[(size_t)l * K + k] = e;
            g = gcd64(g, e);
        }
        most += s->extra[(size_t)l * K + K - 1];
    }
    g = g ? g : 1;
    uint64_t room = budget > base ? budget - base : 0;
    room = room < most ? room : most;
    for (size_t i = 0; i < (size_t)L * K; i++)
        s->extra[i] /= g;
    s->g = g;
    s->r_max = room / g;
    return 0;
}

static raana_status solve_dp(const raana_alloc_problem *p, const scaled_problem *s,
                             raana_alloc_result *r, raana_error *err)
{
    int L = p->n_layers, K = p->n_bits;
    size_t R = (size_t)s->r_max + 1;
    double *prev = malloc(R * sizeof *prev), *cur = malloc(R * sizeof *cur);
    unsigned char *choice = malloc((size_t)(L ? L : 1) * R);
    double *unit_cost = malloc((size_t)K * sizeof *unit_cost);
    if (!prev || !cur || !choice || !unit_cost) {
        free(prev), free(cur), free(choice), free(unit_cost);
        return raana_fail(err, RAANA_ERR_NOMEM, "AllocateBits: out of memory for %zu x %zu cells",
                          (size_t)L, R);
    }
    for (int k = 0; k < K; k++)
        unit_cost[k] = unit_error(p, k);
    for (size_t x = 0; x < R; x++)
        prev[x] = 0; /* no layer: cost 0 within any budget */
    for (int l = 0; l < L; l++) {
        const uint64_t *e = s->extra + (size_t)l * K;
        unsigned char *ch = choice + (size_t)l * R;
        for (size_t x = 0; x < R; x++) {
            double best = INFINITY;
            unsigned char arg = 0;
            for (int k = 0; k < K && e[k] <= x; k++) { /* e ascends with k */
                double c = p->coef[l] * unit_cost[k] + prev[x - e[k]];
                if (c < best) /* ties keep the fewer bits */
                    best = c, arg = (unsigned char)k;
            }
            cur[x] = best, ch[x] = arg;
        }
        double *t = prev;
        prev = cur, cur = t;
    }
    size_t x = R - 1;
    for (int l = L - 1; l >= 0; l--) {
        int k = choice[(size_t)l * R + x];
        r->choice[l] = k;
        x -= s->extra[(size_t)l * K + k];
    }
    free(prev), free(cur), free(choice), free(unit_cost);
    return RAANA_OK;
}

/* ---- Lagrangian relaxation with repair ---------------------------------------- */

/* Each layer's best candidate at price lambda per bit; returns the bits used
 * (sum n b) and adds the dual terms to *dual. */
static double price_choice(const raana_alloc_problem *p, double lambda, int *choice, double *dual)
{
    double used = 0, d = 0;
    for (int l = 0; l < p->n_layers; l++) {
        double best = INFINITY;
        int arg = 0;
        for (int k = 0; k < p->n_bits; k++) {
            double v = p->coef[l] * unit_error(p, k) + lambda * (double)p->size[l] * p->bits[k];
            if (v < best)
                best = v, arg = k;
        }
        choice[l] = arg;
        used += (double)p->size[l] * p->bits[arg];
        d += best;
    }
    if (dual)
        *dual = d;
    return used;
}

/* Greedy repair: while the budget allows, take the single-step upgrade with
 * the largest error reduction per added bit. */
static void repair(const raana_alloc_problem *p, double budget_bits, int *choice)
{
    double used = 0;
    for (int l = 0; l < p->n_layers; l++)
        used += (double)p->size[l] * p->bits[choice[l]];
    for (;;) {
        int best_l = -1;
        double best_ratio = 0;
        for (int l = 0; l < p->n_layers; l++) {
            int k = choice[l];
            if (k + 1 >= p->n_bits)
                continue;
            double add = (double)p->size[l] * (p->bits[k + 1] - p->bits[k]);
            double gain = p->coef[l] * (unit_error(p, k) - unit_error(p, k + 1));
            if (used + add <= budget_bits && gain / add > best_ratio)
                best_ratio = gain / add, best_l = l;
        }
        if (best_l < 0)
            return;
        used += (double)p->size[best_l] * (p->bits[choice[best_l] + 1] - p->bits[choice[best_l]]);
        choice[best_l]++;
    }
}

raana_status raana_allocate_bits_lagrangian(const raana_alloc_problem *p, raana_alloc_result *r,
                                            raana_error *err)
{
    raana_status st = RAANA_OK;
    int *tmp = NULL;
    RAANA_CALL(check_problem(p, err));
    memset(r, 0, sizeof *r);
    r->choice = calloc((size_t)(p->n_layers ? p->n_layers : 1), sizeof *r->choice);
    tmp = calloc((size_t)(p->n_layers ? p->n_layers : 1), sizeof *tmp);
    if (!r->choice || !tmp)
        RAANA_FAIL_GOTO(err, RAANA_ERR_NOMEM, "AllocateBits: out of memory");
    double budget_bits = (double)budget_units(p) / 4, lo = 0, hi = 1, dual, best_dual = -INFINITY;
    /* the dual function is a lower bound at every lambda >= 0 */
    if (price_choice(p, 0, tmp, &dual) <= budget_bits) {
        memcpy(r->choice, tmp, (size_t)p->n_layers * sizeof *tmp); /* unconstrained optimum fits */
        best_dual = dual;
    } else {
        while (price_choice(p, hi, tmp, NULL) > budget_bits && hi < 1e300)
            hi *= 2;
        for (int it = 0; it < 200; it++) { /* geometric bisection on the price */
            double mid = lo > 0 ? sqrt(lo * hi) : hi / 1024;
            double used = price_choice(p, mid, tmp, &dual);
            best_dual = fmax(best_dual, dual - mid * budget_bits);
            if (used > budget_bits)
                lo = mid;
            else
                hi = mid;
            if (lo > 0 && hi / lo < 1 + 1e-12)
                break;
        }
        price_choice(p, hi, r->choice, &dual);
        best_dual = fmax(best_dual, dual - hi * budget_bits);
        repair(p, budget_bits, r->choice);
    }
    finish(p, r);
    r->lower_bound = fmin(best_dual, r->cost);
    r->method = RAANA_ALLOC_LAGRANGIAN;
cleanup:
    free(tmp);
    if (st != RAANA_OK)
        raana_alloc_result_free(r);
    return st;
}

/* The exact dynamic program over the scaled problem s. */
static raana_status allocate_exact(const raana_alloc_problem *p, const scaled_problem *s,
                                   raana_alloc_result *r, raana_error *err)
{
    raana_status st = RAANA_OK;
    memset(r, 0, sizeof *r);
    r->choice = calloc((size_t)(p->n_layers ? p->n_layers : 1), sizeof *r->choice);
    if (!r->choice)
        RAANA_FAIL_GOTO(err, RAANA_ERR_NOMEM, "AllocateBits: out of memory");
    RAANA_CHECK(solve_dp(p, s, r, err));
    finish(p, r);
    r->lower_bound = r->cost;
    r->method = RAANA_ALLOC_EXACT_DP;
cleanup:
    if (st != RAANA_OK)
        raana_alloc_result_free(r);
    return st;
}

raana_status raana_allocate_bits(const raana_alloc_problem *p, uint64_t max_dp_cells,
                                 raana_alloc_result *r, raana_error *err)
{
    raana_status st = RAANA_OK;
    scaled_problem s = {0, 0, NULL};
    RAANA_CALL(check_problem(p, err));
    if (scale(p, &s) != 0)
        RAANA_FAIL_GOTO(err, RAANA_ERR_NOMEM, "AllocateBits: out of memory");
    uint64_t cells = (uint64_t)p->n_layers * (s.r_max + 1);
    RAANA_CHECK(cells > max_dp_cells ? raana_allocate_bits_lagrangian(p, r, err)
                                     : allocate_exact(p, &s, r, err));
    r->dp_cells = cells;
cleanup:
    free(s.extra);
    return st;
}
