/* expert_team.c — the owner's runner and the member's service of an
 * expert team during calibration (see expert_team.h).
 *
 * Messages on the team's own communicator (a dup of the calibration one):
 * a request is a header {op, block, expert, n, seq} (TAG_REQUEST) followed,
 * for a forward, by the n gathered rows and, for a backward, by the n
 * output gradients (TAG_ROWS); the member answers with {status, the three
 * layers' raana_linear_stats} (TAG_RESULT) and, when the status is
 * RAANA_OK, the n rows of y or dx, else its error message (TAG_REPLY). An owner has at most one
 * request in flight, so its messages pair up by MPI's ordering rule. */
#include "raana/expert_team.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "raana/huge_alloc.h"
#include "raana/moe.h"
#include "raana/swiglu.h"
#include "raana/wait.h"

enum { TAG_REQUEST = 1, TAG_ROWS, TAG_RESULT, TAG_REPLY };
enum { OP_FORWARD = 1, OP_BACKWARD, OP_END };
#define RESULT_LEN 13 /* status + 3 x (x_sq, y_sq, dy_sq, rows) */

/* What a member keeps between an expert's forward and its backward. */
typedef struct {
    int owner, seq, block, expert, n;
    float *g, *u, *a;
} kept_acts;

typedef struct {
    raana_expert_team *team;
    int block;
} owner_block;

struct raana_expert_team {
    MPI_Comm comm; /* MPI_COMM_NULL outside begin..end */
    int rank, size, hidden;
    int n_team;  /* n */
    int *member; /* [n]: rank of member j (j >= 1) */
    int is_member, n_owners;
    /* owner */
    unsigned char *remote; /* [E]: e % n != 0 */
    raana_moe_runner *runners;
    owner_block *blocks;
    int n_runners, seq;
    /* member */
    raana_moe_weights **held; /* [num_layers], NULL for dense blocks */
    int n_layers;
    kept_acts *kept;
    int n_kept, cap_kept, ends, failed;
    raana_error err;
};

/* ---- owner: the runner ---------------------------------------------------- */

static void stats_from(const double *r, raana_linear_stats ls[3])
{
    for (int k = 0; k < 3; k++)
        ls[k] = (raana_linear_stats){r[1 + 4 * k], r[2 + 4 * k], r[3 + 4 * k], r[4 + 4 * k]};
}

/* Sends one request and receives its result into result and out. */
static raana_status exchange(raana_expert_team *t, int op, int block, int e, int n, int seq,
                             const float *rows, float *out, double *result, raana_error *err)
{
    int member = t->member[e % t->n_team];
    int head[5] = {op, block, e, n, seq};
    size_t count = (size_t)n * (size_t)t->hidden;
    raana_send_idle(head, 5, MPI_INT, member, TAG_REQUEST, t->comm);
    raana_send_idle(rows, (int)count, MPI_FLOAT, member, TAG_ROWS, t->comm);
    raana_recv_idle(result, RESULT_LEN, MPI_DOUBLE, member, TAG_RESULT, t->comm, MPI_STATUS_IGNORE);
    if ((int)result[0] != RAANA_OK) { /* the member's message follows */
        char msg[RAANA_ERROR_MSG_MAX];
        raana_recv_idle(msg, (int)sizeof msg, MPI_CHAR, member, TAG_REPLY, t->comm,
                        MPI_STATUS_IGNORE);
        msg[sizeof msg - 1] = '\0';
        raana_fail(err, (raana_status)(int)result[0], "rank %d (expert %d of block %d): %s", member,
                   e, block, msg);
        err->agreed = 1; /* names the rank that failed */
        return err->status;
    }
    raana_recv_idle(out, (int)count, MPI_FLOAT, member, TAG_REPLY, t->comm, MPI_STATUS_IGNORE);
    return RAANA_OK;
}

static raana_status owner_forward(void *ctx, int e, const float *xr, int n, float *y,
                                  raana_linear_stats ls[3], void **handle, raana_error *err)
{
    owner_block *ob = ctx;
    raana_expert_team *t = ob->team;
    double result[RESULT_LEN];
    int seq = ++t->seq;
    RAANA_CALL(exchange(t, OP_FORWARD, ob->block, e, n, seq, xr, y, result, err));
    stats_from(result, ls);
    *handle = (void *)(intptr_t)seq;
    return RAANA_OK;
}

static raana_status owner_backward(void *ctx, int e, void *handle, const float *dy, int n,
                                   float *dx, raana_linear_stats ls[3], raana_error *err)
{
    owner_block *ob = ctx;
    double result[RESULT_LEN];
    raana_linear_stats add[3];
    RAANA_CALL(exchange(ob->team, OP_BACKWARD, ob->block, e, n, (int)(intptr_t)handle, dy, dx,
                        result, err));
    stats_from(result, add);
    for (int k = 0; k < 3; k++)
        ls[k].dy_sq += add[k].dy_sq;
    return RAANA_OK;
}

