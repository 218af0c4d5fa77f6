/* rabitq.c — exact and fast RaBitQ code search for one column, rescale,
 * decode (see rabitq.h for the math and the exactness argument). */
#include "raana/rabitq.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "raana/simd.h"

/* What a bucket's events add (hot in the first pass: 12 bytes; a bucket
 * holds about 8 events, so a float sum loses nothing that matters). */
typedef struct {
    float sum_o;
    int32_t sum_2c, count;
} raana_bucket;

/* Per bucket, for the sweep: the state at its start, where its events go. */
typedef struct {
    double num0, s20;
    size_t start;
    int mark;
} raana_bucket_state;

struct raana_rabitq_work {
    int cap;
    float *o;        /* |w_i| / ||w|| */
    uint32_t *keys;  /* radix sort scratch */
    uint32_t *order; /* coordinate indices by o ascending */
    uint32_t *tmp_keys, *tmp_order;
    double *q;      /* 1 / o over coordinates by o descending (q ascending) */
    int *u, *u_top; /* the code; in the exact search, the events between two scales */
    float o_max;    /* of o */
    double sum_o;   /* of o */
    /* merge heap over the M event lists */
    double *heap_t;
    int *heap_c, *head;
    /* bucketed sweep: per bucket of scales, the events' count, sum of o,
     * sum of 2c, largest scale, start state; events of marked buckets as
     * keys (scale's float bits << 32 | coordinate << 7 | c) */
    size_t bucket_cap, event_cap, merge_max_events;
    float *qf; /* 1 / o (0 where o = 0), for the event scales */
    raana_bucket *buckets;
    raana_bucket_state *bstate;
    size_t bstate_cap;
    uint64_t *ev;
};

/* The exact search uses the bucketed sweep unless the caller lowered this
 * limit on events per column (tests use 0 to exercise the heap sweep). */
#define MERGE_MAX_EVENTS SIZE_MAX

raana_rabitq_work *raana_rabitq_work_create(int d)
{
    raana_rabitq_work *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    size_t n = (size_t)(d > 0 ? d : 1);
    w->cap = d;
    w->merge_max_events = MERGE_MAX_EVENTS;
    w->o = malloc(n * sizeof *w->o);
    w->keys = malloc(n * sizeof *w->keys);
    w->order = malloc(n * sizeof *w->order);
    w->tmp_keys = malloc(n * sizeof *w->tmp_keys);
    w->tmp_order = malloc(n * sizeof *w->tmp_order);
    w->q = malloc(n * sizeof *w->q);
    w->u = malloc(n * sizeof *w->u);
    w->u_top = malloc(n * sizeof *w->u_top);
    w->heap_t = malloc(128 * sizeof *w->heap_t);
    w->heap_c = malloc(128 * sizeof *w->heap_c);
    w->head = malloc(129 * sizeof *w->head);
    w->qf = malloc(n * sizeof *w->qf);
    if (!w->qf || !w->o || !w->keys || !w->order || !w->tmp_keys || !w->tmp_order || !w->q ||
        !w->u || !w->u_top || !w->heap_t || !w->heap_c || !w->head) {
        raana_rabitq_work_free(w);
        return NULL;
    }
    return w;
}

