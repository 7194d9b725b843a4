/* safetensors reader and writer: round trip, every rejection on hand-built
 * files (header written by hand, so duplicate keys and bad offsets are
 * possible), F16/BF16 against known bit patterns, and random corruption of
 * a valid file under the sanitizers. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/base/rng.h"
#include "common/weights/safetensors.h"

/* Writes u64 len(json) | json | data to the scratch directory's name; returns the path. The
 * header length can be overridden (hlen_override != 0). */
static const char *put_file(const char *name, const char *json, const void *data, size_t dlen,
                            uint64_t hlen_override)
{
    const char *p = tu_tmp(name);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    uint64_t n = hlen_override ? hlen_override : strlen(json);
    unsigned char le[8];
    for (int i = 0; i < 8; i++)
        le[i] = (unsigned char)(n >> (8 * i));
    assert_int_equal(fwrite(le, 1, 8, f), 8);
    assert_int_equal(fwrite(json, 1, strlen(json), f), strlen(json));
    if (dlen)
        assert_int_equal(fwrite(data, 1, dlen, f), dlen);
    assert_int_equal(fclose(f), 0);
    return p;
}

/* Opening must fail with code, and the message must be one line naming the
 * file and containing each of the given fragments. */
static void expect_open_fails(const char *path, int code, const char *frag1, const char *frag2)
{
    weights_st *st = (weights_st *)1;
    tl_err e = {0};
    int rc = weights_st_open(&st, path, &e);
    if (rc != code)
        fail_msg("open %s: rc %d (want %d), message: %s", path, rc, code, e.msg);
    tu_assert_one_line_error(&e, path, frag1, frag2);
    assert_null(st);
}

static void test_round_trip(void **state)
{
    (void)state;
    float *k = tu_alloc_uniform(3 * 3 * 2 * 4, 1, -1, 1);
    float *b = tu_alloc_uniform(4, 2, -1, 1);
    float scalar = 42.5f, dummy = 0;
    const weights_st_entry en[] = {
        {"conv/kernel", k, 4, {3, 3, 2, 4}},
        {"conv/bias", b, 1, {4}},
        {"step", &scalar, 0, {0}},
        {"empty", &dummy, 2, {0, 3}},
    };
    const char *meta[] = {"format", "tlsweep", "epoch", "3"};
    const char *p = tu_tmp("rt.safetensors");
    tl_err e = {0};
    assert_int_equal(weights_st_write_meta(p, en, 4, meta, 2, &e), 0);
    assert_false(tu_tmp_left(p));

    weights_st *st;
    assert_int_equal(weights_st_open(&st, p, &e), 0);
    assert_int_equal(weights_st_count(st), 4);
    const char *sorted[] = {"conv/bias", "conv/kernel", "empty", "step"};
    for (size_t i = 0; i < 4; i++)
        assert_string_equal(weights_st_get(st, i)->name, sorted[i]);
    assert_null(weights_st_get(st, 4));

    const weights_st_tensor *t = weights_st_find(st, "conv/kernel");
    assert_non_null(t);
    assert_int_equal(t->dtype, WEIGHTS_ST_F32);
    assert_int_equal(t->ndim, 4);
    assert_int_equal(t->shape[0], 3);
    assert_int_equal(t->shape[3], 4);
    assert_int_equal(t->numel, 72);
    assert_int_equal(t->nbytes, 288);
    assert_memory_equal(t->data, k, 288);
    float got[72];
    assert_int_equal(weights_st_to_f32(t, got, 72, &e), 0);
    assert_memory_equal(got, k, sizeof got);
    /* data goes out in name order: conv/bias first, at offset 0, aligned */
    const weights_st_tensor *tb = weights_st_find(st, "conv/bias");
    assert_int_equal(tb->offset, 0);
    assert_int_equal(t->offset, 16);
    assert_int_equal((uintptr_t)tb->data % 64, 0);
    assert_memory_equal(tb->data, b, 16);

    const weights_st_tensor *ts = weights_st_find(st, "step");
    assert_int_equal(ts->ndim, 0);
    assert_int_equal(ts->numel, 1);
    assert_true(*(const float *)ts->data == 42.5f);
    const weights_st_tensor *te = weights_st_find(st, "empty");
    assert_int_equal(te->numel, 0);
    assert_int_equal(te->nbytes, 0);
    assert_null(weights_st_find(st, "nope"));
    assert_null(weights_st_find(st, "__metadata__"));

    assert_string_equal(weights_st_metadata(st, "format"), "tlsweep");
    assert_string_equal(weights_st_metadata(st, "epoch"), "3");
    assert_null(weights_st_metadata(st, "nope"));
    assert_int_equal(weights_st_check_finite(st, &e), 0);
    weights_st_close(st);

    /* header length is a multiple of 8, keys sorted in the text */
    FILE *f = fopen(p, "rb");
    unsigned char le[8];
    assert_int_equal(fread(le, 1, 8, f), 8);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | le[i];
    assert_int_equal(hlen % 8, 0);
    char *hdr = calloc(hlen + 1, 1);
    assert_int_equal(fread(hdr, 1, hlen, f), hlen);
    fclose(f);
    assert_true(strstr(hdr, "\"conv/bias\"") < strstr(hdr, "\"conv/kernel\""));
    assert_true(strstr(hdr, "\"conv/kernel\"") < strstr(hdr, "\"empty\""));
    assert_non_null(strstr(hdr, "\"data_offsets\":[0,16]"));
    free(hdr);

    /* overwriting replaces the file; no tensors is a valid file */
    assert_int_equal(weights_st_write(p, NULL, 0, &e), 0);
    assert_int_equal(weights_st_open(&st, p, &e), 0);
    assert_int_equal(weights_st_count(st), 0);
    weights_st_close(st);
    free(k), free(b);
}

