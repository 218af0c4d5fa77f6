/* test_llama.c — the forward pass and the activation-gradient backward
 * against the fixture's reference.json (computed by PyTorch): loss, last
 * logits, logit norms, and every linear layer's ||X||, ||Y||, ||dL/dY||,
 * ||W||; the same numbers when the blocks run as two pipeline stages and
 * with several attention tile sizes (including ragged last tiles); and a
 * finite-difference check of the backward pass on a tiny random model with
 * grouped-query attention, biases and tied embeddings. */
#include <cjson/cJSON.h>
#include <stdlib.h>

#include "check.h"
#include "finite_diff.h"
#include "raana/file.h"
#include "raana/llama.h"
#include "tiny_model.h"

#define FIXTURE RAANA_SOURCE_DIR "/tests/data/kjv-tiny"

static cJSON *reference;

static int *json_ints(const cJSON *arr, int *n)
{
    *n = cJSON_GetArraySize(arr);
    int *v = malloc((size_t)*n * sizeof *v);
    for (int i = 0; i < *n; i++)
        v[i] = cJSON_GetArrayItem(arr, i)->valueint;
    return v;
}

static double jnum(const cJSON *obj, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(obj, key)->valuedouble;
}

/* Forward (and, if stats is not NULL, backward) of tokens through the
 * blocks split at `split` into two nets, as two pipeline stages would,
 * with attention tiles of `block` positions (0 = default), in chunks of
 * `chunk` rows as the calibration pipeline sends them (0 = whole). */
static double run(const raana_model *m, const int *tokens, int t, int split, int block, int chunk,
                  float *logits, raana_linear_stats *stats)
{
    raana_llama a, b;
    raana_error err;
    int n = m->config.num_layers, h = m->config.hidden_size, v = m->config.vocab_size;
    CHECK_INT(raana_llama_load(&a, m, 0, split, 1, 0, &err), RAANA_OK);
    CHECK_INT(raana_llama_load(&b, m, split, n - split, 0, 1, &err), RAANA_OK);
    a.attention_block = b.attention_block = block;
    chunk = chunk > 0 && chunk < t ? chunk : t;
    float *x = malloc((size_t)t * h * 4);
    float *dx = stats ? malloc((size_t)t * h * 4) : NULL;
    raana_llama_trace *ta = NULL, *tb = NULL;
    double total = 0;
    CHECK_INT(raana_llama_embed(&a, tokens, t, x, &err), RAANA_OK);
    for (int t0 = 0; t0 < t; t0 += chunk) {
        int rows = t - t0 < chunk ? t - t0 : chunk;
        float *xc = x + (size_t)t0 * h;
        double part;
        CHECK_INT(raana_llama_forward_chunk(&a, xc, t0, rows, t, &ta, &err), RAANA_OK);
        CHECK_INT(raana_llama_forward_chunk(&b, xc, t0, rows, t, &tb, &err), RAANA_OK);
        CHECK_INT(raana_llama_head_rows(&b, xc, tokens, t0, rows, t,
                                        logits ? logits + (size_t)t0 * v : NULL, &part,
                                        dx ? dx + (size_t)t0 * h : NULL, &err),
                  RAANA_OK);
        total += part;
    }
    for (int t0 = (t - 1) / chunk * chunk; stats && t0 >= 0; t0 -= chunk) {
        int rows = t - t0 < chunk ? t - t0 : chunk;
        float *dc = dx + (size_t)t0 * h;
        CHECK_INT(raana_llama_backward_chunk(&b, &tb, dc, t0, rows,
                                             stats + (size_t)split * RAANA_LINEAR_COUNT, &err),
                  RAANA_OK);
        CHECK_INT(raana_llama_backward_chunk(&a, &ta, dc, t0, rows, stats, &err), RAANA_OK);
    }
    CHECK(!stats || (!ta && !tb)); /* the chunk at row 0 freed the traces */
    raana_llama_trace_free(ta);
    raana_llama_trace_free(tb);
    raana_llama_free(&a);
    raana_llama_free(&b);
    free(x);
    free(dx);
    return total / (t - 1);
}

