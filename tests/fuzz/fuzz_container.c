/* fuzz_container.c — libFuzzer target: arbitrary bytes as an HDF5 file
 * image (core driver, no backing store: nothing touches the disk) given to
 * raana's container reader through the entry points the tools use: the
 * format check (raana_container_open_fapl), raana_container_read_layer and
 * a dequantization of every /layers group (as raana-inspect --dequantize),
 * then the container as a model (raana_container_model_open_fapl, as
 * raana-eval --container and raana-inspect --verify) and a read of every
 * tensor it lists, quantized layers rebuilt and /tensors datasets
 * converted. When every layer reads, the input's last 12 bytes also set
 * one layer attribute (edit_and_read) for a second read. Any crash, hang,
 * leak or sanitizer report is a bug; errors are expected. Seed corpus:
 * tests/fuzz/corpus/container. */
#include <hdf5.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "raana/container.h"
#include "raana/container_access.h"
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

/* Whether layer i reads; if it does, it is also dequantized. */
static int dequantize_layer(const raana_container *c, int i)
{
    raana_qlayer q;
    raana_error err;
    if (raana_container_read_layer(c, raana_container_layer_name(c, i), &q, &err) != RAANA_OK)
        return 0;
    size_t n = (size_t)q.d_in * (size_t)q.d_out;
    float *w = n <= MAX_ELEMENTS ? malloc(n * sizeof *w) : NULL;
    if (w)
        (void)raana_qlayer_dequantize(&q, w, &err);
    free(w);
    raana_qlayer_free(&q);
    return 1;
}

/* Name of link i of /layers (g open) into name[size], or 0. */
static int layer_name(hid_t g, hsize_t i, char *name, size_t size)
{
    ssize_t n = H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, size, H5P_DEFAULT);
    return n > 0 && (size_t)n < size;
}

/* The image opened through the reader, every layer under /layers (up to
 * 256) read and dequantized; whether there are some and all of them
 * read. */
static int read_layers(hid_t fapl)
{
    raana_container *c = NULL;
    raana_error err;
    if (raana_container_open_fapl(image_name, fapl, &c, &err) != RAANA_OK)
        return 0;
    int n = raana_container_layer_count(c), all = n > 0;
    for (int i = 0; i < n && i < 256; i++)
        all &= dequantize_layer(c, i);
    raana_container_close(c);
    return all;
}

/* The in-memory file's current bytes read through the reader. */
static void reread_image(hid_t file)
{
    ssize_t size = H5Fget_file_image(file, NULL, 0);
    uint8_t *image = size > 0 ? malloc((size_t)size) : NULL;
    hid_t fapl = image && H5Fget_file_image(file, image, (size_t)size) == size
                     ? image_fapl(image, (size_t)size)
                     : H5I_INVALID_HID;
    if (fapl >= 0) {
        (void)read_layers(fapl);
        H5Pclose(fapl);
    }
    free(image);
}

/* The attributes that size and shape a layer (what the reader must check
 * before use, issue 15). */
static const char *const edited_attrs[] = {"d_in", "d_out",  "code_bits", "n_kept",      "m_a",
                                           "m_b",  "n_held", "bits",      "packed_bytes"};

/* A container whose layers all read, with one layer attribute set from the
 * input's last 12 bytes (layer, attribute, value), read again. Checksummed
 * metadata keeps random byte flips away from the attributes; this reaches
 * the reader's attribute checks. The file is opened read-write in memory
 * (no backing store: nothing is written to disk). */
static void edit_and_read(const uint8_t *data, size_t size)
{
    if (size < 12)
        return;
    const uint8_t *e = data + size - 12;
    int32_t small;
    memcpy(&small, e + 4, sizeof small);
    int64_t value = e[2] & 1 ? (int64_t)small : (int64_t)(int8_t)e[3];
    double bits = e[2] & 2 ? (double)small / 65536.0 : (double)(int8_t)e[3] / 8.0;
    hid_t fapl = image_fapl(data, size);
    hid_t file = fapl >= 0 ? H5Fopen(image_name, H5F_ACC_RDWR, fapl) : H5I_INVALID_HID;
    hid_t g = file >= 0 ? H5Gopen2(file, "/layers", H5P_DEFAULT) : H5I_INVALID_HID;
    H5G_info_t info;
    char name[200];
    if (g >= 0 && H5Gget_info(g, &info) >= 0 && info.nlinks > 0 &&
        layer_name(g, e[0] % info.nlinks, name, sizeof name)) {
        const char *attr = edited_attrs[e[1] % (sizeof edited_attrs / sizeof *edited_attrs)];
        int is_bits = strcmp(attr, "bits") == 0;
        hid_t lg = H5Gopen2(g, name, H5P_DEFAULT);
        hid_t a = lg >= 0 ? H5Aopen(lg, attr, H5P_DEFAULT) : H5I_INVALID_HID;
        int written = a >= 0 && H5Awrite(a, is_bits ? H5T_NATIVE_DOUBLE : H5T_NATIVE_INT64,
                                         is_bits ? (const void *)&bits : (const void *)&value) >= 0;
        if (a >= 0)
            H5Aclose(a);
        if (lg >= 0)
            H5Gclose(lg);
        if (written)
            reread_image(file);
    }
    if (g >= 0)
        H5Gclose(g);
    if (file >= 0)
        H5Fclose(file);
    if (fapl >= 0)
        H5Pclose(fapl);
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
    int layers_read = read_layers(fapl);
    read_model(fapl);
    H5Pclose(fapl);
    if (layers_read)
        edit_and_read(data, size);
    H5Eclear2(H5E_DEFAULT);
    return 0;
}
