/* bitpack.c — B-bit code packing (see bitpack.h for the bit order). */
#include "raana/bitpack.h"

#include <string.h>

size_t raana_packed_size(size_t n, int bits)
{
    return (n * (size_t)bits + 7) / 8;
}

void raana_pack_codes(const uint8_t *codes, size_t n, int bits, uint8_t *out)
{
    if (bits == 8) {
        memcpy(out, codes, n);
        return;
    }
    memset(out, 0, raana_packed_size(n, bits));
    size_t bit = 0;
    for (size_t k = 0; k < n; k++, bit += (size_t)bits) {
        unsigned v = (unsigned)codes[k] << (bit % 8);
        out[bit / 8] |= (uint8_t)v;
        if (bit % 8 + (size_t)bits > 8)
            out[bit / 8 + 1] |= (uint8_t)(v >> 8);
    }
}

void raana_unpack_codes(const uint8_t *packed, size_t n, int bits, uint8_t *codes)
{
    if (bits == 8) {
        memcpy(codes, packed, n);
        return;
    }
    unsigned mask = (1u << bits) - 1;
    size_t bit = 0, bytes = raana_packed_size(n, bits);
    for (size_t k = 0; k < n; k++, bit += (size_t)bits) {
        size_t at = bit / 8;
        unsigned v = packed[at];
        if (at + 1 < bytes)
            v |= (unsigned)packed[at + 1] << 8;
        codes[k] = (uint8_t)((v >> (bit % 8)) & mask);
    }
}
