/* MobileNetV2 (width multiplier alpha, any input side >= 32).
 *
 * Keras: Conv1 3x3/2 'same' (the odd pixel padded bottom/right), stride-2
 * depthwise convs behind an explicit ZeroPadding2D (correct_pad: one pixel
 * less at top/left on even sizes) then 'valid', BN eps 1e-3 momentum 0.999.
 * torchvision: symmetric padding 1 everywhere, BN eps 1e-5 momentum 0.1.
 * Both: inverted residual blocks with ReLU6, linear bottleneck, residual add
 * when stride 1 and channels match. */
#include <stdio.h>

#include "worker/net/backbones.h"

/* Channel rounding shared by Keras and torchvision. */
static int make_divisible(double v, int divisor)
{
    int nv = (int)(v + divisor / 2.0) / divisor * divisor;
    if (nv < divisor)
        nv = divisor;
    if (nv < 0.9 * v)
        nv += divisor;
    return nv;
}

typedef struct {
    net *n;
    net_convention cv;
    float eps, mom;
    tl_err *e;
    int rc;  /* first error */
} mb;

/* Records the first failure with the layer's name. */
static int chk(mb *b, int idx, const char *name)
{
    if (idx < 0 && b->rc == 0)
        b->rc = tl_errf(b->e, idx, "mobilenet_v2: cannot add layer %s (%s)", name,
                        tl_strerror(idx));
    return idx;
}

/* conv (no bias) + BN [+ ReLU6]; returns the last layer. */
static int conv_bn(mb *b, int x, const char *conv_name, const char *bn_name,
                   const char *act_name, int oc, int k, int s, nn_pad pad, int groups)
{
    if (b->rc)
        return b->rc;
    x = chk(b, net_conv(b->n, conv_name, x, oc, k, k, s, s, pad, groups, 0), conv_name);
    if (x < 0)
        return x;
    x = chk(b, net_bn(b->n, bn_name, x, b->eps, b->mom, 1), bn_name);
    if (x < 0 || !act_name)
        return x;
    return chk(b, net_relu6(b->n, act_name, x), act_name);
}

static int block_keras(mb *b, int x, int id, int filters, int stride, int expansion,
                       float alpha)
{
    net *n = b->n;
    int in_c = n->layers[x].c;
    int pw = make_divisible((int)(filters * alpha), 8);
    char p[32], c1[64], c2[64], c3[64];
    if (id)
        snprintf(p, sizeof p, "block_%d_", id);
    else
        snprintf(p, sizeof p, "expanded_conv_");
    int h = x;
    if (id) {
        snprintf(c1, sizeof c1, "%sexpand", p);
        snprintf(c2, sizeof c2, "%sexpand_BN", p);
        snprintf(c3, sizeof c3, "%sexpand_relu", p);
        h = conv_bn(b, h, c1, c2, c3, expansion * in_c, 1, 1, nn_pad_sym(0, 0), 1);
        if (h < 0)
            return h;
    }
    nn_pad pad;
    if (stride == 2) {
        /* ZeroPadding2D(correct_pad): ((k/2 - adj, k/2), ...), adj = 1 on even sides */
        const net_layer *l = &n->layers[h];
        pad.top = 1 - (l->h % 2 == 0);
        pad.bottom = 1;
        pad.left = 1 - (l->w % 2 == 0);
        pad.right = 1;
        net_keras_skip(n); /* <prefix>pad */
    } else {
        pad = net_pad_same(n, h, 3, 3, 1, 1);
    }
    int c = n->layers[h].c;
    snprintf(c1, sizeof c1, "%sdepthwise", p);
    snprintf(c2, sizeof c2, "%sdepthwise_BN", p);
    snprintf(c3, sizeof c3, "%sdepthwise_relu", p);
    h = conv_bn(b, h, c1, c2, c3, c, 3, stride, pad, c);
    snprintf(c1, sizeof c1, "%sproject", p);
    snprintf(c2, sizeof c2, "%sproject_BN", p);
    h = conv_bn(b, h, c1, c2, NULL, pw, 1, 1, nn_pad_sym(0, 0), 1);
    if (h < 0)
        return h;
    if (in_c == pw && stride == 1) {
        snprintf(c1, sizeof c1, "%sadd", p);
        h = chk(b, net_add(n, c1, x, h), c1);
    }
    return h;
}

