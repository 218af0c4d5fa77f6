/* test_moe.c — mixtures of experts through the nn API, against the
 * reference.json of tests/data/mixtral-tiny-random and
 * qwen3-moe-tiny-random (independent PyTorch implementation): loss, last
 * logits, the experts chosen for every token in every layer, tokens per
 * expert, and every linear layer's ||X||, ||Y||, ||dL/dY|| (router and each
 * expert over its routed tokens), with the blocks as one net and as two
 * pipeline stages; a finite-difference check of the backward on tiny
 * random qwen2_moe (shared expert, sigmoid gate, q/k/v biases, a dense
 * layer from mlp_only_layers) and qwen3_moe (q/k norms, head_dim !=
 * hidden/heads, no renormalization) models; and config.json refusals. */
#include <cjson/cJSON.h>
#include <stdlib.h>

#include "check.h"
#include "finite_diff.h"
#include "raana/expert_stats.h"
#include "raana/file.h"
#include "raana/llama.h"
#include "raana/plan.h"
#include "tiny_model.h"

static cJSON *load_reference(const char *dir)
{
    char path[512], *text;
    size_t len;
    raana_error err;
    snprintf(path, sizeof path, "%s/reference.json", dir);
    CHECK_INT(raana_read_file(path, &text, &len, &err), RAANA_OK);
    cJSON *r = cJSON_ParseWithLength(text, len);
    free(text);
    CHECK(r != NULL);
    return r;
}

static double jnum(const cJSON *obj, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(obj, key)->valuedouble;
}

static const cJSON *jget(const cJSON *obj, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(obj, key);
}

/* Runs the reference tokens through blocks [0, split) and [split, L) as two
 * nets; checks the chosen experts of every layer against the reference
 * while the traces hold them; fills logits and stats (model-wide slots). */
static double run_stages(const raana_model *m, const cJSON *ref, int split, float *logits,
                         raana_linear_stats *stats, int *expert_mismatches)
{
    const raana_model_config *c = &m->config;
    const cJSON *toks = jget(ref, "tokens"), *chosen = jget(ref, "chosen_experts");
    int t = cJSON_GetArraySize(toks), n = c->num_layers, k = c->moe_top_k;
    int *tokens = malloc((size_t)t * sizeof *tokens);
    for (int i = 0; i < t; i++)
        tokens[i] = cJSON_GetArrayItem(toks, i)->valueint;
    raana_llama a, b;
    raana_error err;
    CHECK_INT(raana_llama_load(&a, m, 0, split, 1, 0, &err), RAANA_OK);
    CHECK_INT(raana_llama_load(&b, m, split, n - split, 0, 1, &err), RAANA_OK);
    float *x = malloc((size_t)t * c->hidden_size * 4), *dx = malloc((size_t)t * c->hidden_size * 4);
    raana_llama_trace *tr[2];
    raana_llama *nets[2] = {&a, &b};
    double loss;
    CHECK_INT(raana_llama_embed(&a, tokens, t, x, &err), RAANA_OK);
    for (int s = 0; s < 2; s++) {
        CHECK_INT(raana_llama_forward_blocks(nets[s], x, t, &tr[s], &err), RAANA_OK);
        for (int bl = 0; bl < nets[s]->n_blocks; bl++) {
            const int *sel = raana_llama_trace_experts(tr[s], bl);
            const cJSON *want = cJSON_GetArrayItem(chosen, nets[s]->first_block + bl);
            CHECK(sel != NULL);
            for (int i = 0; sel && i < t; i++)
                for (int j = 0; j < k; j++)
                    *expert_mismatches +=
                        sel[i * k + j] !=
                        cJSON_GetArrayItem(cJSON_GetArrayItem(want, i), j)->valueint;
        }
    }
    CHECK_INT(raana_llama_head(&b, x, tokens, t, logits, &loss, dx, &err), RAANA_OK);
    CHECK_INT(raana_llama_backward_blocks(&b, tr[1], dx,
                                          stats + raana_block_linear_offset(c, split), &err),
              RAANA_OK);
    CHECK_INT(raana_llama_backward_blocks(&a, tr[0], dx, stats, &err), RAANA_OK);
    raana_llama_free(&a);
    raana_llama_free(&b);
    free(x), free(dx), free(tokens);
    return loss;
}

