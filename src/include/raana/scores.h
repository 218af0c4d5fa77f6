/* scores.h — what evaluation measures at one position, from a model's
 * logits (and a second model's, for comparisons): the next-token negative
 * log-likelihood, the KL divergence between the two next-token
 * distributions and the argmax; and summaries of per-token values (mean,
 * sample standard deviation, quantile). All in double, log-softmax with the
 * row's maximum subtracted first. No MPI, no files. */
#ifndef RAANA_SCORES_H
#define RAANA_SCORES_H

#include <stddef.h>

/* log(sum_j exp(row[j])) over row[0..v), in double. */
double raana_logsumexp(const float *row, int v);

/* Index of the largest row[j] (the first one on ties). */
int raana_argmax(const float *row, int v);

/* KL(P || Q) = sum_j P_j (log P_j - log Q_j) with P = softmax(p),
 * Q = softmax(q); lse_p and lse_q are their raana_logsumexp. Exactly 0 when
 * p and q are equal. */
double raana_kl_logits(const float *p, double lse_p, const float *q, double lse_q, int v);

/* Mean of x[0..n) summed in order (0 when n is 0). */
double raana_mean(const double *x, size_t n);

/* Sample standard deviation (denominator n - 1; 0 when n < 2). */
double raana_sd(const double *x, size_t n, double mean);

/* Sorts x[0..n) ascending and returns its q-quantile (0 <= q <= 1), linear
 * interpolation between order statistics: h = (n - 1) q,
 * x[floor h] + (h - floor h) (x[floor h + 1] - x[floor h]) (numpy's
 * default). n must be at least 1. */
double raana_quantile_sort(double *x, size_t n, double q);

#endif
