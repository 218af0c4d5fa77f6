/* model.h — a Hugging Face LLaMA-family checkpoint directory: config.json
 * (llama, mistral, qwen2, qwen3, and the mixtures of experts mixtral,
 * qwen2_moe, qwen3_moe: docs/MOE.md), its tensors in model.safetensors or in shards
 * listed by model.safetensors.index.json, the names and shapes the
 * architecture requires, and reading one tensor as f32. */
#ifndef RAANA_MODEL_H
#define RAANA_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "raana/error.h"
#include "raana/safetensors.h"

typedef enum {
    RAANA_ARCH_LLAMA,
    RAANA_ARCH_MISTRAL,
    RAANA_ARCH_QWEN2,
    RAANA_ARCH_QWEN3,
    RAANA_ARCH_MIXTRAL,
    RAANA_ARCH_QWEN2_MOE,
    RAANA_ARCH_QWEN3_MOE
} raana_arch;

/* Most entries of mlp_only_layers accepted (real configs list none). */
#define RAANA_MLP_ONLY_MAX 64

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
    int qk_norm;        /* q_norm/k_norm: per-head RMSNorm of q and k before RoPE (qwen3) */
    int sliding_window; /* 0: full causal attention; else the window (refused when it binds) */
    /* Mixture of experts (docs/MOE.md); moe_experts == 0 for dense models. */
    int moe_experts, moe_top_k, moe_intermediate_size;
    int moe_norm_topk_prob; /* renormalize the top-k routing weights to sum 1 */
    int moe_sparse_step;    /* block b is sparse when (b + 1) % step == 0 ... */
    int n_mlp_only, mlp_only_layers[RAANA_MLP_ONLY_MAX]; /* ... and b is not listed here */
    int moe_shared_intermediate_size; /* qwen2_moe shared expert (sigmoid-gated); 0: none */
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
    RAANA_LINEAR_COUNT, /* the seven of a dense block */
    /* further linear layers of a sparse (mixture-of-experts) block */
    RAANA_LINEAR_ROUTER = RAANA_LINEAR_COUNT, /* mlp.gate: [experts][hidden] */
    RAANA_LINEAR_SHARED_GATE                  /* mlp.shared_expert_gate: [1][hidden] */
} raana_linear_kind;

/* "model.layers.{block}.self_attn.q_proj" etc. (no ".weight"). */
void raana_linear_name(int block, raana_linear_kind kind, char *buf, size_t size);
void raana_linear_shape(const raana_model_config *cfg, raana_linear_kind kind, int *d_in,
                        int *d_out);
/* Number of parameters of one decoder block (linears, biases, norms); for
 * a mixture of experts, of its largest block. */
uint64_t raana_block_params(const raana_model_config *cfg);

/* ---- Linear layers of any block, dense or sparse (docs/MOE.md). A block's
 * layers are numbered by slot: a dense block has the seven above in
 * raana_linear_kind order; a sparse block has q, k, v, o, the router, then
 * for each expert e its gate, up and down projections (slot 5 + 3e + k),
 * then, with a shared expert, its gate, up, down and the shared gate. */
#define RAANA_EXPERT_NONE   (-1)
#define RAANA_EXPERT_SHARED (-2)

typedef struct {
    char name[112];         /* HF name without ".weight" */
    raana_linear_kind kind; /* Q..DOWN (experts use GATE/UP/DOWN), ROUTER, SHARED_GATE */
    int expert;             /* 0.., RAANA_EXPERT_NONE or RAANA_EXPERT_SHARED */
    int d_in, d_out, has_bias;
} raana_linear_info;

/* 1 when block b's MLP is a mixture of experts. */
int raana_block_is_sparse(const raana_model_config *cfg, int block);
int raana_block_linear_count(const raana_model_config *cfg, int block);
/* Layers of the blocks before b (the index of block b's slot 0 in a
 * model-wide, block-major list). */
int raana_block_linear_offset(const raana_model_config *cfg, int block);
int raana_model_linear_count(const raana_model_config *cfg);
void raana_block_linear(const raana_model_config *cfg, int block, int slot, raana_linear_info *out);
/* Parameters of block b (linears, biases, norms). */
uint64_t raana_block_params_at(const raana_model_config *cfg, int block);

/* Refuses a sliding window shorter than seq_len (it would change the
 * attention; not implemented), naming the key. */
raana_status raana_model_check_window(const raana_model_config *cfg, int seq_len, const char *label,
                                      raana_error *err);

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
