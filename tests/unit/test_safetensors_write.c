/* test_safetensors_write.c — the safetensors writer against raana's reader
 * (header round trip, escaped names, data), and f32 -> BF16/F16 rounding:
 * every 16-bit value survives f32 and back exactly, and rounded values are
 * the nearest representable ones with ties to even (checked in double
 * against both neighbours), overflow refused by name. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "raana/safetensors.h"
#include "raana/safetensors_write.h"

static float to_f32(uint16_t h, int bf16)
{
    return bf16 ? raana_bf16_to_f32(h) : raana_f16_to_f32(h);
}

static void test_round_trip_all(void)
{
    int bad_bf16 = 0, bad_f16 = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        if ((h & 0x7f80) != 0x7f80 && raana_f32_to_bf16(raana_bf16_to_f32((uint16_t)h)) != h)
            bad_bf16++;
        if ((h & 0x7c00) != 0x7c00 && raana_f32_to_f16(raana_f16_to_f32((uint16_t)h)) != h)
            bad_f16++;
    }
    CHECK_INT(bad_bf16, 0);
    CHECK_INT(bad_f16, 0);
}

/* h must be a nearest neighbour of x, and even on a tie. */
static int nearest_even(float x, uint16_t h, int bf16)
{
    double v = x, got = to_f32(h, bf16), d = fabs(v - got);
    uint16_t mag = h & 0x7fff, sign = h & 0x8000;
    uint16_t limit = bf16 ? 0x7f80 : 0x7c00;
    if (mag >= limit)
        return 0;
    for (int step = -1; step <= 1; step += 2) {
        int m = (int)mag + step;
        if (m < 0 || m >= limit)
            continue;
        double other = to_f32((uint16_t)(sign | m), bf16);
        if (mag == 0 && step < 0)
            continue;
        if (fabs(v - other) < d || (fabs(v - other) == d && (mag & 1)))
            return 0;
    }
    return 1;
}

static void test_rounding(void)
{
    srand(7);
    int bad = 0, n = 0;
    for (int i = 0; i < 200000; i++) {
        uint32_t u = ((uint32_t)rand() << 16) ^ (uint32_t)rand();
        float x;
        memcpy(&x, &u, sizeof x);
        if (!isfinite(x))
            continue;
        float small = ldexpf(x, -ilogbf(x) + (rand() % 40) - 26); /* f16's range */
        if (fabsf(x) < 3.3e38f && !nearest_even(x, raana_f32_to_bf16(x), 1))
            bad++;
        if (isfinite(small) && fabsf(small) < 65504.f &&
            !nearest_even(small, raana_f32_to_f16(small), 0))
            bad++;
        n++;
    }
    CHECK(n > 100000);
    CHECK_INT(bad, 0);
    /* ties: halfway between 1 and the next BF16 (1 + 2^-7) rounds to 1 (even) */
    CHECK_INT(raana_f32_to_bf16(1.0f + 0x1p-8f), 0x3f80);
    CHECK_INT(raana_f32_to_bf16(1.0f + 3 * 0x1p-8f), 0x3f82); /* 1 + 3*2^-8 -> 1 + 2^-6 */
    CHECK_INT(raana_f32_to_f16(1.0f + 0x1p-11f), 0x3c00);
    CHECK_INT(raana_f32_to_f16(1.0f + 3 * 0x1p-11f), 0x3c02);
    CHECK_INT(raana_f32_to_f16(0x1p-25f), 0x0000);   /* half the smallest subnormal: even */
    CHECK_INT(raana_f32_to_f16(0x1.8p-24f), 0x0002); /* 1.5 units -> 2 */
    CHECK_INT(raana_f32_to_f16(65519.f), 0x7bff);
    CHECK_INT(raana_f32_to_f16(65520.f), 0x7c00);
    CHECK_INT(raana_f32_to_f16(-2.0f), 0xc000);
}