/* Worst relative error of ||X||, ||Y||, ||dL/dY|| over every linear layer
 * in the reference; rows must equal the reference's n_tokens. */
static void check_layer_stats(const raana_model *m, const cJSON *ref,
                              const raana_linear_stats *stats, double worst[3])
{
    const raana_model_config *c = &m->config;
    const cJSON *layers = jget(ref, "layers");
    int checked = 0;
    for (int b = 0; b < c->num_layers; b++) {
        int base = raana_block_linear_offset(c, b);
        for (int s = 0; s < raana_block_linear_count(c, b); s++) {
            raana_linear_info li;
            raana_block_linear(c, b, s, &li);
            const cJSON *r = jget(layers, li.name);
            CHECK(r != NULL);
            if (!r)
                continue;
            const raana_linear_stats *ls = &stats[base + s];
            CHECK_INT((int)ls->rows, jget(r, "n_tokens")->valueint);
            double got[3] = {sqrt(ls->x_sq), sqrt(ls->y_sq), sqrt(ls->dy_sq)};
            const char *keys[3] = {"x_norm", "y_norm", "grad_y_norm"};
            for (int q = 0; q < 3; q++)
                worst[q] = fmax(worst[q], fabs(got[q] - jnum(r, keys[q])) / jnum(r, keys[q]));
            checked++;
        }
    }
    CHECK_INT(checked, cJSON_GetArraySize(layers));
}

static void test_fixture(const char *name)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/tests/data/%s", RAANA_SOURCE_DIR, name);
    cJSON *ref = load_reference(dir);
    raana_model m;
    raana_error err;
    CHECK_INT(raana_model_open(&m, dir, &err), RAANA_OK);
    const raana_model_config *c = &m.config;
    CHECK_INT(c->moe_experts, (int)jnum(ref, "num_experts"));
    CHECK_INT(c->moe_top_k, (int)jnum(ref, "top_k"));
    int t = cJSON_GetArraySize(jget(ref, "tokens")), v = c->vocab_size;
    float *logits = malloc((size_t)t * v * 4);
    for (int split = 1; split <= c->num_layers; split++) {
        raana_linear_stats *stats = calloc((size_t)raana_model_linear_count(c), sizeof *stats);
        int mismatches = 0;
        double loss = run_stages(&m, ref, split, logits, stats, &mismatches);
        CHECK_INT(mismatches, 0);
        CHECK_NEAR(loss, jnum(ref, "loss"), 1e-5 * jnum(ref, "loss"));
        double worst_logit = 0, worst[3] = {0};
        const cJSON *last = jget(ref, "last_logits");
        for (int j = 0; j < v; j++)
            worst_logit = fmax(worst_logit, fabs(logits[(size_t)(t - 1) * v + j] -
                                                 cJSON_GetArrayItem(last, j)->valuedouble));
        CHECK(worst_logit < 1e-4);
        check_layer_stats(&m, ref, stats, worst);
        for (int q = 0; q < 3; q++)
            CHECK(worst[q] < 1e-4);
        printf("  %s (split %d): loss %.7f (ref %.7f), max |last logit diff| %.1e, experts "
               "differing %d; worst rel x %.1e y %.1e dy %.1e\n",
               name, split, loss, jnum(ref, "loss"), worst_logit, mismatches, worst[0], worst[1],
               worst[2]);
        free(stats);
    }
    free(logits);
    raana_model_close(&m);
    cJSON_Delete(ref);
}

