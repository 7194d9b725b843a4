/* ResNet50 (include_top=False; any input side >= 32).
 *
 * Keras (keras.applications.resnet, v1): conv1_pad + 7x7/2 'valid' conv,
 * pool1_pad + 3x3/2 max pool; bottleneck blocks with the stride on the FIRST
 * 1x1 conv and on the shortcut conv, biases on every conv, BN eps 1.001e-5
 * momentum 0.99. torchvision (resnet50, v1.5): the stride on the 3x3 conv,
 * no conv biases, BN eps 1e-5 momentum 0.1, symmetric padding. Torch names
 * are torch.fx node names (torchvision's get_graph_node_names): the reused
 * ReLU module of a block is relu, relu_1, relu_2 and the residual add is
 * "layerX.Y.add". Output: conv5_block3_out / layer4.2.relu_2, 2048 channels. */
#include <stdio.h>

#include "worker/net/backbones.h"

typedef struct {
    net *n;
    net_convention cv;
    float eps, mom;
    int bias;      /* Keras convs have biases, torchvision's do not */
    tl_err *e;
    int rc;        /* first error */
} rn;

/* Records the first failure with the layer's name. */
static int chk(rn *b, int idx, const char *name)
{
    if (idx < 0 && b->rc == 0)
        b->rc = tl_errf(b->e, idx, "resnet50: cannot add layer %s (%s)", name,
                        tl_strerror(idx));
    return idx;
}

/* "<prefix><suffix>" into buf. */
static const char *nm(char *buf, const char *prefix, const char *suffix)
{
    snprintf(buf, NET_NAME_MAX, "%s%s", prefix, suffix);
    return buf;
}

static int conv(rn *b, const char *prefix, const char *suffix, int x, int oc, int k, int s,
                nn_pad pad)
{
    char name[NET_NAME_MAX];
    if (b->rc)
        return b->rc;
    nm(name, prefix, suffix);
    return chk(b, net_conv(b->n, name, x, oc, k, k, s, s, pad, 1, b->bias), name);
}

static int bn(rn *b, const char *prefix, const char *suffix, int x)
{
    char name[NET_NAME_MAX];
    if (b->rc)
        return b->rc;
    nm(name, prefix, suffix);
    return chk(b, net_bn(b->n, name, x, b->eps, b->mom, 1), name);
}

static int relu(rn *b, const char *prefix, const char *suffix, int x)
{
    char name[NET_NAME_MAX];
    if (b->rc)
        return b->rc;
    nm(name, prefix, suffix);
    return chk(b, net_relu(b->n, name, x), name);
}

static int add(rn *b, const char *prefix, const char *suffix, int x, int y)
{
    char name[NET_NAME_MAX];
    if (b->rc)
        return b->rc;
    nm(name, prefix, suffix);
    return chk(b, net_add(b->n, name, x, y), name);
}

/* Keras block1(x, filters, stride, conv_shortcut), prefix "conv2_block1".
 * Layers come in model.layers order: Keras sorts layers by their longest
 * path to the output, ties in traversal order from the output (which
 * reaches the shortcut first), so 0_conv, 3_conv, 0_bn, 3_bn. */
static int block_keras(rn *b, const char *p, int x, int filters, int stride, int shortcut)
{
    const nn_pad valid = nn_pad_sym(0, 0);
    int y = conv(b, p, "_1_conv", x, filters, 1, stride, valid);
    y = bn(b, p, "_1_bn", y);
    y = relu(b, p, "_1_relu", y);
    if (b->rc)
        return b->rc;
    y = conv(b, p, "_2_conv", y, filters, 3, 1, net_pad_same(b->n, y, 3, 3, 1, 1));
    y = bn(b, p, "_2_bn", y);
    y = relu(b, p, "_2_relu", y);
    int sc = x;
    if (shortcut)
        sc = conv(b, p, "_0_conv", x, 4 * filters, 1, stride, valid);
    y = conv(b, p, "_3_conv", y, 4 * filters, 1, 1, valid);
    if (shortcut)
        sc = bn(b, p, "_0_bn", sc);
    y = bn(b, p, "_3_bn", y);
    y = add(b, p, "_add", sc, y);
    return relu(b, p, "_out", y);
}

