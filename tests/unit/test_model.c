/* test_model.c — config.json of llama/mistral/qwen2 (values, rope forms,
 * biases, errors) and checkpoint directories (sharded index errors, shape
 * mismatches, NaN weights). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "raana/model.h"
#include "tiny_model.h"

#define FIXTURE RAANA_SOURCE_DIR "/tests/data/kjv-tiny"

static char tmpdir[] = "/tmp/raana-test-model-XXXXXX";

static raana_status parse(const char *json, raana_model_config *cfg, raana_error *err)
{
    return raana_model_config_parse(json, strlen(json), "config.json", cfg, err);
}

static void test_fixture_config(void)
{
    raana_model m;
    raana_error err;
    CHECK_INT(raana_model_open(&m, FIXTURE, &err), RAANA_OK);
    const raana_model_config *c = &m.config;
    CHECK_INT(c->arch, RAANA_ARCH_LLAMA);
    CHECK_INT(c->vocab_size, 2048);
    CHECK_INT(c->hidden_size, 192);
    CHECK_INT(c->intermediate_size, 576);
    CHECK_INT(c->num_layers, 4);
    CHECK_INT(c->num_heads, 6);
    CHECK_INT(c->num_kv_heads, 2);
    CHECK_INT(c->head_dim, 32);
    CHECK_NEAR(c->rms_norm_eps, 1e-5, 0);
    CHECK_NEAR(c->rope_theta, 10000, 0);
    CHECK_INT(c->rope_type, RAANA_ROPE_DEFAULT);
    CHECK_INT(c->tie_word_embeddings, 0);
    CHECK_INT(c->qkv_bias + c->o_bias + c->mlp_bias, 0);
    CHECK_INT(c->bos_token_id, 1);
    CHECK_INT(c->eos_token_id, 2);
    CHECK_INT(c->max_position_embeddings, 512);
    /* 4 * (192*192*2 + 64*192*2 + 3*576*192) + 2*192 per block */
    CHECK_INT(raana_block_params(c), 430080 + 384);
    raana_model_close(&m);
}

static void test_config_variants(void)
{
    raana_model_config c;
    raana_error err;
    CHECK_INT(parse("{\"model_type\":\"llama\",\"vocab_size\":128256,\"hidden_size\":4096,"
                    "\"intermediate_size\":14336,\"num_hidden_layers\":32,"
                    "\"num_attention_heads\":32,\"num_key_value_heads\":8,\"rope_theta\":500000.0,"
                    "\"rope_scaling\":{\"factor\":8.0,\"low_freq_factor\":1.0,"
                    "\"high_freq_factor\":4.0,\"original_max_position_embeddings\":8192,"
                    "\"rope_type\":\"llama3\"},\"eos_token_id\":[128001,128008,128009]}",
                    &c, &err),
              RAANA_OK);
    CHECK_INT(c.rope_type, RAANA_ROPE_LLAMA3);
    CHECK_NEAR(c.rope_factor, 8, 0);
    CHECK_NEAR(c.rope_high_freq_factor, 4, 0);
    CHECK_INT(c.rope_original_max_position_embeddings, 8192);
    CHECK_NEAR(c.rope_theta, 500000, 0);
    CHECK_INT(c.head_dim, 128);
    CHECK_INT(c.eos_token_id, 128001);
    /* the newer rope_parameters form carries rope_theta */
    CHECK_INT(parse("{\"model_type\":\"llama\",\"vocab_size\":8,\"hidden_size\":8,"
                    "\"intermediate_size\":8,\"num_hidden_layers\":1,\"num_attention_heads\":2,"
                    "\"rope_parameters\":{\"rope_type\":\"linear\",\"factor\":2.0,"
                    "\"rope_theta\":1000.0}}",
                    &c, &err),
              RAANA_OK);
    CHECK_INT(c.rope_type, RAANA_ROPE_LINEAR);
    CHECK_NEAR(c.rope_theta, 1000, 0);
    CHECK_INT(c.num_kv_heads, 2);
    /* qwen2: q/k/v biases, no o bias; tied embeddings */
    CHECK_INT(parse("{\"model_type\":\"qwen2\",\"vocab_size\":8,\"hidden_size\":8,"
                    "\"intermediate_size\":8,\"num_hidden_layers\":1,\"num_attention_heads\":2,"
                    "\"tie_word_embeddings\":true}",
                    &c, &err),
              RAANA_OK);
    CHECK_INT(c.qkv_bias, 1);
    CHECK_INT(c.o_bias, 0);
    CHECK_INT(c.tie_word_embeddings, 1);
    size_t n;
    raana_tensor_spec *spec = raana_model_required_tensors(&c, &n);
    CHECK_INT(n, 1 + 2 + 7 + 3 + 1); /* embed, 2 norms, 7 linears, 3 biases, final norm */
    free(spec);
    CHECK_INT(parse("{\"model_type\":\"mistral\",\"vocab_size\":8,\"hidden_size\":8,"
                    "\"intermediate_size\":8,\"num_hidden_layers\":1,\"num_attention_heads\":2,"
                    "\"head_dim\":null}",
                    &c, &err),
              RAANA_OK);
    CHECK_INT(c.arch, RAANA_ARCH_MISTRAL);
    CHECK_INT(c.head_dim, 4);
}

