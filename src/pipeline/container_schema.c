/* container_schema.c — the container's layout constants and the small
 * encodings every container module shares (see container_schema.h). */
#include "raana/container_schema.h"

#include <stdlib.h>
#include <string.h>

#include "raana/config.h"
#include "raana/fault.h"

const char *const raana_schema_model_files[RAANA_N_MODEL_FILES] = {
    "config.json",           "generation_config.json",  "tokenizer.json",
    "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model"};

const char *const raana_schema_columns[RAANA_N_COLS] = {
    "bits",   "coef",  "grad_rms",  "x_rms",       "x_fro",         "y_fro",
    "dy_fro", "w_fro", "rel_error", "mean_cosine", "effective_bits"};

int raana_schema_is_quantized_weight(const raana_plan *plan, const char *tensor)
{
    size_t n = strlen(tensor);
    if (n < 7 || strcmp(tensor + n - 7, ".weight") != 0)
        return 0;
    for (int i = 0; i < plan->n_layers; i++)
        if (plan->layers[i].quantize && strlen(plan->layers[i].name) == n - 7 &&
            strncmp(plan->layers[i].name, tensor, n - 7) == 0)
            return 1;
    return 0;
}

hid_t raana_schema_tensor_type(raana_dtype d)
{
    switch (d) {
    case RAANA_DTYPE_F32: return H5T_NATIVE_FLOAT;
    case RAANA_DTYPE_F64: return H5T_NATIVE_DOUBLE;
    case RAANA_DTYPE_F16:
    case RAANA_DTYPE_BF16: return H5T_NATIVE_UINT16; /* raw bits; attribute dtype says which */
    case RAANA_DTYPE_I16: return H5T_NATIVE_INT16;
    case RAANA_DTYPE_I64: return H5T_NATIVE_INT64;
    case RAANA_DTYPE_I32: return H5T_NATIVE_INT32;
    case RAANA_DTYPE_I8: return H5T_NATIVE_INT8;
    default: return H5T_NATIVE_UINT8; /* U8, BOOL, F8: raw bytes */
    }
}

uint8_t *raana_schema_pack_signs(const raana_rotation *rot)
{
    size_t row = ((size_t)rot->d + 7) / 8;
    uint8_t *out = raana_calloc(2 * row, 1);
    for (int i = 0; out && i < rot->d; i++) {
        if (rot->s1[i] < 0)
            out[i / 8] |= (uint8_t)(1u << (i % 8));
        if (rot->s2[i] < 0)
            out[row + i / 8] |= (uint8_t)(1u << (i % 8));
    }
    return out;
}

unsigned raana_schema_parse_tricks(const char *text)
{
    return (strstr(text, "centralize") ? RAANA_TRICK_CENTRALIZE : 0) |
           (strstr(text, "norm_col") ? RAANA_TRICK_NORM_COL : 0) |
           (strstr(text, "norm_row") ? RAANA_TRICK_NORM_ROW : 0);
}

int raana_schema_format_version(int lowrank, int side_half)
{
    if (side_half)
        return RAANA_FORMAT_VERSION;
    return lowrank ? RAANA_FORMAT_VERSION_LOWRANK : RAANA_FORMAT_VERSION_PLAIN;
}
