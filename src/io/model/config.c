/* model/config.c — config.json of LLaMA-family models and the names and shapes
 * of the tensors the architecture requires (see model.h). */
#include "raana/model.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config_json.h"
#include "moe_config.h"
#include "raana/file.h"

/* ---- config.json -------------------------------------------------------- */

/* Largest accepted value of a size in config.json (vocab_size, hidden_size,
 * ..., and the products num_heads x head_dim): every later product of two
 * sizes then fits in 64 bits and every size in an int. The largest released
 * models use sizes below 2^18. */
#define MODEL_DIM_MAX       (1 << 24)
#define MODEL_LAYERS_MAX    (1 << 16)
#define MODEL_POSITIONS_MAX 1000000000

static raana_status get_double(raana_config_json *c, const cJSON *obj, const char *key, double dflt,
                               double *out)
{
    const cJSON *it = raana_config_member(obj, key);
    if (!it || cJSON_IsNull(it)) {
        *out = dflt;
        return RAANA_OK;
    }
    if (!cJSON_IsNumber(it) || !(it->valuedouble > 0) || !isfinite(it->valuedouble))
        return raana_fail(c->err, RAANA_ERR_INPUT, "%s: key '%s' must be a finite positive number",
                          c->label, key);
    *out = it->valuedouble;
    return RAANA_OK;
}

/* bos/eos ids: an integer, a list of integers (the first is used) or absent. */
static raana_status get_token_id(raana_config_json *c, const char *key, int *out)
{
    const cJSON *it = raana_config_member(c->root, key);
    *out = -1;
    if (!it || cJSON_IsNull(it))
        return RAANA_OK;
    if (cJSON_IsArray(it))
        it = cJSON_GetArrayItem(it, 0);
    if (!cJSON_IsNumber(it) || it->valuedouble < 0 || it->valuedouble > INT_MAX ||
        it->valuedouble != floor(it->valuedouble))
        return raana_fail(c->err, RAANA_ERR_INPUT,
                          "%s: key '%s' must be a token id or a list of token ids", c->label, key);
    *out = (int)it->valuedouble;
    return RAANA_OK;
}

/* rope_scaling (older form) or rope_parameters (newer form, which also
 * carries rope_theta). */
static raana_status parse_rope(raana_config_json *c, raana_model_config *cfg)
{
    const cJSON *params = raana_config_member(c->root, "rope_parameters");
    const cJSON *scaling = raana_config_member(c->root, "rope_scaling");
    const char *which = "rope_scaling";
    RAANA_CALL(get_double(c, c->root, "rope_theta", 10000.0, &cfg->rope_theta));
    if (params && !cJSON_IsNull(params)) {
        if (!cJSON_IsObject(params))
            return raana_fail(c->err, RAANA_ERR_INPUT,
                              "%s: key 'rope_parameters' must be an object", c->label);
        RAANA_CALL(get_double(c, params, "rope_theta", cfg->rope_theta, &cfg->rope_theta));
        scaling = params;
        which = "rope_parameters";
    }
    cfg->rope_type = RAANA_ROPE_DEFAULT;
    cfg->rope_factor = 1.0;
    if (!scaling || cJSON_IsNull(scaling))
        return RAANA_OK;
    if (!cJSON_IsObject(scaling))
        return raana_fail(c->err, RAANA_ERR_INPUT, "%s: key '%s' must be an object or null",
                          c->label, which);
    const cJSON *type = raana_config_member(scaling, "rope_type");
    if (!type)
        type = raana_config_member(scaling, "type");
    if (!type || !cJSON_IsString(type))
        return raana_fail(c->err, RAANA_ERR_INPUT, "%s: '%s' needs a string 'rope_type'", c->label,
                          which);
    const char *t = type->valuestring;
    if (strcmp(t, "default") == 0)
        return RAANA_OK;
    if (strcmp(t, "linear") == 0)
        cfg->rope_type = RAANA_ROPE_LINEAR;
    else if (strcmp(t, "dynamic") == 0)
        cfg->rope_type = RAANA_ROPE_DYNAMIC;
    else if (strcmp(t, "llama3") == 0)
        cfg->rope_type = RAANA_ROPE_LLAMA3;
    else
        return raana_fail(c->err, RAANA_ERR_UNSUPPORTED,
                          "%s: %s rope_type '%s' is not supported (supported: default, linear, "
                          "dynamic, llama3)",
                          c->label, which, t);
    RAANA_CALL(get_double(c, scaling, "factor", 1.0, &cfg->rope_factor));
    if (cfg->rope_type != RAANA_ROPE_LLAMA3)
        return RAANA_OK;
    RAANA_CALL(get_double(c, scaling, "low_freq_factor", 1.0, &cfg->rope_low_freq_factor));
    RAANA_CALL(get_double(c, scaling, "high_freq_factor", 4.0, &cfg->rope_high_freq_factor));
    return raana_config_int(c, scaling, "original_max_position_embeddings", 1, 0, 1,
                            MODEL_POSITIONS_MAX, &cfg->rope_original_max_position_embeddings);
}