/* d loss / d (block input) against central differences. */
static void finite_differences(const char *label, const char *cfg_json)
{
    char dir[] = "/tmp/raana-test-moe-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    CHECK_INT(write_tiny_model(dir, cfg_json, NULL), 0);
    raana_model m;
    raana_llama net;
    raana_error err;
    CHECK_INT(raana_model_open(&m, dir, &err), RAANA_OK);
    CHECK_INT(raana_llama_load(&net, &m, 0, m.config.num_layers, 1, 1, &err), RAANA_OK);
    const int t = 9;
    int tokens[9] = {1, 5, 9, 33, 2, 17, 17, 4, 39};
    int n_slots = raana_model_linear_count(&m.config);
    raana_linear_stats *stats = calloc((size_t)n_slots, sizeof *stats);
    double rel = fd_relative_error(&net, tokens, t, 5, 1e-2f, stats);
    printf("  finite differences (%s): |fd - backward| / |backward| = %.2e\n", label, rel);
    CHECK(rel < 2e-2);
    int routed = 0;
    for (int s = 0; s < n_slots; s++) {
        CHECK(stats[s].rows >= 0 && stats[s].rows <= t);
        routed += stats[s].rows > 0 && stats[s].dy_sq > 0;
    }
    CHECK(routed > n_slots / 2);
    raana_llama_free(&net);
    raana_model_close(&m);
    free(stats);
    remove_tiny_model(dir);
}

static void test_finite_differences(void)
{
    finite_differences("qwen2_moe, shared expert, dense layer 1",
                       "{\"model_type\":\"qwen2_moe\",\"vocab_size\":40,\"hidden_size\":16,"
                       "\"intermediate_size\":20,\"num_hidden_layers\":2,\"num_attention_heads\":4,"
                       "\"num_key_value_heads\":2,\"rms_norm_eps\":1e-6,\"rope_theta\":1000.0,"
                       "\"max_position_embeddings\":64,\"num_experts\":4,\"num_experts_per_tok\":2,"
                       "\"moe_intermediate_size\":12,\"shared_expert_intermediate_size\":8,"
                       "\"norm_topk_prob\":true,\"mlp_only_layers\":[1]}");
    finite_differences("dense qwen3, q/k norms, head_dim 6, attention biases",
                       "{\"model_type\":\"qwen3\",\"vocab_size\":40,\"hidden_size\":16,"
                       "\"intermediate_size\":20,\"num_hidden_layers\":2,\"num_attention_heads\":4,"
                       "\"num_key_value_heads\":2,\"head_dim\":6,\"rms_norm_eps\":1e-6,"
                       "\"rope_theta\":1000.0,\"max_position_embeddings\":64,"
                       "\"attention_bias\":true}");
    finite_differences("qwen3_moe, head_dim 6, no renormalization",
                       "{\"model_type\":\"qwen3_moe\",\"vocab_size\":40,\"hidden_size\":16,"
                       "\"intermediate_size\":20,\"num_hidden_layers\":2,\"num_attention_heads\":4,"
                       "\"num_key_value_heads\":2,\"head_dim\":6,\"rms_norm_eps\":1e-6,"
                       "\"rope_theta\":1000.0,\"max_position_embeddings\":64,\"num_experts\":5,"
                       "\"num_experts_per_tok\":3,\"moe_intermediate_size\":10}");
}

