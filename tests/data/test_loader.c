/* worker/engine/loader.c: batches in a deterministic order whatever the thread
 * count, bad files replaced by the next good one in the list, counted and
 * warned once each. Images are flat PNGs whose colour encodes their index,
 * so every slot says which file it came from. */
#include "testutil.h"
#include "data/imgutil.h"

#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker/engine/loader.h"

enum { N = 23, S = 12 };

static char *dir;
static data_item items[N];
static size_t ids[N];
static const int bad[] = {3, 4, 10, 22};   /* 22 is last: its slot wraps to 0 */

static int is_bad(int i)
{
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++)
        if (bad[k] == i)
            return 1;
    return 0;
}

static int setup(void **state)
{
    (void)state;
    dir = iu_tmpdir();
    uint8_t pix[20 * 16 * 3];
    for (int i = 0; i < N; i++) {
        char name[32];
        snprintf(name, sizeof name, "img%02d.png", i);
        items[i].path = iu_path(dir, name);
        items[i].label = i % 3;
        if (is_bad(i)) {
            iu_write(items[i].path, i == 10 ? "" : "garbage", i == 10 ? 0 : 7);
        } else {
            for (int k = 0; k < 20 * 16; k++) {
                pix[3 * k] = (uint8_t)(i * 10);
                pix[3 * k + 1] = (uint8_t)(k % 20 * 12);   /* a gradient, for augmentation */
                pix[3 * k + 2] = 7;
            }
            iu_png(items[i].path, pix, 20, 16, PNG_COLOR_TYPE_RGB, 8, NULL, 0, 0);
        }
    }
    /* a shuffled order, as a training epoch would use */
    for (int i = 0; i < N; i++)
        ids[i] = (size_t)((i * 7 + 5) % N);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (int i = 0; i < N; i++)
        free(items[i].path);
    iu_rmdir(dir);
    return 0;
}

static int warnings;
static void count_warn(void *ctx, const char *line)
{
    (void)ctx;
    assert_non_null(strstr(line, dir));
    assert_null(strchr(line, '\n'));
    warnings++;
}

/* Runs a whole epoch; returns all pixels, labels and ids concatenated. */
static void run(int threads, int depth, int batch, const data_augment_cfg *aug, float *x,
                int *labels, size_t *got_ids, size_t *skipped)
{
    loader_cfg cfg = {
        .items = items, .ids = ids, .n_ids = N, .batch_size = batch,
        .image = {S, S, DATA_PRE_CAFFE, 0, 0}, .augment = aug,
        .seed = 9, .trial = 2, .epoch = 1, .threads = threads, .depth = depth,
        .warn = count_warn,
    };
    loader *L;
    tl_err e;
    warnings = 0;
    assert_int_equal(loader_open(&L, &cfg, &e), 0);
    loader_batch b;
    size_t at = 0, nb = 0;
    int rc;
    while ((rc = loader_next(L, &b, &e)) == 1) {
        assert_int_equal(b.index, nb);
        assert_int_equal(b.n, nb + 1 < loader_batches(L) ? batch : N - (int)nb * batch);
        memcpy(x + at * S * S * 3, b.x, sizeof(float) * b.n * S * S * 3);
        memcpy(labels + at, b.labels, sizeof(int) * b.n);
        memcpy(got_ids + at, b.ids, sizeof(size_t) * b.n);
        at += (size_t)b.n;
        nb++;
    }
    assert_int_equal(rc, 0);
    assert_int_equal(at, N);
    *skipped = loader_skipped(L);
    assert_int_equal(warnings, (int)*skipped);
    loader_close(L);
}

static void test_order_and_replacement(void **state)
{
    (void)state;
    static float x1[N * S * S * 3], x2[N * S * S * 3];
    int l1[N], l2[N];
    size_t i1[N], i2[N], sk;
    run(1, 1, 5, NULL, x1, l1, i1, &sk);
    assert_int_equal(sk, sizeof bad / sizeof *bad);
    /* the rule: slot p holds the first good image at p, p+1, ... (cyclic) */
    for (int p = 0; p < N; p++) {
        int q = p;
        while (is_bad((int)ids[q]))
            q = (q + 1) % N;
        assert_int_equal(i1[p], ids[q]);
        assert_int_equal(l1[p], (int)ids[q] % 3);
        /* caffe: channel 0 is B (7), channel 2 is R (index * 10) */
        assert_float_equal(x1[(size_t)p * S * S * 3 + 2], ids[q] * 10 - 123.68, 1e-3);
        assert_float_equal(x1[(size_t)p * S * S * 3 + 0], 7 - 103.939, 1e-3);
    }
    int cfgs[][3] = {{2, 2, 5}, {4, 3, 5}, {3, 1, 5}, {4, 8, 5}};
    for (size_t k = 0; k < sizeof cfgs / sizeof *cfgs; k++) {
        run(cfgs[k][0], cfgs[k][1], cfgs[k][2], NULL, x2, l2, i2, &sk);
        assert_memory_equal(x1, x2, sizeof x1);
        assert_memory_equal(l1, l2, sizeof l1);
        assert_memory_equal(i1, i2, sizeof i1);
        assert_int_equal(sk, sizeof bad / sizeof *bad);
    }
    /* other batch sizes: the same stream of images */
    run(3, 2, 4, NULL, x2, l2, i2, &sk);
    assert_memory_equal(x1, x2, sizeof x1);
    run(2, 2, 50, NULL, x2, l2, i2, &sk);
    assert_memory_equal(x1, x2, sizeof x1);
}