void raana_rabitq_work_set_merge_limit(raana_rabitq_work *w, size_t max_events)
{
    w->merge_max_events = max_events;
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
    free(w->u_top);
    free(w->heap_t);
    free(w->heap_c);
    free(w->head);
    free(w->qf);
    free(w->buckets);
    free(w->bstate);
    free(w->ev);
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

/* Scale of event (c, coordinate with 1/o = qf): the one expression used by
 * the bucketed sweep and by the code reconstruction. */
static inline float event_scale(int c, float qf)
{
    return (float)c * qf;
}

static inline uint32_t float_bits(float f)
{
    uint32_t b;
    memcpy(&b, &f, sizeof b);
    return b;
}

static int reserve(void **buf, size_t *cap, size_t n, size_t elem)
{
    if (n <= *cap)
        return 0;
    free(*buf);
    *buf = malloc(n * elem);
    *cap = *buf ? n : 0;
    return *buf ? 0 : -1;
}

typedef struct {
    uint32_t lo_bits, cap_bits; /* scales at or above cap go to the last bucket */
    int shift, n_buckets;
} bucket_map;

/* Bucket of an event scale: monotone in t (non-negative floats order like
 * their bits), so bucket boundaries are scale thresholds. */
static inline int bucket_of(const bucket_map *bm, float t)
{
    uint32_t b = float_bits(t);
    if (b >= bm->cap_bits)
        return bm->n_buckets - 1;
    return (int)((b - bm->lo_bits) >> bm->shift);
}

/* Float bits of the largest scale that falls in bucket b (b not last). */
static inline uint32_t bucket_end_bits(const bucket_map *bm, int b)
{
    return bm->lo_bits + ((uint32_t)(b + 1) << bm->shift) - 1;
}

static void insertion_sort(uint64_t *a, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        uint64_t x = a[i];
        size_t j = i;
        for (; j > 0 && a[j - 1] > x; j--)
            a[j] = a[j - 1];
        a[j] = x;
    }
}

