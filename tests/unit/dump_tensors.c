/* dump_tensors.c — test helper: writes every tensor of a checkpoint
 * directory, converted to f32 by raana's reader, to one binary file, in
 * name order. tests/py/test_tensors_numpy.py compares it byte for byte with
 * an independent numpy reader. Usage: dump_tensors MODEL_DIR OUT.bin */
#include <stdio.h>
#include <stdlib.h>

#include "raana/model.h"

int main(int argc, char **argv)
{
    raana_model m;
    raana_error err;
    if (argc != 3) {
        fprintf(stderr, "usage: dump_tensors MODEL_DIR OUT.bin\n");
        return 2;
    }
    if (raana_model_open(&m, argv[1], &err) != RAANA_OK) {
        fprintf(stderr, "dump_tensors: %s\n", err.msg);
        return 1;
    }
    FILE *out = fopen(argv[2], "wb");
    int rc = out ? 0 : 1;
    for (size_t i = 0; i < m.n_entries && rc == 0; i++) {
        const raana_st_tensor *t = m.entries[i].tensor;
        float *buf = malloc(t->numel * sizeof *buf);
        if (!buf || raana_model_read_f32(&m, t->name, buf, t->numel, &err) != RAANA_OK ||
            fwrite(buf, sizeof *buf, t->numel, out) != t->numel)
            rc = 1;
        free(buf);
    }
    if (out && fclose(out) != 0)
        rc = 1;
    raana_model_close(&m);
    return rc;
}