static void test_augmented_deterministic(void **state)
{
    (void)state;
    static float x1[N * S * S * 3], x2[N * S * S * 3];
    int l1[N], l2[N];
    size_t i1[N], i2[N], sk;
    data_augment_cfg a;
    data_augment_cfg_default(&a);
    a.horizontal_flip = 1;
    a.rotation_range = 20;
    a.random_resized_crop = 1;
    run(1, 2, 5, &a, x1, l1, i1, &sk);
    for (int t = 2; t <= 4; t++) {
        run(t, 2, 7, &a, x2, l2, i2, &sk);
        assert_memory_equal(x1, x2, sizeof x1);
        assert_memory_equal(i1, i2, sizeof i1);
    }
}

static void test_all_bad_and_empty(void **state)
{
    (void)state;
    size_t only_bad[2] = {3, 10};
    loader_cfg cfg = {
        .items = items, .ids = only_bad, .n_ids = 2, .batch_size = 4,
        .image = {S, S, DATA_PRE_TF, 0, 0}, .threads = 2,
    };
    loader *L;
    tl_err e;
    loader_batch b;
    assert_int_equal(loader_open(&L, &cfg, &e), 0);
    assert_int_equal(loader_next(L, &b, &e), TL_EFORMAT);
    assert_non_null(strstr(e.msg, "no decodable image"));
    assert_int_equal(loader_skipped(L), 2);
    loader_close(L);
    cfg.n_ids = 0;
    assert_int_equal(loader_open(&L, &cfg, &e), 0);
    assert_int_equal(loader_next(L, &b, &e), 0);
    loader_close(L);
    /* closing early, with threads blocked on a full ring */
    cfg.ids = ids;
    cfg.n_ids = N;
    cfg.batch_size = 2;
    cfg.depth = 1;
    assert_int_equal(loader_open(&L, &cfg, &e), 0);
    assert_int_equal(loader_next(L, &b, &e), 1);
    loader_close(L);
    cfg.batch_size = 0;
    assert_int_equal(loader_open(&L, &cfg, &e), TL_EINVAL);
}

/* A per-batch size list (a group member's rows of each global batch):
 * batch b holds sizes[b] images, empty ones included, in list order, with
 * the same pixels as one loader over the list, for any thread count. */
static void test_batch_sizes(void **state)
{
    (void)state;
    static float x1[N * S * S * 3];
    int l1[N];
    size_t i1[N], sk;
    data_augment_cfg a;
    data_augment_cfg_default(&a);
    a.horizontal_flip = 1;
    run(1, 2, 5, &a, x1, l1, i1, &sk);
    static const int sizes[] = {0, 4, 0, 0, 7, 5, 1, 6, 0};
    size_t nb = sizeof sizes / sizeof *sizes;
    for (int t = 1; t <= 3; t++) {
        loader_cfg cfg = {
            .items = items, .ids = ids, .n_ids = N, .batch_size = 7, .sizes = sizes,
            .n_sizes = nb, .image = {S, S, DATA_PRE_CAFFE, 0, 0}, .augment = &a,
            .seed = 9, .trial = 2, .epoch = 1, .threads = t, .depth = 1 + t % 2,
        };
        loader *L;
        tl_err e;
        assert_int_equal(loader_open(&L, &cfg, &e), 0);
        assert_int_equal(loader_batches(L), nb);
        loader_batch b;
        size_t at = 0, k = 0;
        while (loader_next(L, &b, &e) == 1) {
            assert_int_equal(b.index, k);
            assert_int_equal(b.n, sizes[k]);
            assert_memory_equal(b.x, x1 + at * S * S * 3, sizeof(float) * b.n * S * S * 3);
            assert_memory_equal(b.ids, i1 + at, sizeof(size_t) * b.n);
            at += (size_t)b.n;
            k++;
        }
        assert_int_equal(k, nb);
        assert_int_equal(at, N);
        loader_close(L);
    }
    /* sizes that do not sum to the list, or over the batch size */
    static const int short_sizes[] = {7, 7};
    static const int big[] = {8, 7, 8};
    loader_cfg cfg = {.items = items, .ids = ids, .n_ids = N, .batch_size = 7,
                      .sizes = short_sizes, .n_sizes = 2, .image = {S, S, DATA_PRE_TF, 0, 0}};
    loader *L;
    tl_err e;
    assert_int_equal(loader_open(&L, &cfg, &e), TL_EINVAL);
    assert_non_null(strstr(e.msg, "sum to 14"));
    cfg.sizes = big;
    cfg.n_sizes = 3;
    assert_int_equal(loader_open(&L, &cfg, &e), TL_EINVAL);
    assert_non_null(strstr(e.msg, "batch 0 holds 8"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_and_replacement),
        cmocka_unit_test(test_augmented_deterministic),
        cmocka_unit_test(test_all_bad_and_empty),
        cmocka_unit_test(test_batch_sizes),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