static const struct {
    const char *name;
    raana_arch arch;
} supported_archs[] = {{"llama", RAANA_ARCH_LLAMA},        {"mistral", RAANA_ARCH_MISTRAL},
                       {"qwen2", RAANA_ARCH_QWEN2},        {"qwen3", RAANA_ARCH_QWEN3},
                       {"mixtral", RAANA_ARCH_MIXTRAL},    {"qwen2_moe", RAANA_ARCH_QWEN2_MOE},
                       {"qwen3_moe", RAANA_ARCH_QWEN3_MOE}};

static raana_status parse_arch(raana_config_json *c, raana_model_config *cfg)
{
    const cJSON *mt = raana_config_member(c->root, "model_type");
    if (!mt)
        return raana_fail(c->err, RAANA_ERR_INPUT, "%s: missing required key 'model_type'",
                          c->label);
    if (!cJSON_IsString(mt))
        return raana_fail(c->err, RAANA_ERR_INPUT, "%s: key 'model_type' must be a string",
                          c->label);
    snprintf(cfg->model_type, sizeof cfg->model_type, "%s", mt->valuestring);
    size_t n = sizeof supported_archs / sizeof supported_archs[0], i = 0;
    while (i < n && strcmp(mt->valuestring, supported_archs[i].name) != 0)
        i++;
    if (i == n)
        return raana_fail(c->err, RAANA_ERR_UNSUPPORTED,
                          "%s: model_type '%.64s' is not supported (supported: llama, mistral, "
                          "qwen2, qwen3, mixtral, qwen2_moe, qwen3_moe)",
                          c->label, mt->valuestring);
    cfg->arch = supported_archs[i].arch;
    const cJSON *act = raana_config_member(c->root, "hidden_act");
    if (act && !(cJSON_IsString(act) && strcmp(act->valuestring, "silu") == 0))
        return raana_fail(c->err, RAANA_ERR_UNSUPPORTED,
                          "%s: hidden_act must be \"silu\" for %s models", c->label,
                          cfg->model_type);
    return RAANA_OK;
}

/* heads x head_dim (the q and k/v widths) within MODEL_DIM_MAX. */
static raana_status check_product(raana_config_json *c, const char *heads_key, int heads,
                                  int head_dim)
{
    if ((int64_t)heads * head_dim <= MODEL_DIM_MAX)
        return RAANA_OK;
    return raana_fail(c->err, RAANA_ERR_INPUT, "%s: %s %d x head_dim %d = %lld is larger than %d",
                      c->label, heads_key, heads, head_dim, (long long)heads * head_dim,
                      MODEL_DIM_MAX);
}

