/* ResNet50, VGG16 and InceptionV3 as built (no net_finalize: shapes, names
 * and parameter counts are known once the layers are added).
 *
 * References:
 * - Keras: keras.applications *(include_top=False).summary() — total and
 *   non-trainable parameter counts, len(base_model.layers), and the names of
 *   model.layers at given indices (InceptionV3 and ResNet50 as printed by
 *   tf.keras model.summary(), which lists model.layers in order).
 * - torchvision 0.14 (Debian python3-torchvision): parameters + BN running
 *   statistics of resnet50 without avgpool/fc, vgg16.features, and
 *   inception_v3(aux_logits=False) without fc; layer names are
 *   torchvision.models.feature_extraction.get_graph_node_names. */
#include <stdio.h>
#include <string.h>

#include "testutil.h"
#include "worker/net/backbones.h"

typedef int (*builder)(net *, const net_backbone_cfg *, tl_err *);

static int build(net *n, builder b, net_convention cv, int side)
{
    tl_err e = {0};
    net_init(n, side, side, 3, cv);
    int out = b(n, NULL, &e);
    if (out < 0)
        print_error("build failed: %s\n", e.msg);
    assert_true(out >= 0);
    assert_int_equal(out, n->n_layers - 1);
    return out;
}

static size_t count_params(const net *n, int state_only)
{
    size_t total = 0;
    for (int i = 0; i < n->n_params; i++)
        if (!state_only || n->params[i].is_state)
            total += n->params[i].n;
    return total;
}

static void assert_shape(const net *n, int layer, int h, int w, int c)
{
    assert_int_equal(n->layers[layer].h, h);
    assert_int_equal(n->layers[layer].w, w);
    assert_int_equal(n->layers[layer].c, c);
}

/* The first layer with keras_index k (a fused activation shares its
 * conv's index and comes after it). */
static const char *keras_layer(const net *n, int k)
{
    for (int i = 0; i < n->n_layers; i++)
        if (n->layers[i].keras_index == k)
            return n->layers[i].name;
    return "(none)";
}

static const net_layer *layer(const net *n, const char *name)
{
    int i = net_find_layer(n, name);
    if (i < 0)
        print_error("no layer %s\n", name);
    assert_true(i >= 0);
    return &n->layers[i];
}

static void assert_param_shape(net *n, const char *name, int d0, int d1, int d2, int d3)
{
    net_param *p = net_find_param(n, name);
    if (!p)
        print_error("no parameter %s\n", name);
    assert_non_null(p);
    int want[4] = {d0, d1, d2, d3};
    for (int k = 0; k < p->ndim; k++)
        assert_int_equal(p->shape[k], want[k]);
}

typedef struct {
    int index;
    const char *name;
} at;

static void assert_keras_names(const net *n, const at *names, int count)
{
    for (int i = 0; i < count; i++)
        assert_string_equal(keras_layer(n, names[i].index), names[i].name);
}

/* ---- ResNet50 -------------------------------------------------------------- */

static void test_resnet50_keras(void **state)
{
    (void)state;
    net n;
    int out = build(&n, net_resnet50, NET_KERAS, 224);
    assert_shape(&n, out, 7, 7, 2048);
    assert_string_equal(n.layers[out].name, "conv5_block3_out");
    assert_int_equal(count_params(&n, 0), 23587712);
    assert_int_equal(count_params(&n, 1), 53120);
    assert_int_equal(n.keras_counter, 175);
    static const at names[] = {
        {2, "conv1_conv"}, {3, "conv1_bn"}, {6, "pool1_pool"},
        {7, "conv2_block1_1_conv"}, {12, "conv2_block1_2_relu"},
        {13, "conv2_block1_0_conv"}, {14, "conv2_block1_3_conv"},
        {15, "conv2_block1_0_bn"}, {16, "conv2_block1_3_bn"},
        {17, "conv2_block1_add"}, {18, "conv2_block1_out"},
        {143, "conv5_block1_1_conv"}, {174, "conv5_block3_out"},
    };
    assert_keras_names(&n, names, sizeof names / sizeof *names);
    /* v1: the stride is on the first 1x1 and the shortcut */
    assert_int_equal(layer(&n, "conv3_block1_1_conv")->u.conv.s.sh, 2);
    assert_int_equal(layer(&n, "conv3_block1_0_conv")->u.conv.s.sh, 2);
    assert_int_equal(layer(&n, "conv3_block1_2_conv")->u.conv.s.sh, 1);
    assert_non_null(net_find_param(&n, "conv3_block1_2_conv/bias"));
    const net_layer *bn = layer(&n, "conv1_bn");
    assert_true(bn->u.bn.eps == 1.001e-5f);
    assert_true(bn->u.bn.momentum == 0.01f);
    assert_shape(&n, net_find_layer(&n, "pool1_pool"), 56, 56, 64);
    net_free(&n);
}

