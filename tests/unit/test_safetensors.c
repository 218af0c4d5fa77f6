/* test_safetensors.c — the safetensors reader: the fixture read single-file
 * and sharded gives bit-identical tensors; dtype conversions against closed
 * forms; every malformed header gives one message naming file and problem. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "raana/model.h"
#include "raana/safetensors.h"
#include "tiny_model.h"

#define FIXTURE RAANA_SOURCE_DIR "/tests/data/kjv-tiny"

static char tmpdir[] = "/tmp/raana-test-st-XXXXXX";

static void test_fixture_single_vs_sharded(void)
{
    raana_model single, sharded;
    raana_error err;
    CHECK_INT(raana_model_open(&single, FIXTURE, &err), RAANA_OK);
    CHECK_INT(raana_model_open(&sharded, FIXTURE "/sharded", &err), RAANA_OK);
    CHECK_INT(single.n_entries, 39);
    CHECK_INT(sharded.n_entries, 39);
    CHECK_INT(sharded.n_files, 2);
    size_t same = 0;
    for (size_t i = 0; i < single.n_entries && i < sharded.n_entries; i++) {
        const raana_st_tensor *t = single.entries[i].tensor;
        CHECK(strcmp(t->name, sharded.entries[i].name) == 0);
        CHECK_INT(t->dtype, RAANA_DTYPE_BF16);
        float *a = malloc(t->numel * sizeof *a), *b = malloc(t->numel * sizeof *b);
        CHECK_INT(raana_model_read_f32(&single, t->name, a, t->numel, &err), RAANA_OK);
        CHECK_INT(raana_model_read_f32(&sharded, t->name, b, t->numel, &err), RAANA_OK);
        same += memcmp(a, b, t->numel * sizeof *a) == 0;
        free(a);
        free(b);
    }
    CHECK_INT(same, 39);
    /* lm_head lives in the second shard */
    const raana_tensor_entry *e = raana_model_find(&sharded, "lm_head.weight");
    CHECK(e && strstr(sharded.files[e->file].path, "model-00002-of-00002"));
    raana_model_close(&single);
    raana_model_close(&sharded);
}

static void test_conversions(void)
{
    /* bf16: the top half of the f32 bit pattern */
    CHECK(raana_bf16_to_f32(0x3f80) == 1.0f);
    CHECK(raana_bf16_to_f32(0xc040) == -3.0f);
    /* f16: every one of the 65536 patterns against the closed form */
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
        double want;
        if (e == 31)
            want = m ? NAN : INFINITY;
        else if (e == 0)
            want = ldexp(m, -24);
        else
            want = ldexp(1024 + m, e - 25);
        want = s ? -want : want;
        float got = raana_f16_to_f32((uint16_t)h);
        if (isnan(want) ? !isnan(got) : (double)got != want || !signbit(got) != !signbit(want))
            bad++;
    }
    CHECK_INT(bad, 0);
}

typedef struct {
    const char *header; /* NULL: raw bytes below */
    size_t data_len;
    const char *parts[3];
} bad_case;

static void test_bad_headers(void)
{
    static const bad_case cases[] = {
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}",
         10,
         {"file is truncated", "16 data bytes", "holds 10"}},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[100,108]}}",
         16,
         {"tensor 'b'", "[100, 108]", "out of range"}},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
         16,
         {"'a' [0, 8]", "'b' [4, 12]", "overlap"}},
        {"{\"a\":{\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[0,8]}}",
         8,
         {"tensor 'a'", "unknown dtype 'Q4'", ""}},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}",
         8,
         {"tensor 'a'", "need 12 bytes", "span 8"}},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
         16,
         {"tensor 'a'", "appears twice", ""}},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}",
         8,
         {"shape[0]", "non-negative integer", ""}},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}",
         8,
         {"data_offsets must be", "", ""}},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, {"needs \"dtype\"", "", ""}},
        {"{\"a\": [1, 2", 8, {"not valid JSON", "", ""}},
        {"[1, 2]", 8, {"not a JSON object", "", ""}},
        {"{\"__metadata__\": 5}", 0, {"__metadata__ is not an object", "", ""}},
    };
    char path[256];
    snprintf(path, sizeof path, "%s/bad.safetensors", tmpdir);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        raana_st_file f;
        raana_error err;
        CHECK_INT(write_st_raw(path, cases[i].header, NULL, cases[i].data_len), 0);
        CHECK_INT(raana_st_open(&f, path, &err), RAANA_ERR_INPUT);
        CHECK_MSG(err, path, cases[i].parts[0], cases[i].parts[1]);
        CHECK_MSG(err, cases[i].parts[2]);
    }
    /* header length larger than the file */
    FILE *fp = fopen(path, "wb");
    unsigned char len[8] = {0xe8, 0x03, 0, 0, 0, 0, 0, 0}; /* 1000 */
    fwrite(len, 1, 8, fp);
    fputs("{}", fp);
    fclose(fp);
    raana_st_file f;
    raana_error err;
    CHECK_INT(raana_st_open(&f, path, &err), RAANA_ERR_INPUT);
    CHECK_MSG(err, path, "header length 1000 is larger than the file (10 bytes)");
    /* shorter than the length field */
    fp = fopen(path, "wb");
    fputs("abc", fp);
    fclose(fp);
    CHECK_INT(raana_st_open(&f, path, &err), RAANA_ERR_INPUT);
    CHECK_MSG(err, path, "truncated");
    /* missing file */
    CHECK_INT(raana_st_open(&f, "/nonexistent/x.safetensors", &err), RAANA_ERR_IO);
    CHECK_MSG(err, "/nonexistent/x.safetensors", "cannot open");
    /* a valid file with a dtype that cannot become f32 */
    CHECK_INT(write_st_raw(path, "{\"i\":{\"dtype\":\"I8\",\"shape\":[4],\"data_offsets\":[0,4]}}",
                           "abcd", 4),
              0);
    CHECK_INT(raana_st_open(&f, path, &err), RAANA_OK);
    float out[4];
    CHECK_INT(raana_st_read_f32(&f, raana_st_find(&f, "i"), out, &err), RAANA_ERR_UNSUPPORTED);
    CHECK_MSG(err, "tensor 'i'", "dtype I8");
    raana_st_close(&f);
    /* F16 and F32 data round-trip through the reader */
    uint16_t h[3] = {0x3c00, 0xc000, 0x0001}; /* 1, -2, 2^-24 */
    CHECK_INT(write_st_raw(path, "{\"h\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[0,6]}}",
                           h, 6),
              0);
    CHECK_INT(raana_st_open(&f, path, &err), RAANA_OK);
    CHECK_INT(raana_st_read_f32(&f, raana_st_find(&f, "h"), out, &err), RAANA_OK);
    CHECK(out[0] == 1.0f && out[1] == -2.0f && out[2] == ldexpf(1, -24));
    raana_st_close(&f);
    unlink(path);
}

int main(void)
{
    if (!mkdtemp(tmpdir))
        return 2;
    test_fixture_single_vs_sharded();
    test_conversions();
    test_bad_headers();
    rmdir(tmpdir);
    return check_summary("test_safetensors");
}
