/* One trial end to end (worker/trial/trial.c) on a tiny synthetic image folder:
 * three classes told apart by colour, JPEGs written by the test, a
 * MobileNetV2 alpha 0.35 at 32x32 with random weights saved as a .tlm. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <turbojpeg.h>

#include "common/weights/model_file.h"
#include "data/imgutil.h"
#include "testutil.h"
#include "worker/engine/engine.h"
#include "worker/net/backbones.h"
#include "worker/net/net_io.h"
#include "worker/trial/trial.h"

static char *root;                 /* tmp dir */
static char *train_dir, *test_dir, *one_class_dir, *weights;

static int setup(void **state)
{
    (void)state;
    engine_threads_set(2);
    root = iu_tmpdir();
    train_dir = iu_path(root, "train");
    test_dir = iu_path(root, "test");
    one_class_dir = iu_path(root, "one");
    weights = iu_path(root, "tiny.tlm");
    mkdir(train_dir, 0755);
    mkdir(test_dir, 0755);
    mkdir(one_class_dir, 0755);
    for (int k = 0; k < 3; k++) {
        iu_colour_class(train_dir, k, 30, 1000);
        iu_colour_class(test_dir, k, 10, 5000);
    }
    iu_colour_class(one_class_dir, 0, 5, 9000);

    /* the backbone: random weights, as an importer would have written them */
    model_spec s;
    model_spec_init(&s);
    tl_err e = {0};
    model_spec_set_str(&s.backbone, "mobilenet_v2", &e);
    s.alpha = 0.35f;
    s.height = s.width = 32;
    s.preproc = MODEL_PREPROC_UNIT;
    /* random He weights with BN at mean 0, variance 1 saturate ReLU6 by the
     * last block (every feature 6, whatever the image): calibrate the moving
     * statistics on one batch of noise images, as a pretrained net's are
     * (on images of its classes instead, BN would blow up the pixel noise of
     * channels that barely vary) */
    net n;
    net_init(&n, 32, 32, 3, NET_KERAS);
    net_backbone_cfg bc = {.alpha = 0.35f};
    assert_true(net_mobilenet_v2(&n, &bc, &e) >= 0);
    net_set_bn_update(&n, 1);
    for (int i = 0; i < n.n_layers; i++)
        if (n.layers[i].kind == NET_BN)
            n.layers[i].u.bn.momentum = 1.0f; /* weight of the batch (PyTorch's sense) */
    assert_int_equal(net_finalize(&n, 24, 3, &e), 0);
    float *x = tu_alloc_uniform(24 * 32 * 32 * 3, 11, 0.0f, 1.0f);
    net_forward(&n, x, 24, 1);
    free(x);
    tset ts;
    tset_init(&ts);
    assert_int_equal(net_to_tset(&n, &ts, 0, &e), 0);
    assert_int_equal(model_write(weights, &s, &ts, &e), 0);
    tset_free(&ts);
    net_free(&n);
    model_spec_free(&s);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    free(train_dir);
    free(test_dir);
    free(one_class_dir);
    free(weights);
    if (!getenv("TLSWEEP_TEST_KEEP"))  /* to look at the files of a failure */
        iu_rmdir(root);
    return 0;
}

static void base_cfg(trial_cfg *c, const char *out)
{
    trial_cfg_default(c);
    c->weights = weights;
    c->train_dir = train_dir;
    c->test_dir = test_dir;
    c->validation_split = 0.2;
    c->size = 32;
    c->batch = 16;
    c->epochs = 15;
    c->optim.learning_rate = 1e-3;
    c->seed = 7;
    c->out = out;
}

static float *tensor(const char *path, const char *name, size_t *n, tset *keep)
{
    model_spec s;
    model_spec_init(&s);
    tset_init(keep);
    tl_err e = {0};
    assert_int_equal(model_read(path, &s, keep, &e), 0);
    model_spec_free(&s);
    const tset_entry *t = tset_find(keep, name);
    assert_non_null(t);
    *n = 1;
    for (int i = 0; i < t->ndim; i++)
        *n *= (size_t)t->shape[i];
    return t->data;
}

/* Frozen: the backbone runs once per image, the head learns the colours,
 * and the written model is the one evaluated. */
