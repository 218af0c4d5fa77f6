/* tricks.h — the transformations a quantized layer may carry (applied
 * before quantization, exact at inference; docs/QUANTIZER.md) and the code
 * search used to encode it. Public: a raana_qlayer names them. */
#ifndef RAANA_TRICKS_H
#define RAANA_TRICKS_H

typedef enum { RAANA_ENCODER_EXACT = 0, RAANA_ENCODER_FAST = 1 } raana_encoder;

enum {
    RAANA_TRICK_CENTRALIZE = 1u << 0, /* subtract the row means mu */
    RAANA_TRICK_NORM_COL = 1u << 1,   /* hold the largest-norm columns in full precision */
    RAANA_TRICK_NORM_ROW = 1u << 2    /* normalize rows by row_scale */
};

#endif
