/* A small conv network learns the synthetic task to >= 95% held-out
 * accuracy, and two runs with the same seed and thread count end with
 * bit-identical weights. */
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "worker/net/backbones.h"
#include "worker/engine/synth.h"
#include "worker/engine/train.h"

enum { SIZE = 16, CLASSES = 4, NTRAIN = 512, NTEST = 256, BATCH = 32, EPOCHS = 6 };

static void build_units(net *n, int units)
{
    net_init(n, SIZE, SIZE, 3, NET_KERAS);
    int x = net_conv(n, "conv1", 0, 8, 3, 3, 1, 1, net_pad_same(n, 0, 3, 3, 1, 1), 1, 0);
    x = net_bn(n, "bn1", x, 1e-3f, 0.01f, 1);
    x = net_relu(n, "relu1", x);
    x = net_conv(n, "conv2", x, 16, 3, 3, 2, 2, net_pad_same(n, x, 3, 3, 2, 2), 1, 1);
    x = net_relu6(n, "relu2", x);
    x = net_conv(n, "dw", x, 16, 3, 3, 1, 1, net_pad_same(n, x, 3, 3, 1, 1), 16, 0);
    x = net_bn(n, "bn2", x, 1e-3f, 0.01f, 1);
    x = net_relu(n, "relu3", x);
    x = net_maxpool(n, "pool", x, 2, 2, 2, 2, nn_pad_sym(0, 0));
    assert_true(x > 0);
    net_head_op ops[] = {{NET_HEAD_FLATTEN, 0, NET_ACT_NONE, 0},
                         {NET_HEAD_DENSE, 32, NET_ACT_RELU, 0},
                         {NET_HEAD_DROPOUT, 0, NET_ACT_NONE, 0.1f}};
    tl_err e = {0};
    assert_true(net_head(n, x, ops, 3, units, &e) > 0);
    net_set_bn_update(n, 1);
    assert_int_equal(net_finalize(n, BATCH, 1234, &e), 0);
}

static void build(net *n)
{
    build_units(n, CLASSES);
}

/* Trains and returns held-out accuracy; leaves the trained net in n. */
static double run(net *n, const float *xtr, const int *ytr, const float *xte, const int *yte)
{
    build(n);
    train_ctx t;
    tl_err e = {0};
    optim_cfg cfg = optim_cfg_default(OPTIM_ADAM);
    cfg.learning_rate = 3e-3;
    assert_int_equal(train_init(&t, n, &cfg, 99, &e), 0);
    size_t img = (size_t)SIZE * SIZE * 3;
    for (int ep = 0; ep < EPOCHS; ep++)
        for (int b = 0; b + BATCH <= NTRAIN; b += BATCH)
            train_step(&t, xtr + b * img, ytr + b, BATCH, NULL);
    int hits = 0;
    for (int b = 0; b + BATCH <= NTEST; b += BATCH) {
        int c = 0;
        train_eval(&t, xte + b * img, yte + b, BATCH, &c);
        hits += c;
    }
    train_free(&t);
    return (double)hits / NTEST;
}

static void test_learns_and_is_reproducible(void **state)
{
    (void)state;
    size_t img = (size_t)SIZE * SIZE * 3;
    float *xtr = malloc(NTRAIN * img * sizeof(float));
    float *xte = malloc(NTEST * img * sizeof(float));
    int ytr[NTRAIN], yte[NTEST];
    synth_images(xtr, ytr, NTRAIN, SIZE, CLASSES, 1);
    synth_images(xte, yte, NTEST, SIZE, CLASSES, 2);

    net a, b;
    double acc = run(&a, xtr, ytr, xte, yte);
    print_message("held-out accuracy %.3f\n", acc);
    assert_true(acc >= 0.95);
    double acc2 = run(&b, xtr, ytr, xte, yte);
    assert_true(acc == acc2);
    assert_int_equal(a.n_weights, b.n_weights);
    assert_int_equal(memcmp(a.weights, b.weights, a.n_weights * sizeof(float)), 0);
    net_free(&a);
    net_free(&b);
    free(xtr);
    free(xte);
}

/* One sigmoid unit with binary cross-entropy on a two-class version. */
static void test_sigmoid_binary(void **state)
{
    (void)state;
    size_t img = (size_t)SIZE * SIZE * 3;
    float *xtr = malloc(NTRAIN * img * sizeof(float));
    float *xte = malloc(NTEST * img * sizeof(float));
    int ytr[NTRAIN], yte[NTEST];
    synth_images(xtr, ytr, NTRAIN, SIZE, 2, 3);
    synth_images(xte, yte, NTEST, SIZE, 2, 4);
    net n;
    build_units(&n, 1);
    train_ctx t;
    tl_err e = {0};
    optim_cfg cfg = optim_cfg_default(OPTIM_ADAM);
    cfg.learning_rate = 3e-3;
    assert_int_equal(train_init(&t, &n, &cfg, 5, &e), 0);
    train_set_loss(&t, TRAIN_SIGMOID);
    float first = 0, last = 0;
    for (int ep = 0; ep < EPOCHS; ep++)
        for (int b = 0; b + BATCH <= NTRAIN; b += BATCH) {
            float l = train_step(&t, xtr + b * img, ytr + b, BATCH, NULL);
            if (ep == 0 && b == 0)
                first = l;
            last = l;
        }
    int hits = 0;
    for (int b = 0; b + BATCH <= NTEST; b += BATCH) {
        int c = 0;
        train_eval(&t, xte + b * img, yte + b, BATCH, &c);
        hits += c;
    }
    print_message("sigmoid: loss %.3f -> %.3f, held-out accuracy %.3f\n", first, last,
                  (double)hits / NTEST);
    assert_true(last < first);
    assert_true((double)hits / NTEST >= 0.95);
    train_free(&t);
    net_free(&n);
    free(xtr);
    free(xte);
}

/* train_set_label_smoothing reaches the loss: train_eval's is the smoothed
 * cross-entropy of the net's logits, and training with it still learns. */
static void test_label_smoothing(void **state)
{
    (void)state;
    size_t img = (size_t)SIZE * SIZE * 3;
    float *x = malloc(NTRAIN * img * sizeof(float)), p[BATCH * CLASSES];
    int y[NTRAIN];
    synth_images(x, y, NTRAIN, SIZE, CLASSES, 5);
    net n;
    build(&n);
    train_ctx t;
    tl_err e = {0};
    optim_cfg cfg = optim_cfg_default(OPTIM_ADAM);
    cfg.learning_rate = 3e-3;
    assert_int_equal(train_init(&t, &n, &cfg, 7, &e), 0);
    float plain = train_eval(&t, x, y, BATCH, NULL);
    train_set_label_smoothing(&t, 0.2f);
    float smooth = train_eval(&t, x, y, BATCH, NULL);
    assert_true(smooth != plain);
    assert_float_equal(smooth, nn_softmax_xent_smooth_forward(p, net_output(&n), y, BATCH, CLASSES, 0.2f),
                       1e-6);
    float first = train_step(&t, x, y, BATCH, NULL), last = first;
    for (int ep = 0; ep < 3; ep++)
        for (int b = 0; b + BATCH <= NTRAIN; b += BATCH)
            last = train_step(&t, x + b * img, y + b, BATCH, NULL);
    assert_true(last < first);
    train_free(&t);
    net_free(&n);
    free(x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_learns_and_is_reproducible),
        cmocka_unit_test(test_sigmoid_binary),
        cmocka_unit_test(test_label_smoothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
