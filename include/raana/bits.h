/* bits.h — the one place where raana counts the bits a quantized layer
 * occupies in a container (docs/FORMAT.md, "Bits, honestly counted"):
 * codes, rescales (32 bits per column, or 16 with [quantize] side_bits =
 * 16), trick terms (mu and row scales, 32 or 16 bits per input; held-out columns, 32 bits per value
 * plus a 32-bit index) the two rotation sign vectors (one bit per input, padded to whole bytes) and
 * low-rank factors (16 bits per entry). Pure arithmetic: the quantizer, the container writer, the
 * reader and the tools all call it, so their numbers agree to the last bit. */
#ifndef RAANA_BITS_H
#define RAANA_BITS_H

#include <stddef.h>

/* Stored bits of one layer by kind (absolute, not per weight). */
typedef struct {
    double weights; /* d_in * d_out */
    double codes, rescales, mu, row_scale, held, signs;
    double factors; /* low-rank compensation: 16 bits per factor entry */
} raana_layer_bits;

/* The stored bits of a layer of shape [d_out][d_in] with packed_bytes per
 * column, n_held held-out columns and the mu / row-scale vectors if set. */
raana_layer_bits raana_layer_bits_count(int d_in, int d_out, size_t packed_bytes, int n_held,
                                        int has_mu, int has_row_scale);

/* Adds the two 16-bit factors of a rank-r compensation (r (d_in + d_out)
 * entries) to b. */
void raana_layer_bits_add_factors(raana_layer_bits *b, int d_in, int d_out, int rank);

/* The rescales, mu and row scales at side_bits (32 or 16) per value, as
 * counted by raana_layer_bits_count at 32. */
void raana_layer_bits_set_side(raana_layer_bits *b, int d_in, int d_out, int side_bits);

/* Bits per weight, everything counted (the layer's effective bits). */
double raana_layer_bits_per_weight(const raana_layer_bits *b);

/* Bits per weight of the trick terms alone: held-out columns, mu, row
 * scales. */
double raana_layer_bits_tricks(const raana_layer_bits *b);

#endif
