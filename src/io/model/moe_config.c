/* model/moe_config.c — the mixture-of-experts part of a model: its
 * config.json keys (mixtral, qwen2_moe, qwen3_moe), the sliding-window key,
 * and the numbering, names and shapes of every linear layer of a dense or
 * sparse block (model.h, docs/MOE.md). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "config_json.h"
#include "moe_config.h"

#define MOE_DIM_MAX     (1 << 24)
#define MOE_EXPERTS_MAX 4096

static int is_absent(const cJSON *it)
{
    return !it || cJSON_IsNull(it);
}

static raana_status parse_mlp_only_layers(const raana_config_json *j, raana_model_config *cfg)
{
    const cJSON *it = raana_config_member(j->root, "mlp_only_layers");
    if (is_absent(it))
        return RAANA_OK;
    if (!cJSON_IsArray(it))
        return raana_fail(j->err, RAANA_ERR_INPUT,
                          "%s: key 'mlp_only_layers' must be a list of layer indices", j->label);
    int n = cJSON_GetArraySize(it);
    if (n > RAANA_MLP_ONLY_MAX)
        return raana_fail(j->err, RAANA_ERR_UNSUPPORTED,
                          "%s: key 'mlp_only_layers' lists %d layers (at most %d supported)",
                          j->label, n, RAANA_MLP_ONLY_MAX);
    for (const cJSON *e = it->child; e; e = e->next) {
        if (!cJSON_IsNumber(e) || e->valuedouble != floor(e->valuedouble) || e->valuedouble < 0 ||
            e->valuedouble >= cfg->num_layers)
            return raana_fail(j->err, RAANA_ERR_INPUT,
                              "%s: key 'mlp_only_layers' must hold layer indices in [0, %d)",
                              j->label, cfg->num_layers);
        cfg->mlp_only_layers[cfg->n_mlp_only++] = (int)e->valuedouble;
    }
    return RAANA_OK;
}

/* The load-balancing loss only enters the loss when output_router_logits is
 * true; raana calibrates on the next-token loss alone, so that combination
 * with a nonzero coefficient is refused (docs/MOE.md). router_jitter_noise
 * only acts in training mode. */
static raana_status check_aux_loss(const raana_config_json *j)
{
    int output_router_logits = 0;
    RAANA_CALL(raana_config_bool(j, j->root, "output_router_logits", 0, &output_router_logits));
    const cJSON *coef = raana_config_member(j->root, "router_aux_loss_coef");
    if (!is_absent(coef) && (!cJSON_IsNumber(coef) || !isfinite(coef->valuedouble)))
        return raana_fail(j->err, RAANA_ERR_INPUT,
                          "%s: key 'router_aux_loss_coef' must be a number", j->label);
    if (output_router_logits && !is_absent(coef) && coef->valuedouble != 0)
        return raana_fail(j->err, RAANA_ERR_UNSUPPORTED,
                          "%s: router_aux_loss_coef %g with output_router_logits true would add "
                          "the load-balancing loss to the calibration loss (not supported; "
                          "set output_router_logits to false)",
                          j->label, coef->valuedouble);
    return RAANA_OK;
}

static raana_status parse_mixtral(const raana_config_json *j, raana_model_config *cfg)
{
    RAANA_CALL(raana_config_int(j, j->root, "num_local_experts", 1, 0, 1, MOE_EXPERTS_MAX,
                                &cfg->moe_experts));
    RAANA_CALL(raana_config_int(j, j->root, "num_experts_per_tok", 0, 2, 1, MOE_EXPERTS_MAX,
                                &cfg->moe_top_k));
    cfg->moe_intermediate_size = cfg->intermediate_size;
    cfg->moe_norm_topk_prob = 1; /* Mixtral always renormalizes */
    cfg->moe_sparse_step = 1;
    if (cfg->moe_top_k > cfg->moe_experts)
        return raana_fail(j->err, RAANA_ERR_INPUT,
                          "%s: num_experts_per_tok %d exceeds num_local_experts %d", j->label,
                          cfg->moe_top_k, cfg->moe_experts);
    return RAANA_OK;
}

