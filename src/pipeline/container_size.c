/* container_size.c — the upper bound of a container's size that the job
 * reserves before writing (see container_size.h). */
#include "raana/container_size.h"

#include <stdio.h>
#include <sys/stat.h>

#include "raana/container_schema.h"

uint64_t raana_container_size_bound(const raana_container_content *c)
{
    const raana_plan *p = &c->stage->plan;
    const raana_model *m = &c->stage->model;
    uint64_t bytes = 0, datasets = 16;
    for (size_t i = 0; i < RAANA_N_MODEL_FILES; i++) {
        char path[4400];
        struct stat sb;
        snprintf(path, sizeof path, "%s/%s", m->dir, raana_schema_model_files[i]);
        if (stat(path, &sb) == 0)
            bytes += (uint64_t)sb.st_size, datasets++;
    }
    bytes += (uint64_t)c->stage->windows.n * (uint64_t)c->stage->windows.len * 4;
    bytes += (uint64_t)p->n_layers * (sizeof p->layers[0].name + 3 * 4 + RAANA_N_COLS * 8);
    for (int i = 0; i < p->n_layers; i++) {
        if (!p->layers[i].quantize)
            continue;
        const raana_layer_summary *s = &c->quantized->summary[i];
        uint64_t d_in = (uint64_t)p->layers[i].d_in, d_out = (uint64_t)p->layers[i].d_out;
        bytes += d_out * s->packed_bytes + 4 * d_out + 2 * ((d_in + 7) / 8);
        bytes += 8 * d_in + (uint64_t)s->n_held * (4 + 4 * d_in); /* mu, row scales, held */
        /* low-rank factors: 16 bits per entry of A and B */
        bytes += 2 * (uint64_t)raana_plan_layer_lowrank(c->cfg, &p->layers[i]) * (d_in + d_out);
        datasets += 10;
    }
    for (size_t i = 0; i < m->n_entries; i++)
        if (!raana_schema_is_quantized_weight(p, m->entries[i].name))
            bytes += m->entries[i].tensor->end - m->entries[i].tensor->begin, datasets++;
    /* zstd's worst case is +0.4% per chunk; chunk indexes, object headers,
     * attributes and the report: a margin per dataset and overall */
    return bytes + bytes / 128 + datasets * 4096 + (1u << 20);
}
