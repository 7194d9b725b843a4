/* The frozen feature cache file: round trip (features, ok flags, metadata
 * read back through the safetensors reader), another key or a stale index
 * as a miss (TL_ENOTFOUND), damaged files as TL_EFORMAT, and bit flips in
 * the payload (signs, exponents: values that still look like features)
 * caught by the per-block checksums, naming the rows. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/le.h"
#include "common/base/sha256.h"
#include "common/store/fcache.h"
#include "common/weights/safetensors.h"

#define KEY 0x00c0ffee12345678ull
#define INDEX 0xfedcba9876543210ull
#define TEXT "mobilenet_v2|imagenet.safetensors|96|tf"
#define ITEMS 37
#define DIM 1280

static float *features(void)
{
    return tu_alloc_uniform((size_t)ITEMS * DIM, 5, -3.0f, 3.0f);
}

static uint8_t *flags(void)
{
    uint8_t *ok = malloc(ITEMS);
    for (size_t i = 0; i < ITEMS; i++)
        ok[i] = i % 5 != 3;   /* every fifth image did not decode */
    ok[0] = 7;                /* any non-zero means ok */
    return ok;
}

static void hex_sum(const void *p, size_t n, char hex[65])
{
    unsigned char d[SHA256_DIGEST_SIZE];
    sha256(p, n, d);
    sha256_hex(d, hex);
}

/* writes the standard cache to path */
static void write_standard(const char *path)
{
    tl_err e = {0};
    float *x = features();
    uint8_t *ok = flags();
    assert_int_equal(fcache_write(path, KEY, TEXT, INDEX, x, ok, ITEMS, DIM, &e), 0);
    free(x);
    free(ok);
}

static void test_path(void **st)
{
    (void)st;
    char buf[128];
    fcache_path(buf, sizeof buf, "out/cache", 0xabcull);
    assert_string_equal(buf, "out/cache/0000000000000abc.features");
    fcache_path(buf, sizeof buf, "/x", UINT64_MAX);
    assert_string_equal(buf, "/x/ffffffffffffffff.features");
}

static void test_round_trip(void **st)
{
    (void)st;
    tl_err e = {0};
    char path[512];
    fcache_path(path, sizeof path, tu_tmpdir(), KEY);
    write_standard(path);

    fcache c;
    assert_int_equal(fcache_read(path, KEY, INDEX, &c, &e), 0);
    assert_int_equal(c.n_items, ITEMS);
    assert_int_equal(c.dim, DIM);
    float *x = features();
    uint8_t *ok = flags();
    assert_memory_equal(c.x, x, (size_t)ITEMS * DIM * sizeof *x);
    for (size_t i = 0; i < ITEMS; i++)
        assert_int_equal(c.ok[i], ok[i] != 0);
    fcache_free(&c);
    assert_null(c.x);
    fcache_free(&c);   /* a zeroed cache frees again */

    /* the file as any safetensors reader sees it */
    weights_st *s;
    assert_int_equal(weights_st_open(&s, path, &e), 0);
    assert_string_equal(weights_st_metadata(s, "format"), "tlsweep-features-2");
    assert_string_equal(weights_st_metadata(s, "key"), "00c0ffee12345678");
    assert_string_equal(weights_st_metadata(s, "index"), "fedcba9876543210");
    assert_string_equal(weights_st_metadata(s, "text"), TEXT);
    assert_string_equal(weights_st_metadata(s, "items"), "37");
    assert_string_equal(weights_st_metadata(s, "dim"), "1280");
    const weights_st_tensor *t = weights_st_find(s, "ok");
    assert_non_null(t);
    assert_int_equal(t->dtype, WEIGHTS_ST_F32);
    assert_int_equal(t->ndim, 1);
    const float *okf = t->data;
    for (size_t i = 0; i < ITEMS; i++)
        assert_true(okf[i] == (ok[i] ? 1.0f : 0.0f));
    weights_st_close(s);
    free(x);
    free(ok);
}