static raana_status parse_shapes(raana_config_json *c, raana_model_config *cfg)
{
    const cJSON *r = c->root;
    RAANA_CALL(raana_config_int(c, r, "vocab_size", 1, 0, 1, MODEL_DIM_MAX, &cfg->vocab_size));
    RAANA_CALL(raana_config_int(c, r, "hidden_size", 1, 0, 1, MODEL_DIM_MAX, &cfg->hidden_size));
    RAANA_CALL(raana_config_int(c, r, "intermediate_size", 1, 0, 1, MODEL_DIM_MAX,
                                &cfg->intermediate_size));
    RAANA_CALL(
        raana_config_int(c, r, "num_hidden_layers", 1, 0, 1, MODEL_LAYERS_MAX, &cfg->num_layers));
    RAANA_CALL(
        raana_config_int(c, r, "num_attention_heads", 1, 0, 1, MODEL_DIM_MAX, &cfg->num_heads));
    RAANA_CALL(raana_config_int(c, r, "num_key_value_heads", 0, cfg->num_heads, 1, MODEL_DIM_MAX,
                                &cfg->num_kv_heads));
    RAANA_CALL(raana_config_int(c, r, "head_dim", 0, cfg->hidden_size / cfg->num_heads, 1,
                                MODEL_DIM_MAX, &cfg->head_dim));
    RAANA_CALL(raana_config_int(c, r, "max_position_embeddings", 0, 2048, 1, MODEL_POSITIONS_MAX,
                                &cfg->max_position_embeddings));
    RAANA_CALL(get_double(c, r, "rms_norm_eps", 1e-6, &cfg->rms_norm_eps));
    RAANA_CALL(check_product(c, "num_attention_heads", cfg->num_heads, cfg->head_dim));
    RAANA_CALL(check_product(c, "num_key_value_heads", cfg->num_kv_heads, cfg->head_dim));
    if (cfg->head_dim == 0)
        return raana_fail(c->err, RAANA_ERR_INPUT,
                          "%s: hidden_size %d is smaller than num_attention_heads %d", c->label,
                          cfg->hidden_size, cfg->num_heads);
    if (cfg->num_heads % cfg->num_kv_heads != 0)
        return raana_fail(c->err, RAANA_ERR_INPUT,
                          "%s: num_attention_heads %d is not a multiple of num_key_value_heads %d",
                          c->label, cfg->num_heads, cfg->num_kv_heads);
    return RAANA_OK;
}

static raana_status parse_flags(raana_config_json *c, raana_model_config *cfg)
{
    int attention_bias = 0;
    RAANA_CALL(raana_config_bool(c, c->root, "tie_word_embeddings", 0, &cfg->tie_word_embeddings));
    RAANA_CALL(raana_config_bool(c, c->root, "attention_bias", 0, &attention_bias));
    RAANA_CALL(raana_config_bool(c, c->root, "mlp_bias", 0, &cfg->mlp_bias));
    RAANA_CALL(get_token_id(c, "bos_token_id", &cfg->bos_token_id));
    RAANA_CALL(get_token_id(c, "eos_token_id", &cfg->eos_token_id));
    /* Qwen2 (and Qwen2-MoE) always has q/k/v biases and no o bias; the
     * attention_bias of llama, qwen3 and qwen3_moe covers all four
     * projections; mixtral has none. */
    int qwen2 = cfg->arch == RAANA_ARCH_QWEN2 || cfg->arch == RAANA_ARCH_QWEN2_MOE;
    if (cfg->arch == RAANA_ARCH_MIXTRAL)
        attention_bias = 0;
    cfg->qkv_bias = qwen2 || attention_bias;
    cfg->o_bias = !qwen2 && attention_bias;
    cfg->qk_norm = cfg->arch == RAANA_ARCH_QWEN3 || cfg->arch == RAANA_ARCH_QWEN3_MOE;
    return RAANA_OK;
}

raana_status raana_model_config_parse(const char *json, size_t len, const char *label,
                                      raana_model_config *cfg, raana_error *err)
{
    raana_status st = RAANA_OK;
    memset(cfg, 0, sizeof *cfg);
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root)
        RAANA_FAIL_GOTO(err, RAANA_ERR_INPUT, "%s: not valid JSON", label);
    if (!cJSON_IsObject(root))
        RAANA_FAIL_GOTO(err, RAANA_ERR_INPUT, "%s: not a JSON object", label);
    raana_config_json c = {root, label, err, NULL};
    RAANA_CHECK(parse_arch(&c, cfg));
    RAANA_CHECK(parse_shapes(&c, cfg));
    RAANA_CHECK(parse_rope(&c, cfg));
    RAANA_CHECK(parse_flags(&c, cfg));
    RAANA_CHECK(raana_model_config_parse_window(root, label, cfg, err));
    RAANA_CHECK(raana_model_config_parse_moe(root, label, cfg, err));
cleanup:
    cJSON_Delete(root);
    return st;
}

/* The model_type that names arch, from the same table parse_arch reads. */
const char *raana_arch_name(raana_arch arch)
{
    for (size_t i = 0; i < sizeof supported_archs / sizeof supported_archs[0]; i++)
        if (supported_archs[i].arch == arch)
            return supported_archs[i].name;
    return "?";
}