static void test_resnet50_torch(void **state)
{
    (void)state;
    net n;
    int out = build(&n, net_resnet50, NET_TORCHVISION, 224);
    assert_shape(&n, out, 7, 7, 2048);
    assert_string_equal(n.layers[out].name, "layer4.2.relu_2");
    assert_int_equal(count_params(&n, 0), 23561152);
    assert_int_equal(count_params(&n, 1), 53120);
    assert_int_equal(n.n_layers, 1 + 172);
    assert_string_equal(n.layers[1].name, "conv1");
    assert_string_equal(n.layers[4].name, "maxpool");
    /* v1.5: the stride is on the 3x3 */
    assert_int_equal(layer(&n, "layer2.0.conv1")->u.conv.s.sh, 1);
    assert_int_equal(layer(&n, "layer2.0.conv2")->u.conv.s.sh, 2);
    assert_int_equal(layer(&n, "layer2.0.downsample.0")->u.conv.s.sh, 2);
    assert_null(net_find_param(&n, "conv1/bias"));
    assert_param_shape(&n, "layer1.0.downsample.0/kernel", 1, 1, 64, 256);
    assert_param_shape(&n, "layer1.0.downsample.1/moving_variance", 256, 0, 0, 0);
    assert_true(layer(&n, "layer1.0.add")->kind == NET_ADD);
    const net_layer *bn = layer(&n, "bn1");
    assert_true(bn->u.bn.eps == 1e-5f);
    assert_true(bn->u.bn.momentum == 0.1f);
    net_free(&n);
}

static void test_resnet50_small(void **state)
{
    (void)state;
    net n;
    int out = build(&n, net_resnet50, NET_KERAS, 32);
    assert_shape(&n, out, 1, 1, 2048);
    net_free(&n);
    out = build(&n, net_resnet50, NET_TORCHVISION, 32);
    assert_shape(&n, out, 1, 1, 2048);
    net_free(&n);

    tl_err e = {0};
    net_init(&n, 31, 31, 3, NET_KERAS);
    assert_int_equal(net_resnet50(&n, NULL, &e), TL_ESHAPE);
    assert_non_null(strstr(e.msg, "resnet50"));
    net_free(&n);
}

/* ---- VGG16 ----------------------------------------------------------------- */

static void test_vgg16_keras(void **state)
{
    (void)state;
    net n;
    int out = build(&n, net_vgg16, NET_KERAS, 224);
    assert_shape(&n, out, 7, 7, 512);
    assert_string_equal(n.layers[out].name, "block5_pool");
    assert_int_equal(count_params(&n, 0), 14714688);
    assert_int_equal(n.keras_counter, 19);
    static const at names[] = {
        {1, "block1_conv1"}, {2, "block1_conv2"}, {3, "block1_pool"},
        {7, "block3_conv1"}, {10, "block3_pool"}, {17, "block5_conv3"}, {18, "block5_pool"},
    };
    assert_keras_names(&n, names, sizeof names / sizeof *names);
    /* the ReLU is inside Keras's Conv2D: it shares the conv's index */
    const net_layer *conv = layer(&n, "block1_conv1");
    assert_true(n.layers[2].kind == NET_RELU);
    assert_int_equal(n.layers[2].keras_index, conv->keras_index);
    assert_param_shape(&n, "block5_conv3/kernel", 3, 3, 512, 512);
    assert_non_null(net_find_param(&n, "block5_conv3/bias"));
    net_free(&n);
}

static void test_vgg16_torch(void **state)
{
    (void)state;
    net n;
    int out = build(&n, net_vgg16, NET_TORCHVISION, 224);
    assert_shape(&n, out, 7, 7, 512);
    assert_string_equal(n.layers[out].name, "features.30");
    assert_int_equal(count_params(&n, 0), 14714688);
    assert_int_equal(n.n_layers, 1 + 31);
    assert_true(layer(&n, "features.0")->kind == NET_CONV);
    assert_true(layer(&n, "features.1")->kind == NET_RELU);
    assert_true(layer(&n, "features.4")->kind == NET_MAXPOOL);
    assert_param_shape(&n, "features.28/kernel", 3, 3, 512, 512);
    net_free(&n);

    out = build(&n, net_vgg16, NET_TORCHVISION, 32);
    assert_shape(&n, out, 1, 1, 512);
    net_free(&n);
}

/* ---- InceptionV3 ----------------------------------------------------------- */

