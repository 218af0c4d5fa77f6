/* fuzz_container.c — libFuzzer target: arbitrary bytes as an HDF5 file
 * image (core driver, no backing store: nothing touches the disk) given to
 * raana's container reader through the entry points the tools use: the
 * format check (raana_container_open_fapl), raana_container_read_layer and
 * a dequantization of every /layers group (as raana-inspect --dequantize),
 * then the container as a model (raana_container_model_open_fapl, as
 * raana-eval --container and raana-inspect --verify) and a read of every
 * tensor it lists, quantized layers rebuilt and /tensors datasets
 * converted. Any crash, hang, leak or sanitizer report is a bug; errors
 * are expected. Seed corpus: tests/fuzz/corpus/container. */
#include <hdf5.h>
#include <stdint.h>
#include <stdlib.h>

#include "raana/container.h"
#include "raana/container_model.h"
#include "raana/qlayer.h"

/* Largest tensor (in elements) rebuilt or read per input: keeps each run
 * fast; the reader itself bounds sizes by the file's. */
#define MAX_ELEMENTS ((size_t)1 << 22)

static const char image_name[] = "fuzz.h5";

/* File access properties that open data[0..size) as an in-memory file
 * (HDF5 copies the image) and close every object with the file. */
static hid_t image_fapl(const uint8_t *data, size_t size)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0)
        return H5I_INVALID_HID;
    if (H5Pset_fapl_core(fapl, 64 * 1024, 0) < 0 ||
        H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) < 0 ||
        H5Pset_file_image(fapl, (void *)data, size) < 0) {
        H5Pclose(fapl);
        return H5I_INVALID_HID;
    }
    return fapl;
}

static void dequantize_layer(hid_t file, const char *name)
{
    raana_qlayer q;
    raana_error err;
    if (raana_container_read_layer(file, image_name, name, &q, &err) != RAANA_OK)
        return;
    size_t n = (size_t)q.d_in * (size_t)q.d_out;
    float *w = n <= MAX_ELEMENTS ? malloc(n * sizeof *w) : NULL;
    if (w)
        (void)raana_qlayer_dequantize(&q, w, &err);
    free(w);
    raana_qlayer_free(&q);
}

/* Every link under /layers, read and dequantized. */
static void read_layers(hid_t file)
{
    if (H5Lexists(file, "/layers", H5P_DEFAULT) <= 0)
        return;
    hid_t g = H5Gopen2(file, "/layers", H5P_DEFAULT);
    H5G_info_t info;
    if (g < 0)
        return;
    for (hsize_t i = 0; H5Gget_info(g, &info) >= 0 && i < info.nlinks && i < 256; i++) {
        char name[200];
        ssize_t n = H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof name,
                                       H5P_DEFAULT);
        if (n > 0 && (size_t)n < sizeof name)
            dequantize_layer(file, name);
    }
    H5Gclose(g);
}

/* The container as a model: every entry read as f32. */
static void read_model(hid_t fapl)
{
    raana_model m;
    raana_error err;
    if (raana_container_model_open_fapl(&m, image_name, fapl, &err) != RAANA_OK)
        return;
    for (size_t i = 0; i < m.n_entries; i++) {
        size_t n = (size_t)m.entries[i].tensor->numel;
        float *v = n <= MAX_ELEMENTS ? malloc(n ? n * sizeof *v : 1) : NULL;
        if (v)
            (void)raana_model_read_f32(&m, m.entries[i].name, v, n, &err);
        free(v);
    }
    raana_model_close(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    hid_t fapl = image_fapl(data, size);
    if (fapl < 0)
        return 0;
    hid_t file;
    raana_error err;
    if (raana_container_open_fapl(image_name, fapl, &file, &err) == RAANA_OK) {
        read_layers(file);
        H5Fclose(file);
    }
    read_model(fapl);
    H5Pclose(fapl);
    H5Eclear2(H5E_DEFAULT);
    return 0;
}