/* torchvision Bottleneck, prefix "layer1.0": the stride is on conv2. */
static int block_torch(rn *b, const char *p, int x, int filters, int stride, int downsample)
{
    const nn_pad none = nn_pad_sym(0, 0);
    int y = conv(b, p, ".conv1", x, filters, 1, 1, none);
    y = bn(b, p, ".bn1", y);
    y = relu(b, p, ".relu", y);
    y = conv(b, p, ".conv2", y, filters, 3, stride, nn_pad_sym(1, 1));
    y = bn(b, p, ".bn2", y);
    y = relu(b, p, ".relu_1", y);
    y = conv(b, p, ".conv3", y, 4 * filters, 1, 1, none);
    y = bn(b, p, ".bn3", y);
    int sc = x;
    if (downsample) {
        sc = conv(b, p, ".downsample.0", x, 4 * filters, 1, stride, none);
        sc = bn(b, p, ".downsample.1", sc);
    }
    y = add(b, p, ".add", y, sc);
    return relu(b, p, ".relu_2", y);
}

int net_resnet50(net *n, const net_backbone_cfg *cfg, tl_err *e)
{
    (void)cfg; /* no width multiplier */
    if (n->layers[0].h < 32 || n->layers[0].w < 32 || n->layers[0].c != 3)
        return tl_errf(e, TL_ESHAPE, "resnet50: input must be at least 32x32x3, got %dx%dx%d",
                       n->layers[0].h, n->layers[0].w, n->layers[0].c);
    rn b = {n, n->convention, 1.001e-5f, 0.01f, 1, e, 0};
    int keras = b.cv == NET_KERAS;
    if (!keras) {
        b.eps = 1e-5f;
        b.mom = 0.1f;
        b.bias = 0;
    }
    int x;
    /* Both: 7x7/2 conv with 3 pixels each side, 3x3/2 max pool with 1 (Keras
     * pads zeros after a ReLU, which cannot beat the window's max). */
    if (keras) {
        net_keras_skip(n); /* conv1_pad */
        x = conv(&b, "conv1", "_conv", 0, 64, 7, 2, nn_pad_sym(3, 3));
        x = bn(&b, "conv1", "_bn", x);
        x = relu(&b, "conv1", "_relu", x);
        net_keras_skip(n); /* pool1_pad */
        if (!b.rc)
            x = chk(&b, net_maxpool(n, "pool1_pool", x, 3, 3, 2, 2, nn_pad_sym(1, 1)),
                    "pool1_pool");
    } else {
        x = conv(&b, "conv1", "", 0, 64, 7, 2, nn_pad_sym(3, 3));
        x = bn(&b, "bn1", "", x);
        x = relu(&b, "relu", "", x);
        if (!b.rc)
            x = chk(&b, net_maxpool(n, "maxpool", x, 3, 3, 2, 2, nn_pad_sym(1, 1)), "maxpool");
    }
    /* (filters, blocks, first stride) of conv2..conv5 / layer1..layer4 */
    static const int stages[4][3] = {{64, 3, 1}, {128, 4, 2}, {256, 6, 2}, {512, 3, 2}};
    char p[32];
    for (int s = 0; s < 4 && !b.rc; s++)
        for (int k = 0; k < stages[s][1] && !b.rc; k++) {
            int first = k == 0;
            int stride = first ? stages[s][2] : 1;
            if (keras) {
                snprintf(p, sizeof p, "conv%d_block%d", s + 2, k + 1);
                x = block_keras(&b, p, x, stages[s][0], stride, first);
            } else {
                snprintf(p, sizeof p, "layer%d.%d", s + 1, k);
                x = block_torch(&b, p, x, stages[s][0], stride, first);
            }
        }
    return b.rc ? b.rc : x;
}