static void test_convert_overflow(void)
{
    raana_error err;
    float in[3] = {1, -70000.f, 2};
    uint16_t out[3];
    CHECK_INT(raana_st_convert_f32(in, 3, RAANA_DTYPE_F16, out, "w", &err), RAANA_ERR_NUMERIC);
    CHECK(strstr(err.msg, "'w'") && strstr(err.msg, "index 1"));
    CHECK_INT(raana_st_convert_f32(in, 3, RAANA_DTYPE_BF16, out, "w", &err), RAANA_OK);
    CHECK_INT(out[1], raana_f32_to_bf16(-70000.f));
}

static void test_write_read(void)
{
    char path[] = "/tmp/raana-test-stw-XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    unlink(path);
    raana_st_out_tensor t[3] = {{"b.weight", RAANA_DTYPE_BF16, 2, {2, 3}},
                                {"a \"quoted\\\" name", RAANA_DTYPE_F32, 1, {5}},
                                {"scalarish", RAANA_DTYPE_F16, 1, {1}}};
    float a[5] = {1, -2, 3.5f, 0.25f, 1e-3f}, b[6] = {1, 2, 3, -4, 5, 1.0f / 3}, c = 0.1f;
    uint16_t bb[6], cc;
    raana_error err;
    raana_st_writer w;
    CHECK_INT(raana_st_writer_open(&w, path, t, 3, &err), RAANA_OK);
    CHECK_INT(raana_st_convert_f32(b, 6, RAANA_DTYPE_BF16, bb, "b", &err), RAANA_OK);
    CHECK_INT(raana_st_convert_f32(&c, 1, RAANA_DTYPE_F16, &cc, "c", &err), RAANA_OK);
    CHECK_INT(raana_st_writer_write(&w, bb, sizeof bb, &err), RAANA_OK);
    CHECK_INT(raana_st_writer_write(&w, a, sizeof a, &err), RAANA_OK);
    CHECK_INT(raana_st_writer_finish(&w, &err), RAANA_ERR_INTERNAL);     /* 2 bytes short */
    CHECK_INT(raana_st_writer_open(&w, path, t, 3, &err), RAANA_ERR_IO); /* exists: O_EXCL */
    raana_st_file f;
    CHECK_INT(raana_st_open(&f, path, &err), RAANA_ERR_INPUT); /* last tensor's bytes missing */
    unlink(path);
    CHECK_INT(raana_st_writer_open(&w, path, t, 3, &err), RAANA_OK);
    CHECK_INT(raana_st_writer_write(&w, bb, sizeof bb, &err), RAANA_OK);
    CHECK_INT(raana_st_writer_write(&w, a, sizeof a, &err), RAANA_OK);
    CHECK_INT(raana_st_writer_write(&w, &cc, 2, &err), RAANA_OK);
    CHECK_INT(raana_st_writer_write(&w, &cc, 2, &err), RAANA_ERR_INTERNAL); /* too much */
    CHECK_INT(raana_st_writer_finish(&w, &err), RAANA_OK);
    CHECK_INT(raana_st_open(&f, path, &err), RAANA_OK);
    CHECK_INT(f.n_tensors, 3);
    CHECK_INT((f.data - f.map) % 8, 0);
    const raana_st_tensor *ta = raana_st_find(&f, "a \"quoted\\\" name");
    const raana_st_tensor *tb = raana_st_find(&f, "b.weight");
    CHECK(ta && tb);
    if (ta && tb) {
        float got[6];
        CHECK_INT(raana_st_read_f32(&f, ta, got, &err), RAANA_OK);
        CHECK(memcmp(got, a, sizeof a) == 0);
        CHECK_INT(tb->ndim, 2);
        CHECK_INT(tb->shape[1], 3);
        CHECK_INT(raana_st_read_f32(&f, tb, got, &err), RAANA_OK);
        CHECK_NEAR(got[5], 1.0 / 3, 1.0 / 256);
        CHECK(got[3] == -4.0f);
    }
    raana_st_close(&f);
    unlink(path);
}

int main(void)
{
    test_round_trip_all();
    test_rounding();
    test_convert_overflow();
    test_write_read();
    return check_summary("test_safetensors_write");
}