static int by_key(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

RAANA_HOT static void inverse_magnitudes(const float *restrict o, int d, float *restrict qf)
{
    for (int i = 0; i < d; i++)
        qf[i] = o[i] > 0 ? 1.0f / o[i] : 0.0f;
}

/* u_i = the largest c in [0, M] with event_scale(c, qf_i) <= t (0 where
 * o_i = 0): floor(t o_i) corrected by one either way so that it agrees
 * with the event arithmetic exactly. t is finite. */
RAANA_HOT static void codes_at_event_scale(const float *restrict o, const float *restrict qf, int d,
                                           int m, float t, int *restrict u)
{
    float fm = (float)m;
    for (int i = 0; i < d; i++) {
        float f = t * o[i];
        int c = (int)(f < fm ? f : fm);
        c += c < m && event_scale(c + 1, qf[i]) <= t;
        c -= c > 0 && event_scale(c, qf[i]) > t;
        u[i] = o[i] > 0 ? c : 0;
    }
}

/* The buckets of events (c, i) for i in [0, n): computed in vector lanes;
 * a coordinate with o = 0 has no events and goes to the sink bucket past
 * the last. */
RAANA_HOT static void bucket_indices(const float *restrict o, const float *restrict qf, int n,
                                     int c, bucket_map bm, uint32_t *restrict idx)
{
    for (int i = 0; i < n; i++)
        idx[i] =
            o[i] > 0 ? (uint32_t)bucket_of(&bm, event_scale(c, qf[i])) : (uint32_t)bm.n_buckets;
}

/* Pass 1: per bucket, the number of events and what they add to
 * <u+1/2, o> (sum of o) and ||u+1/2||^2 (sum of 2c): 64 coordinates at a
 * time, their bucket indices for one c in vector lanes, then the sums. */
__attribute__((noinline)) static void fill_buckets(raana_rabitq_work *w, int d, int m,
                                                   const bucket_map *bm)
{
    raana_bucket *bk = w->buckets;
    uint32_t idx[64];
    for (int i0 = 0; i0 < d; i0 += 64) {
        int n = d - i0 < 64 ? d - i0 : 64;
        const float *o = w->o + i0;
        for (int c = 1; c <= m; c++) {
            bucket_indices(o, w->qf + i0, n, c, *bm, idx);
            for (int l = 0; l < n; l++) {
                raana_bucket *b = &bk[idx[l]];
                b->count++;
                b->sum_o += o[l];
                b->sum_2c += 2 * c;
            }
        }
    }
}

/* Pass 2: the events of the marked buckets, whose scales all lie in
 * (t_lo, t_hi] (t_hi may be +inf). Coordinate i has exactly the events
 * c in (u_i(t_lo), u_i(t_hi)] there (the event arithmetic is monotone in
 * c), both counts computed in vector lanes, so the scalar loop touches only
 * those events. Returns the number of events written. */
__attribute__((noinline)) static size_t
collect_marked(raana_rabitq_work *w, int d, const bucket_map *bm, int m, float t_lo, float t_hi)
{
    int *from = w->u, *to = w->u_top;
    codes_at_event_scale(w->o, w->qf, d, m, t_lo, from);
    codes_at_event_scale(w->o, w->qf, d, m, t_hi, to);
    size_t written = 0;
    for (int i = 0; i < d; i++)
        for (int c = from[i] + 1; c <= to[i]; c++) {
            float t = event_scale(c, w->qf[i]);
            int b = bucket_of(bm, t);
            if (w->bstate[b].mark) {
                w->ev[w->bstate[b].start++] =
                    (uint64_t)float_bits(t) << 32 | (uint32_t)i << 7 | (uint32_t)c;
                written++;
            }
        }
    return written;
}

/* Sorts and sweeps the events of the marked buckets, each from its start
 * state; updates *best and *best_bits. Returns -1 if out of memory. */
static int sweep_marked(raana_rabitq_work *w, int d, int m, const bucket_map *bm, double *best,
                        uint32_t *best_bits)
{
    size_t total = 0;
    int first = -1, last = -1;
    for (int b = 0; b < bm->n_buckets; b++) {
        w->bstate[b].start = total;
        if (w->bstate[b].mark) {
            total += (size_t)w->buckets[b].count;
            first = first < 0 ? b : first;
            last = b;
        }
    }
    if (total == 0)
        return 0;
    if (reserve((void **)&w->ev, &w->event_cap, total, sizeof *w->ev) != 0)
        return -1;
    uint32_t lo = first == 0 ? 0 : bucket_end_bits(bm, first - 1);
    float t_lo, t_hi = INFINITY;
    memcpy(&t_lo, &lo, sizeof t_lo);
    if (last < bm->n_buckets - 1) {
        uint32_t hi = bucket_end_bits(bm, last);
        memcpy(&t_hi, &hi, sizeof t_hi);
    }
    if (collect_marked(w, d, bm, m, t_lo, t_hi) != total)
        return -1; /* cannot happen; the caller falls back to the heap sweep */
    size_t at = 0;
    for (int b = first; b <= last; b++) {
        const raana_bucket_state *bk = &w->bstate[b];
        if (!bk->mark)
            continue;
        uint64_t *ev = w->ev + at;
        size_t n = (size_t)w->buckets[b].count;
        at += n;
        if (n <= 32)
            insertion_sort(ev, n);
        else
            qsort(ev, n, sizeof *ev, by_key);
        double num = bk->num0, s2 = bk->s20;
        for (size_t e = 0; e < n; e++) {
            uint32_t p = (uint32_t)ev[e], t_bits = (uint32_t)(ev[e] >> 32);
            num += w->o[p >> 7];
            s2 += 2.0 * (double)(p & 127);
            if ((e + 1 == n || (uint32_t)(ev[e + 1] >> 32) != t_bits) && num * num > *best * s2)
                *best = num * num / s2, *best_bits = t_bits;
        }
    }
    return 0;
}

/* The exact optimum over all critical scales, by buckets of scale with
 * bounds (see the file comment); returns the best scale (0: all-zero
 * code), or -1 if out of memory. */
static float bucket_best_t(raana_rabitq_work *w, int d, int m)
{
    float o_max = w->o_max;
    double sum_o = w->sum_o;
    size_t events = (size_t)d * (size_t)m;
    bucket_map bm;
    bm.n_buckets = 16;
    while ((size_t)bm.n_buckets * 8 < events && bm.n_buckets < (1 << 20))
        bm.n_buckets *= 2;
    bm.lo_bits = float_bits(1.0f / o_max); /* the smallest scale */
    bm.cap_bits = float_bits(16.0f * (float)(m + 1) / o_max);
    bm.shift = 0;
    while (((bm.cap_bits - bm.lo_bits) >> bm.shift) >= (uint32_t)(bm.n_buckets - 1))
        bm.shift++;
    size_t nb = (size_t)bm.n_buckets;
    if (reserve((void **)&w->buckets, &w->bucket_cap, nb + 1, sizeof *w->buckets) != 0 ||
        reserve((void **)&w->bstate, &w->bstate_cap, nb, sizeof *w->bstate) != 0)
        return -1.0f;
    memset(w->buckets, 0, (nb + 1) * sizeof *w->buckets); /* + the sink of o = 0 */
    fill_buckets(w, d, m, &bm);
    /* every bucket boundary is a code: evaluate them all. The overflow
     * bucket's end is every coordinate at M, represented by +inf. */
    double num = 0.5 * sum_o, s2 = 0.25 * d, best = num * num / s2;
    uint32_t best_bits = 0;
    for (int b = 0; b < bm.n_buckets; b++) {
        const raana_bucket *bk = &w->buckets[b];
        w->bstate[b].num0 = num, w->bstate[b].s20 = s2;
        num += bk->sum_o;
        s2 += (double)bk->sum_2c;
        if (bk->count && num * num > best * s2)
            best = num * num / s2,
            best_bits = b < bm.n_buckets - 1 ? bucket_end_bits(&bm, b) : 0x7f800000u;
    }
    /* Inside bucket b, a prefix of its events adds x <= X = sum of o to N
     * and sum 2c = sum 2 t o >= 2 t_lo x to S2 (t_lo: the bucket's lowest
     * scale; 1e-6 covers float rounding of t). (N0 + x) / sqrt(S0 + a x) is
     * quasi-convex in x, so its maximum over [0, X] is at x = 0 (the start,
     * a boundary already evaluated) or at x = X: sweep the bucket only if
     * that bound beats the best boundary. */
    for (int b = 0; b < bm.n_buckets; b++) {
        raana_bucket_state *bk = &w->bstate[b];
        uint32_t lo_bits = bm.lo_bits + ((uint32_t)b << bm.shift);
        if (b == bm.n_buckets - 1)
            lo_bits = bm.cap_bits;
        float t_lo;
        memcpy(&t_lo, &lo_bits, sizeof t_lo);
        double x = w->buckets[b].sum_o, a = 2.0 * t_lo * (1.0 - 1e-6), n_end = bk->num0 + x;
        bk->mark = w->buckets[b].count > 1 && n_end * n_end > best * (bk->s20 + a * x);
    }
    if (sweep_marked(w, d, m, &bm, &best, &best_bits) != 0)
        return -1.0f;
    float t;
    memcpy(&t, &best_bits, sizeof t);
    return t;
}

/* The heap sweep over all critical scales (O(D) memory); returns the best
 * t (0: all-zero code). */
static double heap_best_t(raana_rabitq_work *w, int d, int m)
{
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
        if ((n == 0 || ht[0] != t) && num * num > best * s2) /* num^2 / s2 > best */
            best = num * num / s2, best_t = t;
    }
    return best_t;
}