/* Slot numbering, names and shapes of a sparse block. */
static void test_slots(void)
{
    const char *json = "{\"model_type\":\"qwen2_moe\",\"vocab_size\":40,\"hidden_size\":16,"
                       "\"intermediate_size\":20,\"num_hidden_layers\":3,\"num_attention_heads\":4,"
                       "\"num_experts\":4,\"num_experts_per_tok\":2,\"moe_intermediate_size\":12,"
                       "\"shared_expert_intermediate_size\":8,\"decoder_sparse_step\":1,"
                       "\"mlp_only_layers\":[1]}";
    raana_model_config c;
    raana_error err;
    raana_linear_info li;
    CHECK_INT(raana_model_config_parse(json, strlen(json), "t", &c, &err), RAANA_OK);
    CHECK(raana_block_is_sparse(&c, 0) && !raana_block_is_sparse(&c, 1) &&
          raana_block_is_sparse(&c, 2));
    CHECK_INT(raana_block_linear_count(&c, 0), 4 + 1 + 12 + 4);
    CHECK_INT(raana_block_linear_count(&c, 1), 7);
    CHECK_INT(raana_block_linear_offset(&c, 2), 21 + 7);
    CHECK_INT(raana_model_linear_count(&c), 21 + 7 + 21);
    raana_block_linear(&c, 2, 4, &li);
    CHECK(strcmp(li.name, "model.layers.2.mlp.gate") == 0);
    CHECK(li.kind == RAANA_LINEAR_ROUTER && li.d_in == 16 && li.d_out == 4);
    raana_block_linear(&c, 2, 5 + 3 * 3 + 2, &li);
    CHECK(strcmp(li.name, "model.layers.2.mlp.experts.3.down_proj") == 0);
    CHECK(li.kind == RAANA_LINEAR_DOWN && li.expert == 3 && li.d_in == 12 && li.d_out == 16);
    raana_block_linear(&c, 0, 5 + 12 + 1, &li);
    CHECK(strcmp(li.name, "model.layers.0.mlp.shared_expert.up_proj") == 0);
    CHECK(li.expert == RAANA_EXPERT_SHARED && li.d_in == 16 && li.d_out == 8);
    raana_block_linear(&c, 0, 20, &li);
    CHECK(strcmp(li.name, "model.layers.0.mlp.shared_expert_gate") == 0);
    CHECK(li.kind == RAANA_LINEAR_SHARED_GATE && li.d_out == 1);
    raana_block_linear(&c, 1, 5, &li);
    CHECK(strcmp(li.name, "model.layers.1.mlp.up_proj") == 0);
    CHECK(li.d_out == 20 && c.qkv_bias && !c.o_bias);
}

static void expect_refusal(const char *json, raana_status want, const char *needle)
{
    raana_model_config c;
    raana_error err = {0};
    CHECK_INT(raana_model_config_parse(json, strlen(json), "config.json", &c, &err), want);
    CHECK(strstr(err.msg, needle) != NULL);
    printf("  refused: %s\n", err.msg);
}

static void test_refusals(void)
{
#define BASE                                                                                       \
    "\"vocab_size\":40,\"hidden_size\":16,\"intermediate_size\":20,\"num_hidden_layers\":2,"       \
    "\"num_attention_heads\":4,"
    expect_refusal("{\"model_type\":\"mixtral\"," BASE
                   "\"num_local_experts\":4,\"num_experts_per_tok\":5}",
                   RAANA_ERR_INPUT, "num_experts_per_tok 5 exceeds num_local_experts 4");
    expect_refusal("{\"model_type\":\"mixtral\"," BASE "\"num_experts_per_tok\":2}",
                   RAANA_ERR_INPUT, "'num_local_experts'");
    expect_refusal("{\"model_type\":\"deepseek_v3\"," BASE "\"n_routed_experts\":4}",
                   RAANA_ERR_UNSUPPORTED, "model_type 'deepseek_v3' is not supported");
    expect_refusal("{\"model_type\":\"qwen3_moe\"," BASE
                   "\"num_experts\":4,\"num_experts_per_tok\":2,\"moe_intermediate_size\":8,"
                   "\"output_router_logits\":true,\"router_aux_loss_coef\":0.001}",
                   RAANA_ERR_UNSUPPORTED, "router_aux_loss_coef");
    expect_refusal("{\"model_type\":\"qwen3_moe\"," BASE
                   "\"num_experts\":4,\"num_experts_per_tok\":2,\"moe_intermediate_size\":8,"
                   "\"shared_expert_intermediate_size\":8}",
                   RAANA_ERR_UNSUPPORTED, "shared_expert_intermediate_size");
    expect_refusal("{\"model_type\":\"qwen3_moe\"," BASE
                   "\"num_experts\":4,\"num_experts_per_tok\":2,\"moe_intermediate_size\":8,"
                   "\"mlp_only_layers\":[2]}",
                   RAANA_ERR_INPUT, "mlp_only_layers");
    /* a sliding window shorter than the sequence binds: refused when run */
    const char *mistral = "{\"model_type\":\"mistral\"," BASE "\"sliding_window\":8}";
    raana_model_config c;
    raana_error err = {0};
    CHECK_INT(raana_model_config_parse(mistral, strlen(mistral), "m", &c, &err), RAANA_OK);
    CHECK_INT(c.sliding_window, 8);
    CHECK_INT(raana_model_check_window(&c, 8, "m", &err), RAANA_OK);
    CHECK_INT(raana_model_check_window(&c, 9, "m", &err), RAANA_ERR_UNSUPPORTED);
    CHECK(strstr(err.msg, "sliding_window 8") != NULL);
    const char *qwen =
        "{\"model_type\":\"qwen2\"," BASE "\"sliding_window\":8,\"use_sliding_window\":false}";
    CHECK_INT(raana_model_config_parse(qwen, strlen(qwen), "q", &c, &err), RAANA_OK);
    CHECK_INT(c.sliding_window, 0);
#undef BASE
}

