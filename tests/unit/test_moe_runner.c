/* test_moe_runner.c — the seam expert parallelism plugs into (moe.h,
 * raana_moe_runner): on tests/data/mixtral-tiny-random and
 * qwen3-moe-tiny-random, the reference tokens through the whole net with
 * some or all routed experts handed to a runner that plays a team member
 * (it holds those experts' weights, which the block no longer has, and runs
 * raana_moe_expert_mlp's SwiGLU on the rows it gets, keeping its own
 * activations for the backward) give bit-for-bit the loss, logits, input
 * gradient and every linear layer's statistics of the local run; the
 * runner sees exactly the routed experts (tokens counted from the trace),
 * and every handle is released. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "raana/file.h"
#include "raana/llama.h"
#include "raana/moe.h"

/* A team member for one block: the experts it holds and its calls. */
typedef struct {
    raana_moe_weights held; /* the moved experts (the others NULL) */
    int hidden;
    int forwards, backwards, releases, rows;
} member;

/* What the member keeps between an expert's forward and backward. */
typedef struct {
    int n;
    float *g, *u, *a;
} kept;

static raana_status member_forward(void *ctx, int e, const float *xr, int n, float *y,
                                   raana_linear_stats ls[3], void **handle, raana_error *err)
{
    member *m = ctx;
    CHECK(m->held.expert[3 * e] != NULL);
    kept *k = calloc(1, sizeof *k);
    size_t size = (size_t)n * m->held.inter * sizeof(float);
    k->n = n, k->g = malloc(size), k->u = malloc(size), k->a = malloc(size);
    raana_swiglu mlp = raana_moe_expert_mlp(&m->held, e, m->hidden);
    raana_swiglu_trace tr = {k->g, k->u, k->a};
    raana_swiglu_forward(&mlp, xr, n, &tr, y, ls);
    m->forwards++, m->rows += n;
    *handle = k;
    (void)err;
    return RAANA_OK;
}

static raana_status member_backward(void *ctx, int e, void *handle, const float *dy, int n,
                                    float *dx, raana_linear_stats ls[3], raana_error *err)
{
    member *m = ctx;
    kept *k = handle;
    CHECK_INT(k->n, n);
    size_t size = (size_t)n * m->held.inter * sizeof(float);
    raana_swiglu_scratch s = {malloc(size), malloc(size), malloc(size)};
    raana_swiglu mlp = raana_moe_expert_mlp(&m->held, e, m->hidden);
    raana_swiglu_trace tr = {k->g, k->u, k->a};
    raana_swiglu_backward(&mlp, &tr, n, dy, &s, dx, ls);
    free(s.da), free(s.dg), free(s.du);
    m->backwards++;
    (void)err;
    return RAANA_OK;
}

static void member_release(void *ctx, void *handle)
{
    kept *k = handle;
    free(k->g), free(k->u), free(k->a), free(k);
    ((member *)ctx)->releases++;
}

typedef struct {
    float loss, *logits, *dx;
    raana_linear_stats *stats;
    int tokens_routed; /* remote experts' rows, from the traces */
} run_result;

/* The reference tokens through every block; experts with remote(e) go to
 * per-block members holding their weights. */