static void test_writer_errors(void **state)
{
    (void)state;
    float x[2] = {1, 2};
    tl_err e = {0};
    const weights_st_entry dup[] = {{"w", x, 1, {2}}, {"a", x, 1, {1}}, {"w", x, 1, {1}}};
    assert_int_equal(weights_st_write(tu_tmp("dup.st"), dup, 3, &e), TL_EINVAL);
    assert_non_null(strstr(e.msg, "duplicate tensor name 'w'"));
    const weights_st_entry md[] = {{"__metadata__", x, 1, {2}}};
    assert_int_equal(weights_st_write(tu_tmp("md.st"), md, 1, &e), TL_EINVAL);
    const weights_st_entry nodata[] = {{"w", NULL, 1, {2}}};
    assert_int_equal(weights_st_write(tu_tmp("nd.st"), nodata, 1, &e), TL_EINVAL);
    assert_non_null(strstr(e.msg, "'w'"));
    const weights_st_entry badutf[] = {{"w\xff", x, 1, {2}}};
    assert_int_equal(weights_st_write(tu_tmp("utf.st"), badutf, 1, &e), TL_EINVAL);
    assert_null(strchr(e.msg, '\xff')); /* quoted */
    const weights_st_entry huge[] = {{"w", x, 3, {SIZE_MAX / 2, 4, 1}}};
    assert_int_equal(weights_st_write(tu_tmp("huge.st"), huge, 1, &e), TL_EINVAL);
    const weights_st_entry ok[] = {{"w", x, 1, {2}}};
    /* directory missing: I/O error, nothing left behind */
    assert_int_equal(weights_st_write(tu_tmp("no/such/dir.st"), ok, 1, &e), TL_EIO);
    assert_non_null(strstr(e.msg, "no/such/dir.st"));
    assert_int_not_equal(access(tu_tmp("dup.st"), F_OK), 0);
}

