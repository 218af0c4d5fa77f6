/* bits.c — the bit accounting of a stored layer (see bits.h). */
#include "raana/bits.h"

raana_layer_bits raana_layer_bits_count(int d_in, int d_out, size_t packed_bytes, int n_held,
                                        int has_mu, int has_row_scale)
{
    raana_layer_bits b;
    b.weights = (double)d_in * d_out;
    b.codes = 8.0 * (double)packed_bytes * d_out;
    b.rescales = 32.0 * d_out;
    b.mu = has_mu ? 32.0 * d_in : 0.0;
    b.row_scale = has_row_scale ? 32.0 * d_in : 0.0;
    b.held = n_held * (32.0 * d_in + 32.0);
    b.signs = 2.0 * 8.0 * (double)((d_in + 7) / 8); /* the two sign vectors, packed */
    b.factors = 0.0;
    return b;
}

void raana_layer_bits_add_factors(raana_layer_bits *b, int d_in, int d_out, int rank)
{
    b->factors = rank > 0 ? 16.0 * rank * ((double)d_in + d_out) : 0.0;
}

void raana_layer_bits_set_side(raana_layer_bits *b, int d_in, int d_out, int side_bits)
{
    double w = side_bits == 16 ? 16.0 : 32.0;
    b->rescales = w * d_out;
    b->mu = b->mu != 0.0 ? w * d_in : 0.0;
    b->row_scale = b->row_scale != 0.0 ? w * d_in : 0.0;
}

/* The order of the sums is part of the format: effective_bits attributes
 * written by earlier versions must come out bit for bit the same. */
double raana_layer_bits_per_weight(const raana_layer_bits *b)
{
    double stored = b->codes + b->rescales;
    if (b->mu != 0.0)
        stored += b->mu;
    if (b->row_scale != 0.0)
        stored += b->row_scale;
    stored += b->held;
    stored += b->signs;
    if (b->factors != 0.0)
        stored += b->factors;
    return stored / b->weights;
}

double raana_layer_bits_tricks(const raana_layer_bits *b)
{
    double tricks = b->held;
    if (b->mu != 0.0)
        tricks += b->mu;
    if (b->row_scale != 0.0)
        tricks += b->row_scale;
    return tricks / b->weights;
}