/* A NaN in one expert's weight: loading fails naming that tensor, and
 * everything loaded before it is released (ASan/LSan builds). */
static void test_bad_expert_weight(void)
{
    char dir[] = "/tmp/raana-test-moe-XXXXXX";
    const char *bad = "model.layers.1.mlp.experts.2.up_proj.weight";
    CHECK(mkdtemp(dir) != NULL);
    CHECK_INT(write_tiny_model(dir,
                               "{\"model_type\":\"qwen3_moe\",\"vocab_size\":40,\"hidden_size\":16,"
                               "\"intermediate_size\":20,\"num_hidden_layers\":2,"
                               "\"num_attention_heads\":4,\"num_experts\":4,"
                               "\"num_experts_per_tok\":2,\"moe_intermediate_size\":8}",
                               bad),
              0);
    raana_model m;
    raana_llama net;
    raana_error err = {0};
    CHECK_INT(raana_model_open(&m, dir, &err), RAANA_OK);
    CHECK_INT(raana_llama_load(&net, &m, 0, 2, 1, 1, &err), RAANA_ERR_NUMERIC);
    CHECK(strstr(err.msg, bad) != NULL);
    printf("  refused: %s\n", err.msg);
    raana_model_close(&m);
    remove_tiny_model(dir);
}

/* The plan of a qwen2_moe model whose layer 1 is dense (mlp_only_layers):
 * one row per slot, routers and the shared gate kept, and blocks split by
 * their parameter counts (brute force over every split for P = 1..4). */
static void test_plan(void)
{
    const char *json = "{\"model_type\":\"qwen2_moe\",\"vocab_size\":40,\"hidden_size\":16,"
                       "\"intermediate_size\":20,\"num_hidden_layers\":4,\"num_attention_heads\":4,"
                       "\"num_experts\":6,\"num_experts_per_tok\":2,\"moe_intermediate_size\":12,"
                       "\"shared_expert_intermediate_size\":8,\"mlp_only_layers\":[1]}";
    raana_model_config m;
    raana_config cfg;
    raana_plan plan;
    raana_error err;
    CHECK_INT(raana_model_config_parse(json, strlen(json), "t", &m, &err), RAANA_OK);
    raana_config_defaults(&cfg);
    uint64_t params[4], total = 0;
    for (int b = 0; b < 4; b++)
        total += params[b] = raana_block_params_at(&m, b);
    CHECK(params[1] < params[0] && params[0] == params[2]);
    for (int p = 1; p <= 4; p++) {
        CHECK_INT(raana_plan_create(&m, &cfg, p, &plan, &err), RAANA_OK);
        CHECK_INT(plan.n_layers, 3 * (5 + 18 + 4) + 7);
        uint64_t quantized = 0;
        for (int i = 0; i < plan.n_layers; i++) {
            const raana_plan_layer *l = &plan.layers[i];
            int router = l->kind == RAANA_LINEAR_ROUTER || l->kind == RAANA_LINEAR_SHARED_GATE;
            CHECK_INT(l->quantize, !router);
            CHECK_INT(i, raana_block_linear_offset(&m, l->block) + l->slot);
            quantized += l->quantize ? (uint64_t)l->d_in * l->d_out : 0;
        }
        CHECK(quantized == plan.quantized_params);
        /* each boundary r: nearest to r/P of the parameters, ties to the lower */
        for (int r = 1; r < p; r++) {
            int want = 0;
            double best = 1e300, cum = 0;
            for (int b = 0; b <= 4; b++) {
                double gap = fabs(p * cum - (double)r * total);
                if (gap < best)
                    best = gap, want = b;
                cum += b < 4 ? (double)params[b] : 0;
            }
            CHECK_INT(plan.ranks[r].first_block, want);
        }
        raana_plan_free(&plan);
    }
}

