/* The memory plan must not change results: a frozen backbone (BN folded
 * into its convs, in-place ReLUs, buffers shared by lifetime) gives the
 * same logits as the same network fully trainable (no sharing), and it
 * needs less memory. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "worker/net/backbones.h"

static void build(net *n, const char *backbone, int size, int freeze)
{
    tl_err e = {0};
    net_init(n, size, size, 3, NET_KERAS);
    net_backbone_cfg cfg = {.alpha = 0.35f};
    int f = net_backbone(n, backbone, &cfg, &e);
    assert_true(f > 0);
    net_head_op ops[] = {{NET_HEAD_GAP, 0, NET_ACT_NONE, 0},
                         {NET_HEAD_DENSE, 16, NET_ACT_RELU, 0}};
    assert_true(net_head(n, f, ops, 2, 7, &e) > 0);
    if (freeze)
        net_set_trainable_from(n, f + 1);
    assert_int_equal(net_finalize(n, 3, 21, &e), 0);
    /* non-trivial BN statistics, identical in both nets */
    for (int i = 0; i < n->n_params; i++) {
        net_param *p = &n->params[i];
        float *v = net_param_data(n, p);
        if (strstr(p->name, "moving_variance"))
            tu_fill_uniform(v, p->n, 100 + (uint64_t)i, 0.5f, 2.0f);
        else if (strstr(p->name, "moving_mean") || strstr(p->name, "/beta"))
            tu_fill_uniform(v, p->n, 200 + (uint64_t)i, -0.3f, 0.3f);
        else if (strstr(p->name, "/gamma"))
            tu_fill_uniform(v, p->n, 300 + (uint64_t)i, 0.7f, 1.3f);
    }
}

static void check_mobilenet(const char *backbone, int size)
{
    net full, frozen;
    build(&full, backbone, size, 0);
    build(&frozen, backbone, size, 1);
    size_t in = (size_t)3 * size * size * 3;
    float *x = tu_alloc_uniform(in, 5, -1, 1);
    net_forward(&full, x, 3, 0);
    net_forward(&frozen, x, 3, 0);
    const net_layer *a = net_last(&full), *b = net_last(&frozen);
    double scale = 0;
    for (int i = 0; i < 3 * a->c; i++)
        scale = fmax(scale, fabs(a->out[i]));
    double err = tu_max_abs_diff(a->out, b->out, (size_t)3 * a->c) / scale;
    print_message("%s: folded vs plain logits, relative error %.2e; arena %.1f MiB vs %.1f MiB "
                  "unshared\n", backbone, err, frozen.arena_floats * 4 / 1048576.0,
                  frozen.peak_floats * 4 / 1048576.0);
    assert_true(scale > 0);
    assert_true(err < 1e-4);
    assert_true(frozen.fold_floats > 0);
    assert_true(frozen.arena_floats - frozen.col_floats < (frozen.peak_floats - frozen.col_floats) / 2);
    assert_true(full.arena_floats < full.peak_floats);

    /* weights written through net_param_data are folded again */
    /* the last conv: with random weights, early layers barely reach the logits */
    net_param *p = net_find_param(&frozen, "Conv_1/kernel");
    assert_non_null(p);
    float *w = net_param_data(&frozen, p);
    for (size_t i = 0; i < p->n; i++)
        w[i] *= 0.5f;
    net_forward(&frozen, x, 3, 0);
    assert_true(tu_max_abs_diff(a->out, b->out, (size_t)3 * a->c) / scale > 1e-3);
    free(x);
    net_free(&full);
    net_free(&frozen);
}

static void test_mobilenet(void **state)
{
    (void)state;
    check_mobilenet("mobilenet_v2", 64);
}

static void test_vgg16_plain_convs(void **state)
{
    (void)state;
    /* no BN: nothing folds, but in-place ReLU and sharing still apply */
    net full, frozen;
    build(&full, "vgg16", 32, 0);
    build(&frozen, "vgg16", 32, 1);
    assert_int_equal(frozen.fold_floats, 0);
    float *x = tu_alloc_uniform((size_t)3 * 32 * 32 * 3, 5, -1, 1);
    net_forward(&full, x, 3, 0);
    net_forward(&frozen, x, 3, 0);
    assert_true(tu_max_abs_diff(net_output(&full), net_output(&frozen), 21) < 1e-5);
    assert_true(frozen.arena_floats - frozen.col_floats < (frozen.peak_floats - frozen.col_floats) / 2);
    free(x);
    net_free(&full);
    net_free(&frozen);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mobilenet),
        cmocka_unit_test(test_vgg16_plain_convs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
