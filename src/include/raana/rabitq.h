/* rabitq.h — RaBitQ extended codes for one rotated weight column: the
 * exact and the fast code search, the rescale factor, decoding.
 *
 * For B >= 1 bits and M = 2^(B-1) - 1: o = |w| / ||w||; the code u in
 * {0..M}^D maximizes cos(u + 1/2, o). Stored code c_i = 2^(B-1) + u_i when
 * w_i > 0, else 2^(B-1) - 1 - u_i, so c_i - (2^B - 1)/2 = sign(w_i)(u_i + 1/2).
 * Rescale r = ||w|| / <u + 1/2, o>; decoded column r * (c - (2^B - 1)/2).
 *
 * Exact search: the optimum is u(t)_i = min(floor(t o_i), M) for some
 * t > 0 (nearest half-integer grid point of t*o, clipped), so it suffices
 * to sweep the critical scales t = c / o_i, c = 1..M, in increasing order,
 * updating <u+1/2, o> and ||u+1/2||^2 in O(1) per event. The events are
 * counted into buckets of scale (O(D M)); every bucket boundary is a code,
 * and a bound tells which buckets can hold a better one: only their events
 * are gathered and sorted (docs/QUANTIZER.md). A heap sweep with O(D)
 * memory is the fallback. Ties are resolved by evaluating only after every
 * event at the same t, and the code is rebuilt from the best t with the
 * same arithmetic. Tests check both paths against brute force. */
#ifndef RAANA_RABITQ_H
#define RAANA_RABITQ_H

#include <stddef.h>
#include <stdint.h>

#include "raana/config.h"

/* Scratch memory for one column of dimension up to d (per thread). */
typedef struct raana_rabitq_work raana_rabitq_work;
raana_rabitq_work *raana_rabitq_work_create(int d);
void raana_rabitq_work_free(raana_rabitq_work *work);
/* The exact search buckets all D*M events when they number at most
 * max_events (default: no limit), else uses a heap with O(D) memory. Both
 * are exact; tests set this to exercise each path. */
void raana_rabitq_work_set_merge_limit(raana_rabitq_work *work, size_t max_events);

/* Encodes w[0..d) with integer bits in 1..8 into codes[0..d) (one byte per
 * code, values < 2^bits) and *rescale. Returns cos(u + 1/2, o), the cosine
 * between w and its decoded column (1 for a zero column). */
double raana_rabitq_encode_column(const float *w, int d, int bits, raana_encoder encoder,
                                  raana_rabitq_work *work, uint8_t *codes, float *rescale);

/* out[i] = rescale * (codes[i] - (2^bits - 1) / 2) */
void raana_rabitq_decode_column(const uint8_t *codes, int d, int bits, float rescale, float *out);

/* cos(u + 1/2, o) of a given code for w (used by tests and the fast search). */
double raana_rabitq_code_cosine(const float *w, int d, int bits, const uint8_t *codes);

#endif