static void test_reader_rejects(void **state)
{
    (void)state;
    float d[8] = {0};
    const char *p;

    expect_open_fails(tu_tmp("missing.st"), TL_ENOTFOUND, "cannot open", NULL);

    p = tu_tmp("short.st");
    tu_write_file(p, "abcde", 5);
    expect_open_fails(p, TL_EFORMAT, "too short", NULL);

    p = put_file("hlen_past_end.st", "{}", NULL, 0, 1000);
    expect_open_fails(p, TL_EFORMAT, "header length 1000", "past the end");
    p = put_file("hlen_huge.st", "{}", NULL, 0, 200000000ull);
    expect_open_fails(p, TL_EFORMAT, "limit", NULL);
    p = put_file("hlen_max.st", "{}", NULL, 0, UINT64_MAX);
    expect_open_fails(p, TL_EFORMAT, "limit", NULL);

    p = put_file("badjson.st", "{\"w\": {\"dtype\": \"F32\",", NULL, 0, 0);
    expect_open_fails(p, TL_EFORMAT, "not valid JSON", NULL);
    p = put_file("array.st", "[1, 2]", NULL, 0, 0);
    expect_open_fails(p, TL_EFORMAT, "not a JSON object", NULL);
    p = put_file("notobj.st", "{\"w\": 3}", NULL, 0, 0);
    expect_open_fails(p, TL_EFORMAT, "'w'", "not an object");

    /* truncated: header promises 16 bytes, file holds 8 */
    p = put_file("trunc.st", "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", d, 8, 0);
    expect_open_fails(p, TL_EFORMAT, "'w'", "truncated");
    p = put_file("begin_after_end.st", "{\"w\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,4]}}", d, 8, 0);
    expect_open_fails(p, TL_EFORMAT, "'w'", "[8, 4]");
    p = put_file("neg_off.st", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", d, 8, 0);
    expect_open_fails(p, TL_EFORMAT, "'w'", "data_offsets");
    p = put_file("off3.st", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", d, 4, 0);
    expect_open_fails(p, TL_EFORMAT, "'w'", "data_offsets");
    p = put_file("off_str.st", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[\"0\",4]}}", d, 4, 0);
    expect_open_fails(p, TL_EFORMAT, "'w'", "data_offsets");
    p = put_file("off_huge.st",
                 "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,18446744073709551615]}}", d, 4, 0);
    expect_open_fails(p, TL_EFORMAT, NULL, NULL);

    /* shape x dtype does not match the byte span */
    p = put_file("shape.st", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}}", d, 20, 0);
    expect_open_fails(p, TL_EFORMAT, "'w'", "needs 24 bytes");
    p = put_file("shape_neg.st", "{\"w\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", d, 4, 0);
    expect_open_fails(p, TL_EFORMAT, "'w'", "shape[0]");
    p = put_file("shape_float.st", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1.0],\"data_offsets\":[0,4]}}", d, 4, 0);
    expect_open_fails(p, TL_EFORMAT, "'w'", "shape[0]");
    p = put_file("shape_9d.st",
                 "{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", d, 4, 0);
    expect_open_fails(p, TL_EFORMAT, "'w'", "dimensions");
    p = put_file("shape_overflow.st",
                 "{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,4]}}", d, 4, 0);
    expect_open_fails(p, TL_EFORMAT, "'w'", "overflow");
    p = put_file("noshape.st", "{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", d, 4, 0);
    expect_open_fails(p, TL_EFORMAT, "'w'", "shape");

    p = put_file("dtype.st", "{\"w\":{\"dtype\":\"F12\",\"shape\":[1],\"data_offsets\":[0,4]}}", d, 4, 0);
    expect_open_fails(p, TL_EFORMAT, "'w'", "unknown dtype 'F12'");
    p = put_file("dtype_num.st", "{\"w\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}", d, 4, 0);
    expect_open_fails(p, TL_EFORMAT, "'w'", "dtype");

    /* duplicate names, written by hand */
    p = put_file("dupkey.st",
                 "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                 "\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", d, 8, 0);
    expect_open_fails(p, TL_EFORMAT, "duplicate", "w");

    /* overlap, hole, trailing bytes */
    p = put_file("overlap.st",
                 "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                 "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", d, 12, 0);
    expect_open_fails(p, TL_EFORMAT, "'b'", "overlaps tensor 'a'");
    p = put_file("same_span.st",
                 "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                 "\"b\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[0,8]}}", d, 8, 0);
    expect_open_fails(p, TL_EFORMAT, "overlaps", NULL);
    p = put_file("hole.st",
                 "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                 "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[12,20]}}", d, 20, 0);
    expect_open_fails(p, TL_EFORMAT, "'b'", "unused");
    p = put_file("trailing.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", d, 12, 0);
    expect_open_fails(p, TL_EFORMAT, "4 bytes of data after", NULL);

    p = put_file("meta.st", "{\"__metadata__\":{\"k\":1}}", NULL, 0, 0);
    expect_open_fails(p, TL_EFORMAT, "__metadata__", "'k'");
    p = put_file("meta_arr.st", "{\"__metadata__\":[]}", NULL, 0, 0);
    expect_open_fails(p, TL_EFORMAT, "__metadata__", NULL);

    /* a hostile name stays on one line in the message */
    p = put_file("name.st", "{\"a\\nb\":{\"dtype\":\"F99\",\"shape\":[1],\"data_offsets\":[0,4]}}", d, 4, 0);
    expect_open_fails(p, TL_EFORMAT, "'a\\x0ab'", NULL);
}

static void test_accepts_padding_and_metadata_first(void **state)
{
    (void)state;
    float d[3] = {1, 2, 3};
    /* space padding after the JSON, as the reference writer does */
    const char *p = put_file("pad.st",
                             "{\"__metadata__\":{\"format\":\"pt\"},"
                             "\"x\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]}}      ",
                             d, 12, 0);
    weights_st *st;
    tl_err e = {0};
    assert_int_equal(weights_st_open(&st, p, &e), 0);
    assert_string_equal(weights_st_metadata(st, "format"), "pt");
    assert_memory_equal(weights_st_find(st, "x")->data, d, 12);
    weights_st_close(st);
}

static void test_nonfinite_reported(void **state)
{
    (void)state;
    float d[4] = {1, 2, NAN, 4};
    const char *p = put_file("nan.st", "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", d, 16, 0);
    weights_st *st;
    tl_err e = {0};
    assert_int_equal(weights_st_open(&st, p, &e), 0); /* only on request */
    assert_int_equal(weights_st_check_finite(st, &e), TL_EFORMAT);
    assert_non_null(strstr(e.msg, p));
    assert_non_null(strstr(e.msg, "tensor 'w' element 2 is NaN"));
    weights_st_close(st);

    const uint16_t h[3] = {0x3C00, 0x3C00, 0xFC00}; /* F16 1, 1, -inf */
    p = put_file("inf16.st",
                 "{\"i\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[6,10]},"
                 "\"h\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[0,6]}}", NULL, 0, 0);
    /* append the data by hand: 3 halves then one int */
    FILE *f = fopen(p, "ab");
    fwrite(h, 2, 3, f);
    int32_t iv = -1;
    fwrite(&iv, 4, 1, f);
    fclose(f);
    assert_int_equal(weights_st_open(&st, p, &e), 0);
    assert_int_equal(weights_st_check_finite(st, &e), TL_EFORMAT);
    assert_non_null(strstr(e.msg, "tensor 'h' element 2 is -inf"));
    weights_st_close(st);
}

/* Loads n 16-bit patterns as dtype through a file and converts them. */
static void convert16(const char *dtype, const uint16_t *bits, size_t n, float *out)
{
    char json[200];
    snprintf(json, sizeof json, "{\"t\":{\"dtype\":\"%s\",\"shape\":[%zu],\"data_offsets\":[0,%zu]}}", dtype,
             n, 2 * n);
    const char *p = put_file("conv.st", json, bits, 2 * n, 0);
    weights_st *st;
    tl_err e = {0};
    assert_int_equal(weights_st_open(&st, p, &e), 0);
    const weights_st_tensor *t = weights_st_find(st, "t");
    assert_int_equal(weights_st_to_f32(t, out, n, &e), 0);
    assert_int_equal(weights_st_to_f32(t, out, n + 1, &e), TL_ESHAPE);
    assert_non_null(strstr(e.msg, "'t'"));
    weights_st_close(st);
}

static void expect_bits(const char *what, const float *got, const float *want, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int same = isnan(want[i]) ? isnan(got[i]) : memcmp(&got[i], &want[i], 4) == 0;
        if (!same) {
            print_error("%s[%zu]: got %a, want %a\n", what, i, (double)got[i], (double)want[i]);
            fail();
        }
    }
}

static void test_f16_bf16(void **state)
{
    (void)state;
    /* IEEE binary16 patterns and their exact values */
    const uint16_t h[] = {0x3C00, 0xC000, 0x7BFF, 0x0001, 0x03FF, 0x0400, 0x8000,
                          0x0000, 0x7C00, 0xFC00, 0x7E00, 0x3555, 0x8001, 0x5640};
    const float hv[] = {1.0f, -2.0f, 65504.0f, 0x1p-24f, 0x3FFp-24f, 0x1p-14f, -0.0f,
                        0.0f, INFINITY, -INFINITY, NAN, 0x1.554p-2f, -0x1p-24f, 100.0f};
    enum { NH = sizeof h / sizeof h[0] };
    float out[NH];
    convert16("F16", h, NH, out);
    expect_bits("F16", out, hv, NH);

    /* bfloat16: the top half of a binary32 */
    const uint16_t b[] = {0x3F80, 0xC000, 0x4049, 0x7F80, 0xFF80, 0x0001, 0xFF7F, 0x8000, 0x7FC0, 0x3E20};
    const float bv[] = {1.0f, -2.0f, 3.140625f, INFINITY, -INFINITY, 0x1p-133f,
                        -0x1.FEp127f, -0.0f, NAN, 0.15625f};
    enum { NB = sizeof b / sizeof b[0] };
    float outb[NB];
    convert16("BF16", b, NB, outb);
    expect_bits("BF16", outb, bv, NB);
}

static void test_to_f32_other_dtypes(void **state)
{
    (void)state;
    double dd[3] = {1.5, -0.25, 1e300};
    int32_t ii[2] = {1, 2};
    unsigned char data[32];
    memcpy(data, dd, 24);
    memcpy(data + 24, ii, 8);
    const char *p = put_file("f64.st",
                             "{\"d\":{\"dtype\":\"F64\",\"shape\":[3],\"data_offsets\":[0,24]},"
                             "\"i\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[24,32]}}", data, 32, 0);
    weights_st *st;
    tl_err e = {0};
    assert_int_equal(weights_st_open(&st, p, &e), 0);
    float out[3];
    assert_int_equal(weights_st_to_f32(weights_st_find(st, "d"), out, 3, &e), 0);
    assert_true(out[0] == 1.5f && out[1] == -0.25f && isinf(out[2]));
    assert_int_equal(weights_st_to_f32(weights_st_find(st, "i"), out, 2, &e), TL_EINVAL);
    assert_non_null(strstr(e.msg, "'i' has dtype I32"));
    assert_int_equal(weights_st_check_finite(st, &e), 0); /* checked as F64, not as its float image */
    weights_st_close(st);
}

/* Random corruption of a valid file: every result must be a clean accept or
 * a clean error (the sanitizer build checks for the rest). */
static void test_corruption_does_not_crash(void **state)
{
    (void)state;
    float x[6] = {1, 2, 3, 4, 5, 6};
    const weights_st_entry en[] = {{"alpha", x, 2, {2, 2}}, {"beta", x + 4, 1, {2}}};
    const char *meta[] = {"k", "v"};
    const char *p = tu_tmp("fuzz.st");
    tl_err e = {0};
    assert_int_equal(weights_st_write_meta(p, en, 2, meta, 1, &e), 0);
    size_t len;
    unsigned char *good = tu_read_file(p, &len);
    unsigned char buf[512];
    assert_true(len > 16 && len < sizeof buf);

    rng_state r;
    rng_init(&r, 1234);
    int accepted = 0;
    for (int it = 0; it < 20000; it++) {
        memcpy(buf, good, len);
        size_t n = len;
        int flips = 1 + (int)(rng_next(&r) % 4);
        for (int k = 0; k < flips; k++) {
            size_t at = rng_next(&r) % len;
            uint64_t how = rng_next(&r);
            if (how % 3 == 0)
                buf[at] = (unsigned char)(how >> 8);
            else if (how % 3 == 1)
                buf[at] = "{}[],:\"0123456789-e. "[(how >> 8) % 21];
            else
                n = at; /* truncate */
        }
        weights_st *st = NULL;
        int rc = weights_st_open_mem(&st, "fuzz", buf, n, &e);
        if (rc == 0) {
            accepted++;
            for (size_t i = 0; i < weights_st_count(st); i++) {
                const weights_st_tensor *t = weights_st_get(st, i);
                assert_true(t->offset + t->nbytes <= n);
                float tmp[16];
                if (t->numel <= 16)
                    (void)weights_st_to_f32(t, tmp, t->numel, &e);
            }
            (void)weights_st_check_finite(st, &e);
            weights_st_close(st);
        } else {
            assert_null(st);
            assert_true(rc < 0);
            tu_assert_one_line_error(&e);
        }
    }
    assert_true(accepted > 0); /* flips inside the data keep the file valid */
    free(good);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_writer_errors),
        cmocka_unit_test(test_reader_rejects),
        cmocka_unit_test(test_accepts_padding_and_metadata_first),
        cmocka_unit_test(test_nonfinite_reported),
        cmocka_unit_test(test_f16_bf16),
        cmocka_unit_test(test_to_f32_other_dtypes),
        cmocka_unit_test(test_corruption_does_not_crash),
    };
    return cmocka_run_group_tests(tests, tu_tmpdir_setup, tu_tmpdir_teardown);
}