/* ---- names and shapes ------------------------------------------------------ */

static const char *const linear_suffix[RAANA_LINEAR_COUNT] = {
    "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
    "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj"};

void raana_linear_name(int block, raana_linear_kind kind, char *buf, size_t size)
{
    snprintf(buf, size, "model.layers.%d.%s", block, linear_suffix[kind]);
}

void raana_linear_shape(const raana_model_config *cfg, raana_linear_kind kind, int *d_in,
                        int *d_out)
{
    int h = cfg->hidden_size, q = cfg->num_heads * cfg->head_dim,
        kv = cfg->num_kv_heads * cfg->head_dim, inter = cfg->intermediate_size;
    switch (kind) {
    case RAANA_LINEAR_Q: *d_in = h, *d_out = q; break;
    case RAANA_LINEAR_K:
    case RAANA_LINEAR_V: *d_in = h, *d_out = kv; break;
    case RAANA_LINEAR_O: *d_in = q, *d_out = h; break;
    case RAANA_LINEAR_GATE:
    case RAANA_LINEAR_UP: *d_in = h, *d_out = inter; break;
    default: *d_in = inter, *d_out = h; break;
    }
}

uint64_t raana_block_params(const raana_model_config *cfg)
{
    /* blocks are of two kinds, dense and sparse: the first of each */
    int dense = -1, sparse = -1;
    for (int b = 0; b < cfg->num_layers && (dense < 0 || sparse < 0); b++) {
        if (raana_block_is_sparse(cfg, b))
            sparse = sparse < 0 ? b : sparse;
        else
            dense = dense < 0 ? b : dense;
    }
    uint64_t d = dense >= 0 ? raana_block_params_at(cfg, dense) : 0;
    uint64_t s = sparse >= 0 ? raana_block_params_at(cfg, sparse) : 0;
    return d > s ? d : s;
}

static void add_spec(raana_tensor_spec *s, size_t *n, const char *name, int ndim, int64_t d0,
                     int64_t d1)
{
    snprintf(s[*n].name, sizeof s[*n].name, "%s", name);
    s[*n].ndim = ndim;
    s[*n].shape[0] = d0;
    s[*n].shape[1] = d1;
    (*n)++;
}

/* Block b's norms and linear layers (weights and biases). */
static void add_block_specs(const raana_model_config *cfg, int b, raana_tensor_spec *s, size_t *n)
{
    static const char *const norms[] = {"input_layernorm", "post_attention_layernorm",
                                        "self_attn.q_norm", "self_attn.k_norm"};
    char name[160];
    for (int i = 0; i < (cfg->qk_norm ? 4 : 2); i++) {
        snprintf(name, sizeof name, "model.layers.%d.%s.weight", b, norms[i]);
        add_spec(s, n, name, 1, i < 2 ? cfg->hidden_size : cfg->head_dim, 0);
    }
    int count = raana_block_linear_count(cfg, b);
    for (int k = 0; k < count; k++) {
        raana_linear_info li;
        raana_block_linear(cfg, b, k, &li);
        snprintf(name, sizeof name, "%s.weight", li.name);
        add_spec(s, n, name, 2, li.d_out, li.d_in);
        if (li.has_bias) {
            snprintf(name, sizeof name, "%s.bias", li.name);
            add_spec(s, n, name, 1, li.d_out, 0);
        }
    }
}

raana_tensor_spec *raana_model_required_tensors(const raana_model_config *cfg, size_t *n)
{
    size_t cap = 3 + (size_t)cfg->num_layers * 4 + 2 * (size_t)raana_model_linear_count(cfg);
    raana_tensor_spec *s = calloc(cap, sizeof *s);
    *n = 0;
    if (!s)
        return NULL;
    add_spec(s, n, "model.embed_tokens.weight", 2, cfg->vocab_size, cfg->hidden_size);
    for (int b = 0; b < cfg->num_layers; b++)
        add_block_specs(cfg, b, s, n);
    add_spec(s, n, "model.norm.weight", 1, cfg->hidden_size, 0);
    if (!cfg->tie_word_embeddings)
        add_spec(s, n, "lm_head.weight", 2, cfg->vocab_size, cfg->hidden_size);
    return s;
}
