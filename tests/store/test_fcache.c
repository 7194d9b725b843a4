/* The frozen feature cache file: round trip (features, ok flags, metadata
 * read back through the safetensors reader), another key or a stale index
 * as a miss (TL_ENOTFOUND), damaged files as TL_EFORMAT. */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

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
    assert_string_equal(weights_st_metadata(s, "format"), "tlsweep-features-1");
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

    /* this format and owner, but an "ok" flag that is neither 0 nor 1 */
    float okf[2] = {1, 0.5f};
    weights_st_entry two[2] = {t, {.name = "ok", .data = okf, .ndim = 1, .shape = {2}}};
    const char *meta[] = {"format", "tlsweep-features-1", "key", "00c0ffee12345678",
                          "index", "fedcba9876543210", "items", "2", "dim", "2"};
    assert_int_equal(weights_st_write_meta(path, two, 2, meta, 5, &e), 0);
    assert_int_equal(fcache_read(path, KEY, INDEX, &c, &e), TL_EFORMAT);
    tu_assert_one_line_error(&e, path, "'ok'[1] is 0.5");

    /* metadata that disagrees with the tensors */
    okf[1] = 0;
    meta[7] = "3";
    assert_int_equal(weights_st_write_meta(path, two, 2, meta, 5, &e), 0);
    assert_int_equal(fcache_read(path, KEY, INDEX, &c, &e), TL_EFORMAT);
    tu_assert_one_line_error(&e, path, "shape differs");

    /* and with it right, a 2-item cache reads back */
    meta[7] = "2";
    assert_int_equal(weights_st_write_meta(path, two, 2, meta, 5, &e), 0);
    assert_int_equal(fcache_read(path, KEY, INDEX, &c, &e), 0);
    assert_int_equal(c.n_items, 2);
    assert_int_equal(c.ok[0], 1);
    assert_int_equal(c.ok[1], 0);
    fcache_free(&c);
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
        cmocka_unit_test(test_write_refuses_empty),
    };
    return cmocka_run_group_tests(tests, tu_tmpdir_setup, tu_tmpdir_teardown);
}