static void test_other_key_or_stale(void **st)
{
    (void)st;
    tl_err e = {0};
    const char *path = tu_tmp("k.features");
    write_standard(path);
    fcache c = {.n_items = 99};
    assert_int_equal(fcache_read(path, KEY + 1, INDEX, &c, &e), TL_ENOTFOUND);
    tu_assert_one_line_error(&e, path, "key differs", "00c0ffee12345678", "00c0ffee12345679");
    assert_null(c.x);
    assert_int_equal(c.n_items, 0);
    assert_int_equal(fcache_read(path, KEY, INDEX ^ 1, &c, &e), TL_ENOTFOUND);
    tu_assert_one_line_error(&e, path, "index differs", "fedcba9876543210", "fedcba9876543211");
    assert_int_equal(fcache_read(tu_tmp("none.features"), KEY, INDEX, &c, &e), TL_ENOTFOUND);
    tu_assert_one_line_error(&e, "none.features");
}

/* entries written with nmeta pairs of meta: fcache_read refuses them as
 * damaged, with why in its line */
static void refused(const char *path, const weights_st_entry *entries, const char *const *meta,
                    size_t nmeta, const char *why)
{
    tl_err e = {0};
    fcache c;
    assert_int_equal(weights_st_write_meta(path, entries, 2, meta, nmeta, &e), 0);
    assert_int_equal(fcache_read(path, KEY, INDEX, &c, &e), TL_EFORMAT);
    tu_assert_one_line_error(&e, path, why);
    assert_null(c.x);
}

static void test_damaged(void **st)
{
    (void)st;
    tl_err e = {0};
    const char *path = tu_tmp("d.features");
    write_standard(path);
    size_t n;
    unsigned char *b = tu_read_file(path, &n);
    fcache c;
    size_t cuts[] = {0, 4, 8, 100, n / 2, n - 4, n - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        tu_write_file(path, b, cuts[i]);
        assert_int_equal(fcache_read(path, KEY, INDEX, &c, &e), TL_EFORMAT);
        tu_assert_one_line_error(&e, path);
        assert_null(c.x);
    }
    free(b);

    /* well-formed safetensors, but not a feature cache */
    float v[4] = {1, 2, 3, 4};
    weights_st_entry t = {.name = "features", .data = v, .ndim = 2, .shape = {2, 2}};
    assert_int_equal(weights_st_write(path, &t, 1, &e), 0);
    assert_int_equal(fcache_read(path, KEY, INDEX, &c, &e), TL_EFORMAT);
    tu_assert_one_line_error(&e, path, "format");

    /* this format and owner, but an "ok" flag that is neither 0 nor 1
     * (its checksums made here, independently of fcache_write's) */
    float okf[2] = {1, 0.5f};
    weights_st_entry two[2] = {t, {.name = "ok", .data = okf, .ndim = 1, .shape = {2}}};
    char fsum[65], oksum[65];
    hex_sum(v, sizeof v, fsum);
    hex_sum(okf, sizeof okf, oksum);
    const char *meta[] = {"format", "tlsweep-features-2", "key", "00c0ffee12345678",
                          "index", "fedcba9876543210", "items", "2", "dim", "2",
                          "sum_rows", "2", "sum_features", fsum, "sum_ok", oksum};
    refused(path, two, meta, 8, "'ok'[1] is 0.5");

    /* metadata that disagrees with the tensors */
    okf[1] = 0;
    hex_sum(okf, sizeof okf, oksum);
    meta[7] = "3";
    refused(path, two, meta, 8, "shape differs");

    /* no checksums (as a -1 file had, beside its format name) */
    meta[7] = "2";
    refused(path, two, meta, 5, "checksums missing");

    /* a format -1 cache (before checksums) is another format: recomputed */
    meta[1] = "tlsweep-features-1";
    refused(path, two, meta, 8, "format 'tlsweep-features-1'");

    /* and with it right, a 2-item cache reads back */
    meta[1] = "tlsweep-features-2";
    assert_int_equal(weights_st_write_meta(path, two, 2, meta, 8, &e), 0);
    assert_int_equal(fcache_read(path, KEY, INDEX, &c, &e), 0);
    assert_int_equal(c.n_items, 2);
    assert_int_equal(c.ok[0], 1);
    assert_int_equal(c.ok[1], 0);
    fcache_free(&c);
}

/* A cache over more than one checksummed block: BIG_ITEMS rows of BIG_DIM
 * floats, BIG_ROWS to a block. */
#define BIG_DIM 1024
#define BIG_ROWS ((int)(FCACHE_SUM_BYTES / (BIG_DIM * 4)))
#define BIG_ITEMS (BIG_ROWS + BIG_ROWS / 4)