static void run(const raana_model *m, const int *tokens, int t, int remote_mod, run_result *out,
                member *members)
{
    const raana_model_config *c = &m->config;
    raana_llama net;
    raana_error err;
    int E = c->moe_experts, H = c->hidden_size, L = c->num_layers;
    CHECK_INT(raana_llama_load(&net, m, 0, L, 1, 1, &err), RAANA_OK);
    unsigned char *remote = calloc((size_t)E, 1);
    raana_moe_runner *runners = calloc((size_t)L, sizeof *runners);
    for (int e = 0; remote_mod && e < E; e++)
        remote[e] = e % remote_mod == remote_mod - 1;
    for (int b = 0; remote_mod && b < L; b++) {
        raana_moe_weights *w = net.blocks[b].moe;
        member *mb = &members[b];
        memset(mb, 0, sizeof *mb);
        if (!w) /* a dense block */
            continue;
        mb->held = *w, mb->hidden = H;
        mb->held.expert = calloc((size_t)3 * E, sizeof *mb->held.expert);
        for (int e = 0; e < E; e++)
            for (int k = 0; remote[e] && k < 3; k++) /* moved: the block cannot use them */
                mb->held.expert[3 * e + k] = w->expert[3 * e + k], w->expert[3 * e + k] = NULL;
        runners[b] =
            (raana_moe_runner){mb, remote, member_forward, member_backward, member_release};
        w->runner = &runners[b];
    }
    float *x = malloc((size_t)t * H * sizeof *x);
    out->logits = malloc((size_t)t * c->vocab_size * sizeof *out->logits);
    out->dx = malloc((size_t)t * H * sizeof *out->dx);
    out->stats = calloc((size_t)raana_model_linear_count(c), sizeof *out->stats);
    raana_llama_trace *tr;
    double loss;
    CHECK_INT(raana_llama_embed(&net, tokens, t, x, &err), RAANA_OK);
    CHECK_INT(raana_llama_forward_blocks(&net, x, t, &tr, &err), RAANA_OK);
    out->tokens_routed = 0;
    for (int b = 0; b < L; b++) {
        const int *sel = raana_llama_trace_experts(tr, b);
        for (int i = 0; sel && i < t * c->moe_top_k; i++)
            out->tokens_routed += remote_mod && remote[sel[i]];
    }
    CHECK_INT(raana_llama_head(&net, x, tokens, t, out->logits, &loss, out->dx, &err), RAANA_OK);
    CHECK_INT(raana_llama_backward_blocks(&net, tr, out->dx, out->stats, &err), RAANA_OK);
    out->loss = (float)loss;
    for (int b = 0; remote_mod && b < L; b++) { /* weights back to the block, for its free */
        raana_moe_weights *w = net.blocks[b].moe;
        if (!w)
            continue;
        for (int i = 0; i < 3 * E; i++)
            if (members[b].held.expert[i])
                w->expert[i] = members[b].held.expert[i];
        free(members[b].held.expert);
        w->runner = NULL;
    }
    raana_llama_free(&net);
    free(x), free(remote), free(runners);
}

static void free_result(run_result *r)
{
    free(r->logits), free(r->dx), free(r->stats);
}

static void test_fixture(const char *name)
{
    char dir[512], path[600], *text;
    size_t len;
    raana_error err;
    raana_model m;
    snprintf(dir, sizeof dir, "%s/tests/data/%s", RAANA_SOURCE_DIR, name);
    snprintf(path, sizeof path, "%s/reference.json", dir);
    CHECK_INT(raana_model_open(&m, dir, &err), RAANA_OK);
    CHECK_INT(raana_read_file(path, &text, &len, &err), RAANA_OK);
    cJSON *ref = cJSON_ParseWithLength(text, len);
    const cJSON *toks = cJSON_GetObjectItemCaseSensitive(ref, "tokens");
    int t = cJSON_GetArraySize(toks);
    int *tokens = malloc((size_t)t * sizeof *tokens);
    for (int i = 0; i < t; i++)
        tokens[i] = cJSON_GetArrayItem(toks, i)->valueint;
    const raana_model_config *c = &m.config;
    member *members = calloc((size_t)c->num_layers, sizeof *members);
    run_result local, team;
    run(&m, tokens, t, 0, &local, members);
    for (int mod = 1; mod <= 2; mod++) { /* every expert remote; the odd ones */
        run(&m, tokens, t, mod, &team, members);
        CHECK(team.loss == local.loss);
        CHECK(memcmp(team.logits, local.logits, (size_t)t * c->vocab_size * sizeof(float)) == 0);
        CHECK(memcmp(team.dx, local.dx, (size_t)t * c->hidden_size * sizeof(float)) == 0);
        CHECK(memcmp(team.stats, local.stats,
                     (size_t)raana_model_linear_count(c) * sizeof *team.stats) == 0);
        int rows = 0, calls = 0;
        for (int b = 0; b < c->num_layers; b++) {
            CHECK_INT(members[b].backwards, members[b].forwards);
            CHECK_INT(members[b].releases, members[b].forwards);
            rows += members[b].rows, calls += members[b].forwards;
        }
        CHECK_INT(rows, team.tokens_routed);
        CHECK(calls > 0);
        free_result(&team);
    }
    free_result(&local);
    free(members), free(tokens), free(text);
    cJSON_Delete(ref);
    raana_model_close(&m);
}

int main(void)
{
    test_fixture("mixtral-tiny-random");
    test_fixture("qwen3-moe-tiny-random");
    return check_summary("test_moe_runner");
}
