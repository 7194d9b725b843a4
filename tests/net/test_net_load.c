/* net_load_safetensors on a tiny torchvision-convention net: every layout
 * transpose against hand-computed indices, and the errors (shape that does
 * not fit, missing and unused tensors in strict mode). The parity tests
 * exercise the loader on whole backbones. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/weights/safetensors.h"
#include "worker/net/net_load.h"

static char path[64];

/* conv c (3x3, 3->4, no bias) -> bn b -> depthwise d (3x3) -> gap -> dense fc (4->2) */
static void build(net *n)
{
    net_init(n, 5, 5, 3, NET_TORCHVISION);
    int x = net_conv(n, "c", 0, 4, 3, 3, 1, 1, nn_pad_sym(1, 1), 1, 0);
    x = net_bn(n, "b", x, 1e-5f, 0.1f, 1);
    x = net_conv(n, "d", x, 4, 3, 3, 1, 1, nn_pad_sym(1, 1), 4, 0);
    x = net_gap(n, "g", x);
    x = net_dense(n, "fc", x, 2, 1);
    assert_true(x > 0);
    tl_err e = {0};
    assert_int_equal(net_finalize(n, 1, 1, &e), 0);
}

static float cw[4 * 3 * 3 * 3], dw[4 * 1 * 3 * 3], fw[2 * 4], fb[2], bn[4][4], nbt[1];

/* Torch tensors with value = index (+ offsets), minus any named `skip`,
 * with c.weight's last dim set to `c_last`, plus `extra` if not NULL. */
static void write_file(const char *skip, size_t c_last, const char *extra)
{
    for (size_t i = 0; i < 108; i++)
        cw[i] = (float)i;
    for (size_t i = 0; i < 36; i++)
        dw[i] = 1000.0f + (float)i;
    for (size_t i = 0; i < 8; i++)
        fw[i] = 2000.0f + (float)i;
    fb[0] = 7, fb[1] = 8;
    for (int k = 0; k < 4; k++)
        for (int c = 0; c < 4; c++)
            bn[k][c] = (float)(10 * k + c + 1);
    weights_st_entry all[] = {
        {"c.weight", cw, 4, {4, 3, 3, c_last}},
        {"b.weight", bn[0], 1, {4}},
        {"b.bias", bn[1], 1, {4}},
        {"b.running_mean", bn[2], 1, {4}},
        {"b.running_var", bn[3], 1, {4}},
        {"b.num_batches_tracked", nbt, 0, {0}},
        {"d.weight", dw, 4, {4, 1, 3, 3}},
        {"fc.weight", fw, 2, {2, 4}},
        {"fc.bias", fb, 1, {2}},
        {extra ? extra : "", fb, 1, {2}},
    };
    weights_st_entry keep[10];
    size_t n = 0;
    for (size_t i = 0; i < 10; i++)
        if (all[i].name[0] && (!skip || strcmp(all[i].name, skip)))
            keep[n++] = all[i];
    tl_err e = {0};
    assert_int_equal(weights_st_write(path, keep, n, &e), 0);
}

static void test_layouts(void **st)
{
    (void)st;
    net n;
    build(&n);
    write_file(NULL, 3, NULL);
    tl_err e = {0};
    assert_int_equal(net_load_safetensors(&n, path, 1, &e), 0);
    const float *k = net_param_data(&n, net_find_param(&n, "c/kernel"));
    for (int o = 0; o < 4; o++)
        for (int i = 0; i < 3; i++)
            for (int kh = 0; kh < 3; kh++)
                for (int kw = 0; kw < 3; kw++)
                    assert_float_equal(k[((kh * 3 + kw) * 3 + i) * 4 + o],
                                       cw[((o * 3 + i) * 3 + kh) * 3 + kw], 0);
    const float *d = net_param_data(&n, net_find_param(&n, "d/depthwise_kernel"));
    for (int c = 0; c < 4; c++)
        for (int kk = 0; kk < 9; kk++)
            assert_float_equal(d[kk * 4 + c], dw[c * 9 + kk], 0);
    const float *f = net_param_data(&n, net_find_param(&n, "fc/kernel"));
    for (int o = 0; o < 2; o++)
        for (int i = 0; i < 4; i++)
            assert_float_equal(f[i * 2 + o], fw[o * 4 + i], 0);
    assert_float_equal(net_param_data(&n, net_find_param(&n, "fc/bias"))[1], 8, 0);
    static const char *const bn_names[4] = {"b/gamma", "b/beta", "b/moving_mean",
                                            "b/moving_variance"};
    for (int j = 0; j < 4; j++)
        assert_memory_equal(net_param_data(&n, net_find_param(&n, bn_names[j])), bn[j],
                            sizeof bn[j]);
    net_free(&n);
}

static void test_shape_mismatch(void **st)
{
    (void)st;
    net n;
    build(&n);
    write_file(NULL, 2, NULL);
    tl_err e = {0};
    assert_int_equal(net_load_safetensors(&n, path, 0, &e), TL_ESHAPE);
    assert_non_null(strstr(e.msg, "'c.weight'"));
    assert_non_null(strstr(e.msg, "[4, 3, 3, 2]"));
    assert_non_null(strstr(e.msg, "[4, 3, 3, 3]"));
    assert_non_null(strstr(e.msg, "c/kernel"));
    net_free(&n);
}

static void test_missing_and_unused(void **st)
{
    (void)st;
    net n;
    build(&n);
    tl_err e = {0};
    write_file("b.running_var", 3, NULL);
    assert_int_equal(net_load_safetensors(&n, path, 1, &e), TL_ENOTFOUND);
    assert_non_null(strstr(e.msg, "b/moving_variance"));
    assert_non_null(strstr(e.msg, "b.running_var"));
    assert_int_equal(net_load_safetensors(&n, path, 0, &e), 0);

    write_file(NULL, 3, "head.fc.bias");
    assert_int_equal(net_load_safetensors(&n, path, 1, &e), TL_EFORMAT);
    assert_non_null(strstr(e.msg, "'head.fc.bias'"));
    assert_int_equal(net_load_safetensors(&n, path, 0, &e), 0);
    net_free(&n);
}

int main(void)
{
    snprintf(path, sizeof path, "/tmp/tl_net_load_%d.safetensors", (int)getpid());
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layouts),
        cmocka_unit_test(test_shape_mismatch),
        cmocka_unit_test(test_missing_and_unused),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    unlink(path);
    return rc;
}
