/* half_scaled.c — 16-bit storage of side vectors: IEEE half times 2^e
 * (see half_scaled.h). */
#include "raana/half_scaled.h"

#include <math.h>

#include "raana/safetensors.h"
#include "raana/safetensors_write.h"

int raana_half_scaled_exponent(const float *v, size_t n)
{
    float top = 0.0f;
    for (size_t i = 0; i < n; i++)
        top = fabsf(v[i]) > top ? fabsf(v[i]) : top;
    if (top == 0.0f)
        return 0;
    int e2;
    float m = frexpf(top, &e2); /* top = m 2^e2, m in [0.5, 1) */
    /* m to half precision's 11 significant bits: when that rounds up to 1,
     * the stored top is 2^e2 and the exponent is that of the rounded top,
     * so values already rounded give the same exponent back */
    if (rintf(m * 2048.0f) >= 2048.0f)
        e2++;
    return e2 - 15; /* top 2^-e in [2^14, 2^15), or rounding up to 2^14 */
}

void raana_half_scaled_encode(const float *v, size_t n, int e, uint16_t *h)
{
    for (size_t i = 0; i < n; i++)
        h[i] = raana_f32_to_f16((float)ldexp((double)v[i], -e));
}

void raana_half_scaled_decode(const uint16_t *h, size_t n, int e, float *v)
{
    for (size_t i = 0; i < n; i++)
        v[i] = (float)ldexp((double)raana_f16_to_f32(h[i]), e);
}

int raana_half_scaled_round(float *v, size_t n)
{
    int e = raana_half_scaled_exponent(v, n);
    for (size_t i = 0; i < n; i++) {
        uint16_t h;
        raana_half_scaled_encode(v + i, 1, e, &h);
        raana_half_scaled_decode(&h, 1, e, v + i);
    }
    return e;
}
