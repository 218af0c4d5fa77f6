/* trick_terms.c — the centralize means, norm_row scales and norm_col's
 * held-out columns (see trick_terms.h). */
#include "raana/trick_terms.h"

#include <math.h>
#include <stdlib.h>

#include "raana/ranked.h"

raana_status raana_trick_means(const float *w, int d_in, int d_out, float *mu, raana_error *err)
{
    double *sum = calloc((size_t)d_in, sizeof *sum);
    if (!sum)
        return raana_fail(err, RAANA_ERR_NOMEM, "out of memory for %d row sums", d_in);
    for (int j = 0; j < d_out; j++)
        for (int i = 0; i < d_in; i++)
            sum[i] += w[(size_t)j * d_in + i];
    for (int i = 0; i < d_in; i++)
        mu[i] = (float)(sum[i] / d_out);
    free(sum);
    return RAANA_OK;
}

raana_status raana_trick_row_scales(const float *w, int d_in, int d_out, const float *mu,
                                    float *scale, raana_error *err)
{
    raana_trick_terms centralized = {d_in, d_out, mu, NULL};
    double *ss = calloc((size_t)d_in, sizeof *ss);
    if (!ss)
        return raana_fail(err, RAANA_ERR_NOMEM, "out of memory for %d row norms", d_in);
    for (int j = 0; j < d_out; j++)
        for (int i = 0; i < d_in; i++) {
            double v = raana_tricked(&centralized, w[(size_t)j * d_in + i], i);
            ss[i] += v * v;
        }
    for (int i = 0; i < d_in; i++) {
        double s = sqrt(ss[i] / d_out);
        scale[i] = s > 0 ? (float)s : 1.0f;
    }
    free(ss);
    return RAANA_OK;
}

static int int32_asc(const void *a, const void *b)
{
    return *(const int32_t *)a - *(const int32_t *)b;
}

/* The squared norm of column j of the tricked w times the row scales. */
static double unscaled_column_norm2(const raana_trick_terms *t, const float *w, int j)
{
    double s = 0;
    for (int i = 0; i < t->d_in; i++) {
        double v = (double)raana_tricked(t, w[(size_t)j * t->d_in + i], i) *
                   (t->row_scale ? t->row_scale[i] : 1.0f);
        s += v * v;
    }
    return s;
}

raana_status raana_trick_largest_columns(const raana_trick_terms *t, const float *w, int n,
                                         int32_t *cols, raana_error *err)
{
    raana_ranked *norms = malloc((size_t)t->d_out * sizeof *norms);
    if (!norms)
        return raana_fail(err, RAANA_ERR_NOMEM, "out of memory for %d column norms", t->d_out);
    for (int j = 0; j < t->d_out; j++)
        norms[j] = (raana_ranked){unscaled_column_norm2(t, w, j), j};
    raana_ranked_sort_desc(norms, (size_t)t->d_out);
    for (int h = 0; h < n; h++)
        cols[h] = norms[h].index;
    qsort(cols, (size_t)n, sizeof *cols, int32_asc);
    free(norms);
    return RAANA_OK;
}
