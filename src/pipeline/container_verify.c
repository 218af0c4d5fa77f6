/* container_verify.c — the read-back check after writing (see
 * container_verify.h): each rank reopens the container and compares the
 * datasets it wrote with its data in memory. */
#include "raana/container_verify.h"

#include <stdlib.h>
#include <string.h>

#include "raana/comm.h"
#include "raana/container_schema.h"
#include "raana/fault.h"
#include "raana/h5file.h"
#include "raana/half_scaled.h"
#include "raana/qlayer.h"

/* Reads dataset path (n elements of native type) back and compares its
 * bytes with what was written. */
static raana_status verify_dataset(raana_h5 *h, const char *path, hid_t type, const void *expect,
                                   size_t n, raana_error *err)
{
    raana_status st = RAANA_OK;
    size_t bytes = n * H5Tget_size(type);
    uint8_t *got = raana_malloc(bytes ? bytes : 1);
    if (!got)
        return raana_fail(err, RAANA_ERR_NOMEM, "out of memory verifying %s", path);
    RAANA_CHECK(raana_h5_read(h, path, type, got, n, err));
    if (bytes && memcmp(got, expect, bytes) != 0)
        RAANA_FAIL_GOTO(err, RAANA_ERR_IO, "%s: %s reads back different from what was written",
                        h->path, path);
cleanup:
    free(got);
    return st;
}

/* A side vector as stored: float32, or the half bits of
 * [quantize] side_bits = 16 (half_scaled.h; the exponent is recomputed
 * from the values, which it reproduces). */
static raana_status verify_side(raana_h5 *h, const char *path, const raana_qlayer *q,
                                const float *v, size_t n, raana_error *err)
{
    if (q->side_bits != 16)
        return verify_dataset(h, path, H5T_NATIVE_FLOAT, v, n, err);
    raana_status st = RAANA_OK;
    uint16_t *half = raana_malloc((n ? n : 1) * sizeof *half);
    if (!half)
        return raana_fail(err, RAANA_ERR_NOMEM, "out of memory verifying %s", path);
    raana_half_scaled_encode(v, n, raana_half_scaled_exponent(v, n), half);
    st = verify_dataset(h, path, H5T_NATIVE_UINT16, half, n, err);
    free(half);
    return st;
}

static raana_status verify_own(raana_h5 *h, const raana_container_content *c, raana_error *err)
{
    const raana_plan *p = &c->stage->plan;
    const raana_model *m = &c->stage->model;
    char path[300];
    for (int i = 0; i < p->n_layers; i++) {
        const raana_qlayer *q = c->quantized->layers[i];
        if (!q)
            continue;
        snprintf(path, sizeof path, "/layers/%s/codes", p->layers[i].name);
        RAANA_CALL(verify_dataset(h, path, H5T_NATIVE_UINT8, q->packed,
                                  q->packed_bytes * (size_t)q->d_out, err));
        snprintf(path, sizeof path, "/layers/%s/rescale", p->layers[i].name);
        RAANA_CALL(verify_side(h, path, q, q->rescale, (size_t)q->d_out, err));
        if (q->lowrank_rank > 0) {
            size_t r = (size_t)q->lowrank_rank;
            snprintf(path, sizeof path, "/layers/%s/lowrank_a", p->layers[i].name);
            RAANA_CALL(verify_dataset(h, path, H5T_NATIVE_UINT16, q->lowrank_a,
                                      r * (size_t)q->d_out, err));
            snprintf(path, sizeof path, "/layers/%s/lowrank_b", p->layers[i].name);
            RAANA_CALL(
                verify_dataset(h, path, H5T_NATIVE_UINT16, q->lowrank_b, r * (size_t)q->d_in, err));
        }
    }
    for (size_t i = 0; i < m->n_entries; i++) {
        const raana_tensor_entry *e = &m->entries[i];
        if (raana_schema_is_quantized_weight(p, e->name) ||
            raana_tensor_owner(p, e->name) != h->rank)
            continue;
        snprintf(path, sizeof path, "/tensors/%s", e->name);
        RAANA_CALL(verify_dataset(h, path, raana_schema_tensor_type(e->tensor->dtype),
                                  m->files[e->file].data + e->tensor->begin,
                                  (size_t)e->tensor->numel, err));
    }
    return RAANA_OK;
}

raana_status raana_container_verify(MPI_Comm comm, const char *path,
                                    const raana_container_content *c, raana_error *err)
{
    raana_h5 h;
    RAANA_CALL(raana_h5_open_read(&h, comm, path, err));
    raana_status st = raana_comm_agree(comm, verify_own(&h, c, err), err);
    raana_error ignored;
    raana_h5_close(&h, &ignored);
    return st;
}
