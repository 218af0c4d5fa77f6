/* rabitq.c — exact and fast RaBitQ code search for one column, rescale,
 * decode (see rabitq.h for the math and the exactness argument). */
#include "raana/rabitq.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct raana_rabitq_work {
    int cap;
    float *o;         /* |w_i| / ||w|| */
    uint32_t *keys;   /* radix sort scratch */
    uint32_t *order;  /* coordinate indices by o ascending */
    uint32_t *tmp_keys, *tmp_order;
    double *q;        /* 1 / o over coordinates by o descending (q ascending) */
    int *u;
    /* merge heap over the M event lists */
    double *heap_t;
    int *heap_c, *head;
};

raana_rabitq_work *raana_rabitq_work_new(int d)
{
    raana_rabitq_work *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    size_t n = (size_t)(d > 0 ? d : 1);
    w->cap = d;
    w->o = malloc(n * sizeof *w->o);
    w->keys = malloc(n * sizeof *w->keys);
    w->order = malloc(n * sizeof *w->order);
    w->tmp_keys = malloc(n * sizeof *w->tmp_keys);
    w->tmp_order = malloc(n * sizeof *w->tmp_order);
    w->q = malloc(n * sizeof *w->q);
    w->u = malloc(n * sizeof *w->u);
    w->heap_t = malloc(128 * sizeof *w->heap_t);
    w->heap_c = malloc(128 * sizeof *w->heap_c);
    w->head = malloc(129 * sizeof *w->head);
    if (!w->o || !w->keys || !w->order || !w->tmp_keys || !w->tmp_order || !w->q || !w->u ||
        !w->heap_t || !w->heap_c || !w->head) {
        raana_rabitq_work_free(w);
        return NULL;
    }
    return w;
}

void raana_rabitq_work_free(raana_rabitq_work *w)
{
    if (!w)
        return;
    free(w->o);
    free(w->keys);
    free(w->order);
    free(w->tmp_keys);
    free(w->tmp_order);
    free(w->q);
    free(w->u);
    free(w->heap_t);
    free(w->heap_c);
    free(w->head);
    free(w);
}

/* Sorts w->order (coordinate indices) by w->o ascending: LSD radix sort on
 * the float bit patterns (non-negative floats order like their bits). */
static void sort_by_o(raana_rabitq_work *w, int d)
{
    uint32_t *keys = w->keys, *order = w->order, *tk = w->tmp_keys, *to = w->tmp_order;
    for (int i = 0; i < d; i++) {
        memcpy(&keys[i], &w->o[i], sizeof keys[i]);
        order[i] = (uint32_t)i;
    }
    for (int shift = 0; shift < 32; shift += 8) {
        size_t count[257] = {0};
        for (int i = 0; i < d; i++)
            count[((keys[i] >> shift) & 255) + 1]++;
        for (int b = 0; b < 256; b++)
            count[b + 1] += count[b];
        for (int i = 0; i < d; i++) {
            size_t at = count[(keys[i] >> shift) & 255]++;
            tk[at] = keys[i];
            to[at] = order[i];
        }
        uint32_t *swap = keys;
        keys = tk, tk = swap;
        swap = order, order = to, to = swap;
    }
    /* four passes: the sorted data is back in the original arrays */
}

/* ---- heap of list heads, keyed by (t, c) ---------------------------------- */

static int heap_less(const double *t, const int *c, int a, int b)
{
    return t[a] < t[b] || (t[a] == t[b] && c[a] < c[b]);
}

static void heap_swap(double *t, int *c, int a, int b)
{
    double tt = t[a];
    int cc = c[a];
    t[a] = t[b], c[a] = c[b];
    t[b] = tt, c[b] = cc;
}

static void heap_down(double *t, int *c, int n, int i)
{
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && heap_less(t, c, l, m))
            m = l;
        if (r < n && heap_less(t, c, r, m))
            m = r;
        if (m == i)
            return;
        heap_swap(t, c, i, m);
        i = m;
    }
}

/* Largest c in [0, M] with c * q <= t (the event arithmetic of the sweep). */
static int events_up_to(double t, double q, int m)
{
    double f = floor(t / q);
    int c = f < 0 ? 0 : f > m ? m : (int)f;
    while (c < m && (double)(c + 1) * q <= t)
        c++;
    while (c > 0 && (double)c * q > t)
        c--;
    return c;
}

/* The sweep over all critical scales; returns the best t (0: all-zero code). */
static double exact_best_t(raana_rabitq_work *w, int d, int m)
{
    sort_by_o(w, d);
    int npos = 0; /* coordinates with o > 0, by o descending */
    uint32_t *desc = w->tmp_order;
    double sum_o = 0;
    for (int r = d - 1; r >= 0 && w->o[w->order[r]] > 0; r--) {
        uint32_t i = w->order[r];
        desc[npos] = i;
        w->q[npos++] = 1.0 / (double)w->o[i];
    }
    for (int i = 0; i < d; i++)
        sum_o += w->o[i];
    double num = 0.5 * sum_o, s2 = 0.25 * d;
    double best = num * num / s2, best_t = 0;
    if (npos == 0)
        return 0;
    int n = m;
    double *ht = w->heap_t;
    int *hc = w->heap_c, *head = w->head;
    for (int c = 1; c <= m; c++) {
        ht[c - 1] = c * w->q[0];
        hc[c - 1] = c;
        head[c] = 0;
    }
    for (int i = n / 2 - 1; i >= 0; i--)
        heap_down(ht, hc, n, i);
    while (n > 0) {
        double t = ht[0];
        int c = hc[0], j = head[c];
        num += w->o[desc[j]];
        s2 += 2.0 * c; /* (c + 1/2)^2 - (c - 1/2)^2 */
        if (++head[c] < npos)
            ht[0] = c * w->q[head[c]];
        else {
            n--;
            heap_swap(ht, hc, 0, n);
        }
        heap_down(ht, hc, n, 0);
        if (n == 0 || ht[0] != t) {
            double val = num * num / s2;
            if (val > best)
                best = val, best_t = t;
        }
    }
    return best_t;
}