static void test_frozen_cached(void **state)
{
    (void)state;
    char *out = iu_path(root, "frozen.tlm");
    trial_cfg c;
    base_cfg(&c, out);
    trial_result r;
    tl_err e = {0};
    assert_int_equal(trial_run(&c, &r, &e), 0);
    assert_true(r.features_cached);
    assert_int_equal(r.n_train + r.n_val, 90);
    assert_int_equal(r.n_test, 30);
    /* exactly one backbone pass per image: train + val + test */
    assert_int_equal(r.backbone_images, r.n_train + r.n_val + r.n_test);
    assert_int_equal(r.n_epochs, 15);
    for (int i = 0; i < r.n_epochs; i++)
        printf("epoch %d loss %.4f acc %.3f val %.3f\n", i + 1, r.epochs[i].loss,
               r.epochs[i].accuracy, r.epochs[i].val_accuracy);
    assert_true(r.best_val_accuracy >= 0.9);
    assert_string_equal(r.eval_split, "test");
    assert_true(r.eval_accuracy >= 0.9);
    int64_t total = 0;
    for (int i = 0; i < 9; i++)
        total += r.confusion[i];
    assert_int_equal(total, 30);

    /* the file holds the best epoch, and evaluates as the trial said */
    model_spec s;
    tset ts;
    model_spec_init(&s);
    tset_init(&ts);
    assert_int_equal(model_read(out, &s, &ts, &e), 0);
    assert_int_equal(s.num_classes, 3);
    assert_int_equal(s.n_class_names, 3);
    assert_string_equal(s.class_names[0], "blue");
    assert_int_equal(s.preproc, MODEL_PREPROC_UNIT);
    assert_int_equal(s.mode, MODEL_FROZEN);
    assert_int_equal(s.height, 32);
    assert_non_null(tset_find(&ts, "predictions/kernel"));
    assert_non_null(tset_find(&ts, "Conv1/kernel"));
    tset_free(&ts);
    model_spec_free(&s);
    double acc = -1;
    assert_int_equal(trial_evaluate_file(out, test_dir, 16, &acc, &e), 0);
    assert_true(acc == r.eval_accuracy);
    trial_result_free(&r);
    free(out);
}

/* The cached head training is the same computation as training through the
 * full frozen net: same features (same kernels, inference mode, BN folded),
 * same head init, batch order, dropout masks (drawn by position after the
 * features) and optimizer steps. */
static void test_cached_equals_full(void **state)
{
    (void)state;
    static const model_head_op head[] = {{MODEL_HEAD_GAP, 0, MODEL_ACT_LINEAR, 0},
                                         {MODEL_HEAD_DENSE, 16, MODEL_ACT_RELU, 0},
                                         {MODEL_HEAD_DROPOUT, 0, MODEL_ACT_LINEAR, 0.3f}};
    char *out[2] = {iu_path(root, "cached.tlm"), iu_path(root, "full.tlm")};
    trial_result r[2];
    for (int k = 0; k < 2; k++) {
        trial_cfg c;
        base_cfg(&c, out[k]);
        c.epochs = 3;
        c.head = head;
        c.n_head = 3;
        c.no_cache = k;
        tl_err e = {0};
        assert_int_equal(trial_run(&c, &r[k], &e), 0);
        assert_int_equal(r[k].features_cached, !k);
    }
    /* the full net runs the backbone on every train and val image every
     * epoch, then once more on the test set */
    assert_int_equal(r[1].backbone_images, 3 * (r[1].n_train + r[1].n_val) + r[1].n_test);
    assert_int_equal(r[0].best_epoch, r[1].best_epoch);
    for (int ep = 0; ep < 3; ep++) {
        assert_true(fabs(r[0].epochs[ep].loss - r[1].epochs[ep].loss) < 1e-5);
        assert_true(r[0].epochs[ep].val_accuracy == r[1].epochs[ep].val_accuracy);
    }
    static const char *params[] = {"dense/kernel", "dense/bias", "predictions/kernel",
                                   "predictions/bias"};
    double worst = 0;
    for (int i = 0; i < 4; i++) {
        tset a, b;
        size_t na, nb;
        float *pa = tensor(out[0], params[i], &na, &a);
        float *pb = tensor(out[1], params[i], &nb, &b);
        assert_int_equal(na, nb);
        double d = tu_max_abs_diff(pa, pb, na);
        if (d > worst)
            worst = d;
        tset_free(&a);
        tset_free(&b);
    }
    printf("cached vs full-net head weights: max |diff| %.3g\n", worst);
    assert_true(worst <= 1e-5);
    for (int k = 0; k < 2; k++) {
        trial_result_free(&r[k]);
        free(out[k]);
    }
}

/* fine_tune trains the backbone through the loader. */
static void test_fine_tune(void **state)
{
    (void)state;
    char *out = iu_path(root, "ft.tlm");
    trial_cfg c;
    base_cfg(&c, out);
    c.mode = MODEL_FINE_TUNE;
    c.epochs = 1;
    c.optim.learning_rate = 1e-3;
    c.augment.horizontal_flip = 1;
    trial_result r;
    tl_err e = {0};
    assert_int_equal(trial_run(&c, &r, &e), 0);
    assert_false(r.features_cached);
    assert_int_equal(r.n_epochs, 1);
    tset a, b;
    size_t na, nb;
    float *before = tensor(weights, "Conv1/kernel", &na, &a);
    float *after = tensor(out, "Conv1/kernel", &nb, &b);
    assert_int_equal(na, nb);
    assert_true(tu_max_abs_diff(before, after, na) > 0);
    tset_free(&a);
    tset_free(&b);
    trial_result_free(&r);
    free(out);
}