static void test_forward_check(const raana_model *m)
{
    const cJSON *fc = cJSON_GetObjectItemCaseSensitive(reference, "forward_check");
    int t, v = m->config.vocab_size;
    int *tokens = json_ints(cJSON_GetObjectItemCaseSensitive(fc, "input_ids"), &t);
    float *logits = malloc((size_t)t * v * 4);
    /* (split, attention tile, chunk): t = 64 is one default tile, four of 16, two ragged of 50;
     * chunks of 16 and ragged ones of 24 */
    const int cases[7][3] = {{0, 0, 0},  {2, 0, 0},   {4, 0, 0}, {2, 16, 0},
                             {0, 50, 0}, {2, 16, 16}, {2, 0, 24}};
    for (int c = 0; c < 7; c++) {
        int split = cases[c][0], block = cases[c][1], chunk = cases[c][2];
        double loss = run(m, tokens, t, split, block, chunk, logits, NULL);
        CHECK_NEAR(loss, jnum(fc, "mean_loss"), 1e-4 * jnum(fc, "mean_loss"));
        const cJSON *last = cJSON_GetObjectItemCaseSensitive(fc, "last_logits");
        double worst = 0;
        int argmax = 0;
        for (int j = 0; j < v; j++) {
            double d =
                fabs(logits[(size_t)(t - 1) * v + j] - cJSON_GetArrayItem(last, j)->valuedouble);
            worst = d > worst ? d : worst;
            if (logits[(size_t)(t - 1) * v + j] > logits[(size_t)(t - 1) * v + argmax])
                argmax = j;
        }
        CHECK(worst < 1e-3);
        CHECK_INT(argmax, (int)jnum(fc, "last_argmax"));
        const cJSON *norms = cJSON_GetObjectItemCaseSensitive(fc, "logits_l2_norm_per_position");
        double worst_rel = 0;
        for (int p = 0; p < t; p++) {
            double s = 0, want = cJSON_GetArrayItem(norms, p)->valuedouble;
            for (int j = 0; j < v; j++)
                s += (double)logits[(size_t)p * v + j] * logits[(size_t)p * v + j];
            worst_rel = fmax(worst_rel, fabs(sqrt(s) - want) / want);
        }
        CHECK(worst_rel < 1e-4);
        if (c == 0 || block || chunk)
            printf("  forward_check (tile %d, chunk %d): loss %.7f (ref %.7f), max |logit diff| "
                   "%.2e, norms rel %.2e\n",
                   block, chunk, loss, jnum(fc, "mean_loss"), worst, worst_rel);
    }
    free(tokens);
    free(logits);
}

static void test_calibration_check(const raana_model *m)
{
    const cJSON *cc = cJSON_GetObjectItemCaseSensitive(reference, "calibration_check");
    const cJSON *layers = cJSON_GetObjectItemCaseSensitive(cc, "layers");
    int t, n = m->config.num_layers;
    int *tokens = json_ints(cJSON_GetObjectItemCaseSensitive(cc, "input_ids"), &t);
    /* (split, attention tile, chunk): t = 362 in three default tiles, six of 64, four of 100;
     * chunks of 128 (a tile's), ragged ones of 100, and of 48 across tiles of 64 */
    const int cases[7][3] = {{1, 0, 0},   {3, 0, 0},   {1, 64, 0}, {3, 100, 0},
                             {1, 0, 128}, {3, 0, 100}, {2, 64, 48}};
    for (int c = 0; c < 7; c++) {
        int split = cases[c][0], block = cases[c][1], chunk = cases[c][2];
        raana_linear_stats *stats = calloc((size_t)n * RAANA_LINEAR_COUNT, sizeof *stats);
        double loss = run(m, tokens, t, split, block, chunk, NULL, stats);
        CHECK_NEAR(loss, jnum(cc, "loss"), 1e-4 * jnum(cc, "loss"));
        double worst[4] = {0};
        for (int b = 0; b < n; b++)
            for (int k = 0; k < RAANA_LINEAR_COUNT; k++) {
                char name[112];
                raana_linear_name(b, (raana_linear_kind)k, name, sizeof name);
                const cJSON *ref = cJSON_GetObjectItemCaseSensitive(layers, name);
                const raana_linear_stats *s = &stats[b * RAANA_LINEAR_COUNT + k];
                double got[3] = {sqrt(s->x_sq), sqrt(s->y_sq), sqrt(s->dy_sq)};
                const char *keys[3] = {"x_fro", "y_fro", "dy_fro"};
                for (int q = 0; q < 3; q++)
                    worst[q] =
                        fmax(worst[q], fabs(got[q] - jnum(ref, keys[q])) / jnum(ref, keys[q]));
                char wname[128];
                snprintf(wname, sizeof wname, "%s.weight", name);
                const raana_tensor_entry *e = raana_model_find(m, wname);
                float *w = malloc(e->tensor->numel * 4);
                raana_error err;
                raana_model_read_f32(m, wname, w, e->tensor->numel, &err);
                double ws = 0;
                for (uint64_t i = 0; i < e->tensor->numel; i++)
                    ws += (double)w[i] * w[i];
                worst[3] = fmax(worst[3], fabs(sqrt(ws) - jnum(ref, "w_fro")) / jnum(ref, "w_fro"));
                free(w);
            }
        for (int q = 0; q < 4; q++)
            CHECK(worst[q] < 1e-3);
        printf(
            "  calibration_check (split %d, tile %d, chunk %d): loss %.7f (ref %.7f); worst rel: "
            "x %.1e y %.1e dy %.1e w %.1e\n",
            split, block, chunk, loss, jnum(cc, "loss"), worst[0], worst[1], worst[2], worst[3]);
        free(stats);
    }
    free(tokens);
}