/* The byte offset of 'features' in the file at b (it is the first tensor). */
static size_t features_at(const unsigned char *b)
{
    return 8 + (size_t)le_get_u64(b);
}

/* Flips bit `bit` of float i of 'features' in a copy of the file, writes
 * it to path and reads it back: the read must fail naming the rows. */
static void flip_and_read(const char *path, const unsigned char *b, size_t n,
                          const size_t *which, size_t n_which, int bit, const char *rows)
{
    unsigned char *d = malloc(n);
    memcpy(d, b, n);
    for (size_t k = 0; k < n_which; k++) {
        unsigned char *p = d + features_at(d) + which[k] * 4;
        p[bit / 8] ^= (unsigned char)(1u << (bit % 8));
    }
    tu_write_file(path, d, n);
    free(d);
    tl_err e = {0};
    fcache c;
    assert_int_equal(fcache_read(path, KEY, INDEX, &c, &e), TL_EFORMAT);
    tu_assert_one_line_error(&e, path, "checksum mismatch", rows);
    assert_null(c.x);
}

static void test_bit_flips(void **st)
{
    (void)st;
    tl_err e = {0};
    const char *path = tu_tmp("flips.features");
    size_t total = (size_t)BIG_ITEMS * BIG_DIM;
    float *x = tu_alloc_uniform(total, 11, 0.0f, 6.0f);
    uint8_t *ok = malloc(BIG_ITEMS);
    memset(ok, 1, BIG_ITEMS);
    assert_int_equal(fcache_write(path, KEY, TEXT, INDEX, x, ok, BIG_ITEMS, BIG_DIM, &e), 0);
    size_t n;
    unsigned char *b = tu_read_file(path, &n);
    fcache c;
    assert_int_equal(fcache_read(path, KEY, INDEX, &c, &e), 0);
    assert_memory_equal(c.x, x, total * sizeof *x);
    fcache_free(&c);

    /* sign flips in 2% of the floats, spread over the file (the first
     * block is named, where the first of them lies) */
    size_t n_flips = total / 50, *which = malloc(n_flips * sizeof *which);
    for (size_t k = 0; k < n_flips; k++)
        which[k] = k * 50 + 7;
    char rows[64];
    snprintf(rows, sizeof rows, "rows 0-%d", BIG_ROWS - 1);
    flip_and_read(path, b, n, which, n_flips, 31, rows);

    /* one exponent bit of one float in the second block: 3.0 becomes 1e38
     * or so, a value that a head trains into NaN */
    size_t one = (size_t)(BIG_ROWS + 3) * BIG_DIM + 5;
    snprintf(rows, sizeof rows, "rows %d-%d", BIG_ROWS, BIG_ITEMS - 1);
    flip_and_read(path, b, n, &one, 1, 30, rows);

    /* a flag of 'ok' flipped from 1 to 0 (a value the format allows) */
    unsigned char *d = malloc(n);
    memcpy(d, b, n);
    d[features_at(d) + total * 4 + 4 * 9 + 3] ^= 0x3f; /* 1.0f = 3f800000 -> 00800000 */
    tu_write_file(path, d, n);
    assert_int_equal(fcache_read(path, KEY, INDEX, &c, &e), TL_EFORMAT);
    tu_assert_one_line_error(&e, path, "checksum mismatch in 'ok'");
    free(d);

    /* the original still reads */
    tu_write_file(path, b, n);
    assert_int_equal(fcache_read(path, KEY, INDEX, &c, &e), 0);
    fcache_free(&c);
    free(which);
    free(b);
    free(x);
    free(ok);
}

static void test_write_refuses_empty(void **st)
{
    (void)st;
    tl_err e = {0};
    float x = 0;
    uint8_t ok = 1;
    const char *path = tu_tmp("empty.features");
    assert_int_equal(fcache_write(path, KEY, TEXT, INDEX, &x, &ok, 0, 4, &e), TL_EINVAL);
    tu_assert_one_line_error(&e, path, "empty");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_path),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_other_key_or_stale),
        cmocka_unit_test(test_damaged),
        cmocka_unit_test(test_bit_flips),
        cmocka_unit_test(test_write_refuses_empty),
    };
    return cmocka_run_group_tests(tests, tu_tmpdir_setup, tu_tmpdir_teardown);
}