#define LANES 16
typedef float vfloat __attribute__((vector_size(4 * LANES)));
typedef int vint __attribute__((vector_size(4 * LANES)));
typedef float vhalf __attribute__((vector_size(2 * LANES)));
typedef double vdouble __attribute__((vector_size(4 * LANES)));

/* num^2 / s2 of u(t) = min(floor(t o), M), written with vector extensions
 * so that every target_clones copy is vectorized (used to compare scales):
 * t o is clipped to M in float before it is truncated (the same u), and two
 * pairs of accumulators keep the loop from waiting on one chain of
 * additions. */
RAANA_HOT static double eval_scale(const float *restrict o, int d, int m, float t)
{
    vfloat num[2] = {{0}, {0}}, s2[2] = {{0}, {0}}, tv = (vfloat){0} + t, fmv = tv * 0 + (float)m;
    int i = 0;
    for (; i + 2 * LANES <= d; i += 2 * LANES)
        for (int h = 0; h < 2; h++) {
            vfloat ov;
            memcpy(&ov, o + i + h * LANES, sizeof ov);
            vfloat f = tv * ov;
            vint below = f < fmv;
            f = (vfloat)(((vint)f & below) | ((vint)fmv & ~below)); /* t o >= 0: trunc = floor */
            vfloat y = __builtin_convertvector(__builtin_convertvector(f, vint), vfloat) + 0.5f;
            num[h] += y * ov;
            s2[h] += y * y;
        }
    double n_sum = 0, s_sum = 0;
    for (int l = 0; l < LANES; l++)
        n_sum += num[0][l] + num[1][l], s_sum += s2[0][l] + s2[1][l];
    for (; i < d; i++) {
        int k = (int)(t * o[i]);
        double y = (double)(k < m ? k : m) + 0.5;
        n_sum += y * o[i], s_sum += y * y;
    }
    return n_sum * n_sum / s_sum;
}

