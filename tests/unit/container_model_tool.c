/* container_model_tool.c — drives container_model.h for
 * tests/py/check_container_model.py: opens a container as a model, writes
 * every tensor as raw f32 to OUTDIR/<name>.f32 with a listing on stdout
 * ("name dtype d0 [d1 ...]"), the container's tokenizer.json to
 * OUTDIR/tokenizer.json, its checkpoint fingerprint, and loads the whole
 * network from it through raana_stage_open_model (one rank).
 * Usage: container_model_tool CONTAINER.h5 OUTDIR; exit = raana status. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raana/calibrate.h"
#include "raana/container.h"
#include "raana/container_model.h"

static raana_status write_file(const char *path, const void *data, size_t bytes, raana_error *err)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, bytes, f) != bytes || fclose(f) != 0)
        return raana_fail(err, RAANA_ERR_IO, "%s: cannot write", path);
    return RAANA_OK;
}

static raana_status dump_tensors(const raana_model *m, const char *dir, raana_error *err)
{
    raana_status st = RAANA_OK;
    for (size_t i = 0; i < m->n_entries && st == RAANA_OK; i++) {
        const raana_st_tensor *t = m->entries[i].tensor;
        float *v = malloc(t->numel ? t->numel * sizeof *v : 1);
        if (!v)
            return raana_fail(err, RAANA_ERR_NOMEM, "out of memory");
        st = raana_model_read_f32(m, m->entries[i].name, v, (size_t)t->numel, err);
        char path[4400];
        snprintf(path, sizeof path, "%s/%s.f32", dir, m->entries[i].name);
        if (st == RAANA_OK)
            st = write_file(path, v, (size_t)t->numel * sizeof *v, err);
        free(v);
        printf("%s %s", m->entries[i].name, raana_dtype_name(t->dtype));
        for (int d = 0; d < t->ndim; d++)
            printf(" %lld", (long long)t->shape[d]);
        printf("\n");
    }
    return st;
}

static raana_status extras(const char *path, const char *dir, raana_error *err)
{
    raana_status st = RAANA_OK;
    raana_container *c = NULL;
    uint64_t fp;
    char *data = NULL, out[4400];
    size_t len;
    RAANA_CHECK(raana_container_open(path, &c, err));
    RAANA_CHECK(raana_container_checkpoint_fingerprint(c, &fp, err));
    printf("fingerprint %016llx\n", (unsigned long long)fp);
    RAANA_CHECK(raana_container_model_file(c, "tokenizer.json", &data, &len, err));
    snprintf(out, sizeof out, "%s/tokenizer.json", dir);
    if (data)
        RAANA_CHECK(write_file(out, data, len, err));
    free(data);
    RAANA_CHECK(raana_container_model_file(c, "no-such-file.json", &data, &len, err));
    if (data || len)
        st = RAANA_INTERNAL(err, "an absent file came back present");
cleanup:
    free(data);
    raana_container_close(c);
    return st;
}

static raana_status load_network(raana_model *m, raana_error *err)
{
    raana_stage s;
    raana_config cfg;
    memset(&s, 0, sizeof s);
    raana_config_defaults(&cfg);
    raana_status st = raana_stage_open_model(&s, m, &cfg, 1, err);
    if (st == RAANA_OK)
        st = raana_stage_load(&s, 0, err);
    if (st == RAANA_OK)
        printf("network: %d blocks loaded\n", s.net.n_blocks);
    raana_stage_free(&s);
    return st;
}

int main(int argc, char **argv)
{
    raana_error err;
    raana_error_clear(&err);
    if (argc != 3) {
        fprintf(stderr, "usage: container_model_tool CONTAINER.h5 OUTDIR\n");
        return RAANA_ERR_USAGE;
    }
    raana_model m;
    raana_status st = raana_container_model_open(&m, argv[1], &err);
    if (st == RAANA_OK) {
        st = dump_tensors(&m, argv[2], &err);
        if (st == RAANA_OK)
            st = extras(argv[1], argv[2], &err);
        if (st == RAANA_OK)
            st = load_network(&m, &err); /* takes m over */
        else
            raana_model_close(&m);
    }
    if (st != RAANA_OK)
        fprintf(stderr, "container_model_tool: error: %s\n", err.msg);
    return (int)st;
}