/* An expert no token reached takes, per projection, the mean statistics of
 * its routed siblings in that block; other layers are left alone; the
 * report line lists tokens per expert. */
static void test_unrouted_fallback(void)
{
    const char *json = "{\"model_type\":\"mixtral\",\"vocab_size\":40,\"hidden_size\":16,"
                       "\"intermediate_size\":20,\"num_hidden_layers\":2,\"num_attention_heads\":4,"
                       "\"num_local_experts\":4,\"num_experts_per_tok\":2}";
    raana_model_config m;
    raana_config cfg;
    raana_plan plan;
    raana_error err;
    CHECK_INT(raana_model_config_parse(json, strlen(json), "t", &m, &err), RAANA_OK);
    raana_config_defaults(&cfg);
    CHECK_INT(raana_plan_create(&m, &cfg, 1, &plan, &err), RAANA_OK);
    int n = plan.n_layers;
    double *tokens = calloc((size_t)n, sizeof *tokens);
    raana_layer_stats *st = calloc((size_t)n, sizeof *st);
    for (int i = 0; i < n; i++) {
        const raana_plan_layer *l = &plan.layers[i];
        /* block 1's expert 2 saw nothing; every other layer saw tokens */
        int unrouted = l->block == 1 && l->expert == 2;
        tokens[i] = unrouted ? 0 : 10 + l->expert;
        double v = unrouted ? 0 : 1 + i;
        st[i] = (raana_layer_stats){v, 2 * v, 3 * v, 4 * v, 5 * v};
    }
    CHECK_INT(raana_expert_stats_fallback(&plan, tokens, st), 3);
    for (int i = 0; i < n; i++) {
        const raana_plan_layer *l = &plan.layers[i];
        if (!(l->block == 1 && l->expert == 2)) {
            CHECK_NEAR(st[i].grad_rms, 1 + i, 0);
            continue;
        }
        double mean = 0; /* siblings 0, 1, 3 of the same kind: index - 3 (e - e') slots */
        for (int e = 0; e < 4; e++)
            if (e != 2)
                mean += 1 + i + 3 * (e - 2);
        mean /= 3;
        CHECK_NEAR(st[i].grad_rms, mean, 1e-12);
        CHECK_NEAR(st[i].dy_fro, 5 * mean, 1e-12);
    }
    char buf[256] = {0};
    FILE *f = fmemopen(buf, sizeof buf - 1, "w");
    raana_expert_tokens_print(f, &plan, tokens);
    fclose(f);
    CHECK(strcmp(buf, "block 0 tokens per expert: 10 11 12 13\n"
                      "block 1 tokens per expert: 10 11 0 13\n") == 0);
    free(tokens), free(st);
    raana_plan_free(&plan);
}

int main(void)
{
    test_unrouted_fallback();
    test_plan();
    test_bad_expert_weight();
    test_slots();
    test_refusals();
    test_fixture("mixtral-tiny-random");
    test_fixture("qwen3-moe-tiny-random");
    test_finite_differences();
    return check_summary("test_moe");
}