static void test_inception_v3_keras(void **state)
{
    (void)state;
    net n;
    int out = build(&n, net_inception_v3, NET_KERAS, 299);
    assert_shape(&n, out, 8, 8, 2048);
    assert_string_equal(n.layers[out].name, "mixed10");
    assert_int_equal(count_params(&n, 0), 21802784);
    assert_int_equal(count_params(&n, 1), 34432);
    assert_int_equal(n.keras_counter, 311);
    /* model.layers sorts by depth, not creation: conv2d_8 comes first in mixed0 */
    static const at names[] = {
        {1, "conv2d"}, {2, "batch_normalization"}, {3, "activation"},
        {10, "max_pooling2d"}, {17, "max_pooling2d_1"},
        {18, "conv2d_8"}, {21, "conv2d_6"}, {22, "conv2d_9"}, {27, "average_pooling2d"},
        {28, "conv2d_5"}, {31, "conv2d_11"}, {36, "activation_5"}, {40, "mixed0"},
        {41, "conv2d_15"}, {100, "mixed3"}, {228, "mixed7"}, {248, "mixed8"},
        {249, "conv2d_80"}, {252, "conv2d_77"}, {262, "average_pooling2d_7"},
        {263, "conv2d_76"}, {268, "conv2d_84"}, {276, "mixed9_0"}, {277, "concatenate"},
        {278, "activation_84"}, {279, "mixed9"}, {307, "mixed9_1"}, {308, "concatenate_1"},
        {310, "mixed10"},
    };
    assert_keras_names(&n, names, sizeof names / sizeof *names);
    /* scale=False: no gamma; no conv bias */
    assert_null(net_find_param(&n, "batch_normalization/gamma"));
    assert_non_null(net_find_param(&n, "batch_normalization/beta"));
    assert_null(net_find_param(&n, "conv2d/bias"));
    assert_param_shape(&n, "conv2d_78/kernel", 1, 3, 384, 384);
    const net_layer *bn = layer(&n, "batch_normalization_93");
    assert_true(bn->u.bn.eps == 1e-3f);
    assert_true(bn->u.bn.momentum == 0.01f);
    const net_layer *avg = layer(&n, "average_pooling2d");
    assert_int_equal(avg->u.pool.s.count_include_pad, 0);
    assert_int_equal(avg->u.pool.s.pad.top, 1);
    assert_shape(&n, net_find_layer(&n, "mixed3"), 17, 17, 768);

    /* fine_tune_at 249 (Keras's "train the top 2 inception blocks"): conv2d_76
     * was created before conv2d_80 but comes after it in model.layers */
    net_set_trainable_from_keras(&n, 249);
    assert_false(layer(&n, "mixed8")->trainable);
    assert_true(layer(&n, "conv2d_80")->trainable);
    assert_true(layer(&n, "conv2d_76")->trainable);
    net_free(&n);
}

static void test_inception_v3_torch(void **state)
{
    (void)state;
    net n;
    int out = build(&n, net_inception_v3, NET_TORCHVISION, 299);
    assert_shape(&n, out, 8, 8, 2048);
    assert_string_equal(n.layers[out].name, "Mixed_7c.cat_2");
    assert_int_equal(count_params(&n, 0), 21820000);
    assert_int_equal(count_params(&n, 1), 34432);
    assert_int_equal(n.n_layers, 1 + 310);
    assert_string_equal(n.layers[1].name, "Conv2d_1a_3x3.conv");
    assert_string_equal(n.layers[10].name, "maxpool1");
    assert_string_equal(n.layers[18].name, "Mixed_5b.branch1x1.conv");
    assert_param_shape(&n, "Conv2d_1a_3x3.conv/kernel", 3, 3, 3, 32);
    assert_non_null(net_find_param(&n, "Conv2d_1a_3x3.bn/gamma"));
    assert_param_shape(&n, "Mixed_7b.branch3x3_2a.conv/kernel", 1, 3, 384, 384);
    assert_true(layer(&n, "Mixed_7b.cat_1")->kind == NET_CONCAT);
    assert_true(layer(&n, "Mixed_6a.max_pool2d")->kind == NET_MAXPOOL);
    const net_layer *bn = layer(&n, "Mixed_7c.branch_pool.bn");
    assert_true(bn->u.bn.eps == 1e-3f);
    assert_true(bn->u.bn.momentum == 0.1f);
    const net_layer *avg = layer(&n, "Mixed_5b.avg_pool2d");
    assert_int_equal(avg->u.pool.s.count_include_pad, 1);
    assert_int_equal(avg->u.pool.s.pad.top, 1);
    net_free(&n);
}

static void test_inception_v3_small(void **state)
{
    (void)state;
    net n;
    int out = build(&n, net_inception_v3, NET_KERAS, 75);
    assert_shape(&n, out, 1, 1, 2048);
    assert_int_equal(n.keras_counter, 311);
    net_free(&n);
    out = build(&n, net_inception_v3, NET_TORCHVISION, 75);
    assert_shape(&n, out, 1, 1, 2048);
    net_free(&n);

    tl_err e = {0};
    net_init(&n, 74, 74, 3, NET_TORCHVISION);
    assert_int_equal(net_inception_v3(&n, NULL, &e), TL_ESHAPE);
    assert_non_null(strstr(e.msg, "inception_v3"));
    net_free(&n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resnet50_keras),
        cmocka_unit_test(test_resnet50_torch),
        cmocka_unit_test(test_resnet50_small),
        cmocka_unit_test(test_vgg16_keras),
        cmocka_unit_test(test_vgg16_torch),
        cmocka_unit_test(test_inception_v3_keras),
        cmocka_unit_test(test_inception_v3_torch),
        cmocka_unit_test(test_inception_v3_small),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
