/* Backbones and heads, built into a net as data (darknet's idea).
 *
 * Each builder appends the backbone to a net that net_init() created with
 * the input shape, and returns the index of the backbone's last layer (the
 * feature map before pooling; include_top=False), or a negative code with
 * e filled. Layer names are Keras's in NET_KERAS and torchvision's module
 * paths in NET_TORCHVISION; the convention also decides padding, BN epsilon
 * and momentum, and architecture details (see ../shared/DESIGN.md). */
#ifndef TLSWEEP_BACKBONES_H
#define TLSWEEP_BACKBONES_H

#include "worker/net/net.h"

typedef struct {
    float alpha;          /* MobileNetV2 width multiplier (0.35 .. 1.4); 0 means 1.0 */
} net_backbone_cfg;

int net_mobilenet_v2(net *n, const net_backbone_cfg *cfg, tl_err *e);
int net_resnet50(net *n, const net_backbone_cfg *cfg, tl_err *e);
int net_vgg16(net *n, const net_backbone_cfg *cfg, tl_err *e);
int net_inception_v3(net *n, const net_backbone_cfg *cfg, tl_err *e);

/* By name: "mobilenet_v2", "resnet50", "vgg16", "inception_v3". */
int net_backbone(net *n, const char *name, const net_backbone_cfg *cfg, tl_err *e);
/* Smallest input side the backbone accepts (MobileNetV2 32, ResNet50 32,
 * VGG16 32, InceptionV3 75), or -1 for an unknown name. */
int net_backbone_min_size(const char *name);

/* ---- heads (the Keras examples' vocabulary) ---------------------------- */

typedef enum {
    NET_HEAD_GAP,        /* GlobalAveragePooling2D */
    NET_HEAD_FLATTEN,
    NET_HEAD_DENSE,      /* Dense(units, activation) */
    NET_HEAD_DROPOUT,
} net_head_kind;

typedef enum { NET_ACT_NONE, NET_ACT_RELU, NET_ACT_RELU6 } net_act;

typedef struct {
    net_head_kind kind;
    int units;
    net_act act;
    float rate;
} net_head_op;

/* Appends ops then the classifier Dense(classes) named "predictions" that
 * outputs logits (the loss applies softmax or sigmoid). Sets n->features
 * to `in`. Returns the classifier's layer index. */
int net_head(net *n, int in, const net_head_op *ops, int n_ops, int classes, tl_err *e);

#endif
