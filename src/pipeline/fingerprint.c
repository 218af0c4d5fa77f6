/* fingerprint.c — hashes of the inputs for resuming (see fingerprint.h). */
#include "raana/fingerprint.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "raana/comm.h"
#include "raana/file.h"

int raana_tensor_owner(const raana_plan *plan, const char *name)
{
    static const char prefix[] = "model.layers.";
    if (strncmp(name, prefix, sizeof prefix - 1) == 0) {
        char *end;
        long block = strtol(name + sizeof prefix - 1, &end, 10);
        int owner = *end == '.' ? raana_plan_block_owner(plan, (int)block) : -1;
        if (owner >= 0)
            return owner;
    }
    if (strstr(name, "embed_tokens"))
        return 0;
    return plan->n_ranks - 1;
}

static uint64_t hash_tensor(const raana_model *m, const raana_tensor_entry *e)
{
    const raana_st_tensor *t = e->tensor;
    XXH3_state_t *s = XXH3_createState();
    XXH3_64bits_reset(s);
    XXH3_64bits_update(s, e->name, strlen(e->name) + 1);
    const char *dtype = raana_dtype_name(t->dtype);
    XXH3_64bits_update(s, dtype, strlen(dtype) + 1);
    XXH3_64bits_update(s, t->shape, sizeof t->shape[0] * (size_t)t->ndim);
    XXH3_64bits_update(s, m->files[e->file].data + t->begin, t->end - t->begin);
    uint64_t h = XXH3_64bits_digest(s);
    XXH3_freeState(s);
    raana_st_release(&m->files[e->file], t); /* hashed: out of the resident set */
    return h;
}

raana_status raana_fingerprint_checkpoint(MPI_Comm comm, const raana_stage *s, int rank,
                                          raana_fingerprints *f, raana_error *err)
{
    raana_status st = RAANA_OK;
    const raana_model *m = &s->model;
    memset(f, 0, sizeof *f);
    f->n = m->n_entries;
    f->tensor = calloc(f->n ? f->n : 1, sizeof *f->tensor);
    uint64_t *mine = calloc(f->n ? f->n : 1, sizeof *mine);
    char path[4200], *json = NULL;
    size_t json_len = 0;
    snprintf(path, sizeof path, "%s/config.json", m->dir);
    RAANA_CHECK(raana_comm_agree(comm,
                                 f->tensor && mine
                                     ? raana_read_file(path, &json, &json_len, err)
                                     : raana_fail(err, RAANA_ERR_NOMEM, "out of memory"),
                                 err));
    for (size_t i = 0; i < f->n; i++)
        if (raana_tensor_owner(&s->plan, m->entries[i].name) == rank)
            mine[i] = hash_tensor(m, &m->entries[i]);
    /* each tensor is hashed by one rank; the others contribute 0 */
    MPI_Allreduce(mine, f->tensor, (int)f->n, MPI_UINT64_T, MPI_BXOR, comm);
    XXH3_state_t *h = XXH3_createState();
    XXH3_64bits_reset(h);
    XXH3_64bits_update(h, json, json_len);
    XXH3_64bits_update(h, f->tensor, f->n * sizeof *f->tensor);
    f->checkpoint = XXH3_64bits_digest(h);
    XXH3_freeState(h);
cleanup:
    free(json);
    free(mine);
    if (st != RAANA_OK)
        raana_fingerprints_free(f);
    return st;
}

void raana_fingerprints_free(raana_fingerprints *f)
{
    free(f->tensor);
    memset(f, 0, sizeof *f);
}

uint64_t raana_fingerprint_calibration(const raana_fingerprints *f, const raana_windows *w,
                                       int chunk_tokens)
{
    XXH3_state_t *h = XXH3_createState();
    XXH3_64bits_reset(h);
    static const char tag[] = "raana-calibration " RAANA_VERSION;
    XXH3_64bits_update(h, tag, sizeof tag);
    XXH3_64bits_update(h, &f->checkpoint, sizeof f->checkpoint);
    int shape[3] = {w->n, w->len, chunk_tokens};
    XXH3_64bits_update(h, shape, sizeof shape);
    XXH3_64bits_update(h, w->tokens, (size_t)w->n * (size_t)w->len * sizeof *w->tokens);
    uint64_t v = XXH3_64bits_digest(h);
    XXH3_freeState(h);
    return v;
}

uint64_t raana_fingerprint_layer(const raana_fingerprints *f, const raana_model *m,
                                 const char *name, const raana_config *cfg, double bits)
{
    char weight[160];
    snprintf(weight, sizeof weight, "%s.weight", name);
    const raana_tensor_entry *e = raana_model_find(m, weight);
    uint64_t tensor = e ? f->tensor[e - m->entries] : 0;
    struct {
        uint64_t tensor, seed, calibration;
        double bits, rate, ldlq_damp, lowrank_damp;
        uint32_t tricks, encoder, lowrank_rank, side_half;
    } key;
    memset(&key, 0, sizeof key);
    key.tensor = tensor, key.seed = cfg->seed, key.bits = bits, key.rate = cfg->norm_col_rate;
    key.tricks = cfg->tricks, key.encoder = (uint32_t)cfg->encoder;
    key.side_half = cfg->side_bits == 16; /* 0 as before for float32 */
    if (cfg->ldlq)                        /* the codes then depend on the calibration data too */
        key.calibration = f->calibration, key.ldlq_damp = cfg->ldlq_damp;
    if (cfg->pca_rank > 0) /* the PCA trick's factors: from the weight alone */
        key.lowrank_rank = (uint32_t)cfg->pca_rank | 0x80000000u;
    if (cfg->lowrank_rank > 0) /* and so do the factors */
        key.calibration = f->calibration, key.lowrank_damp = cfg->lowrank_damp,
        key.lowrank_rank = (uint32_t)cfg->lowrank_rank;
    XXH3_state_t *h = XXH3_createState();
    XXH3_64bits_reset(h);
    static const char tag[] = "raana-layer " RAANA_VERSION;
    XXH3_64bits_update(h, tag, sizeof tag);
    XXH3_64bits_update(h, name, strlen(name) + 1);
    XXH3_64bits_update(h, &key, sizeof key);
    uint64_t v = XXH3_64bits_digest(h);
    XXH3_freeState(h);
    return v;
}
