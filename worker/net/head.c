/* Classifier heads and the backbone registry. */
#include <stdio.h>
#include <string.h>

#include "worker/net/backbones.h"

int net_head(net *n, int in, const net_head_op *ops, int n_ops, int classes, tl_err *e)
{
    if (classes < 1)
        return tl_errf(e, TL_EINVAL, "head: need at least one class, got %d", classes);
    n->features = in;
    int x = in, dense = 0, drop = 0;
    char name[NET_NAME_MAX];
    for (int i = 0; i < n_ops && x >= 0; i++) {
        const net_head_op *op = &ops[i];
        switch (op->kind) {
        case NET_HEAD_GAP:
            x = net_gap(n, "global_average_pooling2d", x);
            break;
        case NET_HEAD_FLATTEN:
            x = net_flatten(n, "flatten", x);
            break;
        case NET_HEAD_DENSE:
            if (op->units < 1)
                return tl_errf(e, TL_EINVAL, "head: dense layer %d needs units >= 1", i);
            if (dense)
                snprintf(name, sizeof name, "dense_%d", dense);
            else
                snprintf(name, sizeof name, "dense");
            x = net_dense(n, name, x, op->units, 1);
            if (x >= 0 && op->act != NET_ACT_NONE) {
                /* Keras fuses the activation into Dense: no keras_index of its own */
                char an[NET_NAME_MAX + 8];
                snprintf(an, sizeof an, "%s_act", name);
                an[NET_NAME_MAX - 1] = 0;
                x = op->act == NET_ACT_RELU ? net_relu(n, an, x) : net_relu6(n, an, x);
                n->keras_counter--;
                if (x >= 0)
                    n->layers[x].keras_index = n->layers[x - 1].keras_index;
            }
            dense++;
            break;
        case NET_HEAD_DROPOUT:
            if (drop)
                snprintf(name, sizeof name, "dropout_%d", drop);
            else
                snprintf(name, sizeof name, "dropout");
            x = net_dropout(n, name, x, op->rate);
            drop++;
            break;
        }
        if (x < 0)
            return tl_errf(e, x, "head: cannot add op %d (%s)", i, tl_strerror(x));
    }
    if (n->layers[x].h != 1 || n->layers[x].w != 1)
        return tl_errf(e, TL_ESHAPE,
                       "head: the classifier needs pooled features; start the head with "
                       "global_average_pooling or flatten");
    x = net_dense(n, "predictions", x, classes, 1);
    if (x < 0)
        return tl_errf(e, x, "head: cannot add the classifier (%s)", tl_strerror(x));
    return x;
}

int net_backbone(net *n, const char *name, const net_backbone_cfg *cfg, tl_err *e)
{
    if (!strcmp(name, "mobilenet_v2"))
        return net_mobilenet_v2(n, cfg, e);
    if (!strcmp(name, "resnet50"))
        return net_resnet50(n, cfg, e);
    if (!strcmp(name, "vgg16"))
        return net_vgg16(n, cfg, e);
    if (!strcmp(name, "inception_v3"))
        return net_inception_v3(n, cfg, e);
    return tl_errf(e, TL_EINVAL,
                   "unknown backbone '%s' (expected mobilenet_v2, resnet50, vgg16 or inception_v3)",
                   name);
}

int net_backbone_min_size(const char *name)
{
    if (!strcmp(name, "mobilenet_v2") || !strcmp(name, "resnet50") || !strcmp(name, "vgg16"))
        return 32;
    if (!strcmp(name, "inception_v3"))
        return 75;
    return -1;
}