static int block_torch(mb *b, int x, int idx, int filters, int stride, int expansion,
                       float alpha)
{
    net *n = b->n;
    int in_c = n->layers[x].c;
    int out_c = make_divisible(filters * alpha, 8);
    char c1[64], c2[64], c3[64];
    int h = x, k = 0;
    if (expansion != 1) {
        snprintf(c1, sizeof c1, "features.%d.conv.%d.0", idx, k);
        snprintf(c2, sizeof c2, "features.%d.conv.%d.1", idx, k);
        snprintf(c3, sizeof c3, "features.%d.conv.%d.2", idx, k);
        h = conv_bn(b, h, c1, c2, c3, in_c * expansion, 1, 1, nn_pad_sym(0, 0), 1);
        k++;
    }
    if (h < 0)
        return h;
    int c = n->layers[h].c;
    snprintf(c1, sizeof c1, "features.%d.conv.%d.0", idx, k);
    snprintf(c2, sizeof c2, "features.%d.conv.%d.1", idx, k);
    snprintf(c3, sizeof c3, "features.%d.conv.%d.2", idx, k);
    h = conv_bn(b, h, c1, c2, c3, c, 3, stride, nn_pad_sym(1, 1), c);
    k++;
    snprintf(c1, sizeof c1, "features.%d.conv.%d", idx, k);
    snprintf(c2, sizeof c2, "features.%d.conv.%d", idx, k + 1);
    h = conv_bn(b, h, c1, c2, NULL, out_c, 1, 1, nn_pad_sym(0, 0), 1);
    if (h < 0)
        return h;
    if (in_c == out_c && stride == 1) {
        snprintf(c1, sizeof c1, "features.%d.add", idx);
        h = chk(b, net_add(n, c1, x, h), c1);
    }
    return h;
}

int net_mobilenet_v2(net *n, const net_backbone_cfg *cfg, tl_err *e)
{
    float alpha = cfg && cfg->alpha > 0 ? cfg->alpha : 1.0f;
    if (alpha < 0.35f - 1e-6f || alpha > 1.4f + 1e-6f)
        return tl_errf(e, TL_EINVAL, "mobilenet_v2: width multiplier %g outside 0.35..1.4",
                       (double)alpha);
    if (n->layers[0].h < 32 || n->layers[0].w < 32 || n->layers[0].c != 3)
        return tl_errf(e, TL_ESHAPE, "mobilenet_v2: input must be at least 32x32x3, got %dx%dx%d",
                       n->layers[0].h, n->layers[0].w, n->layers[0].c);
    mb b = {n, n->convention, 1e-3f, 0.001f, e, 0};
    if (b.cv == NET_TORCHVISION) {
        b.eps = 1e-5f;
        b.mom = 0.1f;
    }
    /* (expansion t, channels c, repeats r, first stride s), MobileNetV2 Table 2 */
    static const int cfgs[7][4] = {
        {1, 16, 1, 1}, {6, 24, 2, 2}, {6, 32, 3, 2}, {6, 64, 4, 2},
        {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1},
    };
    int first = make_divisible(32 * alpha, 8);
    int last = alpha > 1.0f ? make_divisible(1280 * alpha, 8) : 1280;
    int x;
    if (b.cv == NET_KERAS) {
        x = conv_bn(&b, 0, "Conv1", "bn_Conv1", "Conv1_relu", first, 3, 2,
                    net_pad_same(n, 0, 3, 3, 2, 2), 1);
    } else {
        x = conv_bn(&b, 0, "features.0.0", "features.0.1", "features.0.2", first, 3, 2,
                    nn_pad_sym(1, 1), 1);
    }
    int id = 0;
    for (int g = 0; g < 7 && x >= 0; g++)
        for (int r = 0; r < cfgs[g][2] && x >= 0; r++, id++) {
            int s = r == 0 ? cfgs[g][3] : 1;
            if (b.cv == NET_KERAS)
                x = block_keras(&b, x, id, cfgs[g][1], s, cfgs[g][0], alpha);
            else
                x = block_torch(&b, x, id + 1, cfgs[g][1], s, cfgs[g][0], alpha);
        }
    if (x < 0)
        return b.rc ? b.rc : x;
    if (b.cv == NET_KERAS)
        x = conv_bn(&b, x, "Conv_1", "Conv_1_bn", "out_relu", last, 1, 1, nn_pad_sym(0, 0), 1);
    else
        x = conv_bn(&b, x, "features.18.0", "features.18.1", "features.18.2", last, 1, 1,
                    nn_pad_sym(0, 0), 1);
    return x < 0 ? (b.rc ? b.rc : x) : x;
}
