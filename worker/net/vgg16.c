/* VGG16 (include_top=False; any input side >= 32).
 *
 * Five blocks of 3x3 'same' convs with biases and ReLU, each closed by a
 * 2x2/2 max pool; the same in both conventions, only the names differ:
 * Keras block1_conv1 .. block5_pool (the ReLU lives inside Conv2D, so it
 * takes no keras_index), torchvision features.0 .. features.30.
 * Output: block5_pool / features.30, 512 channels. */
#include <stdio.h>

#include "worker/net/backbones.h"

int net_vgg16(net *n, const net_backbone_cfg *cfg, tl_err *e)
{
    (void)cfg; /* no width multiplier */
    if (n->layers[0].h < 32 || n->layers[0].w < 32 || n->layers[0].c != 3)
        return tl_errf(e, TL_ESHAPE, "vgg16: input must be at least 32x32x3, got %dx%dx%d",
                       n->layers[0].h, n->layers[0].w, n->layers[0].c);
    static const int convs[5] = {2, 2, 3, 3, 3};
    static const int filters[5] = {64, 128, 256, 512, 512};
    int keras = n->convention == NET_KERAS;
    int x = 0, feature = 0; /* torchvision's index into model.features */
    char name[NET_NAME_MAX];
    for (int blk = 0; blk < 5; blk++) {
        for (int k = 0; k < convs[blk]; k++) {
            if (keras)
                snprintf(name, sizeof name, "block%d_conv%d", blk + 1, k + 1);
            else
                snprintf(name, sizeof name, "features.%d", feature++);
            int c = net_conv(n, name, x, filters[blk], 3, 3, 1, 1,
                             net_pad_same(n, x, 3, 3, 1, 1), 1, 1);
            if (c < 0)
                return tl_errf(e, c, "vgg16: cannot add layer %s (%s)", name, tl_strerror(c));
            if (keras)
                snprintf(name, sizeof name, "block%d_conv%d_relu", blk + 1, k + 1);
            else
                snprintf(name, sizeof name, "features.%d", feature++);
            x = net_relu(n, name, c);
            if (x < 0)
                return tl_errf(e, x, "vgg16: cannot add layer %s (%s)", name, tl_strerror(x));
            if (keras) {
                /* Keras fuses the activation into Conv2D: no keras_index of its own */
                n->keras_counter--;
                n->layers[x].keras_index = n->layers[c].keras_index;
            }
        }
        if (keras)
            snprintf(name, sizeof name, "block%d_pool", blk + 1);
        else
            snprintf(name, sizeof name, "features.%d", feature++);
        x = net_maxpool(n, name, x, 2, 2, 2, 2, nn_pad_sym(0, 0));
        if (x < 0)
            return tl_errf(e, x, "vgg16: cannot add layer %s (%s)", name, tl_strerror(x));
    }
    return x;
}