static void owner_release(void *ctx, void *handle)
{
    (void)ctx, (void)handle; /* the member frees at the backward, or at the end */
}

/* ---- member: the service -------------------------------------------------- */

static void kept_free(kept_acts *k)
{
    free(k->g), free(k->u), free(k->a);
}

static raana_status serve_forward(raana_expert_team *t, int src, const int *head, const float *x,
                                  float *y, raana_linear_stats ls[3], raana_error *err)
{
    int block = head[1], e = head[2], n = head[3];
    const raana_moe_weights *w = block < t->n_layers ? t->held[block] : NULL;
    if (!w || e < 0 || e >= w->n_experts || !w->expert[3 * e])
        return RAANA_INTERNAL(err, "expert team: rank %d holds no expert %d of block %d", t->rank,
                              e, block);
    if (t->n_kept == t->cap_kept) {
        int cap = t->cap_kept ? 2 * t->cap_kept : 16;
        kept_acts *grown = realloc(t->kept, (size_t)cap * sizeof *grown);
        if (!grown)
            return raana_fail(err, RAANA_ERR_NOMEM, "out of memory for expert activations");
        t->kept = grown, t->cap_kept = cap;
    }
    size_t size = (size_t)n * (size_t)w->inter * sizeof(float);
    kept_acts k = {src, head[4], block, e, n, malloc(size), malloc(size), malloc(size)};
    if (!k.g || !k.u || !k.a) {
        kept_free(&k);
        return raana_fail(err, RAANA_ERR_NOMEM, "out of memory for block %d's expert %d (%d rows)",
                          block, e, n);
    }
    raana_swiglu mlp = raana_moe_expert_mlp(w, e, t->hidden);
    raana_swiglu_trace tr = {k.g, k.u, k.a};
    raana_swiglu_forward(&mlp, x, n, &tr, y, ls);
    t->kept[t->n_kept++] = k;
    return RAANA_OK;
}

static raana_status serve_backward(raana_expert_team *t, int src, const int *head, const float *dy,
                                   float *dx, raana_linear_stats ls[3], raana_error *err)
{
    raana_status st = RAANA_OK;
    int i = 0;
    while (i < t->n_kept && !(t->kept[i].owner == src && t->kept[i].seq == head[4]))
        i++;
    if (i == t->n_kept)
        return RAANA_INTERNAL(err, "expert team: no forward %d of rank %d", head[4], src);
    kept_acts k = t->kept[i];
    const raana_moe_weights *w = t->held[k.block];
    size_t size = (size_t)k.n * (size_t)w->inter * sizeof(float);
    raana_swiglu_scratch sc = {malloc(size), malloc(size), malloc(size)};
    if (!sc.da || !sc.dg || !sc.du)
        RAANA_FAIL_GOTO(err, RAANA_ERR_NOMEM, "out of memory for block %d's expert %d backward",
                        k.block, k.expert);
    raana_swiglu mlp = raana_moe_expert_mlp(w, k.expert, t->hidden);
    raana_swiglu_trace tr = {k.g, k.u, k.a};
    raana_swiglu_backward(&mlp, &tr, k.n, dy, &sc, dx, ls);
cleanup:
    free(sc.da), free(sc.dg), free(sc.du);
    kept_free(&k);
    t->kept[i] = t->kept[--t->n_kept];
    return st;
}

/* One request from src (its header read): the rows, the work, the answer.
 * Every request gets a result, failed or not. */
static void serve_request(raana_expert_team *t, int src, const int *head)
{
    size_t count = (size_t)(head[3] > 0 ? head[3] : 1) * (size_t)t->hidden;
    float *in = raana_malloc_large(count * sizeof *in),
          *out = raana_malloc_large(count * sizeof *out);
    raana_linear_stats ls[3] = {{0, 0, 0, 0}, {0, 0, 0, 0}, {0, 0, 0, 0}};
    double result[RESULT_LEN] = {0};
    raana_status st = RAANA_OK;
    raana_error scratch;
    raana_error *err = t->failed ? &scratch : &t->err; /* keep the first message */
    if (!in || !out) /* the rows still have to be taken off the wire */
        st = raana_fail(err, RAANA_ERR_NOMEM, "out of memory for %d expert rows", head[3]);
    /* without a buffer the rows cannot be taken: an empty receive truncates,
     * which MPI's default handler turns into an abort of the job (no hang) */
    raana_recv_idle(in, in ? (int)count : 0, MPI_FLOAT, src, TAG_ROWS, t->comm, MPI_STATUS_IGNORE);
    if (st == RAANA_OK && t->failed)
        st = t->err.status; /* a member that failed answers every request so */
    if (st == RAANA_OK)
        st = head[0] == OP_FORWARD ? serve_forward(t, src, head, in, out, ls, err)
                                   : serve_backward(t, src, head, in, out, ls, err);
    t->failed |= st != RAANA_OK;
    result[0] = (double)st;
    for (int k = 0; k < 3; k++) {
        result[1 + 4 * k] = ls[k].x_sq, result[2 + 4 * k] = ls[k].y_sq;
        result[3 + 4 * k] = ls[k].dy_sq, result[4 + 4 * k] = ls[k].rows;
    }
    raana_send_idle(result, RESULT_LEN, MPI_DOUBLE, src, TAG_RESULT, t->comm);
    if (st == RAANA_OK)
        raana_send_idle(out, (int)count, MPI_FLOAT, src, TAG_REPLY, t->comm);
    else
        raana_send_idle(t->err.msg, RAANA_ERROR_MSG_MAX, MPI_CHAR, src, TAG_REPLY, t->comm);
    free(in), free(out);
}

