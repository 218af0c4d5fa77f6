/* tiny_model.h — writes small checkpoints for tests: raw safetensors files
 * from a header string, and complete synthetic LLaMA-family model
 * directories (config.json + F32 model.safetensors) built from the same
 * required-tensor list the reader checks against. */
#ifndef RAANA_TEST_TINY_MODEL_H
#define RAANA_TEST_TINY_MODEL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "raana/model.h"

/* 8-byte length, header, then data_len bytes of data (or zeros). */
static inline int write_st_raw(const char *path, const char *header, const void *data,
                               size_t data_len)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    uint64_t n = strlen(header);
    unsigned char len[8];
    for (int i = 0; i < 8; i++)
        len[i] = (unsigned char)(n >> (8 * i));
    fwrite(len, 1, 8, f);
    fwrite(header, 1, n, f);
    for (size_t i = 0; i < data_len; i++)
        fputc(data ? ((const unsigned char *)data)[i] : 0, f);
    return fclose(f);
}

static inline int write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fputs(text, f);
    return fclose(f);
}

/* Deterministic pseudo-random value in [-0.5, 0.5) for element i of a tensor. */
static inline float tiny_value(uint64_t seed, uint64_t i)
{
    uint64_t z = seed * 0x9E3779B97F4A7C15ull + i + 1;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (float)((double)(z >> 11) / 9007199254740992.0 - 0.5);
}

/* Writes dir/config.json (json text) and dir/model.safetensors holding every
 * required tensor as F32 (norm weights near 1, others small random). If
 * nan_tensor is not NULL, element 3 of that tensor is NaN. */
static inline int write_tiny_model(const char *dir, const char *config_json, const char *nan_tensor)
{
    char path[4096];
    raana_model_config cfg;
    raana_error err;
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (write_text(path, config_json) != 0)
        return -1;
    if (raana_model_config_parse(config_json, strlen(config_json), "tiny", &cfg, &err) != RAANA_OK)
        return -1;
    size_t n;
    raana_tensor_spec *spec = raana_model_required_tensors(&cfg, &n);
    size_t hcap = 256 + n * 160, used = 0, total = 0;
    char *header = malloc(hcap);
    used += (size_t)snprintf(header + used, hcap - used, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (size_t i = 0; i < n; i++) {
        size_t numel =
            (size_t)spec[i].shape[0] * (spec[i].ndim == 2 ? (size_t)spec[i].shape[1] : 1);
        if (spec[i].ndim == 2)
            used += (size_t)snprintf(header + used, hcap - used,
                                     ",\"%s\":{\"dtype\":\"F32\",\"shape\":[%lld,%lld],"
                                     "\"data_offsets\":[%zu,%zu]}",
                                     spec[i].name, (long long)spec[i].shape[0],
                                     (long long)spec[i].shape[1], total * 4, (total + numel) * 4);
        else
            used += (size_t)snprintf(header + used, hcap - used,
                                     ",\"%s\":{\"dtype\":\"F32\",\"shape\":[%lld],"
                                     "\"data_offsets\":[%zu,%zu]}",
                                     spec[i].name, (long long)spec[i].shape[0], total * 4,
                                     (total + numel) * 4);
        total += numel;
    }
    snprintf(header + used, hcap - used, "}");
    float *data = malloc(total * sizeof *data);
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        size_t numel =
            (size_t)spec[i].shape[0] * (spec[i].ndim == 2 ? (size_t)spec[i].shape[1] : 1);
        int is_norm = strstr(spec[i].name, "norm") != NULL;
        for (size_t j = 0; j < numel; j++)
            data[at + j] = is_norm ? 1.0f + 0.2f * tiny_value(i, j) : 0.6f * tiny_value(i, j);
        if (nan_tensor && strcmp(spec[i].name, nan_tensor) == 0 && numel > 3)
            data[at + 3] = NAN;
        at += numel;
    }
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    int rc = write_st_raw(path, header, data, total * sizeof *data);
    free(header);
    free(data);
    free(spec);
    return rc;
}

#define TINY_LLAMA_CONFIG                                                                          \
    "{\"model_type\":\"llama\",\"vocab_size\":32,\"hidden_size\":16,"                              \
    "\"intermediate_size\":24,\"num_hidden_layers\":2,\"num_attention_heads\":4,"                  \
    "\"num_key_value_heads\":2,\"rms_norm_eps\":1e-5,\"rope_theta\":10000.0,"                      \
    "\"max_position_embeddings\":64,\"tie_word_embeddings\":false}"

/* Removes what write_tiny_model wrote, and dir. */
static inline void remove_tiny_model(const char *dir)
{
    char path[256];
    snprintf(path, sizeof path, "%s/config.json", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    unlink(path);
    rmdir(dir);
}

/* A LLaMA model config with these shapes (no checkpoint behind it): for the
 * tests of the plan and of what is computed from it. */
static inline raana_model_config tiny_llama_config(int layers, int hidden, int inter, int heads,
                                                   int kv, int vocab)
{
    raana_model_config m;
    memset(&m, 0, sizeof m);
    snprintf(m.model_type, sizeof m.model_type, "llama");
    m.num_layers = layers, m.hidden_size = hidden, m.intermediate_size = inter;
    m.num_heads = heads, m.num_kv_heads = kv, m.head_dim = hidden / heads, m.vocab_size = vocab;
    m.max_position_embeddings = 4096;
    return m;
}

#endif