static void test_config_errors(void)
{
    static const struct {
        const char *json;
        raana_status status;
        const char *part;
    } cases[] = {
        {"{\"model_type\":\"llama\",\"vocab_size\":8,\"intermediate_size\":8,"
         "\"num_hidden_layers\":1,\"num_attention_heads\":2}",
         RAANA_ERR_INPUT, "missing required key 'hidden_size'"},
        {"{\"model_type\":\"llama\",\"vocab_size\":8,\"hidden_size\":\"8\",\"intermediate_size\":8,"
         "\"num_hidden_layers\":1,\"num_attention_heads\":2}",
         RAANA_ERR_INPUT, "key 'hidden_size' must be an integer"},
        {"{\"model_type\":\"llama\",\"vocab_size\":8,\"hidden_size\":8,\"intermediate_size\":8,"
         "\"num_hidden_layers\":1.5,\"num_attention_heads\":2}",
         RAANA_ERR_INPUT, "key 'num_hidden_layers' must be an integer"},
        {"{\"model_type\":\"gpt2\",\"vocab_size\":8}", RAANA_ERR_UNSUPPORTED,
         "model_type 'gpt2' is not supported"},
        {"{\"vocab_size\":8}", RAANA_ERR_INPUT, "missing required key 'model_type'"},
        {"{\"model_type\":\"llama\",\"vocab_size\":8,\"hidden_size\":8,\"intermediate_size\":8,"
         "\"num_hidden_layers\":1,\"num_attention_heads\":2,\"rope_scaling\":{\"type\":\"yarn\"}}",
         RAANA_ERR_UNSUPPORTED, "rope_type 'yarn' is not supported"},
        {"{\"model_type\":\"llama\",\"vocab_size\":8,\"hidden_size\":8,\"intermediate_size\":8,"
         "\"num_hidden_layers\":1,\"num_attention_heads\":4,\"num_key_value_heads\":3}",
         RAANA_ERR_INPUT, "not a multiple of num_key_value_heads"},
        {"{\"model_type\":\"llama\",\"vocab_size\":8,\"hidden_size\":8,\"intermediate_size\":8,"
         "\"num_hidden_layers\":1,\"num_attention_heads\":2,\"tie_word_embeddings\":1}",
         RAANA_ERR_INPUT, "key 'tie_word_embeddings' must be true or false"},
        {"{\"model_type\":\"llama\",\"vocab_size\":8,\"hidden_size\":8,\"intermediate_size\":8,"
         "\"num_hidden_layers\":1,\"num_attention_heads\":2,\"hidden_act\":\"gelu\"}",
         RAANA_ERR_UNSUPPORTED, "hidden_act must be \"silu\""},
        {"{not json", RAANA_ERR_INPUT, "not valid JSON"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        raana_model_config c;
        raana_error err;
        CHECK_INT(parse(cases[i].json, &c, &err), cases[i].status);
        CHECK_MSG(err, "config.json", cases[i].part);
    }
}

static void path_in(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", tmpdir, name);
}

static void test_checkpoint_errors(void)
{
    char path[512], dir[512];
    raana_model m;
    raana_error err;
    path_in(dir, sizeof dir, "");
    /* a well-formed synthetic model opens and reads */
    CHECK_INT(write_tiny_model(tmpdir, TINY_LLAMA_CONFIG, NULL), 0);
    CHECK_INT(raana_model_open(&m, tmpdir, &err), RAANA_OK);
    float w[16 * 16];
    CHECK_INT(raana_model_read_f32(&m, "model.layers.1.self_attn.q_proj.weight", w, 256, &err),
              RAANA_OK);
    raana_model_close(&m);
    /* NaN in a weight: reported with the tensor name */
    CHECK_INT(write_tiny_model(tmpdir, TINY_LLAMA_CONFIG, "model.layers.1.mlp.up_proj.weight"), 0);
    CHECK_INT(raana_model_open(&m, tmpdir, &err), RAANA_OK);
    float up[24 * 16];
    CHECK_INT(raana_model_read_f32(&m, "model.layers.1.mlp.up_proj.weight", up, 24 * 16, &err),
              RAANA_ERR_NUMERIC);
    CHECK_MSG(err, "model.layers.1.mlp.up_proj.weight", "NaN", "flat index 3");
    raana_model_close(&m);
    /* config.json and tensors disagree on a shape */
    path_in(path, sizeof path, "config.json");
    char *cfg = strdup(TINY_LLAMA_CONFIG);
    memcpy(strstr(cfg, "\"intermediate_size\":24"), "\"intermediate_size\":20", 22);
    CHECK_INT(write_text(path, cfg), 0);
    free(cfg);
    CHECK_INT(raana_model_open(&m, tmpdir, &err), RAANA_ERR_INPUT);
    CHECK_MSG(err, "model.layers.0.mlp.gate_proj.weight", "has shape [24, 16]",
              "config.json implies [20, 16]");
    CHECK_INT(write_text(path, TINY_LLAMA_CONFIG), 0);
    /* an index that leaves out a required tensor */
    path_in(path, sizeof path, "model.safetensors.index.json");
    CHECK_INT(write_text(path, "{\"metadata\":{},\"weight_map\":{"
                               "\"model.embed_tokens.weight\":\"model.safetensors\"}}"),
              0);
    CHECK_INT(raana_model_open(&m, tmpdir, &err), RAANA_ERR_INPUT);
    CHECK_MSG(err, "model.safetensors.index.json",
              "tensor 'model.layers.0.input_layernorm.weight' is missing");
    /* an index naming a shard that does not exist */
    CHECK_INT(write_text(path,
                         "{\"weight_map\":{"
                         "\"model.embed_tokens.weight\":\"model-00009-of-00009.safetensors\"}}"),
              0);
    CHECK_INT(raana_model_open(&m, tmpdir, &err), RAANA_ERR_INPUT);
    CHECK_MSG(err, "model.safetensors.index.json", "model-00009-of-00009.safetensors",
              "does not exist");
    /* an index mapping a tensor to a shard that does not hold it */
    CHECK_INT(write_text(path, "{\"weight_map\":{\"model.nothing\":\"model.safetensors\"}}"), 0);
    CHECK_INT(raana_model_open(&m, tmpdir, &err), RAANA_ERR_INPUT);
    CHECK_MSG(err, "'model.nothing'", "does not hold it");
    unlink(path);
    /* no tensors at all */
    path_in(path, sizeof path, "model.safetensors");
    unlink(path);
    CHECK_INT(raana_model_open(&m, tmpdir, &err), RAANA_ERR_INPUT);
    CHECK_MSG(err, "no model.safetensors or model.safetensors.index.json");
    /* no config.json */
    path_in(path, sizeof path, "config.json");
    unlink(path);
    CHECK_INT(raana_model_open(&m, tmpdir, &err), RAANA_ERR_INPUT);
    CHECK_MSG(err, "config.json", "cannot open");
}

int main(void)
{
    if (!mkdtemp(tmpdir))
        return 2;
    test_fixture_config();
    test_config_variants();
    test_config_errors();
    test_checkpoint_errors();
    rmdir(tmpdir);
    return check_summary("test_model");
}
