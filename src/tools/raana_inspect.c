/* raana_inspect.c — main() of raana-inspect: reads a raana container
 * without MPI and prints what it holds, or rebuilds one quantized layer's
 * weight from its codes (the reference decoder for other readers). */
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raana/container.h"
#include "raana/error.h"
#include "raana/qlayer.h"

static const char usage_text[] =
    "usage: raana-inspect CONTAINER.h5                 summary and the report table\n"
    "       raana-inspect CONTAINER.h5 --layers        one line per quantized layer\n"
    "       raana-inspect CONTAINER.h5 --dequantize LAYER OUT.f32\n"
    "                 write LAYER's rebuilt weight as raw little-endian float32,\n"
    "                 [d_out][d_in] (Hugging Face layout)\n"
    "exit codes: 0 ok, 2 usage, 4 not a readable container, 5 file I/O, 6 out of memory,\n"
    "            8 newer container format\n";

static void print_text_dataset(hid_t file, const char *path)
{
    hid_t d = H5Dopen2(file, path, H5P_DEFAULT);
    if (d < 0)
        return;
    hid_t space = H5Dget_space(d);
    hssize_t n = H5Sget_simple_extent_npoints(space);
    char *text = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (text && (n == 0 || H5Dread(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, text) >= 0)) {
        text[n] = '\0';
        fputs(text, stdout);
    }
    free(text);
    H5Sclose(space);
    H5Dclose(d);
}

static void print_f64_attr(hid_t file, const char *obj, const char *name, const char *label)
{
    double v;
    hid_t a = H5Aopen_by_name(file, obj, name, H5P_DEFAULT, H5P_DEFAULT);
    if (a >= 0 && H5Aread(a, H5T_NATIVE_DOUBLE, &v) >= 0)
        printf("%s: %.6g\n", label, v);
    if (a >= 0)
        H5Aclose(a);
}

static herr_t print_layer(hid_t group, const char *name, const H5L_info_t *info, void *data)
{
    (void)info;
    double bits = 0, rel = 0;
    hid_t a = H5Aopen_by_name(group, name, "bits", H5P_DEFAULT, H5P_DEFAULT);
    if (a >= 0)
        H5Aread(a, H5T_NATIVE_DOUBLE, &bits), H5Aclose(a);
    a = H5Aopen_by_name(group, name, "rel_error", H5P_DEFAULT, H5P_DEFAULT);
    if (a >= 0)
        H5Aread(a, H5T_NATIVE_DOUBLE, &rel), H5Aclose(a);
    printf("%-48s %5g bits  rel.error %.6f\n", name, bits, rel);
    ++*(int *)data;
    return 0;
}

static raana_status dequantize(hid_t file, const char *path, const char *layer, const char *out,
                               raana_error *err)
{
    raana_qlayer q;
    raana_status st = raana_container_read_layer(file, path, layer, &q, err);
    if (st != RAANA_OK)
        return st;
    size_t n = (size_t)q.d_in * (size_t)q.d_out;
    float *w = malloc(n * sizeof *w);
    st = w ? raana_qlayer_dequantize(&q, w, err)
           : raana_fail(err, RAANA_ERR_NOMEM, "out of memory for %s", layer);
    FILE *f = st == RAANA_OK ? fopen(out, "wb") : NULL;
    if (st == RAANA_OK && (!f || fwrite(w, sizeof *w, n, f) != n || fclose(f) != 0))
        st = raana_fail(err, RAANA_ERR_IO, "%s: cannot write", out);
    else if (st == RAANA_OK)
        printf("%s: %dx%d float32, %g bits\n", out, q.d_out, q.d_in, q.bits);
    free(w);
    raana_qlayer_free(&q);
    return st;
}

int main(int argc, char **argv)
{
    raana_error err;
    raana_error_clear(&err);
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        fputs(usage_text, argc < 2 ? stderr : stdout);
        return argc < 2 ? RAANA_ERR_USAGE : 0;
    }
    const char *path = argv[1];
    int layers = argc == 3 && strcmp(argv[2], "--layers") == 0;
    int deq = argc == 5 && strcmp(argv[2], "--dequantize") == 0;
    if (argc > 2 && !layers && !deq) {
        fprintf(stderr, "raana-inspect: error: bad arguments\n%s", usage_text);
        return RAANA_ERR_USAGE;
    }
    hid_t file;
    raana_status st = raana_container_open(path, &file, &err);
    if (st == RAANA_OK && deq) {
        st = dequantize(file, path, argv[3], argv[4], &err);
    } else if (st == RAANA_OK && layers) {
        int count = 0;
        hid_t g = H5Gopen2(file, "/layers", H5P_DEFAULT);
        if (g >= 0) {
            H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, NULL, print_layer, &count);
            H5Gclose(g);
        }
        printf("%d quantized layers\n", count);
    } else if (st == RAANA_OK) {
        printf("%s: raana container, format version %d\n", path, RAANA_FORMAT_VERSION);
        print_f64_attr(file, "/report", "target_avg_bits", "target average bits");
        print_f64_attr(file, "/report", "achieved_avg_bits", "achieved average bits (codes)");
        print_f64_attr(file, "/report", "effective_bits_quantized",
                       "effective bits per quantized weight");
        print_f64_attr(file, "/report", "effective_bits_model", "effective bits per parameter");
        print_f64_attr(file, "/calibration", "loss", "calibration loss");
        print_text_dataset(file, "/report/table");
    }
    if (st == RAANA_OK)
        H5Fclose(file);
    if (st != RAANA_OK)
        fprintf(stderr, "raana-inspect: error: %s\n", err.msg);
    return (int)st;
}