/* Serves one pending request, if any; 1 when it did. */
static int serve_pending(void *ctx)
{
    raana_expert_team *t = ctx;
    int found = 0, head[5];
    MPI_Status probed;
    MPI_Iprobe(MPI_ANY_SOURCE, TAG_REQUEST, t->comm, &found, &probed);
    if (!found)
        return 0;
    MPI_Recv(head, 5, MPI_INT, probed.MPI_SOURCE, TAG_REQUEST, t->comm, MPI_STATUS_IGNORE);
    if (head[0] == OP_END)
        t->ends++;
    else
        serve_request(t, probed.MPI_SOURCE, head);
    return 1;
}

/* ---- setup ---------------------------------------------------------------- */

static int owns_sparse_block(const raana_plan *plan, const raana_model_config *m, int r)
{
    const raana_plan_rank *rk = &plan->ranks[r];
    for (int b = rk->first_block; b < rk->first_block + rk->n_blocks; b++)
        if (raana_block_is_sparse(m, b))
            return 1;
    return 0;
}

/* member[j], 1 <= j < n: the j-th rank that owns no decoder block. */
static raana_status find_members(raana_expert_team *t, const raana_plan *plan, int n,
                                 raana_error *err)
{
    t->n_team = n;
    t->member = calloc((size_t)n, sizeof *t->member);
    if (!t->member)
        return raana_fail(err, RAANA_ERR_NOMEM, "out of memory for an expert team");
    for (int r = 0, j = 1; r < plan->n_ranks && j < n; r++)
        if (plan->ranks[r].n_blocks == 0) {
            t->is_member |= r == t->rank;
            t->member[j++] = r;
        }
    return RAANA_OK;
}

static raana_status hook_owner(raana_expert_team *t, const raana_model_config *m, int n,
                               raana_llama *net, raana_error *err)
{
    t->remote = calloc((size_t)m->moe_experts, 1);
    t->runners = calloc((size_t)(net->n_blocks > 0 ? net->n_blocks : 1), sizeof *t->runners);
    t->blocks = calloc((size_t)(net->n_blocks > 0 ? net->n_blocks : 1), sizeof *t->blocks);
    if (!t->remote || !t->runners || !t->blocks)
        return raana_fail(err, RAANA_ERR_NOMEM, "out of memory for an expert team");
    for (int e = 0; e < m->moe_experts; e++)
        t->remote[e] = e % n != 0;
    for (int b = 0; b < net->n_blocks; b++) {
        raana_moe_weights *w = net->blocks[b].moe;
        if (!w)
            continue;
        t->blocks[b] = (owner_block){t, net->first_block + b};
        t->runners[b] = (raana_moe_runner){&t->blocks[b], t->remote, owner_forward, owner_backward,
                                           owner_release};
        w->runner = &t->runners[b];
        t->n_runners = b + 1;
    }
    return RAANA_OK;
}

static raana_status load_member(raana_expert_team *t, const raana_model *model, int n,
                                raana_error *err)
{
    const raana_model_config *m = &model->config;
    int j = 1;
    while (t->member[j] != t->rank)
        j++;
    unsigned char *keep = calloc((size_t)m->moe_experts, 1);
    t->held = calloc((size_t)m->num_layers, sizeof *t->held);
    t->n_layers = m->num_layers;
    if (!keep || !t->held) {
        free(keep);
        return raana_fail(err, RAANA_ERR_NOMEM, "out of memory for an expert team");
    }
    for (int e = 0; e < m->moe_experts; e++)
        keep[e] = e % n == j;
    raana_status st = RAANA_OK;
    for (int b = 0; b < m->num_layers && st == RAANA_OK; b++)
        if (raana_block_is_sparse(m, b))
            st = raana_moe_load_experts(model, b, keep, &t->held[b], err);
    free(keep);
    return st;
}