RAANA_HOT static void code_at_scale(const float *restrict o, int d, int m, float t, int *restrict u)
{
    for (int i = 0; i < d; i++) {
        int k = (int)(t * o[i]);
        u[i] = k < m ? k : m;
    }
}

/* <u + 1/2, o> and ||u + 1/2||^2: products in float vector lanes (y o has a
 * float's relative error; y^2 and its lane sums of 16 terms are exact),
 * flushed to double every 16 vectors. */
RAANA_HOT static void code_stats(const float *restrict o, const int *restrict u, int d,
                                 double *num_out, double *s2_out)
{
    double num = 0, s2 = 0;
    int i = 0;
    while (i + LANES <= d) {
        vfloat nv = {0}, sv = {0};
        for (int blk = 0; blk < 16 && i + LANES <= d; blk++, i += LANES) {
            vfloat ov;
            vint uv;
            memcpy(&ov, o + i, sizeof ov);
            memcpy(&uv, u + i, sizeof uv);
            vfloat y = __builtin_convertvector(uv, vfloat) + 0.5f;
            nv += y * ov;
            sv += y * y;
        }
        for (int l = 0; l < LANES; l++)
            num += nv[l], s2 += sv[l];
    }
    for (; i < d; i++) {
        double y = u[i] + 0.5;
        num += y * o[i], s2 += y * y;
    }
    *num_out = num;
    *s2_out = s2;
}

/* o = |w| / ||w||, its largest value and its sum; returns ||w|| (sums in
 * LANES double lanes, the largest in LANES float lanes). */
RAANA_HOT static double normalize_abs(const float *restrict w, int d, float *restrict o,
                                      float *o_max, double *sum_o)
{
    double acc[LANES] = {0}, norm2 = 0, sum = 0;
    float big = 0;
    int i = 0;
    for (; i + LANES <= d; i += LANES)
        for (int l = 0; l < LANES; l++)
            acc[l] += (double)w[i + l] * w[i + l];
    for (int l = 0; l < LANES; l++)
        norm2 += acc[l];
    for (; i < d; i++)
        norm2 += (double)w[i] * w[i];
    double norm = sqrt(norm2);
    float inv = norm > 0 ? (float)(1.0 / norm) : 0.0f;
    vfloat top = {0}, iv = top + inv;
    vdouble sums[2] = {{0}, {0}};
    for (i = 0; i + LANES <= d; i += LANES) {
        vint wv;
        memcpy(&wv, w + i, sizeof wv);
        vfloat v = (vfloat)(wv & 0x7fffffff) * iv; /* |w| / ||w|| */
        memcpy(o + i, &v, sizeof v);
        vint above = v > top;
        top = (vfloat)(((vint)v & above) | ((vint)top & ~above));
        for (int h = 0; h < 2; h++) {
            vhalf vh;
            memcpy(&vh, (const float *)&v + h * (LANES / 2), sizeof vh);
            sums[h] += __builtin_convertvector(vh, vdouble);
        }
    }
    for (; i < d; i++) {
        o[i] = fabsf(w[i]) * inv;
        big = o[i] > big ? o[i] : big, sum += o[i];
    }
    for (int l = 0; l < LANES; l++)
        big = top[l] > big ? top[l] : big, sum += sums[l / 8][l % 8];
    *o_max = big, *sum_o = sum;
    return norm;
}