/* u(t) with floor/min (fast search); returns num^2 / s2. */
static double eval_scale(const float *o, int d, int m, float t, int *u)
{
    double num = 0, s2 = 0;
    for (int i = 0; i < d; i++) {
        float f = t * o[i];
        int ui = f >= (float)m ? m : (int)f;
        if (u)
            u[i] = ui;
        double y = ui + 0.5;
        num += y * o[i];
        s2 += y * y;
    }
    return num * num / s2;
}

/* O(D) per column: a geometric grid of scales t = g (M + 1) / o_max with
 * g from 0.5 to 4 (the exact optimum clips the largest coordinates: g was
 * measured between 1.0 and 3.3 on Gaussian columns, larger for fewer bits),
 * then a golden-section refinement between the best point's neighbours. */
static void fast_code(raana_rabitq_work *w, int d, int m)
{
    float o_max = 0;
    for (int i = 0; i < d; i++)
        o_max = w->o[i] > o_max ? w->o[i] : o_max;
    if (o_max == 0) {
        memset(w->u, 0, (size_t)d * sizeof *w->u);
        return;
    }
    const int n_grid = 16;
    const float step = 1.15f;
    float base = (float)(m + 1) / o_max, best_t = base, t = 0.5f * base;
    double best = -1;
    for (int g = 0; g < n_grid; g++, t *= step) {
        double v = eval_scale(w->o, d, m, t, NULL);
        if (v > best)
            best = v, best_t = t;
    }
    float lo = best_t / step, hi = best_t * step;
    const float phi = 0.618034f;
    float a = hi - phi * (hi - lo), b = lo + phi * (hi - lo);
    double va = eval_scale(w->o, d, m, a, NULL), vb = eval_scale(w->o, d, m, b, NULL);
    for (int it = 0; it < 12; it++) {
        if (va >= vb) {
            hi = b, b = a, vb = va;
            a = hi - phi * (hi - lo);
            va = eval_scale(w->o, d, m, a, NULL);
        } else {
            lo = a, a = b, va = vb;
            b = lo + phi * (hi - lo);
            vb = eval_scale(w->o, d, m, b, NULL);
        }
        if (va > best)
            best = va, best_t = a;
        if (vb > best)
            best = vb, best_t = b;
    }
    eval_scale(w->o, d, m, best_t, w->u);
}

double raana_rabitq_encode_column(const float *wcol, int d, int bits, raana_encoder encoder,
                                  raana_rabitq_work *w, uint8_t *codes, float *rescale)
{
    int m = (1 << (bits - 1)) - 1, half = 1 << (bits - 1);
    double norm2 = 0;
    for (int i = 0; i < d; i++)
        norm2 += (double)wcol[i] * wcol[i];
    double norm = sqrt(norm2);
    if (norm == 0) {
        memset(codes, half, (size_t)d);
        *rescale = 0;
        return 1.0;
    }
    for (int i = 0; i < d; i++)
        w->o[i] = (float)(fabs((double)wcol[i]) / norm);
    if (m == 0) {
        memset(w->u, 0, (size_t)d * sizeof *w->u);
    } else if (encoder == RAANA_ENCODER_FAST) {
        fast_code(w, d, m);
    } else {
        double t = exact_best_t(w, d, m);
        for (int i = 0; i < d; i++)
            w->u[i] = w->o[i] > 0 ? events_up_to(t, 1.0 / (double)w->o[i], m) : 0;
    }
    double num = 0, s2 = 0;
    for (int i = 0; i < d; i++) {
        double y = w->u[i] + 0.5;
        num += y * w->o[i];
        s2 += y * y;
        codes[i] = (uint8_t)(wcol[i] > 0 ? half + w->u[i] : half - 1 - w->u[i]);
    }
    *rescale = (float)(norm / num);
    return num / sqrt(s2);
}

void raana_rabitq_decode_column(const uint8_t *codes, int d, int bits, float rescale, float *out)
{
    float center = (float)((1 << bits) - 1) * 0.5f;
    for (int i = 0; i < d; i++)
        out[i] = rescale * ((float)codes[i] - center);
}

double raana_rabitq_code_cosine(const float *w, int d, int bits, const uint8_t *codes)
{
    double center = ((1 << bits) - 1) * 0.5, dot = 0, nw = 0, ny = 0;
    for (int i = 0; i < d; i++) {
        double y = codes[i] - center;
        dot += y * w[i];
        nw += (double)w[i] * w[i];
        ny += y * y;
    }
    return nw > 0 && ny > 0 ? dot / sqrt(nw * ny) : 1.0;
}