/* d loss / d (block input) against central differences, on a tiny model with
 * GQA (4 heads, 2 kv heads), q/k/v and MLP biases and tied embeddings. */
static void test_finite_differences(void)
{
    char dir[] = "/tmp/raana-test-llama-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    const char *cfg = "{\"model_type\":\"qwen2\",\"vocab_size\":40,\"hidden_size\":16,"
                      "\"intermediate_size\":24,\"num_hidden_layers\":2,\"num_attention_heads\":4,"
                      "\"num_key_value_heads\":2,\"rms_norm_eps\":1e-6,\"rope_theta\":1000.0,"
                      "\"max_position_embeddings\":64,\"tie_word_embeddings\":true,"
                      "\"mlp_bias\":true}";
    CHECK_INT(write_tiny_model(dir, cfg, NULL), 0);
    raana_model m;
    raana_llama net;
    raana_error err;
    CHECK_INT(raana_model_open(&m, dir, &err), RAANA_OK);
    CHECK_INT(raana_llama_load(&net, &m, 0, 2, 1, 1, &err), RAANA_OK);
    CHECK(net.lm_head == net.embed && net.blocks[0].b[RAANA_LINEAR_Q] &&
          net.blocks[0].b[RAANA_LINEAR_UP]);
    const int t = 9;
    int tokens[9] = {1, 5, 9, 33, 2, 17, 17, 4, 39};
    raana_linear_stats stats[2 * RAANA_LINEAR_COUNT] = {{0}};
    double rel = fd_relative_error(&net, tokens, t, 7, 2e-2f, stats);
    printf("  finite differences: |fd - backward| / |backward| = %.2e\n", rel);
    CHECK(rel < 2e-2);
    for (int k = 0; k < 2 * RAANA_LINEAR_COUNT; k++)
        CHECK(stats[k].dy_sq > 0 && stats[k].x_sq > 0 && stats[k].y_sq > 0);
    raana_llama_free(&net);
    raana_model_close(&m);
    remove_tiny_model(dir);
}

/* Chunks of 4, 4 and 1 rows against the whole window of 9 tokens on tiny
 * random models: qwen2 (GQA, biases, tied embeddings) and dense qwen3 (q/k
 * norms, head_dim 6): logits, loss and every layer's statistics. */
static void test_chunks_match_whole(const char *what, const char *cfg)
{
    char dir[] = "/tmp/raana-test-llama-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    CHECK_INT(write_tiny_model(dir, cfg, NULL), 0);
    raana_model m;
    raana_error err;
    CHECK_INT(raana_model_open(&m, dir, &err), RAANA_OK);
    const int t = 9, v = m.config.vocab_size;
    int tokens[9] = {1, 5, 9, 33, 2, 17, 17, 4, 39};
    float logits[2][9 * 40];
    raana_linear_stats stats[2][2 * RAANA_LINEAR_COUNT];
    memset(stats, 0, sizeof stats);
    CHECK(v <= 40);
    double loss_whole = run(&m, tokens, t, 1, 0, 0, logits[0], stats[0]);
    double loss_chunks = run(&m, tokens, t, 1, 0, 4, logits[1], stats[1]);
    double worst_logit = 0, worst_stat = 0;
    for (int i = 0; i < t * v; i++)
        worst_logit = fmax(worst_logit, fabs(logits[0][i] - logits[1][i]));
    for (int k = 0; k < 2 * RAANA_LINEAR_COUNT; k++) {
        const raana_linear_stats *a = &stats[0][k], *b = &stats[1][k];
        CHECK(a->dy_sq > 0 && a->rows == t && b->rows == t);
        worst_stat = fmax(worst_stat, fabs(a->x_sq - b->x_sq) / a->x_sq);
        worst_stat = fmax(worst_stat, fabs(a->y_sq - b->y_sq) / a->y_sq);
        worst_stat = fmax(worst_stat, fabs(a->dy_sq - b->dy_sq) / a->dy_sq);
    }
    printf("  chunks against the whole window (%s): loss %.3e apart, max |logit diff| %.1e, worst "
           "rel. statistic %.1e\n",
           what, fabs(loss_whole - loss_chunks), worst_logit, worst_stat);
    CHECK_NEAR(loss_chunks, loss_whole, 1e-6 * loss_whole);
    CHECK(worst_logit < 1e-5 && worst_stat < 1e-5);
    raana_model_close(&m);
    remove_tiny_model(dir);
}

/* RoPE frequencies with Llama-3.1's scaling (factor 8, low 1, high 4,
 * original context 8192, theta 500000, head_dim 128) against Hugging Face's
 * rule in closed form: wavelengths below 2048 unchanged, above 8192 divided
 * by 8, smooth interpolation in between; and linear scaling. */
static void test_rope_scaling(void)
{
    raana_llama net;
    raana_error err;
    memset(&net, 0, sizeof net);
    net.cfg.head_dim = 128, net.cfg.rope_theta = 500000, net.cfg.rope_type = RAANA_ROPE_LLAMA3;
    net.cfg.rope_factor = 8, net.cfg.rope_low_freq_factor = 1, net.cfg.rope_high_freq_factor = 4;
    net.cfg.rope_original_max_position_embeddings = 8192;
    CHECK_INT(raana_llama_init_rope(&net, &err), RAANA_OK);
    int kept = 0, divided = 0, smoothed = 0, bad = 0;
    for (int i = 0; i < 64; i++) {
        double f = pow(500000.0, -2.0 * i / 128), wl = 2 * M_PI / f, want;
        if (wl < 2048)
            want = f, kept++;
        else if (wl > 8192)
            want = f / 8, divided++;
        else {
            double smooth = (8192 / wl - 1) / 3;
            want = (1 - smooth) * f / 8 + smooth * f, smoothed++;
        }
        bad += fabs(net.inv_freq[i] - want) > 2e-6 * want;
    }
    CHECK_INT(bad, 0);
    CHECK(kept > 0 && divided > 0 && smoothed > 0); /* every branch exercised */
    free(net.inv_freq);
    net.cfg.rope_type = RAANA_ROPE_LINEAR, net.cfg.rope_factor = 4, net.cfg.rope_theta = 10000;
    CHECK_INT(raana_llama_init_rope(&net, &err), RAANA_OK);
    CHECK_NEAR(net.inv_freq[10], pow(10000.0, -20.0 / 128) / 4, 1e-6 * net.inv_freq[10]);
    free(net.inv_freq);
}

int main(void)
{
    char *text;
    size_t len;
    raana_error err;
    raana_model m;
    if (raana_read_file(FIXTURE "/reference.json", &text, &len, &err) != RAANA_OK)
        return 2;
    reference = cJSON_ParseWithLength(text, len);
    free(text);
    CHECK_INT(raana_model_open(&m, FIXTURE, &err), RAANA_OK);
    test_forward_check(&m);
    test_calibration_check(&m);
    test_finite_differences();
    test_chunks_match_whole("qwen2",
                            "{\"model_type\":\"qwen2\",\"vocab_size\":40,\"hidden_size\":16,"
                            "\"intermediate_size\":24,\"num_hidden_layers\":2,"
                            "\"num_attention_heads\":4,\"num_key_value_heads\":2,"
                            "\"rms_norm_eps\":1e-6,\"rope_theta\":1000.0,"
                            "\"max_position_embeddings\":64,\"tie_word_embeddings\":true,"
                            "\"mlp_bias\":true}");
    test_chunks_match_whole("qwen3, q/k norms",
                            "{\"model_type\":\"qwen3\",\"vocab_size\":40,\"hidden_size\":16,"
                            "\"intermediate_size\":24,\"num_hidden_layers\":2,"
                            "\"num_attention_heads\":4,\"num_key_value_heads\":2,\"head_dim\":6,"
                            "\"rms_norm_eps\":1e-6,\"rope_theta\":1000.0,"
                            "\"max_position_embeddings\":64,\"attention_bias\":true}");
    test_rope_scaling();
    raana_model_close(&m);
    cJSON_Delete(reference);
    return check_summary("test_llama");
}