raana_status raana_expert_team_create(const raana_plan *plan, const raana_expert_teams *teams,
                                      const raana_model *model, raana_llama *net,
                                      raana_expert_team **out, raana_error *err)
{
    raana_status st = RAANA_OK;
    *out = NULL;
    if (teams->size <= 1)
        return RAANA_OK;
    const raana_model_config *m = &model->config;
    raana_expert_team *t = calloc(1, sizeof *t);
    if (!t)
        return raana_fail(err, RAANA_ERR_NOMEM, "out of memory for an expert team");
    t->comm = MPI_COMM_NULL;
    t->hidden = m->hidden_size;
    MPI_Comm_rank(MPI_COMM_WORLD, &t->rank);
    for (int r = 0; r < plan->n_ranks; r++)
        t->n_owners += owns_sparse_block(plan, m, r);
    RAANA_CHECK(find_members(t, plan, teams->size, err));
    if (owns_sparse_block(plan, m, t->rank))
        RAANA_CHECK(hook_owner(t, m, teams->size, net, err));
    if (t->is_member)
        RAANA_CHECK(load_member(t, model, teams->size, err));
cleanup:
    if (st != RAANA_OK)
        raana_expert_team_free(t, net), t = NULL;
    *out = t;
    return st;
}

/* ---- the pass ------------------------------------------------------------- */

void raana_expert_team_begin(MPI_Comm comm, raana_expert_team *team)
{
    if (!team)
        return;
    MPI_Comm_dup(comm, &team->comm);
    MPI_Comm_size(team->comm, &team->size);
    if (team->is_member)
        raana_wait_set_hook(serve_pending, team);
}

int raana_expert_team_end(MPI_Comm comm, raana_expert_team *team, raana_error *err)
{
    (void)comm;
    if (!team)
        return 0;
    if (team->n_runners > 0) /* an owner: done, to every member */
        for (int j = 1; j < team->n_team; j++) {
            int head[5] = {OP_END, 0, 0, 0, 0};
            raana_send_idle(head, 5, MPI_INT, team->member[j], TAG_REQUEST, team->comm);
        }
    if (team->is_member) {
        raana_wait_set_hook(NULL, NULL);
        long sleep_ns = RAANA_WAIT_MIN_SLEEP_NS;
        while (team->ends < team->n_owners) {
            if (serve_pending(team)) {
                sleep_ns = RAANA_WAIT_MIN_SLEEP_NS;
                continue;
            }
            struct timespec ts = {0, sleep_ns};
            nanosleep(&ts, NULL);
            sleep_ns =
                sleep_ns * 2 > RAANA_WAIT_MAX_SLEEP_NS ? RAANA_WAIT_MAX_SLEEP_NS : sleep_ns * 2;
        }
        for (int i = 0; i < team->n_kept; i++)
            kept_free(&team->kept[i]);
        team->n_kept = 0;
        if (team->failed)
            *err = team->err;
    }
    MPI_Comm_free(&team->comm);
    return team->failed;
}

void raana_expert_team_describe(const raana_expert_team *team, char *buf, size_t size)
{
    int n = team->n_team;
    size_t len = (size_t)snprintf(buf, size,
                                  "expert team of %d ranks per sparse block: its owner computes "
                                  "experts e %% %d == 0",
                                  n, n);
    for (int j = 1; j < n && len < size; j++)
        len += (size_t)snprintf(buf + len, size - len, ", rank %d e %% %d == %d", team->member[j],
                                n, j);
}

const float *raana_expert_team_weight(const raana_expert_team *team, const raana_model_config *m,
                                      int block, int slot)
{
    if (!team || !team->held || block < 0 || block >= team->n_layers || !team->held[block])
        return NULL;
    raana_linear_info li;
    raana_block_linear(m, block, slot, &li);
    if (li.expert < 0 || li.expert >= team->held[block]->n_experts)
        return NULL;
    return team->held[block]->expert[3 * li.expert + (int)li.kind - RAANA_LINEAR_GATE];
}

void raana_expert_team_free(raana_expert_team *team, raana_llama *net)
{
    if (!team)
        return;
    for (int b = 0; net && b < team->n_runners && b < net->n_blocks; b++)
        if (net->blocks[b].moe)
            net->blocks[b].moe->runner = NULL;
    for (int b = 0; team->held && b < team->n_layers; b++)
        raana_moe_free(team->held[b]);
    for (int i = 0; i < team->n_kept; i++)
        kept_free(&team->kept[i]);
    if (team->comm != MPI_COMM_NULL)
        MPI_Comm_free(&team->comm);
    free(team->held), free(team->kept), free(team->remote), free(team->runners);
    free(team->blocks), free(team->member);
    free(team);
}