/* O(D) per column: a geometric grid of scales t = g (M + 1) / o_max with
 * g from 0.5 to 3.8 (the exact optimum clips the largest coordinates: g was
 * measured between 1.0 and 3.3 on Gaussian columns, larger for fewer bits),
 * then a golden-section refinement between the best point's neighbours:
 * 6 + 2 + 12 evaluations, ending on the bracket that 12 grid points with
 * step 1.2 and 10 steps gave (24 evaluations). */
static void fast_code(raana_rabitq_work *w, int d, int m)
{
    float o_max = w->o_max;
    if (o_max == 0) {
        memset(w->u, 0, (size_t)d * sizeof *w->u);
        return;
    }
    const int n_grid = 6;
    const float step = 1.5f; /* 0.5 .. 3.8 */
    float base = (float)(m + 1) / o_max, best_t = base, t = 0.5f * base;
    double best = -1;
    for (int g = 0; g < n_grid; g++, t *= step) {
        double v = eval_scale(w->o, d, m, t);
        if (v > best)
            best = v, best_t = t;
    }
    float lo = best_t / step, hi = best_t * step;
    const float phi = 0.618034f;
    float a = hi - phi * (hi - lo), b = lo + phi * (hi - lo);
    double va = eval_scale(w->o, d, m, a), vb = eval_scale(w->o, d, m, b);
    for (int it = 0; it < 12; it++) {
        if (va >= vb) {
            hi = b, b = a, vb = va;
            a = hi - phi * (hi - lo);
            va = eval_scale(w->o, d, m, a);
        } else {
            lo = a, a = b, va = vb;
            b = lo + phi * (hi - lo);
            vb = eval_scale(w->o, d, m, b);
        }
        if (va > best)
            best = va, best_t = a;
        if (vb > best)
            best = vb, best_t = b;
    }
    code_at_scale(w->o, d, m, best_t, w->u);
}

/* The exact code into w->u: merge sweep when the events fit in memory,
 * else (or if allocating them fails) the heap sweep. */
static void exact_code(raana_rabitq_work *w, int d, int m)
{
    inverse_magnitudes(w->o, d, w->qf);
    float tf = (size_t)m * (size_t)d <= w->merge_max_events ? bucket_best_t(w, d, m) : -1;
    if (isinf(tf)) {
        for (int i = 0; i < d; i++)
            w->u[i] = w->o[i] > 0 ? m : 0;
        return;
    }
    if (tf >= 0) {
        codes_at_event_scale(w->o, w->qf, d, m, tf, w->u);
        return;
    }
    sort_by_o(w, d);
    double t = heap_best_t(w, d, m);
    for (int i = 0; i < d; i++)
        w->u[i] = w->o[i] > 0 ? events_up_to(t, 1.0 / (double)w->o[i], m) : 0;
}

/* c_i = half + u_i if w_i > 0 else half - 1 - u_i, without a branch on
 * the (random) sign. */
RAANA_HOT static void signed_codes(const float *restrict w, const int *restrict u, int d, int half,
                                   uint8_t *restrict codes)
{
    for (int i = 0; i < d; i++) {
        int positive = w[i] > 0;
        codes[i] = (uint8_t)(half - 1 - u[i] + positive * (2 * u[i] + 1));
    }
}

double raana_rabitq_encode_column(const float *wcol, int d, int bits, raana_encoder encoder,
                                  raana_rabitq_work *w, uint8_t *codes, float *rescale)
{
    int m = (1 << (bits - 1)) - 1, half = 1 << (bits - 1);
    double norm = normalize_abs(wcol, d, w->o, &w->o_max, &w->sum_o);
    if (norm == 0) {
        memset(codes, half, (size_t)d);
        *rescale = 0;
        return 1.0;
    }
    if (m == 0) {
        memset(w->u, 0, (size_t)d * sizeof *w->u);
    } else if (encoder == RAANA_ENCODER_FAST) {
        fast_code(w, d, m);
    } else {
        exact_code(w, d, m);
    }
    double num, s2;
    code_stats(w->o, w->u, d, &num, &s2);
    signed_codes(wcol, w->u, d, half, codes);
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
