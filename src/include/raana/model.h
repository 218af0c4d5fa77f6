/* model.h — a Hugging Face LLaMA-family checkpoint directory: config.json
 * (llama, mistral, qwen2), its tensors in model.safetensors or in shards
 * listed by model.safetensors.index.json, the names and shapes the
 * architecture requires, and reading one tensor as f32. */
#ifndef RAANA_MODEL_H
#define RAANA_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "raana/error.h"
#include "raana/safetensors.h"

typedef enum { RAANA_ARCH_LLAMA, RAANA_ARCH_MISTRAL, RAANA_ARCH_QWEN2 } raana_arch;

typedef enum {
    RAANA_ROPE_DEFAULT,
    RAANA_ROPE_LINEAR,
    RAANA_ROPE_DYNAMIC,
    RAANA_ROPE_LLAMA3
} raana_rope_type;

typedef struct {
    raana_arch arch;
    char model_type[32];
    int vocab_size, hidden_size, intermediate_size;
    int num_layers, num_heads, num_kv_heads, head_dim;
    int max_position_embeddings;
    double rms_norm_eps, rope_theta;
    raana_rope_type rope_type;
    double rope_factor, rope_low_freq_factor, rope_high_freq_factor;
    int rope_original_max_position_embeddings;
    int tie_word_embeddings;
    int qkv_bias, o_bias, mlp_bias; /* which linears carry a bias tensor */
    int bos_token_id, eos_token_id; /* -1 when config.json has none */
} raana_model_config;

/* Parses config.json text; label names it in messages. Missing or
 * wrong-typed keys and unsupported architectures are RAANA_ERR_INPUT /
 * RAANA_ERR_UNSUPPORTED naming the key. */
raana_status raana_model_config_parse(const char *json, size_t len, const char *label,
                                      raana_model_config *cfg, raana_error *err);

/* The seven linear layers of a decoder block, in forward order. */
typedef enum {
    RAANA_LINEAR_Q,
    RAANA_LINEAR_K,
    RAANA_LINEAR_V,
    RAANA_LINEAR_O,
    RAANA_LINEAR_GATE,
    RAANA_LINEAR_UP,
    RAANA_LINEAR_DOWN,
    RAANA_LINEAR_COUNT
} raana_linear_kind;

/* "model.layers.{block}.self_attn.q_proj" etc. (no ".weight"). */
void raana_linear_name(int block, raana_linear_kind kind, char *buf, size_t size);
void raana_linear_shape(const raana_model_config *cfg, raana_linear_kind kind, int *d_in,
                        int *d_out);
/* Number of parameters of one decoder block (linears, biases, norms). */
uint64_t raana_block_params(const raana_model_config *cfg);

typedef struct {
    char name[128];
    int ndim;
    int64_t shape[2];
} raana_tensor_spec;

/* Every tensor the architecture needs, with its shape. Returns a malloc'd
 * array (count in *n) or NULL when out of memory. */
raana_tensor_spec *raana_model_required_tensors(const raana_model_config *cfg, size_t *n);

typedef struct {
    const char *name; /* owned by the file's tensor table */
    int file;
    const raana_st_tensor *tensor;
} raana_tensor_entry;

/* A lazy tensor source other than safetensors files (e.g. a raana
 * container, container_model.h), so this module needs to know nothing about
 * it. read_f32 fills out[0 .. e->tensor->numel) as f32 (the caller has
 * checked the count and checks finiteness afterwards); close releases ctx. */
typedef struct {
    raana_status (*read_f32)(void *ctx, const raana_tensor_entry *e, float *out, raana_error *err);
    void (*close)(void *ctx);
} raana_tensor_source;

typedef struct {
    char dir[4096];           /* the checkpoint directory; a source's label */
    char tensor_source[4096]; /* model.safetensors or the index file; a source's label */
    raana_model_config config;
    raana_st_file *files; /* NULL for a model with a source */
    int n_files;
    raana_tensor_entry *entries; /* sorted by name */
    size_t n_entries;
    const raana_tensor_source *source; /* NULL: the tensors live in files[] */
    void *source_ctx;
} raana_model;

/* Longest tensor name accepted (the container stores /tensors/NAME). */
#define RAANA_TENSOR_NAME_MAX 255

/* Reads config.json and every safetensors header (no tensor data), and
 * checks that every tensor name can be stored in the container (1 to
 * RAANA_TENSOR_NAME_MAX bytes, no '/', not "." or "..") and that every
 * required tensor is present with its shape and a float dtype. */
raana_status raana_model_open(raana_model *m, const char *dir, raana_error *err);
void raana_model_close(raana_model *m);

/* A model whose tensors come from `source`: the config as given, entries[n]
 * (each name and tensor owned by ctx; the array itself is taken over and
 * sorted here), label naming the source in messages. Checks duplicate names
 * and every required tensor (presence, shape, float dtype) exactly as
 * raana_model_open does. Takes ownership of entries and ctx: on failure
 * they are released (source->close) before returning. */
raana_status raana_model_open_source(raana_model *m, const char *label,
                                     const raana_model_config *cfg, raana_tensor_entry *entries,
                                     size_t n, const raana_tensor_source *source, void *ctx,
                                     raana_error *err);

const raana_tensor_entry *raana_model_find(const raana_model *m, const char *name);

/* Converts tensor `name` to f32 into out (count must equal its numel) and
 * refuses NaN or infinite values, naming the tensor. */
raana_status raana_model_read_f32(const raana_model *m, const char *name, float *out, size_t count,
                                  raana_error *err);

const char *raana_arch_name(raana_arch arch);

#endif