/* Frozen with random augmentation: train features are recomputed every
 * epoch, val and test ones still once. */
static void test_frozen_augmented(void **state)
{
    (void)state;
    trial_cfg c;
    base_cfg(&c, NULL);
    c.epochs = 2;
    c.augment.horizontal_flip = 1;
    trial_result r;
    tl_err e = {0};
    assert_int_equal(trial_run(&c, &r, &e), 0);
    assert_true(r.features_cached);
    assert_int_equal(r.backbone_images, 2 * r.n_train + r.n_val + r.n_test);
    trial_result_free(&r);
}

static void expect_one_line_error(trial_cfg *c, const char *needle)
{
    trial_result r;
    tl_err e = {0};
    assert_true(trial_run(c, &r, &e) < 0);
    printf("error: %s\n", e.msg);
    assert_non_null(strstr(e.msg, needle));
    assert_null(strchr(e.msg, '\n'));
    trial_result_free(&r);
}

static void test_bad_inputs(void **state)
{
    (void)state;
    trial_cfg c;
    base_cfg(&c, NULL);
    char *missing = iu_path(root, "no-such.tlm");
    c.weights = missing;
    expect_one_line_error(&c, "no-such.tlm");
    base_cfg(&c, NULL);
    c.train_dir = one_class_dir;
    c.test_dir = NULL;
    expect_one_line_error(&c, "one");
    free(missing);

    model_head_op *ops;
    int n;
    tl_err e = {0};
    assert_int_equal(trial_parse_head("gap,dense128,dropout0.2", &ops, &n, &e), 0);
    assert_int_equal(n, 3);
    assert_int_equal(ops[1].units, 128);
    assert_int_equal(ops[1].act, MODEL_ACT_RELU);
    assert_true(ops[2].rate == 0.2f);
    free(ops);
    assert_true(trial_parse_head("dense12", &ops, &n, &e) < 0);
    assert_true(trial_parse_head("gap,conv3", &ops, &n, &e) < 0);
}

/* A trial whose loss goes to NaN or infinity fails at that epoch with a
 * line that names it, instead of ranking on a meaningless value: a shared
 * feature cache where an exponent bit flipped (1.0f -> +inf), as a damaged
 * file without checksums would have handed over. */
static void test_diverged(void **state)
{
    (void)state;
    trial_cfg c;
    base_cfg(&c, NULL);
    c.epochs = 3;
    /* the pooled backbone's width: the cache's row length */
    model_spec spec;
    tset wts;
    net ext;
    model_spec_init(&spec);
    tset_init(&wts);
    tl_err e = {0};
    assert_int_equal(model_read(weights, &spec, &wts, &e), 0);
    assert_int_equal(trial_extractor_build(&ext, &spec, &wts, weights, c.size, 1, 1, &e), 0);
    size_t dim = (size_t)net_last(&ext)->c;
    net_free(&ext);
    model_spec_free(&spec);
    tset_free(&wts);

    data_index ix;
    data_index_cfg dc = {c.train_dir, NULL, c.test_dir, c.validation_split, c.split_seed};
    assert_int_equal(data_index_build(&ix, &dc, &e), 0);
    float *x = tu_alloc_uniform(ix.n_items * dim, 3, 0.0f, 1.0f);
    uint8_t *ok = malloc(ix.n_items);
    memset(ok, 1, ix.n_items);
    for (size_t i = 0; i < ix.n_items; i++)
        if (ix.split[i] == DATA_TRAIN) {
            x[i * dim + 1] = INFINITY;
            break;
        }
    trial_features tf = {x, ok, ix.n_items, dim};
    c.index = &ix;
    c.features = &tf;
    trial_result r;
    assert_int_equal(trial_run(&c, &r, &e), TL_EINVAL);
    printf("error: %s\n", e.msg);
    tu_assert_one_line_error(&e, "epoch 1/3", "diverged", "not finite");
    assert_true(strstr(e.msg, "loss is nan") || strstr(e.msg, "loss is inf") ||
                strstr(e.msg, "loss is -nan"));
    assert_int_equal(r.n_epochs, 1);
    trial_result_free(&r);
    free(x);
    free(ok);
    data_index_free(&ix);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frozen_cached),
        cmocka_unit_test(test_cached_equals_full),
        cmocka_unit_test(test_fine_tune),
        cmocka_unit_test(test_frozen_augmented),
        cmocka_unit_test(test_bad_inputs),
        cmocka_unit_test(test_diverged),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
