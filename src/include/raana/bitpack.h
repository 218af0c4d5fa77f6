/* bitpack.h — dense packing of B-bit codes (B = 1..8).
 *
 * Bit order: the codes form one little-endian bit stream; code k occupies
 * stream bits [k*B, (k+1)*B), its least significant bit first, and stream
 * bit b is bit (b mod 8) of byte b / 8. The last byte is zero-padded. So
 * with B = 3, codes 5, 1, 6 pack to bits 101 100 011 -> byte 0 = 0b10001101,
 * byte 1 = 0b00000001 (numpy: np.unpackbits(bytes, bitorder="little")). */
#ifndef RAANA_BITPACK_H
#define RAANA_BITPACK_H

#include <stddef.h>
#include <stdint.h>

size_t raana_packed_size(size_t n, int bits);
void raana_pack_codes(const uint8_t *codes, size_t n, int bits, uint8_t *out);
void raana_unpack_codes(const uint8_t *packed, size_t n, int bits, uint8_t *codes);

#endif