/* qwen2_moe and qwen3_moe (defaults as transformers' configuration classes). */
static raana_status parse_qwen_moe(const raana_config_json *j, raana_model_config *cfg)
{
    int qwen2 = cfg->arch == RAANA_ARCH_QWEN2_MOE;
    RAANA_CALL(
        raana_config_int(j, j->root, "num_experts", 1, 0, 0, MOE_EXPERTS_MAX, &cfg->moe_experts));
    RAANA_CALL(raana_config_int(j, j->root, "num_experts_per_tok", 1, 0, 1, MOE_EXPERTS_MAX,
                                &cfg->moe_top_k));
    RAANA_CALL(raana_config_int(j, j->root, "moe_intermediate_size", 1, 0, 1, MOE_DIM_MAX,
                                &cfg->moe_intermediate_size));
    RAANA_CALL(raana_config_bool(j, j->root, "norm_topk_prob", 0, &cfg->moe_norm_topk_prob));
    RAANA_CALL(raana_config_int(j, j->root, "decoder_sparse_step", 0, 1, 1, 1 << 16,
                                &cfg->moe_sparse_step));
    RAANA_CALL(parse_mlp_only_layers(j, cfg));
    if (qwen2)
        RAANA_CALL(raana_config_int(j, j->root, "shared_expert_intermediate_size", 1, 0, 0,
                                    MOE_DIM_MAX, &cfg->moe_shared_intermediate_size));
    else if (!is_absent(raana_config_member(j->root, "shared_expert_intermediate_size")))
        return raana_fail(j->err, RAANA_ERR_UNSUPPORTED,
                          "%s: key 'shared_expert_intermediate_size' is not part of %s (only "
                          "qwen2_moe has a shared expert)",
                          j->label, cfg->model_type);
    if (cfg->moe_experts > 0 && cfg->moe_top_k > cfg->moe_experts)
        return raana_fail(j->err, RAANA_ERR_INPUT,
                          "%s: num_experts_per_tok %d exceeds num_experts %d", j->label,
                          cfg->moe_top_k, cfg->moe_experts);
    return RAANA_OK;
}

raana_status raana_model_config_parse_moe(const cJSON *root, const char *label,
                                          raana_model_config *cfg, raana_error *err)
{
    raana_config_json j = {root, label, err, "a mixture of experts"};
    switch (cfg->arch) {
    case RAANA_ARCH_MIXTRAL: RAANA_CALL(parse_mixtral(&j, cfg)); break;
    case RAANA_ARCH_QWEN2_MOE:
    case RAANA_ARCH_QWEN3_MOE: RAANA_CALL(parse_qwen_moe(&j, cfg)); break;
    default: return RAANA_OK;
    }
    return check_aux_loss(&j);
}

/* mistral and mixtral: sliding_window (null = none). qwen families apply
 * sliding_window only when use_sliding_window is true. */
raana_status raana_model_config_parse_window(const cJSON *root, const char *label,
                                             raana_model_config *cfg, raana_error *err)
{
    raana_config_json j = {root, label, err, "a mixture of experts"};
    int window = 0, use = 1;
    if (cfg->arch == RAANA_ARCH_LLAMA)
        return RAANA_OK;
    if (cfg->arch != RAANA_ARCH_MISTRAL && cfg->arch != RAANA_ARCH_MIXTRAL)
        RAANA_CALL(raana_config_bool(&j, j.root, "use_sliding_window", 0, &use));
    RAANA_CALL(raana_config_int(&j, j.root, "sliding_window", 0, 0, 1, 1 << 30, &window));
    cfg->sliding_window = use ? window : 0;
    return RAANA_OK;
}

raana_status raana_model_check_window(const raana_model_config *cfg, int seq_len, const char *label,
                                      raana_error *err)
{
    if (cfg->sliding_window == 0 || seq_len <= cfg->sliding_window)
        return RAANA_OK;
    return raana_fail(
        err, RAANA_ERR_UNSUPPORTED,
        "%s: sliding_window %d is shorter than the sequence length %d (sliding-window "
        "attention is not implemented; use a sequence length of at most %d)",
        label, cfg->sliding_window, seq_len, cfg->sliding_window);
}

/* ---- linear layers of a block ------------------------------------------------- */

int raana_block_is_sparse(const raana_model_config *cfg, int block)
{
    if (cfg->moe_experts == 0 || (block + 1) % cfg->moe_sparse_step != 0)
        return 0;
    for (int i = 0; i < cfg->n_mlp_only; i++)
        if (cfg->mlp_only_layers[i] == block)
            return 0;
    return 1;
}

static int sparse_linear_count(const raana_model_config *cfg)
{
    return 5 + 3 * cfg->moe_experts + (cfg->moe_shared_intermediate_size > 0 ? 4 : 0);
}

int raana_block_linear_count(const raana_model_config *cfg, int block)
{
    return raana_block_is_sparse(cfg, block) ? sparse_linear_count(cfg) : RAANA_LINEAR_COUNT;
}

