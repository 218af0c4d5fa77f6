/* scores.c — per-position evaluation numbers and summaries (see scores.h). */
#include "raana/scores.h"

#include <math.h>
#include <stdlib.h>

double raana_logsumexp(const float *row, int v)
{
    float mx = row[0];
    for (int j = 1; j < v; j++)
        mx = row[j] > mx ? row[j] : mx;
    double sum = 0;
    for (int j = 0; j < v; j++)
        sum += exp((double)row[j] - mx);
    return mx + log(sum);
}

int raana_argmax(const float *row, int v)
{
    int best = 0;
    for (int j = 1; j < v; j++)
        if (row[j] > row[best])
            best = j;
    return best;
}

double raana_kl_logits(const float *p, double lse_p, const float *q, double lse_q, int v)
{
    double kl = 0;
    for (int j = 0; j < v; j++) {
        double log_p = (double)p[j] - lse_p, log_q = (double)q[j] - lse_q;
        kl += exp(log_p) * (log_p - log_q);
    }
    return kl;
}

double raana_mean(const double *x, size_t n)
{
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += x[i];
    return n ? sum / (double)n : 0;
}

double raana_sd(const double *x, size_t n, double mean)
{
    if (n < 2)
        return 0;
    double sq = 0;
    for (size_t i = 0; i < n; i++)
        sq += (x[i] - mean) * (x[i] - mean);
    return sqrt(sq / (double)(n - 1));
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double raana_quantile_sort(double *x, size_t n, double q)
{
    qsort(x, n, sizeof *x, compare_doubles);
    double h = (double)(n - 1) * q;
    size_t lo = (size_t)floor(h);
    if (lo + 1 >= n)
        return x[n - 1];
    return x[lo] + (h - (double)lo) * (x[lo + 1] - x[lo]);
}
