/* test_scores.c — the per-token evaluation numbers against closed forms:
 * log-sum-exp of large logits, KL divergence of two small distributions
 * (and 0 for equal logits, invariance to a shift of the logits), argmax
 * ties, mean / sample sd, and quantiles against values worked out by hand
 * (numpy's linear interpolation). */
#include <math.h>

#include "check.h"
#include "raana/scores.h"

static void test_logsumexp(void)
{
    float row[3] = {1000.0f, 1000.0f, 1000.0f}; /* exp would overflow without the max */
    CHECK_NEAR(raana_logsumexp(row, 3), 1000.0 + log(3.0), 1e-12);
    float one[1] = {-5.0f};
    CHECK_NEAR(raana_logsumexp(one, 1), -5.0, 1e-15);
}

static void test_kl(void)
{
    /* P = (3/4, 1/4), Q = (1/2, 1/2): KL = 3/4 ln(3/2) + 1/4 ln(1/2) */
    float p[2] = {(float)log(3.0), 0.0f}, q[2] = {7.0f, 7.0f};
    double want = 0.75 * log(1.5) + 0.25 * log(0.5);
    double got = raana_kl_logits(p, raana_logsumexp(p, 2), q, raana_logsumexp(q, 2), 2);
    CHECK_NEAR(got, want, 1e-7); /* p holds log 3 rounded to float */
    float r[4] = {0.5f, -2.0f, 3.25f, 1.0f};
    CHECK(raana_kl_logits(r, raana_logsumexp(r, 4), r, raana_logsumexp(r, 4), 4) == 0.0);
    float s[4] = {10.5f, 8.0f, 13.25f, 11.0f}; /* r + 10: the same distribution */
    CHECK_NEAR(raana_kl_logits(r, raana_logsumexp(r, 4), s, raana_logsumexp(s, 4), 4), 0.0, 1e-14);
}

static void test_argmax(void)
{
    float row[5] = {1.0f, 4.0f, -1.0f, 4.0f, 2.0f};
    CHECK_INT(raana_argmax(row, 5), 1); /* first of the tied maxima */
    CHECK_INT(raana_argmax(row + 2, 3), 1);
}

static void test_summaries(void)
{
    double x[5] = {2, 4, 4, 5, 10};
    CHECK_NEAR(raana_mean(x, 5), 5.0, 1e-15);
    /* squares of deviations 9+1+1+0+25 = 36, / (n-1) = 9 */
    CHECK_NEAR(raana_sd(x, 5, 5.0), 3.0, 1e-15);
    CHECK(raana_sd(x, 1, 2.0) == 0.0);
    double y[5] = {10, 4, 2, 5, 4};
    /* sorted 2 4 4 5 10: h = 4 * 0.99 = 3.96, 5 + 0.96 * 5 = 9.8 */
    CHECK_NEAR(raana_quantile_sort(y, 5, 0.99), 9.8, 1e-12);
    CHECK(y[0] == 2 && y[4] == 10); /* sorted in place */
    CHECK_NEAR(raana_quantile_sort(y, 5, 0.5), 4.0, 1e-15);
    CHECK(raana_quantile_sort(y, 5, 1.0) == 10.0);
    CHECK(raana_quantile_sort(y, 5, 0.0) == 2.0);
    double one[1] = {7};
    CHECK(raana_quantile_sort(one, 1, 0.99) == 7.0);
}

int main(void)
{
    test_logsumexp();
    test_kl();
    test_argmax();
    test_summaries();
    return check_summary("test_scores");
}