int raana_block_linear_offset(const raana_model_config *cfg, int block)
{
    int n_sparse = 0;
    for (int b = 0; b < block; b++)
        n_sparse += raana_block_is_sparse(cfg, b);
    return (block - n_sparse) * RAANA_LINEAR_COUNT + n_sparse * sparse_linear_count(cfg);
}

int raana_model_linear_count(const raana_model_config *cfg)
{
    return raana_block_linear_offset(cfg, cfg->num_layers);
}

static const char *const dense_suffix[RAANA_LINEAR_COUNT] = {
    "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
    "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj"};

/* The expert projections' names: mixtral w1 (gate), w3 (up), w2 (down). */
static const char *expert_suffix(const raana_model_config *cfg, raana_linear_kind kind)
{
    static const char *const mixtral[3] = {"w1", "w3", "w2"};
    static const char *const qwen[3] = {"gate_proj", "up_proj", "down_proj"};
    int i = (int)kind - RAANA_LINEAR_GATE;
    return cfg->arch == RAANA_ARCH_MIXTRAL ? mixtral[i] : qwen[i];
}

static void set_info(raana_linear_info *o, raana_linear_kind kind, int expert, int d_in, int d_out,
                     int has_bias)
{
    o->kind = kind, o->expert = expert, o->d_in = d_in, o->d_out = d_out, o->has_bias = has_bias;
}

/* Slots 5.. of a sparse block. */
static void sparse_linear(const raana_model_config *cfg, int block, int slot, raana_linear_info *o)
{
    const char *moe = cfg->arch == RAANA_ARCH_MIXTRAL ? "block_sparse_moe" : "mlp";
    int h = cfg->hidden_size, e = (slot - 5) / 3, E = cfg->moe_experts;
    raana_linear_kind kind = (raana_linear_kind)(RAANA_LINEAR_GATE + (slot - 5) % 3);
    if (slot == 4) {
        set_info(o, RAANA_LINEAR_ROUTER, RAANA_EXPERT_NONE, h, E, 0);
        snprintf(o->name, sizeof o->name, "model.layers.%d.%s.gate", block, moe);
    } else if (e < E) {
        int in = cfg->moe_intermediate_size, down = kind == RAANA_LINEAR_DOWN;
        set_info(o, kind, e, down ? in : h, down ? h : in, 0);
        snprintf(o->name, sizeof o->name, "model.layers.%d.%s.experts.%d.%s", block, moe, e,
                 expert_suffix(cfg, kind));
    } else if (slot - 5 - 3 * E < 3) {
        int in = cfg->moe_shared_intermediate_size, down = kind == RAANA_LINEAR_DOWN;
        set_info(o, kind, RAANA_EXPERT_SHARED, down ? in : h, down ? h : in, 0);
        snprintf(o->name, sizeof o->name, "model.layers.%d.mlp.shared_expert.%s", block,
                 dense_suffix[kind] + 4);
    } else {
        set_info(o, RAANA_LINEAR_SHARED_GATE, RAANA_EXPERT_NONE, h, 1, 0);
        snprintf(o->name, sizeof o->name, "model.layers.%d.mlp.shared_expert_gate", block);
    }
}

void raana_block_linear(const raana_model_config *cfg, int block, int slot, raana_linear_info *out)
{
    memset(out, 0, sizeof *out);
    if (slot < RAANA_LINEAR_COUNT && (slot < 4 || !raana_block_is_sparse(cfg, block))) {
        raana_linear_kind kind = (raana_linear_kind)slot;
        raana_linear_shape(cfg, kind, &out->d_in, &out->d_out);
        out->kind = kind;
        out->expert = RAANA_EXPERT_NONE;
        out->has_bias = kind <= RAANA_LINEAR_V   ? cfg->qkv_bias
                        : kind == RAANA_LINEAR_O ? cfg->o_bias
                                                 : cfg->mlp_bias;
        raana_linear_name(block, kind, out->name, sizeof out->name);
        return;
    }
    sparse_linear(cfg, block, slot, out);
}

uint64_t raana_block_params_at(const raana_model_config *cfg, int block)
{
    uint64_t total = 2 * (uint64_t)cfg->hidden_size; /* two RMSNorm weights */
    if (cfg->qk_norm)
        total += 2 * (uint64_t)cfg->head_dim;
    int n = raana_block_linear_count(cfg, block);
    for (int s = 0; s < n; s++) {
        raana_linear_info li;
        raana_block_linear(cfg, block, s, &li);
        total += (uint64_t)li.d_in * (uint64_t)li.d_out + (li.has_bias ? (uint64_t)li.d_out : 0);
    }
    return total;
}
